//! The JHU time series as republished by `datasets/covid-19` (DESIGN rule 2).
//!
//! Of its ~115 000 rows only the US national ones (`Country/Region` = `US`, empty
//! `Province/State`, about 400) matter, so every other row is classified from its first fields
//! without being split or checked: other countries' columns are neither required nor validated.
//! Their structure is (the reader counts every row's fields), as a cut or garbled body can end in
//! any row.

use std::collections::HashMap;

use chrono::NaiveDate;
use shared::Source;

use crate::csv::Reader;
use crate::error::{At, DataError, Problem};
use crate::header::read_header;
use crate::payload::check_payload;
use crate::values;

const DATE: &str = "Date";
const COUNTRY: &str = "Country/Region";
const PROVINCE: &str = "Province/State";
const RECOVERED: &str = "Recovered";

/// The validated US national days, in file order; `recovered` is `None` where the cell is empty.
#[derive(Debug, Default)]
pub(crate) struct JhuDays {
    pub dates: Vec<NaiveDate>,
    pub recovered: Vec<Option<i64>>,
}

pub(crate) fn read(bytes: &[u8]) -> Result<JhuDays, DataError> {
    let input = Source::JHU;
    let text = check_payload(&input, bytes)?;
    let mut reader = Reader::new(&input, text);
    let header = read_header(&input, &mut reader, &[DATE, COUNTRY, PROVINCE, RECOVERED])?;
    let [date_at, country_at, province_at, recovered_at] = [
        header.indices[0],
        header.indices[1],
        header.indices[2],
        header.indices[3],
    ];

    let mut days = JhuDays::default();
    let mut seen: HashMap<NaiveDate, usize> = HashMap::new();
    let mut rows = 0usize;
    while let Some(record) = reader.next()? {
        rows += 1;
        let fail = |problem| DataError::payload(&input, At::Line(record.line), problem);
        // The reader has refused records of another width, so every header column is there.
        let [Some(country), Some(province)] = record.pick([country_at, province_at]) else {
            unreachable!("a record of the header's width has each of its columns");
        };
        if country != "US" || !province.is_empty() {
            continue;
        }
        let fields = record.split();
        let date = values::date(DATE, fields[date_at]).map_err(fail)?;
        let recovered = match fields[recovered_at] {
            "" => None,
            text => Some(values::count(RECOVERED, text).map_err(fail)?),
        };
        if let Some(first_line) = seen.insert(date, record.line) {
            return Err(fail(Problem::DuplicateDate {
                column: DATE,
                date,
                first_line,
            }));
        }
        days.dates.push(date);
        days.recovered.push(recovered);
    }
    if rows == 0 {
        return Err(DataError::payload(&input, At::File, Problem::HeaderOnly));
    }
    if days.dates.is_empty() {
        return Err(DataError::payload(&input, At::File, Problem::NoUsRows));
    }
    Ok(days)
}
