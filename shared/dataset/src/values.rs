//! Parsing one field: an ISO date or a non-negative whole count, strictly.
//!
//! Strict on purpose: pandas' `int()` truncates 2.7 to 2 and `read_csv` turns a column with an
//! empty cell into floats; a count that is not exactly a whole number means upstream changed
//! format, and the run should say so rather than guess.

use chrono::NaiveDate;

use crate::error::{Problem, shorten};

/// `YYYY-MM-DD`, a real calendar day, nothing after it.
pub(crate) fn date(column: &'static str, text: &str) -> Result<NaiveDate, Problem> {
    if text.is_empty() {
        return Err(Problem::EmptyValue { column });
    }
    let value = || shorten(text);
    let b = text.as_bytes();
    let shaped = b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    if !shaped {
        return Err(Problem::NotADate {
            column,
            value: value(),
        });
    }
    if b.len() > 10 {
        return Err(if matches!(b[10], b'T' | b' ') {
            Problem::DateWithTime {
                column,
                value: value(),
            }
        } else {
            Problem::NotADate {
                column,
                value: value(),
            }
        });
    }
    let number = |range: std::ops::Range<usize>| text[range].parse::<u32>().unwrap_or(0);
    let year = number(0..4) as i32;
    NaiveDate::from_ymd_opt(year, number(5..7), number(8..10)).ok_or_else(|| {
        Problem::ImpossibleDate {
            column,
            value: value(),
        }
    })
}

/// A whole number from 0 to `i64::MAX`, digits only.
pub(crate) fn count(column: &'static str, text: &str) -> Result<i64, Problem> {
    if text.is_empty() {
        return Err(Problem::EmptyValue { column });
    }
    let value = || shorten(text);
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let whole = numeric(digits);
    let decimal = !whole
        && digits
            .split_once('.')
            .is_some_and(|(int, frac)| (numeric(int) || int.is_empty()) && numeric(frac));
    if negative && (whole || decimal) {
        return Err(Problem::Negative {
            column,
            value: value(),
        });
    }
    if decimal {
        return Err(Problem::Decimal {
            column,
            value: value(),
        });
    }
    if !whole || negative {
        return Err(Problem::NotAWholeNumber {
            column,
            value: value(),
        });
    }
    // Only digits remain, so the one way to fail is being too large.
    digits.parse::<i64>().map_err(|_| Problem::TooLarge {
        column,
        value: value(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn dates_are_iso_calendar_days_and_nothing_else() {
        let cases: &[(&str, Result<NaiveDate, &str>)] = &[
            ("2020-03-01", Ok(d(2020, 3, 1))),
            ("2020-02-29", Ok(d(2020, 2, 29))),
            ("", Err("date is empty")),
            (
                "2020-02-30",
                Err("date \"2020-02-30\" is not a day of the calendar"),
            ),
            (
                "2021-02-29",
                Err("date \"2021-02-29\" is not a day of the calendar"),
            ),
            (
                "2020-13-01",
                Err("date \"2020-13-01\" is not a day of the calendar"),
            ),
            (
                "2020-00-10",
                Err("date \"2020-00-10\" is not a day of the calendar"),
            ),
            (
                "2020-03-01T00:00:00Z",
                Err(
                    "date \"2020-03-01T00:00:00Z\" has a time of day; expected a plain date (YYYY-MM-DD)",
                ),
            ),
            (
                "2020-03-01 12:00",
                Err(
                    "date \"2020-03-01 12:00\" has a time of day; expected a plain date (YYYY-MM-DD)",
                ),
            ),
            (
                "03/01/2020",
                Err("date \"03/01/2020\" is not a date in the form YYYY-MM-DD"),
            ),
            (
                "2020-3-1",
                Err("date \"2020-3-1\" is not a date in the form YYYY-MM-DD"),
            ),
            (
                "20200301",
                Err("date \"20200301\" is not a date in the form YYYY-MM-DD"),
            ),
            (
                " 2020-03-01",
                Err("date \" 2020-03-01\" is not a date in the form YYYY-MM-DD"),
            ),
            (
                "2020-03-01x",
                Err("date \"2020-03-01x\" is not a date in the form YYYY-MM-DD"),
            ),
            (
                "２020-03-01",
                Err("date \"２020-03-01\" is not a date in the form YYYY-MM-DD"),
            ),
        ];
        for (text, expected) in cases {
            let got = date("date", text).map_err(|p| p.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "input {text:?}");
        }
    }

    #[test]
    fn counts_are_non_negative_whole_numbers_that_fit_in_i64() {
        let cases: &[(&str, Result<i64, &str>)] = &[
            ("0", Ok(0)),
            ("007", Ok(7)),
            ("9223372036854775807", Ok(i64::MAX)),
            ("", Err("deaths is empty")),
            ("12x", Err("deaths \"12x\" is not a whole number")),
            ("1e5", Err("deaths \"1e5\" is not a whole number")),
            ("+5", Err("deaths \"+5\" is not a whole number")),
            (" 5", Err("deaths \" 5\" is not a whole number")),
            ("1,000", Err("deaths \"1,000\" is not a whole number")),
            ("-", Err("deaths \"-\" is not a whole number")),
            (
                "1.5",
                Err("deaths \"1.5\" is a decimal number; counts must be whole numbers"),
            ),
            (
                "1.0",
                Err("deaths \"1.0\" is a decimal number; counts must be whole numbers"),
            ),
            (
                ".5",
                Err("deaths \".5\" is a decimal number; counts must be whole numbers"),
            ),
            ("-3", Err("deaths \"-3\" is negative")),
            ("-0.5", Err("deaths \"-0.5\" is negative")),
            (
                "9223372036854775808",
                Err(
                    "deaths \"9223372036854775808\" is larger than the largest count allowed (9223372036854775807)",
                ),
            ),
            (
                "99999999999999999999999",
                Err(
                    "deaths \"99999999999999999999999\" is larger than the largest count allowed (9223372036854775807)",
                ),
            ),
        ];
        for (text, expected) in cases {
            let got = count("deaths", text).map_err(|p| p.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "input {text:?}");
        }
    }
}
