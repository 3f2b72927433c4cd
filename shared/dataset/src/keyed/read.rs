//! One file of a keyed dataset, row by row into columns: the strict checks of the `us` files
//! (`payload`, `csv`, `header`, `values`) plus the keyed rules (key values non-empty, counts
//! empty = NULL). Keys and fips codes are interned (a few thousand distinct values for
//! 2.5 million rows), so the hot loop allocates nothing per row. The rows are then sorted by
//! (key, date), line order kept, so that `combine` only merges the files.
//!
//! A [`ParsedFile`] depends on the file's bytes alone (its name appears only in errors, which are
//! never kept), so a caller may keep it and reuse it while the bytes do not change.

use std::collections::HashMap;

use shared::Source;

use super::spec::{KEY_SEPARATOR, Spec};
use crate::csv::Reader;
use crate::error::{At, DataError, Problem};
use crate::header::read_header;
use crate::payload::check_payload;
use crate::values;

/// A NULL count in [`ParsedFile`]'s columns: counts are checked non-negative, so -1 is free.
pub(crate) const NULL_COUNT: i64 = -1;
/// An empty fips in [`ParsedFile`]'s columns.
pub(crate) const NO_FIPS: u32 = u32::MAX;

/// One file's rows, checked, sorted by key then date (rows of one (key, date) in line order).
///
/// Plain columns with sentinels for NULL: 32 bytes a row (a county file of a year, ≈ 1.2 M rows:
/// ≈ 38 MB), about a third of the file's CSV text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFile {
    pub(crate) spec: &'static Spec,
    /// This file's distinct keys in text order, values joined by [`KEY_SEPARATOR`].
    pub(crate) keys: Vec<String>,
    /// This file's distinct non-empty fips codes, in order of first appearance.
    pub(crate) fips_codes: Vec<String>,
    /// Each row's key, an index into `keys`.
    pub(crate) key: Vec<u32>,
    /// Days since 1970-01-01.
    pub(crate) day: Vec<i32>,
    /// The 1-based line the row starts on.
    pub(crate) line: Vec<u32>,
    /// An index into `fips_codes`, [`NO_FIPS`] when empty.
    pub(crate) fips: Vec<u32>,
    /// [`NULL_COUNT`] when empty.
    pub(crate) cases: Vec<i64>,
    pub(crate) deaths: Vec<i64>,
}

impl ParsedFile {
    pub fn spec(&self) -> &'static Spec {
        self.spec
    }

    /// How many rows the file holds.
    pub fn rows(&self) -> usize {
        self.key.len()
    }
}

/// Reads one file (named `name` in errors): every row checked, then sorted by key then date.
/// Per-row rules fail on the file's first bad line; duplicates are left for `combine`, which
/// reports the first one of all files.
pub fn parse_file(spec: &'static Spec, name: &str, bytes: &[u8]) -> Result<ParsedFile, DataError> {
    let mut rows = Rows::with_capacity(bytes.len());
    rows.read(spec, name, bytes)?;
    Ok(rows.sorted(spec))
}

/// The rows of one file in line order, keys numbered by first appearance.
struct Rows {
    keys: Vec<String>,
    fips_codes: Vec<String>,
    key: Vec<u32>,
    day: Vec<i32>,
    line: Vec<u32>,
    fips: Vec<u32>,
    cases: Vec<i64>,
    deaths: Vec<i64>,
    key_ids: HashMap<String, u32>,
    fips_ids: HashMap<String, u32>,
    buffer: String,
}

impl Rows {
    /// Room for about as many rows as `bytes` holds (a county row is ≈ 45 bytes).
    fn with_capacity(bytes: usize) -> Self {
        let rows = bytes / 40;
        Rows {
            keys: Vec::new(),
            fips_codes: Vec::new(),
            key: Vec::with_capacity(rows),
            day: Vec::with_capacity(rows),
            line: Vec::with_capacity(rows),
            fips: Vec::with_capacity(rows),
            cases: Vec::with_capacity(rows),
            deaths: Vec::with_capacity(rows),
            key_ids: HashMap::new(),
            fips_ids: HashMap::new(),
            buffer: String::new(),
        }
    }

    fn read(&mut self, spec: &Spec, name: &str, bytes: &[u8]) -> Result<(), DataError> {
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
            let fips = if fips.is_empty() {
                NO_FIPS
            } else {
                intern(&mut self.fips_ids, &mut self.fips_codes, fips)
            };
            self.key.push(key);
            self.day.push(day);
            self.line
                .push(u32::try_from(record.line).unwrap_or(u32::MAX));
            self.fips.push(fips);
            self.cases.push(cases);
            self.deaths.push(deaths);
        }
        if self.key.is_empty() {
            return Err(DataError::File {
                file: name.to_owned(),
                at: At::File,
                problem: Problem::HeaderOnly,
            });
        }
        Ok(())
    }

    /// The rows sorted by key (in text order) then date, rows of one (key, date) in line order:
    /// a stable counting sort by key, then a stable sort of each key's rows by date, which is
    /// linear on NYT's files (sorted by date, so each key's rows already are).
    fn sorted(self, spec: &'static Spec) -> ParsedFile {
        let Rows {
            keys,
            fips_codes,
            key,
            day,
            line,
            fips,
            cases,
            deaths,
            ..
        } = self;
        let mut by_text: Vec<u32> = (0..keys.len() as u32).collect();
        by_text.sort_unstable_by(|&a, &b| keys[a as usize].cmp(&keys[b as usize]));
        let mut rank = vec![0u32; keys.len()];
        for (position, &id) in by_text.iter().enumerate() {
            rank[id as usize] = position as u32;
        }
        // Where each key's rows start in the sorted order.
        let mut start = vec![0usize; keys.len() + 1];
        for &id in &key {
            start[rank[id as usize] as usize + 1] += 1;
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut next = start.clone();
        let mut order = vec![0u32; key.len()];
        for (row, &id) in key.iter().enumerate() {
            let slot = &mut next[rank[id as usize] as usize];
            order[*slot] = row as u32;
            *slot += 1;
        }
        for window in start.windows(2) {
            order[window[0]..window[1]].sort_by_key(|&row| day[row as usize]);
        }
        let gather = |column: &[u32]| -> Vec<u32> {
            order.iter().map(|&row| column[row as usize]).collect()
        };
        let gather_i64 = |column: &[i64]| -> Vec<i64> {
            order.iter().map(|&row| column[row as usize]).collect()
        };
        let sorted_key = order.iter().map(|&row| rank[key[row as usize] as usize]);
        ParsedFile {
            spec,
            key: sorted_key.collect(),
            day: order.iter().map(|&row| day[row as usize]).collect(),
            line: gather(&line),
            fips: gather(&fips),
            cases: gather_i64(&cases),
            deaths: gather_i64(&deaths),
            keys: by_text
                .iter()
                .map(|&id| keys[id as usize].clone())
                .collect(),
            fips_codes,
        }
    }
}

/// An empty count is NULL (not reported), never 0.
fn count_or_null(column: &'static str, text: &str) -> Result<i64, Problem> {
    if text.is_empty() {
        return Ok(NULL_COUNT);
    }
    values::count(column, text)
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
