//! The New York Times `us.csv`: `date,cases,deaths` (DESIGN rule 1).

use std::collections::HashMap;

use chrono::NaiveDate;
use shared::Source;

use crate::csv::Reader;
use crate::error::{At, DataError, Problem};
use crate::header::read_header;
use crate::payload::check_payload;
use crate::values;

const COLUMNS: [&str; 3] = ["date", "cases", "deaths"];

/// The validated NYT days, in file order.
#[derive(Debug, Default)]
pub(crate) struct NytDays {
    pub dates: Vec<NaiveDate>,
    pub cases: Vec<i64>,
    pub deaths: Vec<i64>,
}

pub(crate) fn read(bytes: &[u8]) -> Result<NytDays, DataError> {
    let input = Source::NYT;
    let text = check_payload(&input, bytes)?;
    let mut reader = Reader::new(&input, text);
    let header = read_header(&input, &mut reader, &COLUMNS)?;
    let [date_at, cases_at, deaths_at] = [header.indices[0], header.indices[1], header.indices[2]];

    let mut days = NytDays::default();
    let mut seen: HashMap<NaiveDate, usize> = HashMap::new();
    while let Some(record) = reader.next()? {
        let fail = |problem| DataError::payload(&input, At::Line(record.line), problem);
        // The reader has refused records of another width, so every header column is there.
        let fields = record.split();
        let date = values::date(COLUMNS[0], fields[date_at]).map_err(fail)?;
        let cases = values::count(COLUMNS[1], fields[cases_at]).map_err(fail)?;
        let deaths = values::count(COLUMNS[2], fields[deaths_at]).map_err(fail)?;
        if let Some(first_line) = seen.insert(date, record.line) {
            return Err(fail(Problem::DuplicateDate {
                column: COLUMNS[0],
                date,
                first_line,
            }));
        }
        days.dates.push(date);
        days.cases.push(cases);
        days.deaths.push(deaths);
    }
    if days.dates.is_empty() {
        return Err(DataError::payload(&input, At::File, Problem::HeaderOnly));
    }
    Ok(days)
}
