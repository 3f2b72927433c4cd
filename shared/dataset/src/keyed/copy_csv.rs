//! The CSV buffers the loader `COPY`s (`FORMAT csv, HEADER true`): UTF-8, a header line, commas,
//! RFC 4180 quoting where needed, NULL as an empty unquoted field, dates as `YYYY-MM-DD`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use polars::prelude::*;

use super::spec::KEY_SEPARATOR;
use super::{Curated, from_days, internal};
use crate::error::DataError;

pub(crate) fn write(frame: &DataFrame) -> Result<Vec<u8>, DataError> {
    let mut frame = frame.clone();
    let mut out = Vec::new();
    CsvWriter::new(&mut out)
        .include_header(true)
        .with_separator(b',')
        .with_quote_char(b'"')
        .with_quote_style(QuoteStyle::Necessary)
        .with_null_value("".into())
        .with_line_terminator("\n".into())
        .with_date_format(Some("%Y-%m-%d".into()))
        .finish(&mut frame)
        .map_err(internal)?;
    Ok(out)
}

/// The `rows` CSV of a whole dataset written straight from its internal columns: the bytes
/// [`write`] makes of [`Curated::to_frame`], without building that frame. Each key, fips code and
/// date is encoded once rather than once per row, which makes it several times faster at county
/// scale, where a first load waits on it.
pub(crate) fn rows(curated: &Curated) -> Result<Vec<u8>, DataError> {
    let spec = curated.spec;
    let rows = &curated.rows;
    let column = |name: &str| rows.column(name).map_err(internal);
    let keys = column("key")?.u32().map_err(internal)?;
    let dates = &column("date")?.date().map_err(internal)?.phys;
    let fips = column("fips")?.u32().map_err(internal)?;
    let mut counts = Vec::with_capacity(4);
    for name in ["cases", "deaths", "new_cases", "new_deaths"] {
        counts.push(column(name)?.i64().map_err(internal)?.iter());
    }

    let key_fields: Vec<Vec<u8>> = curated
        .keys
        .iter()
        .map(|key| {
            let values = (0..spec.keys.len()).map(|index| key.split(KEY_SEPARATOR).nth(index));
            fields(values.map(|value| value.unwrap_or("")))
        })
        .collect();
    let fips_fields: Vec<Vec<u8>> = curated
        .fips_codes
        .iter()
        .map(|code| fields([code.as_str()]))
        .collect();
    let mut date_fields = DateFields::default();

    let mut out = Vec::with_capacity(rows.height() * 64 + 128);
    out.extend_from_slice(spec.row_columns().join(",").as_bytes());
    out.push(b'\n');
    let mut number = itoa::Buffer::new();
    for (row, ((key, date), fips)) in keys.iter().zip(dates.iter()).zip(fips.iter()).enumerate() {
        let (Some(key), Some(date)) = (key, date) else {
            return Err(DataError::Internal(format!("row {row} has no key or date")));
        };
        out.extend_from_slice(date_fields.get(date)?);
        out.push(b',');
        out.extend_from_slice(entry(&key_fields, key)?);
        out.push(b',');
        if let Some(fips) = fips {
            out.extend_from_slice(entry(&fips_fields, fips)?);
        }
        for count in &mut counts {
            out.push(b',');
            if let Some(Some(value)) = count.next() {
                out.extend_from_slice(number.format(value).as_bytes());
            }
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// `values` as CSV fields joined by commas, each quoted as [`write`] quotes it (`Necessary`): when
/// it holds a comma, a quote or a line break, with its quotes doubled.
fn fields<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        if value.contains([',', '"', '\n', '\r']) {
            out.push(b'"');
            out.extend_from_slice(value.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(value.as_bytes());
        }
    }
    out
}

/// The encoded field numbered `index` of `table` (a key's or a fips code's).
fn entry(table: &[Vec<u8>], index: u32) -> Result<&[u8], DataError> {
    usize::try_from(index)
        .ok()
        .and_then(|index| table.get(index))
        .map(Vec::as_slice)
        .ok_or_else(|| DataError::Internal(format!("no key or fips code numbered {index}")))
}

/// Dates as `YYYY-MM-DD`, each formatted once (a dataset spans a few hundred distinct days).
#[derive(Default)]
struct DateFields {
    formatted: HashMap<i32, [u8; 10]>,
}

impl DateFields {
    fn get(&mut self, days: i32) -> Result<&[u8], DataError> {
        match self.formatted.entry(days) {
            Entry::Occupied(known) => Ok(known.into_mut()),
            Entry::Vacant(new) => {
                let date = from_days(days)
                    .ok_or_else(|| DataError::Internal(format!("day {days} is not a date")))?;
                let text = date.format("%Y-%m-%d").to_string();
                let bytes = <[u8; 10]>::try_from(text.as_bytes())
                    .map_err(|_| DataError::Internal(format!("date {text} is not YYYY-MM-DD")))?;
                Ok(new.insert(bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{COUNTIES, read};
    use super::*;

    /// Names that need quoting, a name that is not ASCII, a county without a fips code and
    /// counts not reported: the fast `rows` CSV is byte for byte the polars writer's.
    #[test]
    fn rows_are_the_csv_writers_bytes() {
        let csv = "date,county,state,fips,cases,deaths\n\
                   2020-03-01,\"Doña Ana, \"\"Old\"\"\",New Mexico,35013,1,0\n\
                   2020-03-02,\"Doña Ana, \"\"Old\"\"\",New Mexico,35013,3,\n\
                   2020-03-01,New York City,New York,,10,1\n\
                   2020-03-03,New York City,New York,,8,2\n\
                   2021-12-31,Unknown,\"Virgin Islands, U.S.\",,,\n";
        let curated = read(&COUNTIES, &[("us-counties.csv", csv.as_bytes())]).unwrap();
        let expected = write(&curated.to_frame().unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(rows(&curated).unwrap()).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}
