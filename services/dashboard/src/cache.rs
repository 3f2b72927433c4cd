//! Conditional requests, so a page or script that polls pays one cheap query and a 304 while
//! nothing changed.
//!
//! The ETag hashes the data version ([`crate::db::DataVersion`]) with a canonical form of the
//! request, and is computed before the real query: reading the version first means a response can
//! only ever be labelled older than its content (costing one extra transfer), never newer (which
//! would hide a change from the client).

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::db::DataVersion;

/// Clients may keep a response but must ask again before using it.
pub const REVALIDATE: &str = "no-cache";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    etag: String,
    last_modified: Option<DateTime<Utc>>,
}

impl Validators {
    /// `key` names the request (endpoint and canonical parameters) so different questions about
    /// the same data never share an ETag.
    pub fn new(version: &DataVersion, key: &str) -> Self {
        let digest = Sha256::digest(
            format!("{}|{}|{key}", env!("CARGO_PKG_VERSION"), version.token()).as_bytes(),
        );
        Self {
            etag: format!("\"{}\"", &hex::encode(digest)[..24]),
            last_modified: version.last_modified(),
        }
    }

    /// Validators for fixed content (static assets).
    pub fn for_bytes(bytes: &[u8]) -> Self {
        Self {
            etag: format!("\"{}\"", &hex::encode(Sha256::digest(bytes))[..24]),
            last_modified: None,
        }
    }

    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// Whether the client's copy is current (RFC 9110 §13.1): `If-None-Match` decides when
    /// present, otherwise `If-Modified-Since`, compared in whole seconds.
    pub fn is_fresh(&self, headers: &HeaderMap) -> bool {
        if let Some(value) = headers.get(IF_NONE_MATCH) {
            let Ok(value) = value.to_str() else {
                return false;
            };
            return value
                .split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag);
        }
        let (Some(modified), Some(since)) = (self.last_modified, headers.get(IF_MODIFIED_SINCE))
        else {
            return false;
        };
        since
            .to_str()
            .ok()
            .and_then(|s| DateTime::parse_from_rfc2822(s).ok())
            .is_some_and(|since| modified.timestamp() <= since.timestamp())
    }

    /// A 304 carrying the validators, or `None` when the client needs the body.
    pub fn not_modified(&self, headers: &HeaderMap) -> Option<Response> {
        self.is_fresh(headers)
            .then(|| self.apply(StatusCode::NOT_MODIFIED.into_response()))
    }

    pub fn apply(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        if let Ok(etag) = HeaderValue::from_str(&self.etag) {
            headers.insert(ETAG, etag);
        }
        if let Some(modified) = self.last_modified
            && let Ok(value) = HeaderValue::from_str(&http_date(modified))
        {
            headers.insert(LAST_MODIFIED, value);
        }
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
        response
    }
}

/// A rendered body and the headers that describe it.
#[derive(Debug, Clone)]
pub struct CachedBody {
    pub bytes: Bytes,
    pub content_type: &'static str,
    pub disposition: Option<String>,
}

impl IntoResponse for CachedBody {
    fn into_response(self) -> Response {
        let mut response = self.bytes.into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        if let Some(value) = self
            .disposition
            .and_then(|d| HeaderValue::from_str(&d).ok())
        {
            headers.insert(CONTENT_DISPOSITION, value);
        }
        response
    }
}

/// The last few rendered series, by ETag: many pages polling the same range cost one small
/// version query each instead of reading and rendering the series again. An ETag names the data
/// version and the question, so an entry never needs invalidating; old ones fall out.
#[derive(Debug)]
pub struct BodyCache {
    entries: Mutex<VecDeque<(String, CachedBody)>>,
    capacity: usize,
}

impl BodyCache {
    /// Entries kept by default; each is at most a few hundred KB (the series is bounded).
    pub const CAPACITY: usize = 16;

    pub fn new() -> Self {
        Self::with_capacity(Self::CAPACITY)
    }

    /// A cache of its own size, so one family of routes cannot push out another's bodies (at
    /// least one entry is kept).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            entries: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
        }
    }

    pub fn get(&self, etag: &str) -> Option<CachedBody> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .iter()
            .find(|(tag, _)| tag == etag)
            .map(|(_, body)| body.clone())
    }

    pub fn put(&self, etag: &str, body: CachedBody) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.iter().any(|(tag, _)| tag == etag) {
            return;
        }
        if entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back((etag.to_owned(), body));
    }
}

impl Default for BodyCache {
    fn default() -> Self {
        Self::new()
    }
}

/// The IMF-fixdate form HTTP uses: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: axum::http::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    fn version_at(t: &str) -> DataVersion {
        DataVersion {
            days: 3,
            days_updated_at: Some(t.parse().unwrap()),
            ..DataVersion::default()
        }
    }

    #[test]
    fn a_matching_etag_is_fresh_weak_or_strong() {
        let v = Validators::new(&version_at("2020-12-14T06:00:00Z"), "daily");
        assert!(v.is_fresh(&headers(IF_NONE_MATCH, v.etag())));
        assert!(v.is_fresh(&headers(IF_NONE_MATCH, &format!("\"x\", W/{}", v.etag()))));
        assert!(!v.is_fresh(&headers(IF_NONE_MATCH, "\"something-else\"")));
        assert!(!v.is_fresh(&HeaderMap::new()));
    }

    #[test]
    fn the_etag_changes_with_the_data_and_the_question() {
        let a = Validators::new(&version_at("2020-12-14T06:00:00Z"), "daily");
        let b = Validators::new(&version_at("2020-12-14T06:00:01Z"), "daily");
        let c = Validators::new(&version_at("2020-12-14T06:00:00Z"), "runs");
        assert_ne!(a.etag(), b.etag());
        assert_ne!(a.etag(), c.etag());
    }

    #[test]
    fn if_modified_since_counts_only_without_if_none_match() {
        let v = Validators::new(&version_at("2020-12-14T06:00:00.5Z"), "daily");
        assert!(v.is_fresh(&headers(IF_MODIFIED_SINCE, "Mon, 14 Dec 2020 06:00:00 GMT")));
        assert!(!v.is_fresh(&headers(IF_MODIFIED_SINCE, "Mon, 14 Dec 2020 05:59:59 GMT")));
        let mut both = headers(IF_MODIFIED_SINCE, "Mon, 14 Dec 2020 06:00:00 GMT");
        both.insert(IF_NONE_MATCH, HeaderValue::from_static("\"stale\""));
        assert!(!v.is_fresh(&both));
    }

    #[test]
    fn the_body_cache_keeps_the_latest_entries() {
        let cache = BodyCache::new();
        let body = |s: &'static str| CachedBody {
            bytes: Bytes::from_static(s.as_bytes()),
            content_type: "text/plain",
            disposition: None,
        };
        for i in 0..=BodyCache::CAPACITY {
            cache.put(&format!("\"{i}\""), body("x"));
        }
        assert!(cache.get("\"0\"").is_none(), "the oldest entry fell out");
        assert_eq!(
            cache
                .get(&format!("\"{}\"", BodyCache::CAPACITY))
                .unwrap()
                .bytes,
            "x"
        );
    }

    #[test]
    fn a_small_cache_keeps_its_own_number_of_entries() {
        let cache = BodyCache::with_capacity(2);
        let body = CachedBody {
            bytes: Bytes::from_static(b"x"),
            content_type: "text/plain",
            disposition: None,
        };
        for tag in ["\"a\"", "\"b\"", "\"c\""] {
            cache.put(tag, body.clone());
        }
        assert!(cache.get("\"a\"").is_none(), "the oldest entry fell out");
        assert!(cache.get("\"b\"").is_some() && cache.get("\"c\"").is_some());
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(
            http_date("1994-11-06T08:49:37Z".parse().unwrap()),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }
}
