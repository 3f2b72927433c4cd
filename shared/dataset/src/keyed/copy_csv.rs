//! The CSV buffers the loader `COPY`s (`FORMAT csv, HEADER true`): UTF-8, a header line, commas,
//! RFC 4180 quoting where needed, NULL as an empty unquoted field, dates as `YYYY-MM-DD`.

use polars::prelude::*;

use super::internal;
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
