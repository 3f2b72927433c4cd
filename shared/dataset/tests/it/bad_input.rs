//! Every way a payload is refused (DESIGN rule 6 and what a broken or hostile upstream could
//! send): one sentence naming the source, the line or field, and the problem.

use crate::failure;

const NYT: &str = "date,cases,deaths\n2020-01-22,1,0\n2020-01-23,2,0\n2020-01-24,3,1\n";
const JHU: &str = "Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n\
                   2020-01-22,Afghanistan,,0,0,0\n\
                   2020-01-22,US,,1,0,0\n\
                   2020-01-23,US,,2,0,0\n\
                   2020-01-24,US,,3,1,1\n";

/// `(what, bad NYT payload, the sentence)`, each run with a valid JHU payload.
const BAD_NYT: &[(&str, &[u8], &str)] = &[
    ("an empty body", b"", "nyt: the payload is empty"),
    (
        "a body of blank lines",
        b"\n\r\n  \n",
        "nyt: the payload is empty",
    ),
    (
        "a header only",
        b"date,cases,deaths\n",
        "nyt: the file has a header line but no data rows",
    ),
    (
        "a header and blank lines",
        b"date,cases,deaths\r\n\r\n",
        "nyt: the file has a header line but no data rows",
    ),
    (
        "an HTML error page served with 200",
        b"<!DOCTYPE html>\n<html><body>Rate limited</body></html>\n",
        "nyt: the payload is an HTML page, not CSV (it starts with \"<!DOCTYPE html>\")",
    ),
    (
        "a JSON API error served with 200",
        b"{\"message\": \"API rate limit exceeded\"}\n",
        "nyt: the payload is JSON, not CSV (it starts with \"{\\\"message\\\": \\\"API rate limit exceeded\\\"}\")",
    ),
    (
        "a gzip body",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
        "nyt: the payload is gzip-compressed, not plain CSV",
    ),
    (
        "a missing column",
        b"date,cases\n2020-01-22,1\n",
        "nyt: required column \"deaths\" is missing (the header has \"date\", \"cases\")",
    ),
    (
        "a column twice",
        b"date,cases,deaths,cases\n2020-01-22,1,0,1\n",
        "nyt line 1: column \"cases\" appears twice in the header",
    ),
    (
        "semicolons as delimiter",
        b"date;cases;deaths\n2020-01-22;1;0\n",
        "nyt line 1: the header is separated by ';' instead of commas",
    ),
    (
        "tabs as delimiter",
        b"date\tcases\tdeaths\n2020-01-22\t1\t0\n",
        "nyt line 1: the header is separated by '\\t' instead of commas",
    ),
    (
        "a row in another delimiter",
        b"date,cases,deaths\n2020-01-22,1,0\n2020-01-23;2;0\n",
        "nyt line 3: has 1 field but the header has 3",
    ),
    (
        "a short row",
        b"date,cases,deaths\n2020-01-22,1\n",
        "nyt line 2: has 2 fields but the header has 3",
    ),
    (
        "a long row",
        b"date,cases,deaths\n2020-01-22,1,0,0\n",
        "nyt line 2: has 4 fields but the header has 3",
    ),
    (
        "a body cut inside its last row (upstream's file has no final newline either)",
        b"date,cases,deaths\n2020-01-22,1,0\n2020-01-23,2",
        "nyt line 3: has 2 fields but the header has 3 and the file ends in this row without a newline, so the body looks cut off",
    ),
    (
        "an impossible date",
        b"date,cases,deaths\n2020-01-22,1,0\n2020-02-30,2,0\n",
        "nyt line 3: date \"2020-02-30\" is not a day of the calendar",
    ),
    (
        "a date in another format",
        b"date,cases,deaths\n01/22/2020,1,0\n",
        "nyt line 2: date \"01/22/2020\" is not a date in the form YYYY-MM-DD",
    ),
    (
        "a date with a time",
        b"date,cases,deaths\n2020-01-22T00:00:00Z,1,0\n",
        "nyt line 2: date \"2020-01-22T00:00:00Z\" has a time of day; expected a plain date (YYYY-MM-DD)",
    ),
    (
        "an empty date",
        b"date,cases,deaths\n,1,0\n",
        "nyt line 2: date is empty",
    ),
    (
        "an empty count",
        b"date,cases,deaths\n2020-01-22,,0\n",
        "nyt line 2: cases is empty",
    ),
    (
        "a non-numeric count",
        b"date,cases,deaths\n2020-01-22,1,0\n2020-01-23,2,12x\n",
        "nyt line 3: deaths \"12x\" is not a whole number",
    ),
    (
        "a decimal count",
        b"date,cases,deaths\n2020-01-22,1.5,0\n",
        "nyt line 2: cases \"1.5\" is a decimal number; counts must be whole numbers",
    ),
    (
        "a negative count",
        b"date,cases,deaths\n2020-01-22,1,-2\n",
        "nyt line 2: deaths \"-2\" is negative",
    ),
    (
        "a count beyond i64",
        b"date,cases,deaths\n2020-01-22,9223372036854775808,0\n",
        "nyt line 2: cases \"9223372036854775808\" is larger than the largest count allowed (9223372036854775807)",
    ),
    (
        "a duplicate date",
        b"date,cases,deaths\n2020-01-22,1,0\n2020-01-23,2,0\n2020-01-22,1,0\n",
        "nyt line 4: date 2020-01-22 appears again (first on line 2)",
    ),
    (
        "a NUL byte",
        b"date,cases,deaths\n2020-01-22,1,0\n2020-01-23,2\x000\n",
        "nyt line 3: contains a NUL byte, so the payload is binary or corrupt",
    ),
    (
        "invalid UTF-8",
        b"date,cases,deaths\n2020-01-22,1,0\n2020-01-23,\xE9,0\n",
        "nyt line 3: is not valid UTF-8 (byte 0xE9)",
    ),
    (
        "an unbalanced quote",
        b"date,cases,deaths\n2020-01-22,\"1,0\n2020-01-23,2,0\n",
        "nyt line 2: a quoted field opens on this line and is never closed",
    ),
    (
        "text after a closing quote",
        b"date,cases,deaths\n\"2020-01-22\"x,1,0\n",
        "nyt line 2: a quoted field is followed by other text before the next comma",
    ),
    (
        "bare carriage returns as line ends",
        b"date,cases,deaths\r2020-01-22,1,0\r",
        "nyt line 1: lines end in a bare carriage return; expected \\n or \\r\\n line endings",
    ),
];

/// `(what, bad JHU payload, the sentence)`, each run with a valid NYT payload.
const BAD_JHU: &[(&str, &[u8], &str)] = &[
    ("an empty body", b"", "jhu: the payload is empty"),
    (
        "a header only",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n",
        "jhu: the file has a header line but no data rows",
    ),
    (
        "an HTML body",
        b"<html><body>Not Found</body></html>",
        "jhu: the payload is an HTML page, not CSV (it starts with \"<html><body>Not Found</body></html>\")",
    ),
    (
        "a missing Recovered column",
        b"Date,Country/Region,Province/State,Confirmed,Deaths\n2020-01-22,US,,1,0\n",
        "jhu: required column \"Recovered\" is missing (the header has \"Date\", \"Country/Region\", \"Province/State\", \"Confirmed\", \"Deaths\")",
    ),
    (
        "a missing Province/State column",
        b"Date,Country/Region,Confirmed,Recovered,Deaths\n2020-01-22,US,1,0,0\n",
        "jhu: required column \"Province/State\" is missing (the header has \"Date\", \"Country/Region\", \"Confirmed\", \"Recovered\", \"Deaths\")",
    ),
    (
        "no US rows",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22,Afghanistan,,0,0,0\n2020-01-22,US,New York,1,0,0\n",
        "jhu: no row has Country/Region \"US\" with an empty Province/State",
    ),
    (
        "a bad US date",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22,US,,1,0,0\n2020-02-30,US,,1,0,0\n",
        "jhu line 3: Date \"2020-02-30\" is not a day of the calendar",
    ),
    (
        "a negative US Recovered",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22,US,,1,-1,0\n",
        "jhu line 2: Recovered \"-1\" is negative",
    ),
    (
        "a decimal US Recovered",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22,US,,1,3.0,0\n",
        "jhu line 2: Recovered \"3.0\" is a decimal number; counts must be whole numbers",
    ),
    (
        "a duplicate US date",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22,US,,1,0,0\n2020-01-22,Chad,,1,0,0\n2020-01-22,US,,1,0,0\n",
        "jhu line 4: Date 2020-01-22 appears again (first on line 2)",
    ),
    (
        "a short US row",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22,US,,1,0\n",
        "jhu line 2: has 5 fields but the header has 6",
    ),
    (
        "a body in another delimiter",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22;US;;1;0;0\n",
        "jhu line 2: has 1 field but the header has 6",
    ),
    (
        "a body cut inside its last row, another country's (issue 15)",
        b"Date,Country/Region,Province/State,Lat,Long,Confirmed,Recovered,Deaths\r\n\
          2020-08-30,US,,40.0,-100.0,5961582,2140614,182779\r\n\
          2020-08-30,Zimbabwe,,-19.015438,29.1",
        "jhu line 3: has 5 fields but the header has 8 and the file ends in this row without a newline, so the body looks cut off",
    ),
    (
        "a body cut inside its last row, a US one",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22,US,,1,0,0\n2020-01-23,US,,2",
        "jhu line 3: has 4 fields but the header has 6 and the file ends in this row without a newline, so the body looks cut off",
    ),
    (
        "a short row of another country mid-file",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22,US,,1,0,0\n2020-01-22,Chad,,1\n2020-01-23,US,,2,0,0\n",
        "jhu line 3: has 4 fields but the header has 6",
    ),
    (
        "a long row of another country",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22,US,,1,0,0\n2020-01-22,Chad,,1,0,0,0\n",
        "jhu line 3: has 7 fields but the header has 6",
    ),
    (
        "a quoted country's row a field short",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22,US,,1,0,0\n2020-01-22,\"Korea, South\",,1,0\n",
        "jhu line 3: has 5 fields but the header has 6",
    ),
    (
        "an unbalanced quote in another country's row",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22,US,,1,0,0\n2020-01-22,\"Korea, South,,1,0,0\n2020-01-23,US,,1,0,0\n",
        "jhu line 3: a quoted field opens on this line and is never closed",
    ),
    (
        "a NUL byte in another country's row",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22,US,,1,0,0\n2020-01-22,Chad\0,,1,0,0\n",
        "jhu line 3: contains a NUL byte, so the payload is binary or corrupt",
    ),
    (
        "invalid UTF-8 in another country's row",
        b"Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n2020-01-22,US,,1,0,0\n2020-01-22,C\xF4te d'Ivoire,,1,0,0\n",
        "jhu line 3: is not valid UTF-8 (byte 0xF4)",
    ),
];

#[test]
fn every_bad_nyt_payload_fails_with_one_sentence_naming_where_and_what() {
    for (what, nyt, expected) in BAD_NYT {
        let err = failure(nyt, JHU.as_bytes());
        assert_eq!(err.to_string(), *expected, "NYT with {what}");
        // Bad upstream data in one of its words (invalid_data, not_csv, truncated): a failed run,
        // never a dead letter.
        assert!(
            !err.kind().is_dead_letter(),
            "NYT with {what}: {}",
            err.kind()
        );
    }
}

#[test]
fn every_bad_jhu_payload_fails_with_one_sentence_naming_where_and_what() {
    for (what, jhu, expected) in BAD_JHU {
        let err = failure(NYT.as_bytes(), jhu);
        assert_eq!(err.to_string(), *expected, "JHU with {what}");
        // Bad upstream data in one of its words (invalid_data, not_csv, truncated): a failed run,
        // never a dead letter.
        assert!(
            !err.kind().is_dead_letter(),
            "JHU with {what}: {}",
            err.kind()
        );
    }
}

#[test]
fn sources_without_a_date_in_common_fail_naming_both_ranges() {
    let jhu = "Date,Country/Region,Province/State,Recovered\n2021-03-01,US,,5\n2021-03-02,US,,6\n";
    let err = failure(NYT.as_bytes(), jhu.as_bytes());
    assert_eq!(
        err.to_string(),
        "nyt and jhu have no date in common (nyt has 2020-01-22 to 2020-01-24, jhu has 2021-03-01 to 2021-03-02)"
    );
    assert_eq!(err.kind(), shared::events::FailureKind::InvalidData);
}

#[test]
fn every_message_is_a_single_line() {
    for (_, nyt, _) in BAD_NYT {
        assert!(!failure(nyt, JHU.as_bytes()).to_string().contains('\n'));
    }
    let hostile = b"date,cases,deaths\n2020-01-22,\"1\n2\n3\",0\n";
    let message = failure(hostile, JHU.as_bytes()).to_string();
    assert_eq!(
        message,
        "nyt line 2: cases \"1\\n2\\n3\" is not a whole number"
    );
}
