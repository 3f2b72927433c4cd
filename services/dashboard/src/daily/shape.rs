//! From `us_daily` rows to the series a query asks for: trailing averages, the cut at `from`,
//! and sums per week or month.

use chrono::{Datelike, Days, NaiveDate};

use super::{DailyQuery, DayValues, Field, Period};

/// One point of the series: a day, or the period starting on `date`.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub date: NaiveDate,
    /// Days of data in the period (always 1 per day).
    pub days: u32,
    /// One value per selected field; `None` is "not reported".
    pub values: Vec<Option<i64>>,
    /// One trailing average per selected daily field (empty without `avg`).
    pub averages: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub points: Vec<Point>,
    /// The range held more than [`super::MAX_DAYS`] days; the points stop there.
    pub truncated: bool,
}

/// The daily fields that get an average, in the order of `query.fields`.
pub fn averaged_fields(query: &DailyQuery) -> Vec<Field> {
    match query.avg {
        Some(_) => query
            .fields
            .iter()
            .copied()
            .filter(|f| f.is_daily())
            .collect(),
        None => Vec::new(),
    }
}

/// `rows` must be the database's answer to `query` (sorted by date, from `query.read_from()`,
/// at most `query.read_limit()` of them).
pub fn shape<R: DayValues>(query: &DailyQuery, mut rows: Vec<R>) -> Series {
    let limit = usize::try_from(query.read_limit()).unwrap_or(usize::MAX);
    let truncated = rows.len() >= limit;
    rows.truncate(limit.saturating_sub(1));

    let averaged = averaged_fields(query);
    let averages: Vec<Vec<Option<f64>>> = match query.avg {
        Some(window) => averaged
            .iter()
            .map(|&f| trailing_average(&rows, f, window))
            .collect(),
        None => Vec::new(),
    };

    // Days before `from` were read only to feed the averages.
    let start = query
        .from
        .map_or(0, |from| rows.partition_point(|r| r.date() < from));
    let days = rows[start..].iter().enumerate().map(|(offset, row)| Point {
        date: row.date(),
        days: 1,
        values: query.fields.iter().map(|&f| row.value(f)).collect(),
        averages: averages.iter().map(|avg| avg[start + offset]).collect(),
    });
    let points = match query.per {
        Period::Day => days.collect(),
        per => group(days, per, &query.fields),
    };
    Series { points, truncated }
}

/// The mean of `field` over the `window` calendar days ending on each row's date; `None` when
/// any of those days is missing or not reported, so a gap is never averaged as a zero.
fn trailing_average<R: DayValues>(rows: &[R], field: Field, window: u32) -> Vec<Option<f64>> {
    let mut first = 0;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let start = row
                .date()
                .checked_sub_days(Days::new(u64::from(window) - 1))?;
            while rows[first].date() < start {
                first += 1;
            }
            let span = &rows[first..=i];
            if span.len() != window as usize {
                return None;
            }
            let sum = span.iter().map(|r| r.value(field)).sum::<Option<i64>>()?;
            Some(mean(sum, window))
        })
        .collect()
}

/// The mean of `days` daily values summing to `sum`, rounded to hundredths: every average the
/// API serves (a series' and a list's) is this one.
pub fn mean(sum: i64, days: u32) -> f64 {
    round2(sum as f64 / f64::from(days))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn period_start(date: NaiveDate, per: Period) -> NaiveDate {
    match per {
        Period::Day => date,
        Period::Week => date - Days::new(u64::from(date.weekday().num_days_from_monday())),
        Period::Month => date.with_day(1).expect("every month has a first day"),
    }
}

/// Sums daily fields and takes cumulative ones at the period's last day. A sum with a day not
/// reported is itself not reported: a partial sum would look like a drop.
fn group(days: impl Iterator<Item = Point>, per: Period, fields: &[Field]) -> Vec<Point> {
    let mut out: Vec<Point> = Vec::new();
    for day in days {
        let start = period_start(day.date, per);
        match out.last_mut() {
            Some(current) if current.date == start => {
                current.days += 1;
                for (i, field) in fields.iter().enumerate() {
                    current.values[i] = if field.is_daily() {
                        current.values[i].zip(day.values[i]).map(|(a, b)| a + b)
                    } else {
                        day.values[i]
                    };
                }
            }
            _ => out.push(Point {
                date: start,
                days: 1,
                values: day.values,
                averages: Vec::new(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DailyRow;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Days from 2020-03-02 (a Monday): cases grow by `i + 1` a day; recovered stops on day 9.
    fn rows(n: usize) -> Vec<DailyRow> {
        let mut cases = 0;
        (0..n)
            .map(|i| {
                cases += i as i64 + 1;
                DailyRow {
                    date: date("2020-03-02") + Days::new(i as u64),
                    cases,
                    deaths: i as i64,
                    recovered: (i < 9).then_some(i as i64 * 2),
                    new_cases: Some(i as i64 + 1),
                    new_deaths: Some(if i == 0 { 0 } else { 1 }),
                    new_recovered: (i < 9).then_some(if i == 0 { 0 } else { 2 }),
                }
            })
            .collect()
    }

    fn query(q: &str) -> DailyQuery {
        DailyQuery::parse(Some(q)).unwrap()
    }

    #[test]
    fn the_average_covers_the_days_before_from() {
        let q = query("from=2020-03-09&fields=new_cases&avg=7");
        let read = rows(14);
        let series = shape(&q, read);
        assert_eq!(series.points[0].date, date("2020-03-09"));
        // Days 2..=8 of the fixture: new cases 2..8, mean 5.
        assert_eq!(series.points[0].averages, vec![Some(5.0)]);
        assert_eq!(series.points.len(), 7);
    }

    #[test]
    fn the_average_is_missing_until_the_window_is_full() {
        let series = shape(&query("fields=new_cases&avg=3"), rows(4));
        let averages: Vec<_> = series.points.iter().map(|p| p.averages[0]).collect();
        assert_eq!(averages, vec![None, None, Some(2.0), Some(3.0)]);
    }

    #[test]
    fn a_day_not_reported_is_never_averaged_as_zero() {
        let series = shape(&query("fields=new_recovered&avg=2"), rows(11));
        assert_eq!(series.points[8].averages, vec![Some(2.0)]);
        assert_eq!(series.points[9].averages, vec![None]);
        assert_eq!(series.points[9].values, vec![None]);
    }

    #[test]
    fn a_missing_date_breaks_the_window() {
        let mut read = rows(5);
        read.remove(2);
        let series = shape(&query("fields=new_cases&avg=2"), read);
        let averages: Vec<_> = series.points.iter().map(|p| p.averages[0]).collect();
        assert_eq!(averages, vec![None, Some(1.5), None, Some(4.5)]);
    }

    #[test]
    fn weeks_sum_daily_values_and_keep_the_last_cumulative_one() {
        let series = shape(
            &query("per=week&fields=cases,new_cases,recovered,new_recovered"),
            rows(10),
        );
        assert_eq!(series.points.len(), 2);
        let first = &series.points[0];
        assert_eq!((first.date, first.days), (date("2020-03-02"), 7));
        assert_eq!(first.values, vec![Some(28), Some(28), Some(12), Some(12)]);
        let second = &series.points[1];
        assert_eq!((second.date, second.days), (date("2020-03-09"), 3));
        // Recovered stops being reported in the second week: neither its sum nor its end value
        // may pretend otherwise.
        assert_eq!(second.values, vec![Some(55), Some(27), None, None]);
    }

    #[test]
    fn months_start_on_the_first() {
        let series = shape(&query("per=month&fields=new_deaths"), rows(40));
        let dates: Vec<_> = series
            .points
            .iter()
            .map(|p| (p.date, p.days, p.values[0]))
            .collect();
        assert_eq!(
            dates,
            vec![
                (date("2020-03-01"), 30, Some(29)),
                (date("2020-04-01"), 10, Some(10))
            ]
        );
    }

    #[test]
    fn a_range_longer_than_the_bound_is_cut_and_flagged() {
        let q = query("fields=cases");
        let limit = q.read_limit() as usize;
        let many: Vec<DailyRow> = rows(1).into_iter().cycle().take(limit).collect();
        let series = shape(&q, many);
        assert!(series.truncated);
        assert_eq!(series.points.len(), super::super::MAX_DAYS);
        assert!(!shape(&q, rows(3)).truncated);
    }
}
