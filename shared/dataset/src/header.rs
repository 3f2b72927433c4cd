//! The header line of an upstream file: required columns found by name, so column order and
//! extra columns do not matter (DESIGN rules 1 and 2).

use shared::Source;

use crate::csv::Reader;
use crate::error::{At, DataError, Problem};

/// The header of a payload: where the required columns are.
pub(crate) struct Header {
    /// Index of each required column, in the order they were asked for.
    pub indices: Vec<usize>,
}

/// Reads the header and finds `required` columns by name (order and extra columns do not matter);
/// from then on `reader` refuses any record with another number of fields than the header.
pub(crate) fn read_header(
    input: &Source,
    reader: &mut Reader<'_>,
    required: &[&'static str],
) -> Result<Header, DataError> {
    let Some(record) = reader.next()? else {
        return Err(DataError::payload(input, At::File, Problem::Empty));
    };
    let fail = |problem| DataError::payload(input, At::Line(record.line), problem);
    if record.has_bare_cr() {
        return Err(fail(Problem::CarriageReturns));
    }
    let names: Vec<&str> = record.split().into_iter().map(str::trim).collect();
    if let [only] = names.as_slice()
        && let Some(delimiter) = [';', '\t', '|'].into_iter().find(|d| only.contains(*d))
    {
        return Err(fail(Problem::OtherDelimiter { delimiter }));
    }
    let mut indices = Vec::with_capacity(required.len());
    for &column in required {
        let mut found = names
            .iter()
            .enumerate()
            .filter(|(_, name)| **name == column)
            .map(|(i, _)| i);
        let Some(index) = found.next() else {
            let header = names.iter().map(|n| (*n).to_owned()).collect();
            return Err(DataError::payload(
                input,
                At::File,
                Problem::MissingColumn { column, header },
            ));
        };
        if found.next().is_some() {
            return Err(fail(Problem::DuplicateColumn {
                column: column.to_owned(),
            }));
        }
        indices.push(index);
    }
    reader.expect_width(names.len());
    Ok(Header { indices })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_finds_columns_by_name_in_any_order_and_sets_the_width_of_every_row() {
        let mut reader = Reader::new(&Source::NYT, "deaths, extra ,date,cases\n0,2020-01-01,1\n");
        let header = read_header(&Source::NYT, &mut reader, &["date", "cases", "deaths"]).unwrap();
        assert_eq!(header.indices, vec![2, 3, 0]);
        assert_eq!(
            reader.next().unwrap_err().to_string(),
            "nyt line 2: has 3 fields but the header has 4"
        );
    }

    #[test]
    fn the_header_reports_missing_duplicate_and_wrongly_delimited_columns() {
        let header = |text: &str| {
            let mut reader = Reader::new(&Source::NYT, text);
            read_header(&Source::NYT, &mut reader, &["date", "cases"])
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            header("date,deaths\n"),
            "nyt: required column \"cases\" is missing (the header has \"date\", \"deaths\")"
        );
        assert_eq!(
            header("date,cases,date\n"),
            "nyt line 1: column \"date\" appears twice in the header"
        );
        assert_eq!(
            header("date;cases;deaths\n"),
            "nyt line 1: the header is separated by ';' instead of commas"
        );
        assert_eq!(
            header("date\tcases\n"),
            "nyt line 1: the header is separated by '\\t' instead of commas"
        );
        assert_eq!(
            header("date,cases\r2020-01-01,1\r"),
            "nyt line 1: lines end in a bare carriage return; expected \\n or \\r\\n line endings"
        );
    }
}
