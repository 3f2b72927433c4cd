//! The built-in demo history: a synthetic epidemic, made up here (no upstream data), served by
//! `fake-github --demo` so a first run shows data moving without GitHub.
//!
//! Both files grow by one day per step, the way upstream grew: step 0 holds the first
//! [`DemoOptions::initial_days`] days, each later step adds the next day to both files (one NYT
//! commit and one JHU commit, revealed together, so each step is one run). Every
//! [`REVISION_EVERY`] steps an earlier day is revised as well (cases up, and deaths too where the
//! next day's deaths leave room), as upstream corrections happen, so the notification of that
//! run lists a correction. A revision never makes a daily delta negative.
//!
//! The figures are a pure function of the day: waves of daily cases, a weekly reporting rhythm
//! (fewer cases counted at weekends, more on Mondays), a few percent of noise from a hash of the
//! day, deaths following cases about 18 days later, recoveries 14 days later. Commit shas are
//! derived from the content and [`DemoOptions::seed`]: a demo started again with another seed
//! makes new commits, hence new runs, rather than repeating runs an earlier demo already loaded.
//! Commit times are left to the fake (the time of the reveal), so the data is fresh.

use chrono::{Datelike, Days, NaiveDate, Weekday};
use sha1::{Digest, Sha1};
use shared::Source;

use super::NewCommit;

/// The first day of the demo epidemic.
pub const FIRST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(2020, 3, 1) {
    Some(day) => day,
    None => panic!("a valid date"),
};

/// Every this many steps one also revises an earlier day: steps 2, 5, 8… (`step %
/// REVISION_EVERY == 2`).
pub const REVISION_EVERY: usize = 3;

/// How far back from the newest day of its version a revision reaches.
const REVISION_LAG: usize = 3;

/// The JHU file's header: its current layout, without `Lat`/`Long`.
pub const JHU_HEADER: &str = "Date,Country/Region,Province/State,Confirmed,Recovered,Deaths";

/// The shape of a demo history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoOptions {
    /// Days in the first version (step 0); at least [`REVISION_LAG`] + 2.
    pub initial_days: usize,
    /// Steps after step 0, each one day more.
    pub steps: usize,
    /// Mixed into every commit sha (not into the content).
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        // 30 days, then one more per step: at one step every 5 s, about 40 minutes of news.
        DemoOptions {
            initial_days: 30,
            steps: 480,
            seed: 0,
        }
    }
}

/// One upstream correction the demo makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision {
    /// The step (version) that first carries it.
    pub step: usize,
    /// The day revised (an index from [`FIRST_DAY`]).
    pub day: usize,
    pub added_cases: i64,
    pub added_deaths: i64,
}

/// One day's values in one version: cumulative counts, as both files report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayValues {
    pub date: NaiveDate,
    pub cases: i64,
    pub deaths: i64,
    pub recovered: i64,
}

impl DemoOptions {
    /// The replay steps: step 0 with both files, then one NYT and one JHU commit per step.
    pub fn steps(&self) -> Vec<Vec<NewCommit>> {
        (0..=self.steps)
            .map(|step| {
                let days = self.version(step);
                let message = self.message(step, &days);
                vec![
                    self.commit(Source::NYT, step, nyt_csv(&days), &message),
                    self.commit(Source::JHU, step, jhu_csv(&days), &message),
                ]
            })
            .collect()
    }

    /// The days of version `step`, oldest first, with every revision made up to that step.
    pub fn version(&self, step: usize) -> Vec<DayValues> {
        let count = self.initial_days.max(REVISION_LAG + 2) + step;
        let revisions: Vec<Revision> = self.revisions_upto(step);
        let mut days = Vec::with_capacity(count);
        let (mut cases, mut deaths) = (0i64, 0i64);
        let mut cumulative_cases = Vec::with_capacity(count);
        for day in 0..count {
            let (mut new_cases, mut new_deaths) = (base_new_cases(day), base_new_deaths(day));
            // A revision raises one day's cumulative count; the next day's counts stay, so its
            // delta shrinks by as much (and stays positive: see `revision_at`).
            for r in revisions.iter().filter(|r| r.day == day) {
                new_cases += r.added_cases;
                new_deaths += r.added_deaths;
            }
            for r in revisions.iter().filter(|r| r.day + 1 == day) {
                new_cases -= r.added_cases;
                new_deaths -= r.added_deaths;
            }
            cases += new_cases;
            deaths += new_deaths;
            cumulative_cases.push(cases);
            // Recoveries: most of the cases of two weeks before.
            let recovered = day
                .checked_sub(14)
                .map_or(0, |earlier| cumulative_cases[earlier] * 9 / 10);
            days.push(DayValues {
                date: date_of(day),
                cases,
                deaths,
                recovered,
            });
        }
        days
    }

    /// Every revision made at steps `1..=step`, in step order.
    pub fn revisions_upto(&self, step: usize) -> Vec<Revision> {
        (1..=step).filter_map(|s| self.revision_at(s)).collect()
    }

    /// The revision made at `step`, if that step makes one.
    pub fn revision_at(&self, step: usize) -> Option<Revision> {
        if step % REVISION_EVERY != 2 {
            return None;
        }
        let newest = self.initial_days.max(REVISION_LAG + 2) + step - 1;
        let day = newest - REVISION_LAG;
        // Less than the next day's new counts, so no delta turns negative.
        let next_cases = base_new_cases(day + 1);
        let next_deaths = base_new_deaths(day + 1);
        Some(Revision {
            step,
            day,
            added_cases: next_cases / 5 + 1,
            added_deaths: if step % (2 * REVISION_EVERY) == 2 && next_deaths >= 2 {
                next_deaths / 2
            } else {
                0
            },
        })
    }

    fn message(&self, step: usize, days: &[DayValues]) -> String {
        let newest = days.last().map(|d| d.date).unwrap_or(FIRST_DAY);
        match (step, self.revision_at(step)) {
            (0, _) => format!("Demo data: {FIRST_DAY} to {newest}"),
            (_, Some(r)) => format!("Demo data: add {newest}, revise {}", date_of(r.day)),
            (_, None) => format!("Demo data: add {newest}"),
        }
    }

    fn commit(&self, source: Source, step: usize, content: String, message: &str) -> NewCommit {
        let location = source
            .default_location()
            .expect("the us sources have a default location");
        let mut hasher = Sha1::new();
        hasher.update(format!("covid-etl demo\n{}\n{source}\n{step}\n", self.seed).as_bytes());
        hasher.update(content.as_bytes());
        NewCommit {
            repo: location.repo.clone(),
            path: location.path.clone(),
            content: content.into(),
            sha: Some(hex::encode(hasher.finalize())),
            time: None,
            message: Some(message.to_owned()),
        }
    }
}

/// The NYT `us.csv` of these days.
pub fn nyt_csv(days: &[DayValues]) -> String {
    let mut csv = String::from("date,cases,deaths\n");
    for d in days {
        csv.push_str(&format!("{},{},{}\n", d.date, d.cases, d.deaths));
    }
    csv
}

/// The JHU combined time series of these days: the US national row (empty `Province/State`),
/// which is all the transform reads, beside a US province row and another country's row, which
/// it leaves out.
pub fn jhu_csv(days: &[DayValues]) -> String {
    let mut csv = format!("{JHU_HEADER}\n");
    for d in days {
        let date = d.date;
        csv.push_str(&format!(
            "{date},Canada,Ontario,{},{},{}\n",
            d.cases / 9,
            d.recovered / 9,
            d.deaths / 9
        ));
        csv.push_str(&format!(
            "{date},US,,{},{},{}\n",
            d.cases, d.recovered, d.deaths
        ));
        csv.push_str(&format!(
            "{date},US,Diamond Princess,{},{},{}\n",
            d.cases.min(712),
            d.recovered.min(699),
            d.deaths.min(13)
        ));
    }
    csv
}

/// The date of day `day` of the demo.
pub fn date_of(day: usize) -> NaiveDate {
    FIRST_DAY
        .checked_add_days(Days::new(day as u64))
        .unwrap_or(NaiveDate::MAX)
}

/// New cases counted on a day before any revision: waves, the weekly rhythm and some noise.
fn base_new_cases(day: usize) -> i64 {
    let t = day as f64;
    let wave = |peak: f64, width: f64, height: f64| height * (-((t - peak) / width).powi(2)).exp();
    let level = 400.0
        + wave(40.0, 14.0, 30_000.0)
        + wave(135.0, 22.0, 65_000.0)
        + wave(300.0, 35.0, 220_000.0)
        + wave(430.0, 28.0, 150_000.0)
        + wave(500.0, 12.0, 90_000.0);
    let weekly = match date_of(day).weekday() {
        Weekday::Sat => 0.65,
        Weekday::Sun => 0.55,
        Weekday::Mon => 1.35,
        _ => 1.1,
    };
    let noisy = level * weekly * (1.0 + 0.08 * noise(day, 1));
    noisy.round() as i64
}

/// New deaths counted on a day: about 1.6 % of the cases of 18 days before, with some noise.
fn base_new_deaths(day: usize) -> i64 {
    let Some(earlier) = day.checked_sub(18) else {
        return i64::from(day >= 3);
    };
    let share = 0.016 * (1.0 + 0.1 * noise(day, 2));
    (base_new_cases(earlier) as f64 * share).round() as i64
}

/// A fixed pseudo-random number in [-1, 1] for a day and a stream (SplitMix64 of both).
fn noise(day: usize, stream: u64) -> f64 {
    let mut z = (day as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(stream.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> DemoOptions {
        DemoOptions {
            initial_days: 30,
            steps: 40,
            seed: 7,
        }
    }

    #[test]
    fn every_version_parses_with_the_datasets_own_transform_and_grows_by_one_day() {
        let options = small();
        let steps = options.steps();
        assert_eq!(steps.len(), options.steps + 1);
        let mut previous_last = None;
        for (step, commits) in steps.iter().enumerate() {
            let [nyt, jhu] = commits.as_slice() else {
                panic!(
                    "step {step} has {} commits, not one per source",
                    commits.len()
                );
            };
            assert_eq!(nyt.repo, Source::NYT.default_location().unwrap().repo);
            assert_eq!(nyt.path, Source::NYT.default_location().unwrap().path);
            assert_eq!(jhu.repo, Source::JHU.default_location().unwrap().repo);
            assert_eq!(jhu.path, Source::JHU.default_location().unwrap().path);
            let curated = dataset::transform(&nyt.content, &jhu.content)
                .unwrap_or_else(|err| panic!("step {step} does not transform: {err}"));
            assert_eq!(curated.rows.len(), options.initial_days + step);
            assert_eq!(
                (curated.dropped.only_nyt, curated.dropped.only_jhu),
                (0, 0),
                "step {step}: both files have the same days"
            );
            assert!(
                curated.warnings.is_empty(),
                "step {step}: no negative delta: {:?}",
                curated.warnings
            );
            assert!(curated.rows.iter().all(|r| r.recovered.is_some()));
            // Consecutive days, and one day more than the step before.
            for pair in curated.rows.windows(2) {
                assert_eq!(pair[1].date, pair[0].date.succ_opt().unwrap());
            }
            let last = curated.rows.last().unwrap().date;
            if let Some(previous) = previous_last {
                assert_eq!(last, NaiveDate::succ_opt(&previous).unwrap(), "step {step}");
            }
            previous_last = Some(last);
        }
    }

    #[test]
    fn the_whole_default_history_transforms_without_a_negative_delta() {
        let options = DemoOptions::default();
        let last = options.version(options.steps);
        let curated =
            dataset::transform(nyt_csv(&last).as_bytes(), jhu_csv(&last).as_bytes()).unwrap();
        assert_eq!(curated.rows.len(), options.initial_days + options.steps);
        assert!(curated.warnings.is_empty(), "{:?}", curated.warnings);
        assert!(options.revisions_upto(options.steps).len() >= options.steps / REVISION_EVERY);
    }

    #[test]
    fn revisions_change_an_earlier_day_and_stay_in_later_versions() {
        let options = small();
        let revisions = options.revisions_upto(options.steps);
        assert!(revisions.len() >= 10, "{revisions:?}");
        assert!(revisions.iter().any(|r| r.added_deaths > 0));
        for r in &revisions {
            let before = options.version(r.step - 1);
            let at = options.version(r.step);
            let later = options.version(options.steps);
            assert_eq!(at[r.day].cases, before[r.day].cases + r.added_cases);
            assert_eq!(at[r.day].deaths, before[r.day].deaths + r.added_deaths);
            assert_eq!(later[r.day], at[r.day], "a revision is kept");
            // Only that day changed among the days both versions have.
            let changed: Vec<usize> = (0..before.len()).filter(|&d| before[d] != at[d]).collect();
            assert_eq!(changed, vec![r.day], "step {}", r.step);
        }
        // A step without a revision only adds a day.
        let (a, b) = (options.version(3), options.version(4));
        assert!(options.revision_at(4).is_none());
        assert_eq!(&b[..a.len()], &a[..]);
    }

    #[test]
    fn the_history_is_deterministic_and_the_seed_only_changes_the_shas() {
        let one = small().steps();
        let again = small().steps();
        let other = DemoOptions { seed: 8, ..small() }.steps();
        for ((a, b), c) in one
            .iter()
            .flatten()
            .zip(again.iter().flatten())
            .zip(other.iter().flatten())
        {
            assert_eq!((&a.sha, &a.content), (&b.sha, &b.content));
            assert_eq!(a.content, c.content);
            assert_ne!(a.sha, c.sha);
            assert!(a.sha.as_deref().is_some_and(|s| s.len() == 40));
        }
    }

    #[test]
    fn the_files_have_the_upstream_layouts() {
        let days = small().version(0);
        let nyt = nyt_csv(&days);
        let jhu = jhu_csv(&days);
        assert!(nyt.starts_with("date,cases,deaths\n2020-03-01,"), "{nyt}");
        assert!(jhu.starts_with(&format!("{JHU_HEADER}\n2020-03-01,Canada,Ontario,")));
        assert!(jhu.contains("\n2020-03-01,US,,"));
        assert_eq!(jhu.lines().count(), 1 + 3 * days.len());
    }
}
