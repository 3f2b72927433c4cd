//! DESIGN rules 3–5 in polars: the join on date, the days each source alone has, `recovered`
//! after JHU stopped reporting it, and the daily deltas.

use chrono::NaiveDate;
use polars::prelude::*;
use shared::events::Dropped;

use crate::DailyRow;
use crate::error::DataError;
use crate::jhu::JhuDays;
use crate::nyt::NytDays;

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01, polars' day 0.
const EPOCH_FROM_CE: i32 = 719_163;

pub(crate) fn to_days(date: NaiveDate) -> i32 {
    use chrono::Datelike;
    date.num_days_from_ce() - EPOCH_FROM_CE
}

pub(crate) fn from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(EPOCH_FROM_CE)?)
}

/// Failures inside polars are not the payload's fault (the input is validated by then), but they
/// must still fail the run with a sentence rather than panic.
fn internal(err: PolarsError) -> DataError {
    DataError::Internal(err.to_string().replace('\n', " "))
}

fn date_column(dates: &[NaiveDate]) -> PolarsResult<Column> {
    let days: Vec<i32> = dates.iter().copied().map(to_days).collect();
    Column::new("date".into(), days).cast(&DataType::Date)
}

/// Joins the validated sources: rows sorted by date with their deltas, and the dropped days.
pub(crate) fn merge(nyt: &NytDays, jhu: &JhuDays) -> Result<(Vec<DailyRow>, Dropped), DataError> {
    let (rows, dropped) = merge_frames(nyt, jhu).map_err(internal)?;
    if rows.height() == 0 {
        return Err(no_common_date(nyt, jhu));
    }
    Ok((daily_rows(&rows).map_err(internal)?, dropped))
}

fn merge_frames(nyt: &NytDays, jhu: &JhuDays) -> PolarsResult<(DataFrame, Dropped)> {
    let nyt_frame = DataFrame::new_infer_height(vec![
        date_column(&nyt.dates)?,
        Column::new("cases".into(), nyt.cases.as_slice()),
        Column::new("deaths".into(), nyt.deaths.as_slice()),
    ])?;
    let jhu_frame = DataFrame::new_infer_height(vec![
        date_column(&jhu.dates)?,
        Column::new("recovered".into(), jhu.recovered.as_slice()),
    ])?;

    // Rule 4: JHU wrote 0 for US recoveries once it stopped reporting them (2020-12-14). A 0 on
    // a date after the first date with a positive count is "not reported". The first such date
    // is an aggregate, so the rule does not depend on row order (and needs no cumulative max).
    let first_reported = col("date").filter(col("recovered").gt(lit(0i64))).min();
    let stopped = col("recovered")
        .eq(lit(0i64))
        .and(col("date").gt(first_reported));
    let jhu_lazy = jhu_frame.lazy().with_columns([
        when(stopped)
            .then(lit(NULL).cast(DataType::Int64))
            .otherwise(col("recovered"))
            .alias("recovered"),
        lit(true).alias("in_jhu"),
    ]);

    // Rule 3: one full join tells both the common days and the days only one source has.
    let joined = nyt_frame
        .lazy()
        .with_column(lit(true).alias("in_nyt"))
        .join(
            jhu_lazy,
            [col("date")],
            [col("date")],
            JoinArgs::new(JoinType::Full).with_coalesce(JoinCoalesce::CoalesceColumns),
        )
        .with_columns([
            col("in_nyt").fill_null(lit(false)),
            col("in_jhu").fill_null(lit(false)),
        ])
        .sort(["date"], SortMultipleOptions::default())
        .collect()?;

    let only = |keep: Expr| -> PolarsResult<(u64, Vec<NaiveDate>)> {
        let frame = joined
            .clone()
            .lazy()
            .filter(keep)
            .select([col("date")])
            .collect()?;
        let dates = frame
            .column("date")?
            .date()?
            .phys
            .iter()
            .take(Dropped::MAX_DATES);
        Ok((
            frame.height() as u64,
            dates.flatten().filter_map(from_days).collect(),
        ))
    };
    let (only_nyt, only_nyt_dates) = only(col("in_nyt").and(col("in_jhu").not()))?;
    let (only_jhu, only_jhu_dates) = only(col("in_jhu").and(col("in_nyt").not()))?;
    let dropped = Dropped {
        only_nyt,
        only_jhu,
        only_nyt_dates,
        only_jhu_dates,
    };

    // Rule 5: the value minus the previous output row's; the first row's is its value (the
    // shifted-in slot is 0), and a missing value on either side stays missing.
    let delta = |name: &str| {
        (col(name) - col(name).shift_and_fill(lit(1), lit(0i64))).alias(format!("new_{name}"))
    };
    let rows = joined
        .lazy()
        .filter(col("in_nyt").and(col("in_jhu")))
        .select([
            col("date"),
            col("cases"),
            col("deaths"),
            col("recovered"),
            delta("cases"),
            delta("deaths"),
            delta("recovered"),
        ])
        .collect()?;
    Ok((rows, dropped))
}

fn daily_rows(frame: &DataFrame) -> PolarsResult<Vec<DailyRow>> {
    let int = |name: &str| -> PolarsResult<Vec<Option<i64>>> {
        Ok(frame.column(name)?.i64()?.iter().collect())
    };
    let dates = frame.column("date")?.date()?.phys.iter();
    let (cases, deaths, recovered) = (int("cases")?, int("deaths")?, int("recovered")?);
    let (new_cases, new_deaths, new_recovered) =
        (int("new_cases")?, int("new_deaths")?, int("new_recovered")?);
    let missing =
        || PolarsError::ComputeError("a joined row lacks its date, cases or deaths".into());
    dates
        .enumerate()
        .map(|(i, date)| {
            Ok(DailyRow {
                date: date.and_then(from_days).ok_or_else(missing)?,
                cases: cases[i].ok_or_else(missing)?,
                deaths: deaths[i].ok_or_else(missing)?,
                recovered: recovered[i],
                new_cases: new_cases[i],
                new_deaths: new_deaths[i],
                new_recovered: new_recovered[i],
            })
        })
        .collect()
}

fn no_common_date(nyt: &NytDays, jhu: &JhuDays) -> DataError {
    let range = |dates: &[NaiveDate]| {
        let first = dates.iter().min().copied().unwrap_or_default();
        (first, dates.iter().max().copied().unwrap_or(first))
    };
    let ((nyt_first, nyt_last), (jhu_first, jhu_last)) = (range(&nyt.dates), range(&jhu.dates));
    DataError::NoCommonDate {
        nyt_first,
        nyt_last,
        jhu_first,
        jhu_last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polars_days_count_from_1970() {
        let date = NaiveDate::from_ymd_opt(1970, 1, 2).unwrap();
        assert_eq!(to_days(date), 1);
        assert_eq!(from_days(to_days(date)), Some(date));
        let covid = NaiveDate::from_ymd_opt(2020, 12, 14).unwrap();
        assert_eq!(from_days(to_days(covid)), Some(covid));
    }
}
