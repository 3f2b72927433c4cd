//! Properties of the transform on generated files: the deltas add back up to the cumulative
//! values, the result does not depend on row order, and the join and the `recovered` rule agree
//! with a plain model of DESIGN rules 3 and 4.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use proptest::prelude::*;

use crate::JHU_HEADER;

fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 11, 1).unwrap()
}

#[derive(Debug, Clone)]
struct Sources {
    /// day offset → (cases, deaths)
    nyt: BTreeMap<u64, (i64, i64)>,
    /// day offset → recovered cell
    jhu: BTreeMap<u64, Option<i64>>,
}

fn recovered_cell() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        1 => Just(None),
        2 => Just(Some(0)),
        4 => (0i64..10_000_000).prop_map(Some),
    ]
}

fn sources() -> impl Strategy<Value = Sources> {
    let count = 0i64..1_000_000_000_000;
    (
        prop::collection::btree_map(0u64..60, (count.clone(), count), 0..45),
        prop::collection::btree_map(0u64..60, recovered_cell(), 0..45),
        (0u64..60, 0i64..1_000, 0i64..1_000, recovered_cell()),
    )
        .prop_map(|(mut nyt, mut jhu, (common, cases, deaths, recovered))| {
            // At least one common day, or the run fails by design.
            nyt.entry(common).or_insert((cases, deaths));
            jhu.entry(common).or_insert(recovered);
            Sources { nyt, jhu }
        })
}

fn date(offset: u64) -> NaiveDate {
    start() + Days::new(offset)
}

fn nyt_lines(s: &Sources) -> Vec<String> {
    s.nyt
        .iter()
        .map(|(d, (c, de))| format!("{},{c},{de}", date(*d)))
        .collect()
}

/// US national rows, plus rows of other places on the same days that must not matter.
fn jhu_lines(s: &Sources) -> Vec<String> {
    let cell = |v: &Option<i64>| v.map_or(String::new(), |v| v.to_string());
    let mut lines = Vec::new();
    for (d, r) in &s.jhu {
        lines.push(format!("{},US,,1,{},0", date(*d), cell(r)));
        lines.push(format!("{},\"Korea, South\",,1,{},0", date(*d), d * 3));
        lines.push(format!("{},US,Guam,1,{},0", date(*d), d * 5));
    }
    lines
}

fn file(header: &str, lines: &[String]) -> String {
    format!("{header}\n{}\n", lines.join("\n"))
}

fn sources_and_shuffles() -> impl Strategy<Value = (Sources, Vec<String>, Vec<String>)> {
    sources().prop_flat_map(|s| {
        let (nyt, jhu) = (nyt_lines(&s), jhu_lines(&s));
        (Just(s), Just(nyt).prop_shuffle(), Just(jhu).prop_shuffle())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn daily_deltas_sum_back_to_the_cumulative_values(s in sources()) {
        let curated = dataset::transform(
            file("date,cases,deaths", &nyt_lines(&s)).as_bytes(),
            file(JHU_HEADER, &jhu_lines(&s)).as_bytes(),
        ).unwrap();
        let (mut cases, mut deaths, mut recovered) = (0i64, 0i64, Some(0i64));
        for (i, row) in curated.rows.iter().enumerate() {
            cases += row.new_cases.unwrap();
            deaths += row.new_deaths.unwrap();
            prop_assert_eq!(cases, row.cases);
            prop_assert_eq!(deaths, row.deaths);
            // Recoveries add up within each run of reported days; a missing day ends the run.
            let previous_reported = i == 0 || curated.rows[i - 1].recovered.is_some();
            prop_assert_eq!(row.new_recovered.is_some(), row.recovered.is_some() && previous_reported);
            recovered = match (recovered, row.new_recovered) {
                (Some(sum), Some(delta)) => Some(sum + delta),
                _ => row.recovered,
            };
            prop_assert_eq!(recovered, row.recovered);
        }
    }

    #[test]
    fn the_result_does_not_depend_on_row_order((s, nyt_shuffled, jhu_shuffled) in sources_and_shuffles()) {
        let ordered = dataset::transform(
            file("date,cases,deaths", &nyt_lines(&s)).as_bytes(),
            file(JHU_HEADER, &jhu_lines(&s)).as_bytes(),
        ).unwrap();
        let shuffled = dataset::transform(
            file("date,cases,deaths", &nyt_shuffled).as_bytes(),
            file(JHU_HEADER, &jhu_shuffled).as_bytes(),
        ).unwrap();
        prop_assert_eq!(ordered, shuffled);
    }

    #[test]
    fn the_join_and_the_recovered_rule_match_a_plain_model(s in sources()) {
        let curated = dataset::transform(
            file("date,cases,deaths", &nyt_lines(&s)).as_bytes(),
            file(JHU_HEADER, &jhu_lines(&s)).as_bytes(),
        ).unwrap();
        let nyt_days: BTreeSet<u64> = s.nyt.keys().copied().collect();
        let jhu_days: BTreeSet<u64> = s.jhu.keys().copied().collect();
        let common: Vec<NaiveDate> = nyt_days.intersection(&jhu_days).map(|d| date(*d)).collect();
        let dates: Vec<NaiveDate> = curated.rows.iter().map(|r| r.date).collect();
        prop_assert_eq!(dates, common);
        prop_assert_eq!(curated.dropped.only_nyt, nyt_days.difference(&jhu_days).count() as u64);
        prop_assert_eq!(curated.dropped.only_jhu, jhu_days.difference(&nyt_days).count() as u64);

        let first_positive = s.jhu.iter().find(|(_, r)| r.is_some_and(|r| r > 0)).map(|(d, _)| *d);
        for row in &curated.rows {
            let offset = (row.date - start()).num_days() as u64;
            let cell = s.jhu[&offset];
            let expected = match (cell, first_positive) {
                (Some(0), Some(first)) if offset > first => None,
                _ => cell,
            };
            prop_assert_eq!(row.recovered, expected, "on {}", row.date);
            prop_assert_eq!((row.cases, row.deaths), s.nyt[&offset]);
        }
    }
}
