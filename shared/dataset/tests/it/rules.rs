//! DESIGN.md transform rules 1–5, one behaviour per test.

use dataset::DailyRow;

use crate::{day, jhu_csv, nyt_csv, run, us};

const NYT: &str = "date,cases,deaths\n2020-01-22,1,0\n2020-01-23,2,0\n2020-01-24,5,1\n";

fn jhu_us(rows: &[(&'static str, &'static str)]) -> String {
    jhu_csv(&us(rows))
}

fn recovered(curated: &dataset::Curated) -> Vec<Option<i64>> {
    curated.rows.iter().map(|r| r.recovered).collect()
}

#[test]
fn nyt_and_jhu_columns_are_found_by_name_in_any_order_with_extra_columns() {
    let expected = run(
        NYT,
        &jhu_us(&[
            ("2020-01-22", "0"),
            ("2020-01-23", "0"),
            ("2020-01-24", "1"),
        ]),
    );
    let variants: &[(&str, &str)] = &[
        (
            "deaths,date,cases\n0,2020-01-22,1\n0,2020-01-23,2\n1,2020-01-24,5\n",
            "Recovered,Date,Province/State,Country/Region\n0,2020-01-22,,US\n0,2020-01-23,,US\n1,2020-01-24,,US\n",
        ),
        (
            "date,cases,deaths,confirmed_probable\n2020-01-22,1,0,\n2020-01-23,2,0,7\n2020-01-24,5,1,9\n",
            "Date,Country/Region,Province/State,Lat,Long,Confirmed,Recovered,Deaths,Active\n\
             2020-01-22,US,,40.0,-100.0,1,0,0,x\n2020-01-23,US,,40.0,-100.0,2,0,0,x\n2020-01-24,US,,40.0,-100.0,5,1,1,x\n",
        ),
    ];
    for (nyt, jhu) in variants {
        assert_eq!(
            run(nyt, jhu),
            expected,
            "with headers {:?} / {:?}",
            nyt.lines().next(),
            jhu.lines().next()
        );
    }
}

#[test]
fn only_the_us_national_jhu_rows_count() {
    let jhu = jhu_csv(&[
        ("2020-01-22", "US", "Diamond Princess", "40"),
        ("2020-01-22", "Korea, South", "", "30"),
        ("2020-01-22", "us", "", "20"),
        ("2020-01-22", "US", "", "7"),
        ("2020-01-23", "Canada", "Alberta", "50"),
        ("2020-01-23", "US", "", "8"),
        ("2020-01-24", "US", "", "9"),
    ]);
    assert_eq!(recovered(&run(NYT, &jhu)), vec![Some(7), Some(8), Some(9)]);
}

#[test]
fn other_countries_rows_are_neither_required_nor_checked() {
    let mut jhu = jhu_us(&[
        ("2020-01-22", "0"),
        ("2020-01-23", "0"),
        ("2020-01-24", "1"),
    ]);
    // Their values only: a row with another number of fields than the header is refused anywhere.
    jhu.push_str("yesterday,Atlantis,,many,-5.5,n/a\n2020-02-30,Atlantis,,1.5,,\n2020-01-22,Atlantis,,1,1,1\n");
    assert_eq!(run(NYT, &jhu).rows.len(), 3);
}

#[test]
fn the_join_keeps_common_days_sorted_and_counts_the_dropped_ones() {
    let nyt = nyt_csv(&[
        ("2020-01-25", 9, 2),
        ("2020-01-21", 1, 0),
        ("2020-01-23", 2, 0),
        ("2020-01-22", 1, 0),
    ]);
    let jhu = jhu_us(&[
        ("2020-01-24", ""),
        ("2020-01-23", ""),
        ("2020-01-22", ""),
        ("2020-01-26", ""),
    ]);
    let curated = run(&nyt, &jhu);
    let dates: Vec<_> = curated.rows.iter().map(|r| r.date).collect();
    assert_eq!(dates, vec![day("2020-01-22"), day("2020-01-23")]);
    assert_eq!(curated.dropped.only_nyt, 2);
    assert_eq!(
        curated.dropped.only_nyt_dates,
        vec![day("2020-01-21"), day("2020-01-25")]
    );
    assert_eq!(curated.dropped.only_jhu, 2);
    assert_eq!(
        curated.dropped.only_jhu_dates,
        vec![day("2020-01-24"), day("2020-01-26")]
    );
}

#[test]
fn dropped_dates_are_listed_only_up_to_the_cap_but_all_are_counted() {
    let max = shared::events::Dropped::MAX_DATES;
    let start = day("2020-01-01");
    let dates: Vec<String> = (0..max + 5)
        .map(|i| (start + chrono::Days::new(i as u64)).to_string())
        .collect();
    let nyt_rows: Vec<(&str, i64, i64)> = dates.iter().map(|d| (d.as_str(), 1, 0)).collect();
    let curated = run(&nyt_csv(&nyt_rows), &jhu_us(&[("2020-01-01", "")]));
    assert_eq!(curated.dropped.only_nyt, (max + 4) as u64);
    assert_eq!(curated.dropped.only_nyt_dates.len(), max);
    assert_eq!(curated.dropped.only_nyt_dates[0], day("2020-01-02"));
}

#[test]
fn recovered_is_missing_where_jhu_leaves_it_empty_or_writes_0_after_reporting() {
    /// (what, the three US Recovered cells, the expected `recovered`)
    type Case = (&'static str, [&'static str; 3], [Option<i64>; 3]);
    let table: &[Case] = &[
        (
            "reported every day",
            ["0", "3", "5"],
            [Some(0), Some(3), Some(5)],
        ),
        ("empty cells", ["", "3", ""], [None, Some(3), None]),
        (
            "zeros before the first recovery are real zeros",
            ["0", "0", "2"],
            [Some(0), Some(0), Some(2)],
        ),
        (
            "zeros after a recovery mean not reported",
            ["4", "0", "0"],
            [Some(4), None, None],
        ),
        (
            "reporting may resume after a gap of zeros",
            ["4", "0", "6"],
            [Some(4), None, Some(6)],
        ),
    ];
    for (name, cells, expected) in table {
        let jhu = jhu_us(&[
            ("2020-01-22", cells[0]),
            ("2020-01-23", cells[1]),
            ("2020-01-24", cells[2]),
        ]);
        assert_eq!(recovered(&run(NYT, &jhu)), expected.to_vec(), "{name}");
    }
}

#[test]
fn a_recovery_on_a_day_the_join_drops_still_marks_later_zeros_as_not_reported() {
    let jhu = jhu_us(&[
        ("2020-01-21", "9"),
        ("2020-01-22", "0"),
        ("2020-01-23", "0"),
        ("2020-01-24", "0"),
    ]);
    assert_eq!(recovered(&run(NYT, &jhu)), vec![None, None, None]);
}

#[test]
fn jhu_stopping_us_recoveries_on_2020_12_14_leaves_them_missing_from_then_on() {
    let nyt = nyt_csv(&[
        ("2020-12-12", 100, 10),
        ("2020-12-13", 110, 11),
        ("2020-12-14", 120, 12),
        ("2020-12-15", 130, 13),
    ]);
    let jhu = jhu_us(&[
        ("2020-12-12", "6246605"),
        ("2020-12-13", "6298082"),
        ("2020-12-14", "0"),
        ("2020-12-15", "0"),
    ]);
    let curated = run(&nyt, &jhu);
    assert_eq!(
        recovered(&curated),
        vec![Some(6_246_605), Some(6_298_082), None, None]
    );
    let new_recovered: Vec<_> = curated.rows.iter().map(|r| r.new_recovered).collect();
    assert_eq!(
        new_recovered,
        vec![Some(6_246_605), Some(51_477), None, None]
    );
    assert!(
        curated.warnings.is_empty(),
        "the stop is not a negative delta: {:?}",
        curated.warnings
    );
}

#[test]
fn daily_deltas_follow_the_previous_output_row() {
    let nyt = nyt_csv(&[
        ("2020-01-22", 10, 1),
        ("2020-01-23", 15, 1),
        ("2020-01-25", 30, 4),
        ("2020-01-26", 31, 4),
    ]);
    let jhu = jhu_us(&[
        ("2020-01-22", ""),
        ("2020-01-23", "2"),
        ("2020-01-25", "7"),
        ("2020-01-26", ""),
    ]);
    let row = |date: &str, cases, deaths, recovered, deltas: (i64, i64, Option<i64>)| DailyRow {
        date: day(date),
        cases,
        deaths,
        recovered,
        new_cases: Some(deltas.0),
        new_deaths: Some(deltas.1),
        new_recovered: deltas.2,
    };
    assert_eq!(
        run(&nyt, &jhu).rows,
        vec![
            // The first row's deltas are its values; missing stays missing.
            row("2020-01-22", 10, 1, None, (10, 1, None)),
            // Either side missing: no delta.
            row("2020-01-23", 15, 1, Some(2), (5, 0, None)),
            // A gap in dates: the delta is against the previous output row.
            row("2020-01-25", 30, 4, Some(7), (15, 3, Some(5))),
            row("2020-01-26", 31, 4, None, (1, 0, None)),
        ]
    );
}

#[test]
fn a_negative_delta_is_kept_and_reported_as_a_warning() {
    let nyt = nyt_csv(&[("2020-08-13", 5000, 100), ("2020-08-14", 4988, 100)]);
    let jhu = jhu_us(&[("2020-08-13", "10"), ("2020-08-14", "11")]);
    let curated = run(&nyt, &jhu);
    assert_eq!(curated.rows[1].new_cases, Some(-12));
    assert_eq!(
        curated.warnings,
        vec!["new_cases is -12 on 2020-08-14 (cases fell from 5000 on 2020-08-13 to 4988)"]
    );
}
