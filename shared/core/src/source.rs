//! The two upstream sources and where they live on GitHub.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The New York Times `us.csv`: `date,cases,deaths`.
    Nyt,
    /// Johns Hopkins CSSE data as republished by `datasets/covid-19`.
    Jhu,
}

impl Source {
    pub const ALL: [Source; 2] = [Source::Nyt, Source::Jhu];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Nyt => "nyt",
            Source::Jhu => "jhu",
        }
    }

    /// The default upstream location: `owner/repo`, branch and file path.
    pub fn default_location(self) -> UpstreamLocation {
        match self {
            Source::Nyt => UpstreamLocation {
                repo: "nytimes/covid-19-data".to_owned(),
                branch: "master".to_owned(),
                path: "us.csv".to_owned(),
            },
            Source::Jhu => UpstreamLocation {
                repo: "datasets/covid-19".to_owned(),
                branch: "main".to_owned(),
                path: "data/time-series-19-covid-combined.csv".to_owned(),
            },
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a source: expected `nyt` or `jhu`")]
pub struct UnknownSource(pub String);

impl FromStr for Source {
    type Err = UnknownSource;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nyt" => Ok(Source::Nyt),
            "jhu" => Ok(Source::Jhu),
            other => Err(UnknownSource(other.to_owned())),
        }
    }
}

/// A file on a branch of a GitHub repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamLocation {
    pub repo: String,
    pub branch: String,
    pub path: String,
}
