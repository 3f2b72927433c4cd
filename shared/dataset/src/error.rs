//! Why a payload, a stored object or a run was refused: [`DataError`], one sentence each.

use std::fmt;

use chrono::NaiveDate;
use shared::Source;
use shared::events::FailureKind;

/// Why a payload was refused. `Display` is one sentence naming the source, the line or field,
/// and the problem; [`DataError::kind`] is a machine word for events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// A rule broken outside this crate's parser (a caller's own check), said in one sentence.
    #[error("{0}")]
    Invalid(String),
    /// One upstream payload breaks a transform rule.
    #[error("{input}{at}: {problem}")]
    Payload {
        input: Source,
        at: At,
        problem: Problem,
    },
    /// One file of a keyed dataset (`states`, `counties`) breaks a rule; named by its file name.
    #[error("{file}{at}: {problem}")]
    File {
        file: String,
        at: At,
        problem: Problem,
    },
    /// Two files of a keyed dataset hold the same (date, key) with different values (boxed:
    /// it is the largest variant, and every `Result<_, DataError>` pays for the largest).
    #[error("{0}")]
    Overlap(Box<Overlap>),
    /// Rule 7 for a keyed dataset: applying the run would remove too many stored rows.
    #[error(
        "the {dataset} run would remove {removed} of {stored} stored rows ({}), more than the {} allowed",
        Percent::of(.removed, .stored),
        Percent(.max_share.0)
    )]
    SuspiciousRowRemoval {
        dataset: &'static str,
        stored: usize,
        removed: usize,
        max_share: Share,
    },
    /// Both payloads are valid but the inner join keeps no day.
    #[error(
        "nyt and jhu have no date in common (nyt has {nyt_first} to {nyt_last}, jhu has {jhu_first} to {jhu_last})"
    )]
    NoCommonDate {
        nyt_first: NaiveDate,
        nyt_last: NaiveDate,
        jhu_first: NaiveDate,
        jhu_last: NaiveDate,
    },
    /// DESIGN rule 7: applying the run would drop too many stored dates.
    #[error(
        "the run would remove {removed} of {stored} stored dates ({}), more than the {} allowed",
        Percent::of(.removed, .stored),
        Percent(.max_share.0)
    )]
    SuspiciousRemoval {
        stored: usize,
        removed: usize,
        max_share: Share,
    },
    /// A curated object could not be written or read back as the curated Parquet dataset.
    #[error("the curated Parquet object {0}")]
    Parquet(String),
    /// A failure inside polars on input that had passed validation: a bug, not bad data.
    #[error("the transform failed inside polars: {0}")]
    Internal(String),
}

impl DataError {
    /// The contract's word for this failure (`kind` in `failed` events and `etl_runs`).
    pub fn kind(&self) -> FailureKind {
        match self {
            DataError::Payload { problem, .. } | DataError::File { problem, .. } => match problem {
                Problem::Html { .. } | Problem::Json { .. } | Problem::Gzip => FailureKind::NotCsv,
                Problem::CutLastRow { .. } => FailureKind::Truncated,
                _ => FailureKind::InvalidData,
            },
            DataError::Invalid(_) | DataError::NoCommonDate { .. } | DataError::Overlap(_) => {
                FailureKind::InvalidData
            }
            DataError::SuspiciousRemoval { .. } | DataError::SuspiciousRowRemoval { .. } => {
                FailureKind::SuspiciousRemoval
            }
            // Bytes that are not the curated dataset.
            DataError::Parquet(_) => FailureKind::CorruptObject,
            DataError::Internal(_) => FailureKind::Internal,
        }
    }

    pub(crate) fn payload(input: &Source, at: At, problem: Problem) -> Self {
        DataError::Payload {
            input: input.clone(),
            at,
            problem,
        }
    }

    /// The same problem, named by a keyed dataset's file name instead of a [`Source`]: the
    /// shared readers (`payload`, `csv`, `header`) name a source, a keyed file is named by
    /// its file name.
    pub(crate) fn in_file(self, file: &str) -> Self {
        match self {
            DataError::Payload { at, problem, .. } => DataError::File {
                file: file.to_owned(),
                at,
                problem,
            },
            other => other,
        }
    }
}

/// Two files of a keyed dataset disagree on a (date, key): named by both files and lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{second} line {second_line}: the row for {key} on {date} disagrees with {first} line {first_line} ({what})"
)]
pub struct Overlap {
    pub first: String,
    pub first_line: usize,
    pub second: String,
    pub second_line: usize,
    pub date: NaiveDate,
    /// The key as `state "…", county "…"`.
    pub key: String,
    /// What differs, e.g. `cases is 12 here but 10 there`.
    pub what: String,
}

/// A share of stored dates (0.05 = 5 %). Compared bit for bit, so `DataError` stays `Eq`.
#[derive(Debug, Clone, Copy)]
pub struct Share(pub f64);

impl PartialEq for Share {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Share {}

/// A share shown as a percentage: whole numbers without decimals, others with one.
struct Percent(f64);

impl Percent {
    fn of(part: &usize, whole: &usize) -> Self {
        Percent(*part as f64 / *whole as f64)
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = self.0 * 100.0;
        if (percent - percent.round()).abs() < 0.05 {
            write!(f, "{:.0} %", percent.round())
        } else {
            write!(f, "{percent:.1} %")
        }
    }
}

/// Where in a payload a problem is: the whole file, or a 1-based line (the header is line 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    File,
    Line(usize),
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::File => Ok(()),
            At::Line(line) => write!(f, " line {line}"),
        }
    }
}

/// What is wrong with a payload. `column` is the header name of the offending field and `value`
/// the offending text, shortened and escaped for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Empty,
    Html {
        start: String,
    },
    Json {
        start: String,
    },
    Gzip,
    NulByte,
    InvalidUtf8 {
        byte: u8,
    },
    CarriageReturns,
    OtherDelimiter {
        delimiter: char,
    },
    DuplicateColumn {
        column: String,
    },
    MissingColumn {
        column: &'static str,
        header: Vec<String>,
    },
    HeaderOnly,
    UnclosedQuote,
    TextAfterQuote,
    FieldCount {
        found: usize,
        expected: usize,
    },
    /// A short last row without a newline after it: the body was cut inside that row.
    CutLastRow {
        found: usize,
        expected: usize,
    },
    EmptyValue {
        column: &'static str,
    },
    NotADate {
        column: &'static str,
        value: String,
    },
    ImpossibleDate {
        column: &'static str,
        value: String,
    },
    DateWithTime {
        column: &'static str,
        value: String,
    },
    NotAWholeNumber {
        column: &'static str,
        value: String,
    },
    Decimal {
        column: &'static str,
        value: String,
    },
    Negative {
        column: &'static str,
        value: String,
    },
    TooLarge {
        column: &'static str,
        value: String,
    },
    DuplicateDate {
        column: &'static str,
        date: NaiveDate,
        first_line: usize,
    },
    NoUsRows,
    /// A keyed file holds the same (date, key) twice; `key` is shown as `state "…", county "…"`.
    DuplicateKey {
        key: String,
        date: NaiveDate,
        first_line: usize,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => f.write_str("the payload is empty"),
            Problem::Html { start } => {
                write!(
                    f,
                    "the payload is an HTML page, not CSV (it starts with {start:?})"
                )
            }
            Problem::Json { start } => {
                write!(f, "the payload is JSON, not CSV (it starts with {start:?})")
            }
            Problem::Gzip => f.write_str("the payload is gzip-compressed, not plain CSV"),
            Problem::NulByte => {
                f.write_str("contains a NUL byte, so the payload is binary or corrupt")
            }
            Problem::InvalidUtf8 { byte } => write!(f, "is not valid UTF-8 (byte 0x{byte:02X})"),
            Problem::CarriageReturns => f.write_str(
                "lines end in a bare carriage return; expected \\n or \\r\\n line endings",
            ),
            Problem::OtherDelimiter { delimiter } => {
                write!(
                    f,
                    "the header is separated by {delimiter:?} instead of commas"
                )
            }
            Problem::DuplicateColumn { column } => {
                write!(f, "column {column:?} appears twice in the header")
            }
            Problem::MissingColumn { column, header } => {
                write!(f, "required column {column:?} is missing (the header has ")?;
                list_columns(f, header)?;
                f.write_str(")")
            }
            Problem::HeaderOnly => f.write_str("the file has a header line but no data rows"),
            Problem::UnclosedQuote => {
                f.write_str("a quoted field opens on this line and is never closed")
            }
            Problem::TextAfterQuote => {
                f.write_str("a quoted field is followed by other text before the next comma")
            }
            Problem::FieldCount { found, expected } => {
                write!(
                    f,
                    "has {found} {} but the header has {expected}",
                    plural(*found, "field", "fields")
                )
            }
            Problem::CutLastRow { found, expected } => {
                write!(
                    f,
                    "has {found} {} but the header has {expected} and the file ends in this row \
                     without a newline, so the body looks cut off",
                    plural(*found, "field", "fields")
                )
            }
            Problem::EmptyValue { column } => write!(f, "{column} is empty"),
            Problem::NotADate { column, value } => {
                write!(f, "{column} {value:?} is not a date in the form YYYY-MM-DD")
            }
            Problem::ImpossibleDate { column, value } => {
                write!(f, "{column} {value:?} is not a day of the calendar")
            }
            Problem::DateWithTime { column, value } => {
                write!(
                    f,
                    "{column} {value:?} has a time of day; expected a plain date (YYYY-MM-DD)"
                )
            }
            Problem::NotAWholeNumber { column, value } => {
                write!(f, "{column} {value:?} is not a whole number")
            }
            Problem::Decimal { column, value } => {
                write!(
                    f,
                    "{column} {value:?} is a decimal number; counts must be whole numbers"
                )
            }
            Problem::Negative { column, value } => write!(f, "{column} {value:?} is negative"),
            Problem::TooLarge { column, value } => {
                write!(
                    f,
                    "{column} {value:?} is larger than the largest count allowed ({})",
                    i64::MAX
                )
            }
            Problem::DuplicateDate {
                column,
                date,
                first_line,
            } => {
                write!(
                    f,
                    "{column} {date} appears again (first on line {first_line})"
                )
            }
            Problem::DuplicateKey {
                key,
                date,
                first_line,
            } => {
                write!(
                    f,
                    "the row for {key} on {date} appears again (first on line {first_line})"
                )
            }
            Problem::NoUsRows => {
                f.write_str("no row has Country/Region \"US\" with an empty Province/State")
            }
        }
    }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// Header names for a message: at most a few, each shortened, so a hostile header stays short.
fn list_columns(f: &mut fmt::Formatter<'_>, header: &[String]) -> fmt::Result {
    const MAX: usize = 10;
    if header.is_empty() {
        return f.write_str("no columns");
    }
    for (i, name) in header.iter().take(MAX).enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{:?}", shorten(name))?;
    }
    if header.len() > MAX {
        write!(f, " and {} more", header.len() - MAX)?;
    }
    Ok(())
}

/// The first characters of `text`, marked with `…` when cut, for quoting input in a message.
pub(crate) fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    match text.char_indices().nth(MAX_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_error_stays_small_enough_to_return_by_value() {
        // clippy's `result_large_err` fails CI past 128 bytes, in every crate that returns it.
        assert!(std::mem::size_of::<DataError>() <= 128);
    }

    #[test]
    fn a_payload_error_names_source_line_and_problem_in_one_sentence() {
        let err = DataError::payload(
            &Source::NYT,
            At::Line(57),
            Problem::NotAWholeNumber {
                column: "deaths",
                value: "12x".into(),
            },
        );
        assert_eq!(
            err.to_string(),
            r#"nyt line 57: deaths "12x" is not a whole number"#
        );
        assert_eq!(err.kind(), FailureKind::InvalidData);
    }

    #[test]
    fn a_missing_column_names_the_columns_that_are_there() {
        let err = DataError::payload(
            &Source::JHU,
            At::File,
            Problem::MissingColumn {
                column: "Recovered",
                header: vec!["Date".into(), "Deaths".into()],
            },
        );
        assert_eq!(
            err.to_string(),
            r#"jhu: required column "Recovered" is missing (the header has "Date", "Deaths")"#
        );
    }

    #[test]
    fn a_suspicious_removal_states_both_shares_as_percentages() {
        let err = DataError::SuspiciousRemoval {
            stored: 200,
            removed: 40,
            max_share: Share(0.05),
        };
        assert_eq!(
            err.to_string(),
            "the run would remove 40 of 200 stored dates (20 %), more than the 5 % allowed"
        );
        assert_eq!(err.kind(), FailureKind::SuspiciousRemoval);
        let odd = DataError::SuspiciousRemoval {
            stored: 3,
            removed: 1,
            max_share: Share(0.025),
        };
        assert_eq!(
            odd.to_string(),
            "the run would remove 1 of 3 stored dates (33.3 %), more than the 2.5 % allowed"
        );
    }

    #[test]
    fn long_or_hostile_input_is_shortened_and_escaped_in_messages() {
        let value = shorten(&"9".repeat(100));
        assert_eq!(value.chars().count(), 41);
        let err = DataError::payload(
            &Source::NYT,
            At::Line(2),
            Problem::NotAWholeNumber {
                column: "cases",
                value: "1\u{7}\"2".into(),
            },
        );
        assert_eq!(
            err.to_string(),
            r#"nyt line 2: cases "1\u{7}\"2" is not a whole number"#
        );
    }
}
