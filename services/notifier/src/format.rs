//! Small formatting helpers shared by the run and staleness emails: HTML escaping, numbers,
//! durations, commit links.

use chrono::{DateTime, Utc};
use shared::events::UpstreamRef;
use shared::ids::CommitSha;

/// Escapes text for HTML element content and quoted attribute values. Everything that comes from
/// upstream (repository names, paths, reasons, warnings) goes through this.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `1234567` → `1,234,567`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn count_u(n: u64) -> String {
    count(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A value that may be "not reported" upstream.
pub fn value(v: Option<i64>) -> String {
    v.map_or_else(|| "not reported".to_owned(), count)
}

/// `n thing` / `n things`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count_u(n), if n == 1 { one } else { many })
}

/// A duration as people say it: `850 ms`, `2.4 s`, `3 min 12 s`, `2 h 5 min`, `9 days`.
pub fn duration_ms(ms: u64) -> String {
    let secs = ms / 1000;
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {} s", secs / 60, secs % 60),
        3_600_000..172_800_000 => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
        _ => format!("{} days", secs / 86_400),
    }
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn short_sha(sha: &CommitSha) -> &str {
    let sha = sha.as_str();
    sha.get(..7).unwrap_or(sha)
}

pub fn commit_url(upstream: &UpstreamRef) -> String {
    format!(
        "https://github.com/{}/commit/{}",
        upstream.repo, upstream.commit_sha
    )
}

/// Makes one line of `text`, at most `max` characters, for a subject: a reason with a newline in
/// it must not become a second header line, and a long one is cut with an ellipsis.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let flat = flat.trim_end_matches('.');
    if flat.chars().count() <= max {
        flat.to_owned()
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{}…", cut.trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_from_upstream_is_escaped() {
        assert_eq!(
            html(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (103_910_034, "103,910,034"),
            (-1500, "-1,500"),
        ] {
            assert_eq!(count(n), s);
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(2_400), "2.4 s");
        assert_eq!(duration_ms(192_000), "3 min 12 s");
        assert_eq!(duration_ms(7_500_000), "2 h 5 min");
        assert_eq!(duration_ms(9 * 86_400_000), "9 days");
    }

    #[test]
    fn subject_text_is_one_bounded_line() {
        assert_eq!(
            one_line("nyt line 57:\r\n deaths is not a number.", 100),
            "nyt line 57: deaths is not a number"
        );
        let long = one_line(&"x".repeat(300), 50);
        assert_eq!(long.chars().count(), 50);
        assert!(long.ends_with('…'));
    }
}
