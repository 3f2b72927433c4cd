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

/// The key list of a whole dataset, as the loader's `<dataset>_keys` holds it:
/// `<key columns>,fips,first_date,last_date`, one line per key in key order, with the FIPS code
/// of the key's latest row and its first and last dates. The rows are sorted by key then date,
/// so one pass finds each key's first and last rows.
pub(crate) fn keys(curated: &Curated) -> Result<Vec<u8>, DataError> {
    let rows = &curated.rows;
    let column = |name: &str| rows.column(name).map_err(internal);
    let ranks = column("key")?.u32().map_err(internal)?;
    let dates = &column("date")?.date().map_err(internal)?.phys;
    let fips = column("fips")?.u32().map_err(internal)?;
    let mut header: Vec<&str> = curated.spec.keys.to_vec();
    header.extend(["fips", "first_date", "last_date"]);
    let mut out = Vec::with_capacity(curated.keys.len() * 64 + 64);
    out.extend_from_slice(header.join(",").as_bytes());
    out.push(b'\n');
    let mut dates_text = DateFields::default();
    // The key being walked: its rank, first date, and its latest row's date and fips code.
    let mut current: Option<(u32, i32, i32, Option<u32>)> = None;
    let mut flush = |out: &mut Vec<u8>, (rank, first, last, code): (u32, i32, i32, Option<u32>)| {
        let key = curated
            .keys
            .get(rank as usize)
            .ok_or_else(|| DataError::Internal(format!("no key numbered {rank}")))?;
        out.extend_from_slice(&fields(key.split(KEY_SEPARATOR)));
        out.push(b',');
        if let Some(code) = code {
            let code = curated
                .fips_codes
                .get(code as usize)
                .ok_or_else(|| DataError::Internal(format!("no fips code numbered {code}")))?;
            out.extend_from_slice(&fields([code.as_str()]));
        }
        out.push(b',');
        out.extend_from_slice(dates_text.get(first)?);
        out.push(b',');
        out.extend_from_slice(dates_text.get(last)?);
        out.push(b'\n');
        Ok::<_, DataError>(())
    };
    for ((rank, date), code) in ranks.iter().zip(dates.iter()).zip(fips.iter()) {
        let (Some(rank), Some(date)) = (rank, date) else {
            return Err(DataError::Internal("a row has no key or date".into()));
        };
        current = match current {
            Some((walked, first, _, _)) if walked == rank => Some((rank, first, date, code)),
            done => {
                if let Some(done) = done {
                    flush(&mut out, done)?;
                }
                Some((rank, date, date, code))
            }
        };
    }
    if let Some(done) = current {
        flush(&mut out, done)?;
    }
    Ok(out)
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
