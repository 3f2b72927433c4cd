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
    let (keys, dates, fips) = key_columns(curated)?;
    let mut counts = Vec::with_capacity(4);
    for name in ["cases", "deaths", "new_cases", "new_deaths"] {
        counts.push(column(curated, name)?.i64().map_err(internal)?.iter());
    }
    let mut fields = Fields::of(curated);
    let mut out = Vec::with_capacity(curated.rows.height() * 64 + 128);
    header(&mut out, &curated.spec.row_columns());
    let mut number = itoa::Buffer::new();
    for ((key, date), code) in keys.iter().zip(dates.iter()).zip(fips.iter()) {
        let (Some(key), Some(date)) = (key, date) else {
            return Err(no_key_or_date());
        };
        out.extend_from_slice(fields.date(date)?);
        out.push(b',');
        out.extend_from_slice(fields.key(key)?);
        out.push(b',');
        if let Some(code) = code {
            out.extend_from_slice(fields.fips(code)?);
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

/// The key list of a whole dataset, as the loader's `<dataset>_keys` holds it:
/// `<key columns>,fips,first_date,last_date`, one line per key in key order, with the FIPS code
/// of the key's latest row and its first and last dates. The rows are sorted by key then date,
/// so one pass finds each key's first and last rows.
pub(crate) fn keys(curated: &Curated) -> Result<Vec<u8>, DataError> {
    let (keys, dates, fips) = key_columns(curated)?;
    let mut fields = Fields::of(curated);
    let mut out = Vec::with_capacity(curated.keys.len() * 64 + 64);
    let mut columns = curated.spec.keys.to_vec();
    columns.extend(["fips", "first_date", "last_date"]);
    header(&mut out, &columns);
    // A key's line: its rank, its first date, and its latest row's date and fips code.
    let mut line = |out: &mut Vec<u8>, (key, first, last, code): KeyLine| {
        out.extend_from_slice(fields.key(key)?);
        out.push(b',');
        if let Some(code) = code {
            out.extend_from_slice(fields.fips(code)?);
        }
        out.push(b',');
        out.extend_from_slice(fields.date(first)?);
        out.push(b',');
        out.extend_from_slice(fields.date(last)?);
        out.push(b'\n');
        Ok::<_, DataError>(())
    };
    let mut walked: Option<KeyLine> = None;
    for ((key, date), code) in keys.iter().zip(dates.iter()).zip(fips.iter()) {
        let (Some(key), Some(date)) = (key, date) else {
            return Err(no_key_or_date());
        };
        walked = match walked {
            Some((same, first, _, _)) if same == key => Some((key, first, date, code)),
            done => {
                if let Some(done) = done {
                    line(&mut out, done)?;
                }
                Some((key, date, date, code))
            }
        };
    }
    if let Some(done) = walked {
        line(&mut out, done)?;
    }
    Ok(out)
}

/// A key's rank, first date, last date and the fips code of its last row.
type KeyLine = (u32, i32, i32, Option<u32>);

fn column<'a>(curated: &'a Curated, name: &str) -> Result<&'a Column, DataError> {
    curated.rows.column(name).map_err(internal)
}

/// The internal `key`, `date` (days) and `fips` columns.
fn key_columns(
    curated: &Curated,
) -> Result<(&UInt32Chunked, &Int32Chunked, &UInt32Chunked), DataError> {
    Ok((
        column(curated, "key")?.u32().map_err(internal)?,
        &column(curated, "date")?.date().map_err(internal)?.phys,
        column(curated, "fips")?.u32().map_err(internal)?,
    ))
}

fn header(out: &mut Vec<u8>, columns: &[&str]) {
    out.extend_from_slice(columns.join(",").as_bytes());
    out.push(b'\n');
}

fn no_key_or_date() -> DataError {
    DataError::Internal("a curated row has no key or date".into())
}

/// A dataset's keys, fips codes and dates as CSV fields, each encoded once.
struct Fields {
    keys: Vec<Vec<u8>>,
    fips: Vec<Vec<u8>>,
    /// Dates as `YYYY-MM-DD`, formatted when first met (a dataset spans a few hundred days).
    dates: HashMap<i32, [u8; 10]>,
}

impl Fields {
    fn of(curated: &Curated) -> Fields {
        let arity = curated.spec.keys.len();
        Fields {
            keys: curated
                .keys
                .iter()
                .map(|key| {
                    let values = (0..arity).map(|index| key.split(KEY_SEPARATOR).nth(index));
                    fields(values.map(|value| value.unwrap_or("")))
                })
                .collect(),
            fips: curated
                .fips_codes
                .iter()
                .map(|code| fields([code.as_str()]))
                .collect(),
            dates: HashMap::new(),
        }
    }

    /// The key numbered `rank`: its values as fields.
    fn key(&self, rank: u32) -> Result<&[u8], DataError> {
        entry(&self.keys, rank, "key")
    }

    /// The fips code numbered `id`.
    fn fips(&self, id: u32) -> Result<&[u8], DataError> {
        entry(&self.fips, id, "fips code")
    }

    /// The date `days` after 1970-01-01.
    fn date(&mut self, days: i32) -> Result<&[u8], DataError> {
        match self.dates.entry(days) {
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

/// `values` as CSV fields joined by commas, each quoted as [`write`] quotes it (`Necessary`): when
/// it is empty (unquoted, COPY would read NULL) or holds a comma, a quote or a line break, with
/// its quotes doubled.
fn fields<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        if value.is_empty() || value.contains([',', '"', '\n', '\r']) {
            out.push(b'"');
            out.extend_from_slice(value.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(value.as_bytes());
        }
    }
    out
}

/// The encoded field numbered `index` of `table` (a key's or a fips code's, `what`).
fn entry<'a>(table: &'a [Vec<u8>], index: u32, what: &str) -> Result<&'a [u8], DataError> {
    usize::try_from(index)
        .ok()
        .and_then(|index| table.get(index))
        .map(Vec::as_slice)
        .ok_or_else(|| DataError::Internal(format!("no {what} numbered {index}")))
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

    /// One line per key: its first and last dates, the FIPS code of its latest row (empty when
    /// that row has none, whatever the earlier rows had).
    #[test]
    fn the_key_list_has_each_keys_dates_and_latest_fips_code() {
        let csv = "date,county,state,fips,cases,deaths\n\
                   2020-03-02,\"Doña Ana, \"\"Old\"\"\",New Mexico,35013,3,\n\
                   2020-03-01,\"Doña Ana, \"\"Old\"\"\",New Mexico,35013,1,0\n\
                   2020-03-01,New York City,New York,36061,10,1\n\
                   2020-03-05,New York City,New York,,8,2\n\
                   2020-03-03,New York City,New York,36061,9,2\n\
                   2021-12-31,Unknown,\"Virgin Islands, U.S.\",,,\n";
        let curated = read(&COUNTIES, &[("us-counties.csv", csv.as_bytes())]).unwrap();
        assert_eq!(
            String::from_utf8(keys(&curated).unwrap()).unwrap(),
            "state,county,fips,first_date,last_date\n\
             New Mexico,\"Doña Ana, \"\"Old\"\"\",35013,2020-03-01,2020-03-02\n\
             New York,New York City,,2020-03-01,2020-03-05\n\
             \"Virgin Islands, U.S.\",Unknown,,2021-12-31,2021-12-31\n"
        );
    }

    /// An empty text is quoted, as the polars writer quotes it: COPY reads it as an empty text,
    /// where an empty field would be NULL.
    #[test]
    fn an_empty_text_is_quoted() {
        assert_eq!(fields(["", "a,b", "c"]), b"\"\",\"a,b\",c");
        let frame = df!("text" => ["", "x"]).unwrap();
        assert_eq!(write(&frame).unwrap(), b"text\n\"\"\nx\n");
    }
}
