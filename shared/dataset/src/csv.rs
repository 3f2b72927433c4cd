//! A strict, fast reader for the two upstream CSV files.
//!
//! Why not polars' CSV reader: a refused payload must name its 1-based file line, and the JHU file
//! is 4 MB of which we need about 400 lines. This reader finds record boundaries with `memchr`
//! (a quote-free line is one record and is never split into fields unless its country field is
//! asked for), falls back to an RFC 4180 state machine only for records that contain a quote, and
//! rejects what makes the structure ambiguous: a quoted field that never closes, text after a
//! closing quote, and — once the header is read — a record with another number of fields than the
//! header. The rows the transform never splits are still counted (with `memchr`, commas only), so
//! a body cut inside a row of another country is refused too. A quote inside an unquoted field is
//! kept as text, as pandas does. The text has passed `payload`'s checks (UTF-8, no NUL byte)
//! before.

use std::borrow::Cow;

use memchr::memchr2;
use shared::Source;

use crate::error::{At, DataError, Problem};

/// One record: where it starts and its fields.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    /// The 1-based line the record starts on.
    pub line: usize,
    fields: Fields<'a>,
}

#[derive(Debug)]
enum Fields<'a> {
    /// A line without quotes: its fields are split on demand.
    Plain(&'a str),
    /// A record that needed the quote-aware parser.
    Parsed(Vec<Cow<'a, str>>),
}

impl<'a> Record<'a> {
    /// The fields at `indices` (`None` where the record is shorter), reading a quote-free line
    /// only up to the last field asked for: this is how JHU rows are classified cheaply.
    pub fn pick<const N: usize>(&self, indices: [usize; N]) -> [Option<&str>; N] {
        let text = match &self.fields {
            Fields::Plain(text) => *text,
            Fields::Parsed(fields) => return indices.map(|i| fields.get(i).map(|f| f.as_ref())),
        };
        let mut out = [None; N];
        let last = indices.iter().copied().max().unwrap_or(0);
        let (mut field, mut start) = (0, 0);
        // A plain loop: the fields wanted are a few bytes in, too close for memchr to pay off.
        for (i, &byte) in text.as_bytes().iter().enumerate() {
            if byte == b',' {
                set_picked(&mut out, &indices, field, &text[start..i]);
                if field == last {
                    return out;
                }
                field += 1;
                start = i + 1;
            }
        }
        set_picked(&mut out, &indices, field, &text[start..]);
        out
    }

    pub fn len(&self) -> usize {
        match &self.fields {
            Fields::Plain(text) => 1 + memchr::memchr_iter(b',', text.as_bytes()).count(),
            Fields::Parsed(fields) => fields.len(),
        }
    }

    /// All fields, split once (for records that are checked in full).
    pub fn split(&self) -> Vec<&str> {
        match &self.fields {
            Fields::Plain(text) => text.split(',').collect(),
            Fields::Parsed(fields) => fields.iter().map(|f| f.as_ref()).collect(),
        }
    }

    /// A bare `\r` left inside a quote-free line (line endings that are not `\n` or `\r\n`).
    pub fn has_bare_cr(&self) -> bool {
        matches!(self.fields, Fields::Plain(text) if text.contains('\r'))
    }
}

fn set_picked<'t, const N: usize>(
    out: &mut [Option<&'t str>; N],
    indices: &[usize; N],
    field: usize,
    value: &'t str,
) {
    for (slot, &index) in out.iter_mut().zip(indices) {
        if index == field {
            *slot = Some(value);
        }
    }
}

/// Reads records from the text of one payload, skipping blank lines.
pub(crate) struct Reader<'a> {
    input: Source,
    text: &'a str,
    pos: usize,
    line: usize,
    /// The header's field count, once [`Reader::expect_width`] is called.
    width: Option<usize>,
}

impl<'a> Reader<'a> {
    pub fn new(input: &Source, text: &'a str) -> Self {
        Self {
            input: input.clone(),
            text,
            pos: 0,
            line: 1,
            width: None,
        }
    }

    /// Refuses, from the next record on, any record that does not have `width` fields.
    pub fn expect_width(&mut self, width: usize) {
        self.width = Some(width);
    }

    fn fail(&self, line: usize, problem: Problem) -> DataError {
        DataError::payload(&self.input, At::Line(line), problem)
    }

    #[allow(clippy::should_implement_trait)] // fallible, and records borrow the reader's text
    pub fn next(&mut self) -> Result<Option<Record<'a>>, DataError> {
        let record = self.next_record()?;
        if let (Some(record), Some(expected)) = (&record, self.width) {
            self.check_width(record, expected)?;
        }
        Ok(record)
    }

    fn check_width(&self, record: &Record<'_>, expected: usize) -> Result<(), DataError> {
        let found = record.len();
        if found == expected {
            return Ok(());
        }
        // A short row with no newline after it is how a body cut in transit ends; saying so points
        // at the fetch rather than at a change of upstream's format. The record that ends the
        // text has moved `pos` to (or, unterminated and quote-free, one past) its end.
        let unterminated = self.pos >= self.text.len() && !self.text.ends_with('\n');
        let problem = if found < expected && unterminated {
            Problem::CutLastRow { found, expected }
        } else {
            Problem::FieldCount { found, expected }
        };
        Err(self.fail(record.line, problem))
    }

    fn next_record(&mut self) -> Result<Option<Record<'a>>, DataError> {
        let bytes = self.text.as_bytes();
        loop {
            if self.pos >= bytes.len() {
                return Ok(None);
            }
            let line = self.line;
            let rest = &bytes[self.pos..];
            let end = match memchr2(b'\n', b'"', rest) {
                None => rest.len(),
                Some(i) if rest[i] == b'\n' => i,
                Some(_) => return self.parse_quoted().map(Some),
            };
            let start = self.pos;
            self.pos += end + 1;
            self.line += 1;
            let mut text = &self.text[start..start + end];
            text = text.strip_suffix('\r').unwrap_or(text);
            if !text.is_empty() {
                return Ok(Some(Record {
                    line,
                    fields: Fields::Plain(text),
                }));
            }
        }
    }

    /// The RFC 4180 state machine for a record that contains a quote somewhere.
    fn parse_quoted(&mut self) -> Result<Record<'a>, DataError> {
        let bytes = self.text.as_bytes();
        let line = self.line;
        let mut fields = Vec::new();
        let mut i = self.pos;
        loop {
            if bytes.get(i) == Some(&b'"') {
                let (value, after) = self.quoted_field(i + 1)?;
                fields.push(value);
                i = after;
                match bytes.get(i) {
                    None => break,
                    Some(b',') => i += 1,
                    Some(b'\n') => {
                        i += 1;
                        self.line += 1;
                        break;
                    }
                    Some(b'\r') if bytes.get(i + 1) == Some(&b'\n') => {
                        i += 2;
                        self.line += 1;
                        break;
                    }
                    Some(_) => return Err(self.fail(self.line, Problem::TextAfterQuote)),
                }
            } else {
                let end = memchr2(b',', b'\n', &bytes[i..]).map_or(bytes.len(), |k| i + k);
                match bytes.get(end) {
                    Some(b',') => {
                        fields.push(Cow::Borrowed(&self.text[i..end]));
                        i = end + 1;
                    }
                    terminator => {
                        let value = &self.text[i..end];
                        fields.push(Cow::Borrowed(value.strip_suffix('\r').unwrap_or(value)));
                        i = end + 1;
                        if terminator.is_some() {
                            self.line += 1;
                        }
                        break;
                    }
                }
            }
        }
        self.pos = i.min(bytes.len());
        Ok(Record {
            line,
            fields: Fields::Parsed(fields),
        })
    }

    /// The content of a quoted field whose opening quote is just before `start`, and the index
    /// after its closing quote. Newlines inside the quotes count as lines.
    fn quoted_field(&mut self, start: usize) -> Result<(Cow<'a, str>, usize), DataError> {
        let bytes = self.text.as_bytes();
        let open_line = self.line;
        let mut owned: Option<String> = None;
        let mut segment = start;
        let mut i = start;
        loop {
            let Some(k) = memchr2(b'"', b'\n', &bytes[i..]) else {
                return Err(self.fail(open_line, Problem::UnclosedQuote));
            };
            let j = i + k;
            match bytes[j] {
                b'\n' => {
                    self.line += 1;
                    i = j + 1;
                }
                _ if bytes.get(j + 1) == Some(&b'"') => {
                    // `""` is one quote: keep the text up to and including the first.
                    owned
                        .get_or_insert_with(String::new)
                        .push_str(&self.text[segment..=j]);
                    i = j + 2;
                    segment = i;
                }
                _ => {
                    let value = match owned {
                        Some(mut s) => {
                            s.push_str(&self.text[segment..j]);
                            Cow::Owned(s)
                        }
                        None => Cow::Borrowed(&self.text[start..j]),
                    };
                    return Ok((value, j + 1));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
        let mut reader = Reader::new(&Source::JHU, text);
        let mut out = Vec::new();
        while let Some(record) = reader.next().map_err(|e| e.to_string())? {
            out.push((
                record.line,
                record.split().into_iter().map(str::to_owned).collect(),
            ));
        }
        Ok(out)
    }

    fn row(line: usize, fields: &[&str]) -> (usize, Vec<String>) {
        (line, fields.iter().map(|f| (*f).to_owned()).collect())
    }

    #[test]
    fn plain_lines_split_on_commas_with_crlf_and_no_final_newline() {
        assert_eq!(
            records("a,b\r\n1,2\r\n3,").unwrap(),
            vec![row(1, &["a", "b"]), row(2, &["1", "2"]), row(3, &["3", ""])]
        );
    }

    #[test]
    fn blank_lines_are_skipped_but_still_counted() {
        assert_eq!(
            records("a\n\n\r\nb\n\n").unwrap(),
            vec![row(1, &["a"]), row(4, &["b"])]
        );
    }

    #[test]
    fn quoted_fields_may_hold_commas_escaped_quotes_and_newlines() {
        let text = "d,\"Korea, South\",x\r\n\"say \"\"hi\"\"\",\"two\nlines\"\nlast,\"\"";
        assert_eq!(
            records(text).unwrap(),
            vec![
                row(1, &["d", "Korea, South", "x"]),
                row(2, &["say \"hi\"", "two\nlines"]),
                row(4, &["last", ""]),
            ]
        );
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_kept_as_text() {
        assert_eq!(
            records("ab\"c,\"d\"\n").unwrap(),
            vec![row(1, &["ab\"c", "d"])]
        );
    }

    #[test]
    fn a_quote_that_never_closes_names_the_line_it_opens_on() {
        assert_eq!(
            records("a,b\n1,\"2\n3,4\n").unwrap_err(),
            "jhu line 2: a quoted field opens on this line and is never closed"
        );
    }

    #[test]
    fn text_after_a_closing_quote_is_refused() {
        assert_eq!(
            records("a\n\"x\"y,1\n").unwrap_err(),
            "jhu line 2: a quoted field is followed by other text before the next comma"
        );
    }

    #[test]
    fn a_plain_record_splits_lazily_and_counts_its_fields() {
        let mut reader = Reader::new(&Source::NYT, "2020-01-01,US,,1\n");
        let record = reader.next().unwrap().unwrap();
        assert_eq!(record.pick([1, 2]), [Some("US"), Some("")]);
        assert_eq!(record.pick([3, 0]), [Some("1"), Some("2020-01-01")]);
        assert_eq!(record.pick([2, 4]), [Some(""), None]);
        assert_eq!(record.len(), 4);
        let mut reader = Reader::new(&Source::NYT, "\"2020-01-01\",\"Korea, South\",,1\n");
        let record = reader.next().unwrap().unwrap();
        assert_eq!(
            record.pick([1, 2, 4]),
            [Some("Korea, South"), Some(""), None]
        );
    }

    /// The lines of the records after the header, each checked against the header's width.
    fn widths_checked(text: &str) -> Result<Vec<usize>, String> {
        let mut reader = Reader::new(&Source::JHU, text);
        let header = reader.next().map_err(|e| e.to_string())?.expect("a header");
        reader.expect_width(header.len());
        let mut lines = Vec::new();
        while let Some(record) = reader.next().map_err(|e| e.to_string())? {
            lines.push(record.line);
        }
        Ok(lines)
    }

    #[test]
    fn every_record_must_have_as_many_fields_as_the_header() {
        const SHORT: &str = "jhu line 3: has 2 fields but the header has 3";
        const CUT: &str =
            "and the file ends in this row without a newline, so the body looks cut off";
        /// What, the text, and the lines of its rows or the error.
        type Case = (&'static str, &'static str, Result<&'static [usize], String>);
        let cases: &[Case] = &[
            (
                "rows of the header's width",
                "a,b,c\n1,2,3\n4,5,6",
                Ok(&[2, 3]),
            ),
            (
                "quoted commas counted as text",
                "a,b,c\n\"Korea, South\",,1\n\"a,b\",\"c\nd\",\"\"\"\"\n1,2,3\n",
                Ok(&[2, 3, 5]),
            ),
            (
                "blank lines, which are no rows",
                "a,b\r\n\r\n1,2\r\n\n",
                Ok(&[3]),
            ),
            (
                "a short row anywhere",
                "a,b,c\n1,2,3\n4,5\n6,7,8\n",
                Err(SHORT.into()),
            ),
            (
                "a long row anywhere",
                "a,b,c\n1,2,3,4\n5,6,7\n",
                Err("jhu line 2: has 4 fields but the header has 3".into()),
            ),
            (
                "a row of one field",
                "a,b,c\n1;2;3\n",
                Err("jhu line 2: has 1 field but the header has 3".into()),
            ),
            (
                "a short quoted row, on the line it starts on",
                "a,b,c\n1,2,3\n\"x\ny\",\"Korea, South\"\n1,2,3\n",
                Err(SHORT.into()),
            ),
            (
                "a short last row with its newline",
                "a,b,c\n1,2,3\n4,5\n",
                Err(SHORT.into()),
            ),
            (
                "a long last row without a newline",
                "a,b,c\n1,2,3\n4,5,6,7",
                Err("jhu line 3: has 4 fields but the header has 3".into()),
            ),
            (
                "a short last row without a newline",
                "a,b,c\n1,2,3\n4,5",
                Err(format!("{SHORT} {CUT}")),
            ),
            (
                "a last row cut just after a comma",
                "a,b,c\r\n1,2,3\r\n4,",
                Err(format!("{SHORT} {CUT}")),
            ),
            (
                "a last row cut between its carriage return and newline",
                "a,b,c\r\n1,2,3\r\n4,5\r",
                Err(format!("{SHORT} {CUT}")),
            ),
            (
                "a quoted last row cut after a closing quote",
                "a,b,c\n1,2,3\n\"Korea, South\",\"x\"",
                Err(format!("{SHORT} {CUT}")),
            ),
            (
                "a quoted last row cut after it",
                "a,b,c\n1,2,3\n\"Korea, South\",x",
                Err(format!("{SHORT} {CUT}")),
            ),
            (
                "a last row cut inside a quoted field",
                "a,b,c\n1,2,3\n\"Korea, So",
                Err("jhu line 3: a quoted field opens on this line and is never closed".into()),
            ),
        ];
        for (what, text, expected) in cases {
            let expected = expected.clone().map(<[usize]>::to_vec);
            assert_eq!(widths_checked(text), expected, "{what}");
        }
    }

    proptest::proptest! {
        /// Any table written as RFC 4180 CSV, quoted or not where allowed, with either line end,
        /// reads back as the same fields, each record on the line it starts on.
        #[test]
        fn written_csv_reads_back_field_for_field(
            table in proptest::collection::vec(
                proptest::collection::vec(("[a-z0-9,\"\n -]{0,6}", proptest::bool::ANY), 1..5),
                1..8,
            ),
            crlf in proptest::bool::ANY,
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            let mut expected = Vec::new();
            let mut line = 1;
            for record in &table {
                let fields: Vec<String> = record.iter().map(|(f, _)| f.clone()).collect();
                // A record of one empty field is a blank line, which the reader skips.
                let blank = fields.len() == 1 && fields[0].is_empty() && !record[0].1;
                let cells: Vec<String> = record
                    .iter()
                    .map(|(field, quote)| {
                        let needs = field.contains([',', '"', '\n']) || field.starts_with('"');
                        if *quote || needs { format!("\"{}\"", field.replace('"', "\"\"")) } else { field.clone() }
                    })
                    .collect();
                text.push_str(&cells.join(","));
                text.push_str(eol);
                if !blank {
                    expected.push((line, fields.clone()));
                }
                line += 1 + fields.iter().map(|f| f.matches('\n').count()).sum::<usize>();
            }
            proptest::prop_assert_eq!(records(&text), Ok(expected));
        }
    }
}
