//! Data-quality warnings of a run: negative daily deltas (DESIGN rule 5), one sentence each.
//!
//! A cumulative count that falls is an upstream correction: the delta is kept and reported. The
//! real NYT file has dozens of them, so the list is capped and the rest summarised in one line.

use shared::events::Field;

use crate::DailyRow;

/// Sentences listed one by one; the rest are counted in one summary sentence.
pub const MAX_LISTED: usize = 10;

pub(crate) fn negative_deltas(rows: &[DailyRow]) -> Vec<String> {
    let mut listed = Vec::new();
    let mut unlisted = [0usize; 3];
    let mut last_unlisted = None;
    for pair in rows.windows(2) {
        let (before, row) = (&pair[0], &pair[1]);
        for (slot, field) in Field::ALL.into_iter().enumerate() {
            let (delta, old, new) = match field {
                Field::Cases => (row.new_cases, Some(before.cases), Some(row.cases)),
                Field::Deaths => (row.new_deaths, Some(before.deaths), Some(row.deaths)),
                Field::Recovered => (row.new_recovered, before.recovered, row.recovered),
            };
            let (Some(delta), Some(old), Some(new)) = (delta, old, new) else {
                continue;
            };
            if delta >= 0 {
                continue;
            }
            if listed.len() < MAX_LISTED {
                let name = field.as_str();
                listed.push(format!(
                    "new_{name} is {delta} on {} ({name} fell from {old} on {} to {new})",
                    row.date, before.date
                ));
            } else {
                unlisted[slot] += 1;
                last_unlisted = Some(row.date);
            }
        }
    }
    let total: usize = unlisted.iter().sum();
    if let Some(last) = last_unlisted {
        let per_field: Vec<String> = Field::ALL
            .into_iter()
            .zip(unlisted)
            .filter(|(_, n)| *n > 0)
            .map(|(field, n)| format!("new_{} {n}", field.as_str()))
            .collect();
        listed.push(format!(
            "{total} more negative daily {} not listed ({}), the last on {last}",
            if total == 1 { "delta" } else { "deltas" },
            per_field.join(", ")
        ));
    }
    listed
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn row(
        day: u32,
        cases: i64,
        deaths: i64,
        recovered: Option<i64>,
        prev: Option<&DailyRow>,
    ) -> DailyRow {
        let delta = |now: Option<i64>, before: Option<i64>| Some(now? - before?);
        DailyRow {
            date: NaiveDate::from_ymd_opt(2020, 8, day).unwrap(),
            cases,
            deaths,
            recovered,
            new_cases: prev.map_or(Some(cases), |p| Some(cases - p.cases)),
            new_deaths: prev.map_or(Some(deaths), |p| Some(deaths - p.deaths)),
            new_recovered: prev.map_or(recovered, |p| delta(recovered, p.recovered)),
        }
    }

    #[test]
    fn a_falling_count_is_one_sentence_naming_field_day_and_values() {
        let first = row(13, 5000, 100, Some(7), None);
        let second = row(14, 4988, 100, Some(6), Some(&first));
        assert_eq!(
            negative_deltas(&[first, second]),
            vec![
                "new_cases is -12 on 2020-08-14 (cases fell from 5000 on 2020-08-13 to 4988)",
                "new_recovered is -1 on 2020-08-14 (recovered fell from 7 on 2020-08-13 to 6)",
            ]
        );
    }

    #[test]
    fn rising_counts_and_missing_recoveries_give_no_warning() {
        let first = row(1, 1, 0, Some(5), None);
        let second = row(2, 2, 0, None, Some(&first));
        let third = row(3, 3, 1, Some(1), Some(&second));
        assert!(negative_deltas(&[first, second, third]).is_empty());
    }

    #[test]
    fn warnings_beyond_the_cap_are_summarised_in_one_sentence() {
        let mut rows = vec![row(1, 100, 100, None, None)];
        for day in 2..=(MAX_LISTED as u32 + 4) {
            let prev = rows.last().unwrap().clone();
            rows.push(row(
                day,
                prev.cases - 1,
                prev.deaths - i64::from(day % 2),
                None,
                Some(&prev),
            ));
        }
        let warnings = negative_deltas(&rows);
        assert_eq!(warnings.len(), MAX_LISTED + 1);
        assert_eq!(
            warnings.last().unwrap(),
            "9 more negative daily deltas not listed (new_cases 6, new_deaths 3), the last on 2020-08-14"
        );
    }
}
