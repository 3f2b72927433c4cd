//! The curated dataset as Parquet: the `etl-curated` object the transformer writes and the
//! loader reads. Columns mirror `us_daily`: `date` (Date), `cases`, `deaths` (Int64, never null),
//! `recovered` and the three `new_*` (Int64, null where not reported).

use std::io::Cursor;

use chrono::NaiveDate;
use polars::prelude::*;

use crate::DailyRow;
use crate::error::DataError;
use crate::merge::{from_days, to_days};

const NULLABLE: [&str; 4] = ["recovered", "new_cases", "new_deaths", "new_recovered"];

fn unwritable(err: PolarsError) -> DataError {
    DataError::Parquet(format!("could not be written: {err}"))
}

fn unreadable(err: impl std::fmt::Display) -> DataError {
    DataError::Parquet(format!("is unreadable: {err}"))
}

/// The rows as Parquet (the `etl-curated` object).
pub fn to_parquet(rows: &[DailyRow]) -> Result<Vec<u8>, DataError> {
    let days: Vec<i32> = rows.iter().map(|r| to_days(r.date)).collect();
    let ints = |get: fn(&DailyRow) -> Option<i64>| rows.iter().map(get).collect::<Vec<_>>();
    let mut frame = DataFrame::new_infer_height(vec![
        Column::new("date".into(), days)
            .cast(&DataType::Date)
            .map_err(unwritable)?,
        Column::new(
            "cases".into(),
            rows.iter().map(|r| r.cases).collect::<Vec<_>>(),
        ),
        Column::new(
            "deaths".into(),
            rows.iter().map(|r| r.deaths).collect::<Vec<_>>(),
        ),
        Column::new("recovered".into(), ints(|r| r.recovered)),
        Column::new("new_cases".into(), ints(|r| r.new_cases)),
        Column::new("new_deaths".into(), ints(|r| r.new_deaths)),
        Column::new("new_recovered".into(), ints(|r| r.new_recovered)),
    ])
    .map_err(unwritable)?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(&mut frame)
        .map_err(unwritable)?;
    Ok(bytes)
}

/// Rows back from [`to_parquet`]'s bytes; a missing column, a wrong type or a null where the
/// table has `not null` is refused.
pub fn from_parquet(bytes: &[u8]) -> Result<Vec<DailyRow>, DataError> {
    let frame = ParquetReader::new(Cursor::new(bytes))
        .finish()
        .map_err(unreadable)?;
    let column = |name: &str, dtype: DataType| typed_column(&frame, name, dtype);
    let required = |name: &str| -> Result<Vec<i64>, DataError> {
        let values = column(name, DataType::Int64)?.i64().map_err(unreadable)?;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| null_in(name, i)))
            .collect()
    };
    let nullable = |name: &str| -> Result<Vec<Option<i64>>, DataError> {
        Ok(column(name, DataType::Int64)?
            .i64()
            .map_err(unreadable)?
            .iter()
            .collect())
    };
    let dates: Vec<NaiveDate> = column("date", DataType::Date)?
        .date()
        .map_err(unreadable)?
        .phys
        .iter()
        .enumerate()
        .map(|(i, days)| days.and_then(from_days).ok_or_else(|| null_in("date", i)))
        .collect::<Result<_, _>>()?;
    let (cases, deaths) = (required("cases")?, required("deaths")?);
    let [recovered, new_cases, new_deaths, new_recovered] = NULLABLE.map(nullable);
    let (recovered, new_cases, new_deaths, new_recovered) =
        (recovered?, new_cases?, new_deaths?, new_recovered?);
    Ok((0..frame.height())
        .map(|i| DailyRow {
            date: dates[i],
            cases: cases[i],
            deaths: deaths[i],
            recovered: recovered[i],
            new_cases: new_cases[i],
            new_deaths: new_deaths[i],
            new_recovered: new_recovered[i],
        })
        .collect())
}

fn typed_column<'a>(
    frame: &'a DataFrame,
    name: &str,
    dtype: DataType,
) -> Result<&'a Column, DataError> {
    let column = frame
        .column(name)
        .map_err(|_| DataError::Parquet(format!("has no column {name:?}")))?;
    if column.dtype() != &dtype {
        return Err(DataError::Parquet(format!(
            "has column {name:?} of type {}, expected {dtype}",
            column.dtype()
        )));
    }
    Ok(column)
}

fn null_in(name: &str, row: usize) -> DataError {
    DataError::Parquet(format!("has no {name} in row {}", row + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(day: u32, recovered: Option<i64>, new_recovered: Option<i64>) -> DailyRow {
        DailyRow {
            date: NaiveDate::from_ymd_opt(2020, 12, day).unwrap(),
            cases: i64::from(day) * 1000,
            deaths: i64::MAX,
            recovered,
            new_cases: Some(-5),
            new_deaths: None,
            new_recovered,
        }
    }

    #[test]
    fn rows_round_trip_exactly_including_missing_values() {
        let rows = vec![
            row(13, Some(6_298_082), Some(51_477)),
            row(14, None, None),
            row(15, None, None),
        ];
        let bytes = to_parquet(&rows).unwrap();
        assert_eq!(from_parquet(&bytes).unwrap(), rows);
    }

    #[test]
    fn an_empty_table_round_trips() {
        assert_eq!(
            from_parquet(&to_parquet(&[]).unwrap()).unwrap(),
            Vec::<DailyRow>::new()
        );
    }

    #[test]
    fn bytes_that_are_not_parquet_are_refused_with_a_sentence() {
        let err = from_parquet(b"date,cases\n").unwrap_err();
        assert_eq!(err.kind(), shared::events::FailureKind::CorruptObject);
        assert!(
            err.to_string()
                .starts_with("the curated Parquet object is unreadable: "),
            "{err}"
        );
    }

    #[test]
    fn a_parquet_file_without_the_curated_columns_is_refused() {
        let mut frame =
            DataFrame::new_infer_height(vec![Column::new("date".into(), [1i64, 2])]).unwrap();
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes).finish(&mut frame).unwrap();
        assert_eq!(
            from_parquet(&bytes).unwrap_err().to_string(),
            "the curated Parquet object has column \"date\" of type i64, expected date"
        );
    }
}
