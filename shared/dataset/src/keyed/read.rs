//! The files of a keyed dataset, row by row into columns: the strict checks of the `us` files
//! (`payload`, `csv`, `header`, `values`) plus the keyed rules (key values non-empty, counts
//! empty = NULL). Keys and fips codes are interned (a few thousand distinct values for
//! 2.5 million rows), so the hot loop allocates nothing per row.

use std::collections::HashMap;

use polars::prelude::*;
use shared::Source;

use super::spec::{KEY_SEPARATOR, Spec};
use crate::csv::Reader;
use crate::error::{At, DataError, Problem};
use crate::header::read_header;
use crate::payload::check_payload;
use crate::values;

/// Every row of every file, in file order then line order.
pub(crate) struct Raw {
    /// Key values joined by [`KEY_SEPARATOR`], by key id (order of first appearance).
    pub keys: Vec<String>,
    /// Distinct non-empty fips codes, by fips id.
    pub fips_codes: Vec<String>,
    pub key: Vec<u32>,
    /// Days since 1970-01-01.
    pub day: Vec<i32>,
    /// The index of the row's file in the caller's list.
    pub file: Vec<u32>,
    /// The 1-based line the row starts on.
    pub line: Vec<u32>,
    /// NULL for an empty fips.
    pub fips: PrimitiveChunkedBuilder<UInt32Type>,
    pub cases: PrimitiveChunkedBuilder<Int64Type>,
    pub deaths: PrimitiveChunkedBuilder<Int64Type>,
    key_ids: HashMap<String, u32>,
    fips_ids: HashMap<String, u32>,
    buffer: String,
}

impl Raw {
    /// Room for about as many rows as `bytes` holds (a county row is ≈ 45 bytes).
    pub fn with_capacity(bytes: usize) -> Self {
        let rows = bytes / 40;
        Raw {
            keys: Vec::new(),
            fips_codes: Vec::new(),
            key: Vec::with_capacity(rows),
            day: Vec::with_capacity(rows),
            file: Vec::with_capacity(rows),
            line: Vec::with_capacity(rows),
            fips: PrimitiveChunkedBuilder::new("fips".into(), rows),
            cases: PrimitiveChunkedBuilder::new("cases".into(), rows),
            deaths: PrimitiveChunkedBuilder::new("deaths".into(), rows),
            key_ids: HashMap::new(),
            fips_ids: HashMap::new(),
            buffer: String::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.key.len()
    }

    /// Reads one file (its `index` in the caller's list, named `name` in errors).
    pub fn read_file(
        &mut self,
        spec: &Spec,
        index: u32,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), DataError> {
        // The shared readers name a `Source`; `in_file` renames their errors after the file.
        let input = Source::NYT;
        let renamed = |err: DataError| err.in_file(name);
        let text = check_payload(&input, bytes).map_err(renamed)?;
        let mut reader = Reader::new(&input, text);
        let mut required = vec!["date"];
        required.extend_from_slice(spec.keys);
        required.extend_from_slice(&["fips", "cases", "deaths"]);
        let header = read_header(&input, &mut reader, &required).map_err(renamed)?;
        let at = &header.indices;
        let keys = spec.keys.len();
        // A one-column key reads its column twice and ignores the second.
        let second_key = if keys > 1 { at[2] } else { at[1] };
        let columns = [
            at[0],
            at[1],
            second_key,
            at[keys + 1],
            at[keys + 2],
            at[keys + 3],
        ];
        let before = self.len();
        while let Some(record) = reader.next().map_err(renamed)? {
            let fail = |problem| DataError::File {
                file: name.to_owned(),
                at: At::Line(record.line),
                problem,
            };
            // The reader has refused records of another width, so every column is there.
            let [date, first, second, fips, cases, deaths] =
                record.pick(columns).map(|field| field.unwrap_or(""));
            let day = super::to_days(values::date("date", date).map_err(fail)?);
            if first.is_empty() {
                return Err(fail(Problem::EmptyValue {
                    column: spec.keys[0],
                }));
            }
            if keys > 1 && second.is_empty() {
                return Err(fail(Problem::EmptyValue {
                    column: spec.keys[1],
                }));
            }
            let cases = count_or_null("cases", cases).map_err(fail)?;
            let deaths = count_or_null("deaths", deaths).map_err(fail)?;
            self.buffer.clear();
            self.buffer.push_str(first);
            if keys > 1 {
                self.buffer.push(KEY_SEPARATOR);
                self.buffer.push_str(second);
            }
            let key = intern(&mut self.key_ids, &mut self.keys, &self.buffer);
            let fips =
                (!fips.is_empty()).then(|| intern(&mut self.fips_ids, &mut self.fips_codes, fips));
            self.key.push(key);
            self.day.push(day);
            self.file.push(index);
            self.line
                .push(u32::try_from(record.line).unwrap_or(u32::MAX));
            self.fips.append_option(fips);
            self.cases.append_option(cases);
            self.deaths.append_option(deaths);
        }
        if self.len() == before {
            return Err(DataError::File {
                file: name.to_owned(),
                at: At::File,
                problem: Problem::HeaderOnly,
            });
        }
        Ok(())
    }
}

/// An empty count is NULL (not reported), never 0.
fn count_or_null(column: &'static str, text: &str) -> Result<Option<i64>, Problem> {
    if text.is_empty() {
        return Ok(None);
    }
    values::count(column, text).map(Some)
}

/// The id of `value`, allocating only the first time a value is seen.
fn intern(ids: &mut HashMap<String, u32>, values: &mut Vec<String>, value: &str) -> u32 {
    if let Some(&id) = ids.get(value) {
        return id;
    }
    let id = u32::try_from(values.len()).unwrap_or(u32::MAX);
    values.push(value.to_owned());
    ids.insert(value.to_owned(), id);
    id
}
