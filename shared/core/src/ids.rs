//! Identifiers that travel in events and end up in NATS headers, subjects, KV keys, object names
//! and SQL: each is a type that can only hold a safe value, checked when it is made or decoded.
//!
//! A value that reaches a `Nats-Msg-Id` header or a KV key through one of these types cannot carry
//! a line break, a wildcard, a dot or a space, so no call site has to remember to check.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what}: {rule}")]
pub struct InvalidId {
    pub what: &'static str,
    pub rule: &'static str,
    /// The refused value, cut short so that a hostile one cannot flood a log line.
    pub value: String,
}

impl InvalidId {
    fn new(what: &'static str, rule: &'static str, value: &str) -> Self {
        let value = match value.char_indices().nth(80) {
            Some((cut, _)) => format!("{}…", &value[..cut]),
            None => value.to_owned(),
        };
        Self { what, rule, value }
    }
}

/// Declares a validated string identifier: `$check` decides, `$rule` says the rule in words.
macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $what:literal, $rule:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const RULE: &'static str = $rule;

            pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                let check: fn(&str) -> bool = $check;
                if check(&value) {
                    Ok(Self(value))
                } else {
                    Err(InvalidId::new($what, $rule, &value))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

fn within(value: &str, min: usize, max: usize, allowed: fn(u8) -> bool) -> bool {
    (min..=max).contains(&value.len()) && value.bytes().all(allowed)
}

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn lower_hex(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'f')
}

identifier!(
    /// A run's identity ([`crate::run_id`] derives 24 hex digits). Safe as a KV key part, a
    /// subject token, an object name part and a header value.
    RunId,
    "run id",
    "1 to 64 ASCII letters, digits, '_' or '-'",
    |v| within(v, 1, 64, token_byte)
);

identifier!(
    /// What makes a forced run distinct (`etl trigger --force` sends a UUID, the daily run
    /// `daily:<date>`). Part of message ids, never of KV keys.
    TriggerId,
    "trigger id",
    "1 to 64 ASCII letters, digits, '_', '-', ':' or '.'",
    |v| within(v, 1, 64, |b| token_byte(b) || b == b':' || b == b'.')
);

identifier!(
    /// A git commit: lowercase hex, abbreviated (7+) or full (40 for SHA-1, 64 for SHA-256).
    CommitSha,
    "commit sha",
    "7 to 64 lowercase hexadecimal digits",
    |v| within(v, 7, 64, lower_hex)
);

identifier!(
    /// A SHA-256 content digest in lowercase hex.
    Digest,
    "sha-256 digest",
    "64 lowercase hexadecimal digits",
    |v| v.len() == 64 && v.bytes().all(lower_hex)
);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(crate::hash::sha256_hex(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_refuse_anything_unsafe_in_a_header_key_or_subject() {
        assert!(RunId::new("0123456789abcdef01234567").is_ok());
        assert!(RunId::new("smoke-run_1").is_ok());
        for bad in [
            "",
            "a\nb",
            "a\r\nNats-Msg-Id: x",
            "a.b",
            "a*",
            "a>",
            "a b",
            "a/b",
            &"a".repeat(65),
        ] {
            assert!(RunId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn trigger_ids_admit_uuids_and_daily_ids_only() {
        assert!(TriggerId::new("0b7c4f3e-8d2a-4c55-9a4e-0f4a2f0c9d11").is_ok());
        assert!(TriggerId::new("daily:2026-03-01").is_ok());
        for bad in ["", "a\nb", "a b", "a*", "a>", "ü", &"a".repeat(65)] {
            assert!(TriggerId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commit_shas_and_digests_are_lowercase_hex() {
        assert!(CommitSha::new("5a1c0ffee").is_ok());
        assert!(CommitSha::new("A1C0FFEE").is_err());
        assert!(CommitSha::new("abc").is_err());
        assert!(CommitSha::new("c0ffee\n").is_err());
        assert_eq!(Digest::of(b"").as_str().len(), 64);
        assert!(Digest::new("ab").is_err());
    }

    #[test]
    fn a_refused_value_is_named_but_cut_short() {
        let err = RunId::new("x".repeat(500)).unwrap_err();
        assert!(err.to_string().len() < 250, "{err}");
        assert!(err.to_string().contains("run id"));
    }

    #[test]
    fn identifiers_are_checked_when_decoded() {
        assert!(serde_json::from_str::<RunId>("\"a\\nb\"").is_err());
        assert_eq!(
            serde_json::from_str::<RunId>("\"r1\"").unwrap().as_str(),
            "r1"
        );
    }
}
