//! Sources and datasets. A *source* is one upstream file, polled on its own; a *dataset* is a
//! named unit of one or more sources with its own transform, tables, runs and notifications:
//! `us` (NYT's `us.csv` merged with JHU's series), `states` (NYT's `us-states.csv`) and `counties`
//! (NYT's county file, or at its final size one file per year plus a recent one).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A validated source name: a lowercase letter, then up to 47 lowercase letters, digits, `-` or
/// `_`. It is a NATS subject token (`etl.<env>.extracted.<source>`), a KV key part
/// (`<env>.<source>.latest`) and part of object names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Source(Cow<'static, str>);

/// Words that are KV key parts of their own next to an env (`<env>.notified.<run>`,
/// `<env>.extractor.lease`): a source of that name would collide with them.
const RESERVED_SOURCES: [&str; 2] = ["notified", "extractor"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid source name: use a lowercase letter followed by up to 47 lowercase letters, digits, `-` or `_`, other than notified and extractor"
)]
pub struct InvalidSource(pub String);

impl Source {
    /// The New York Times `us.csv`: `date,cases,deaths`.
    pub const NYT: Source = Source(Cow::Borrowed("nyt"));
    /// Johns Hopkins CSSE data as republished by `datasets/covid-19`.
    pub const JHU: Source = Source(Cow::Borrowed("jhu"));
    /// The sources of the `us` dataset, NYT first (the order of its run id).
    pub const US: [Source; 2] = [Source::NYT, Source::JHU];

    pub fn new(name: impl Into<String>) -> Result<Self, InvalidSource> {
        let name = name.into();
        let mut chars = name.chars();
        let valid = matches!(chars.next(), Some('a'..='z'))
            && name.len() <= 48
            && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
            && !RESERVED_SOURCES.contains(&name.as_str());
        if valid {
            Ok(Self(Cow::Owned(name)))
        } else {
            // Cut short: a hostile name must not flood a log line.
            Err(InvalidSource(name.chars().take(60).collect()))
        }
    }

    /// The source of an upstream file of a keyed dataset: the file's name without its folder and
    /// extension, lowercased (`us-counties-2021.csv` → `us-counties-2021`).
    pub fn of_path(path: &str) -> Result<Self, InvalidSource> {
        let file = path.rsplit('/').next().unwrap_or(path);
        let stem = file.strip_suffix(".csv").unwrap_or(file);
        Self::new(stem.to_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where NYT's and JHU's files live unless configured otherwise; `None` for any other source,
    /// whose location comes with its dataset's settings.
    pub fn default_location(&self) -> Option<UpstreamLocation> {
        if *self == Source::NYT {
            Some(UpstreamLocation::new(
                "nytimes/covid-19-data",
                "master",
                "us.csv",
            ))
        } else if *self == Source::JHU {
            Some(UpstreamLocation::new(
                "datasets/covid-19",
                "main",
                "data/time-series-19-covid-combined.csv",
            ))
        } else {
            None
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = InvalidSource;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for Source {
    type Error = InvalidSource;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<Source> for String {
    fn from(source: Source) -> String {
        source.0.into_owned()
    }
}

/// A validated dataset name: a lowercase letter, then up to 23 lowercase letters, digits or `_`.
/// It names the dataset's tables (`<dataset>_daily`), so it must be a plain SQL identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Dataset(Cow<'static, str>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid dataset name: use a lowercase letter followed by up to 23 lowercase letters, digits or underscores"
)]
pub struct InvalidDataset(pub String);

impl Dataset {
    /// The national series: NYT's cases and deaths joined with JHU's recovered count.
    pub const US: Dataset = Dataset(Cow::Borrowed("us"));
    /// NYT's series per state.
    pub const STATES: Dataset = Dataset(Cow::Borrowed("states"));
    /// NYT's series per county.
    pub const COUNTIES: Dataset = Dataset(Cow::Borrowed("counties"));
    /// Every dataset this version knows, the default of `DATASETS`.
    pub const ALL: [Dataset; 3] = [Dataset::US, Dataset::STATES, Dataset::COUNTIES];

    pub fn new(name: impl Into<String>) -> Result<Self, InvalidDataset> {
        let name = name.into();
        let mut chars = name.chars();
        let valid = matches!(chars.next(), Some('a'..='z'))
            && name.len() <= 24
            && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'));
        if valid {
            Ok(Self(Cow::Owned(name)))
        } else {
            Err(InvalidDataset(name.chars().take(60).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the `us` dataset, whose events predate datasets: an event without a
    /// `dataset` field is one of `us`.
    pub fn is_us(&self) -> bool {
        *self == Dataset::US
    }

    /// For serde: the dataset of an event written before datasets existed.
    pub fn us() -> Dataset {
        Dataset::US
    }
}

/// `us`, the dataset of events written before datasets existed.
impl Default for Dataset {
    fn default() -> Self {
        Dataset::US
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dataset {
    type Err = InvalidDataset;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for Dataset {
    type Error = InvalidDataset;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<Dataset> for String {
    fn from(dataset: Dataset) -> String {
        dataset.0.into_owned()
    }
}

/// A file on a branch of a GitHub repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamLocation {
    pub repo: String,
    pub branch: String,
    pub path: String,
}

impl UpstreamLocation {
    pub fn new(repo: &str, branch: &str, path: &str) -> Self {
        Self {
            repo: repo.to_owned(),
            branch: branch.to_owned(),
            path: path.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_tokens() {
        assert_eq!(Source::new("nyt").unwrap(), Source::NYT);
        assert_eq!(
            Source::of_path("us-counties-2021.csv").unwrap().as_str(),
            "us-counties-2021"
        );
        assert_eq!(
            Source::of_path("data/US-States.csv").unwrap().as_str(),
            "us-states"
        );
        for bad in ["", "a.b", "a b", "1a", "a*", "a>", "notified", "x\r\n"] {
            assert!(Source::new(bad).is_err(), "{bad:?}");
        }
        assert!(Dataset::new("counties").is_ok());
        for bad in ["", "a-b", "Counties", "a.b", "a_very_long_dataset_name_x"] {
            assert!(Dataset::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serde_validates() {
        assert_eq!(
            serde_json::from_str::<Source>("\"jhu\"").unwrap(),
            Source::JHU
        );
        assert!(serde_json::from_str::<Source>("\"a.b\"").is_err());
        assert!(serde_json::from_str::<Dataset>("\"a-b\"").is_err());
        assert_eq!(serde_json::to_string(&Dataset::US).unwrap(), "\"us\"");
    }
}
