//! Checks that make an upstream payload a text file at all, before any line is read: not empty,
//! not an error page or API answer served with 200, not compressed, valid UTF-8 without NUL bytes.

use memchr::memchr;
use shared::Source;

use crate::error::{At, DataError, Problem, shorten};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Checks that make a payload a text file at all, and returns it as text without its BOM.
pub(crate) fn check_payload<'a>(input: &Source, bytes: &'a [u8]) -> Result<&'a str, DataError> {
    let fail = |at, problem| DataError::payload(input, at, problem);
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let Some(first) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Err(fail(At::File, Problem::Empty));
    };
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(fail(At::File, Problem::Gzip));
    }
    if matches!(bytes[first], b'<' | b'{' | b'[') {
        // A CSV header never starts with these; an error page or an API error served with 200 does.
        let rest = &bytes[first..];
        let end = memchr(b'\n', rest).unwrap_or(rest.len());
        let start = shorten(String::from_utf8_lossy(&rest[..end]).trim_end());
        let problem = if bytes[first] == b'<' {
            Problem::Html { start }
        } else {
            Problem::Json { start }
        };
        return Err(fail(At::File, problem));
    }
    let text = std::str::from_utf8(bytes).map_err(|err| {
        let at = err.valid_up_to();
        fail(
            At::Line(line_of(bytes, at)),
            Problem::InvalidUtf8 { byte: bytes[at] },
        )
    })?;
    // NUL is valid UTF-8 but never CSV text: the payload is binary or corrupt.
    if let Some(at) = memchr(0, bytes) {
        return Err(fail(At::Line(line_of(bytes, at)), Problem::NulByte));
    }
    Ok(text)
}

/// The 1-based line that byte `offset` is on.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + memchr::memchr_iter(b'\n', &bytes[..offset]).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_checks_find_emptiness_html_json_gzip_bad_utf8_and_nul_bytes() {
        let check = |bytes: &[u8]| {
            check_payload(&Source::NYT, bytes)
                .map(str::to_owned)
                .map_err(|e| e.to_string())
        };
        assert_eq!(check(b"").unwrap_err(), "nyt: the payload is empty");
        assert_eq!(check(b" \r\n\n").unwrap_err(), "nyt: the payload is empty");
        assert_eq!(
            check(b"\xEF\xBB\xBF").unwrap_err(),
            "nyt: the payload is empty"
        );
        assert_eq!(
            check(b"\n<!DOCTYPE html>\n<html>").unwrap_err(),
            "nyt: the payload is an HTML page, not CSV (it starts with \"<!DOCTYPE html>\")"
        );
        assert_eq!(
            check(b"{\"message\":\"Not Found\"}").unwrap_err(),
            "nyt: the payload is JSON, not CSV (it starts with \"{\\\"message\\\":\\\"Not Found\\\"}\")"
        );
        assert_eq!(
            check(b"\x1f\x8b\x08\x00").unwrap_err(),
            "nyt: the payload is gzip-compressed, not plain CSV"
        );
        assert_eq!(
            check(b"date\n2020\xFF\n").unwrap_err(),
            "nyt line 2: is not valid UTF-8 (byte 0xFF)"
        );
        for (payload, line) in [(&b"a\nb\0\n"[..], 2), (b"a\n\"b\",c\n\0", 3), (b"\0", 1)] {
            assert_eq!(
                check(payload).unwrap_err(),
                format!(
                    "nyt line {line}: contains a NUL byte, so the payload is binary or corrupt"
                )
            );
        }
        assert_eq!(check(b"\xEF\xBB\xBFdate\n").unwrap(), "date\n");
    }
}
