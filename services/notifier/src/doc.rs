//! Writes one email body as plain text and HTML at once, so the two parts always say the same
//! thing. Every piece of text is escaped on the way into the HTML.

use crate::format;

/// A piece of a line: text, or a link.
#[derive(Debug, Clone)]
pub enum Inline {
    Text(String),
    Link { text: String, href: String },
}

pub fn text(s: impl Into<String>) -> Inline {
    Inline::Text(s.into())
}

pub fn link(text: impl Into<String>, href: impl Into<String>) -> Inline {
    Inline::Link {
        text: text.into(),
        href: href.into(),
    }
}

#[derive(Debug, Default)]
pub struct Doc {
    text: String,
    html: String,
}

impl Doc {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn paragraph(&mut self, line: &[Inline]) {
        self.text.push_str(&plain(line));
        self.text.push_str("\n\n");
        self.html.push_str(&format!("<p>{}</p>\n", markup(line)));
    }

    pub fn heading(&mut self, title: &str) {
        self.text.push_str(title);
        self.text.push('\n');
        self.html.push_str(&format!(
            "<h3 style=\"margin:1em 0 .3em\">{}</h3>\n",
            format::html(title)
        ));
    }

    /// `label: value` lines; a table in HTML.
    pub fn facts(&mut self, rows: &[(&str, Vec<Inline>)]) {
        self.html
            .push_str("<table style=\"border-collapse:collapse\">\n");
        for (label, value) in rows {
            self.text
                .push_str(&format!("  {label}: {}\n", plain(value)));
            self.html.push_str(&format!(
                "<tr><th style=\"text-align:left;padding-right:1em;font-weight:normal\">{}</th><td style=\"text-align:right\">{}</td></tr>\n",
                format::html(label),
                markup(value)
            ));
        }
        self.html.push_str("</table>\n");
        self.text.push('\n');
    }

    /// A bulleted list (`-` in text).
    pub fn items(&mut self, items: &[Vec<Inline>]) {
        self.html.push_str("<ul>\n");
        for item in items {
            self.text.push_str(&format!("  - {}\n", plain(item)));
            self.html.push_str(&format!("<li>{}</li>\n", markup(item)));
        }
        self.html.push_str("</ul>\n");
        self.text.push('\n');
    }

    /// The plain text, and the HTML wrapped in a minimal document.
    pub fn finish(self, title: &str) -> (String, String) {
        let html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body style=\"font-family:sans-serif\">\n{}</body></html>\n",
            format::html(title),
            self.html
        );
        (self.text.trim_end().to_owned() + "\n", html)
    }
}

fn plain(line: &[Inline]) -> String {
    line.iter()
        .map(|piece| match piece {
            Inline::Text(s) => s.clone(),
            Inline::Link { text, href } if text == href => href.clone(),
            Inline::Link { text, href } => format!("{text} ({href})"),
        })
        .collect()
}

fn markup(line: &[Inline]) -> String {
    line.iter()
        .map(|piece| match piece {
            Inline::Text(s) => format::html(s),
            Inline::Link { text, href } => {
                format!(
                    "<a href=\"{}\">{}</a>",
                    format::html(href),
                    format::html(text)
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_parts_carry_the_same_content_and_html_is_escaped() {
        let mut doc = Doc::new();
        doc.paragraph(&[text("reason: <b>bad</b> & worse")]);
        doc.facts(&[("new days", vec![text("1")])]);
        doc.items(&[vec![
            text("commit "),
            link("abc1234", "https://github.com/o/r/commit/abc\"x"),
        ]]);
        let (plain, html) = doc.finish("t");
        assert!(plain.contains("reason: <b>bad</b> & worse\n"));
        assert!(plain.contains("  new days: 1\n"));
        assert!(plain.contains("  - commit abc1234 (https://github.com/o/r/commit/abc\"x)\n"));
        assert!(html.contains("reason: &lt;b&gt;bad&lt;/b&gt; &amp; worse"));
        assert!(html.contains("<a href=\"https://github.com/o/r/commit/abc&quot;x\">abc1234</a>"));
        assert!(!html.contains("<b>"));
    }
}
