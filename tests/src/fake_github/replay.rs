//! Turning a folder of successive file versions into replay steps for the fake.
//!
//! Two inputs are understood:
//! - a folder laid out like `shared/upstream`: `<dir>/nyt/history/*.csv` and
//!   `<dir>/jhu/history/*.csv` (or the CSVs right in `<dir>/nyt`, `<dir>/jhu`), each file named
//!   `<UTC time with - for :>_<sha10>.csv`, optionally after a prefix
//!   (`time-series-19-covid-combined_2020-08-14T00-35-28Z_057b4a6a45.csv`);
//! - a `timeline_real.json` (format `fake-github-timeline/1`), with full shas, messages and steps.
//!
//! Step 0 is what exists when both sources first have a version; every later commit is one step.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use sha1::{Digest, Sha1};
use shared::Source;

use super::NewCommit;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a timeline: {source}")]
    Timeline {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {problem}")]
    Name { path: PathBuf, problem: String },
    #[error("{0}")]
    Empty(String),
}

/// The replay steps of a history folder.
pub fn load_dir(dir: &Path) -> Result<Vec<Vec<NewCommit>>, ReplayError> {
    let mut versions = Vec::new();
    for source in Source::US {
        let base = dir.join(source.as_str());
        let folder = if base.join("history").is_dir() {
            base.join("history")
        } else {
            base
        };
        if !folder.is_dir() {
            continue;
        }
        let location = source
            .default_location()
            .expect("the us sources have a default location");
        let entries = std::fs::read_dir(&folder).map_err(|e| ReplayError::Read {
            path: folder.clone(),
            source: e,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|e| ReplayError::Read {
                    path: folder.clone(),
                    source: e,
                })?
                .path();
            if path.extension().is_none_or(|ext| ext != "csv") {
                continue;
            }
            let (time, sha10) = parse_name(&path)?;
            let content = read(&path)?;
            // Only 10 hex digits are in the name; the rest is made up from the content, so the
            // same file always gets the same sha.
            let sha = format!("{sha10}{}", &hex::encode(Sha1::digest(&content))[..30]);
            versions.push((
                source.clone(),
                NewCommit {
                    repo: location.repo.clone(),
                    path: location.path.clone(),
                    content,
                    sha: Some(sha),
                    time: Some(time),
                    message: Some(format!(
                        "Replay of {}",
                        path.file_name().unwrap_or_default().to_string_lossy()
                    )),
                },
            ));
        }
    }
    if versions.is_empty() {
        return Err(ReplayError::Empty(format!(
            "{} holds no nyt/ or jhu/ folder with version files named <time>_<sha10>.csv",
            dir.display()
        )));
    }
    versions.sort_by_key(|(_, c)| c.time);
    // Step 0: the versions up to the time both sources have one.
    let start = Source::US
        .iter()
        .filter_map(|s| {
            versions
                .iter()
                .find(|(source, _)| source == s)
                .and_then(|(_, c)| c.time)
        })
        .max()
        .expect("at least one version");
    let (first, rest): (Vec<_>, Vec<_>) = versions
        .into_iter()
        .partition(|(_, c)| c.time <= Some(start));
    let mut steps = vec![first.into_iter().map(|(_, c)| c).collect::<Vec<_>>()];
    steps.extend(rest.into_iter().map(|(_, c)| vec![c]));
    Ok(steps)
}

/// `…_2020-08-13T17-25-03Z_f3fcf3376b.csv` → time and sha prefix.
fn parse_name(path: &Path) -> Result<(DateTime<Utc>, String), ReplayError> {
    let bad = |problem: &str| ReplayError::Name {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| bad("the name is not UTF-8"))?;
    let mut parts = stem.rsplitn(3, '_');
    let sha10 = parts
        .next()
        .filter(|s| s.len() >= 7 && s.chars().all(|c| c.is_ascii_hexdigit()));
    let sha10 = sha10.ok_or_else(|| bad("the name does not end in _<sha10>"))?;
    let time = parts
        .next()
        .ok_or_else(|| bad("the name has no <time>_ before the sha"))?;
    let time = NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H-%M-%SZ")
        .map_err(|_| bad("the time is not like 2020-08-13T17-25-03Z"))?
        .and_utc();
    Ok((time, sha10.to_ascii_lowercase()))
}

#[derive(Deserialize)]
struct Timeline {
    sources: std::collections::HashMap<String, TimelineSource>,
    steps: Vec<Vec<usize>>,
    versions: Vec<TimelineVersion>,
}

#[derive(Deserialize)]
struct TimelineSource {
    owner: String,
    repo: String,
    path: String,
}

#[derive(Deserialize)]
struct TimelineVersion {
    source: String,
    sha: String,
    time: DateTime<Utc>,
    file: String,
    #[serde(default)]
    message: Option<String>,
}

/// The replay steps of a `timeline_real.json`; version files are relative to its folder.
pub fn load_timeline(file: &Path) -> Result<Vec<Vec<NewCommit>>, ReplayError> {
    let text = read(file)?;
    let timeline: Timeline =
        serde_json::from_slice(&text).map_err(|source| ReplayError::Timeline {
            path: file.to_owned(),
            source,
        })?;
    let folder = file.parent().unwrap_or(Path::new("."));
    let mut steps = Vec::new();
    for step in &timeline.steps {
        let mut commits = Vec::new();
        for index in step {
            let version = timeline.versions.get(*index).ok_or_else(|| {
                ReplayError::Empty(format!(
                    "{}: step names version {index}, which does not exist",
                    file.display()
                ))
            })?;
            let source = timeline.sources.get(&version.source).ok_or_else(|| {
                ReplayError::Empty(format!(
                    "{}: version {index} names unknown source {}",
                    file.display(),
                    version.source
                ))
            })?;
            commits.push(NewCommit {
                repo: format!("{}/{}", source.owner, source.repo),
                path: source.path.clone(),
                content: read(&folder.join(&version.file))?,
                sha: Some(version.sha.clone()),
                time: Some(version.time),
                message: version.message.clone(),
            });
        }
        steps.push(commits);
    }
    if steps.is_empty() {
        return Err(ReplayError::Empty(format!(
            "{} has no steps",
            file.display()
        )));
    }
    Ok(steps)
}

fn read(path: &Path) -> Result<Bytes, ReplayError> {
    std::fs::read(path)
        .map(Bytes::from)
        .map_err(|source| ReplayError::Read {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_prefix_parse() {
        let (time, sha) = parse_name(Path::new("nyt/2020-08-13T17-25-03Z_f3fcf3376b.csv")).unwrap();
        assert_eq!(time.to_rfc3339(), "2020-08-13T17:25:03+00:00");
        assert_eq!(sha, "f3fcf3376b");
        let (time, sha) = parse_name(Path::new(
            "time-series-19-covid-combined_2020-08-14T00-35-28Z_057b4a6a45.csv",
        ))
        .unwrap();
        assert_eq!(time.to_rfc3339(), "2020-08-14T00:35:28+00:00");
        assert_eq!(sha, "057b4a6a45");
        assert!(parse_name(Path::new("us.csv")).is_err());
    }

    #[test]
    fn a_folder_becomes_steps_starting_when_both_sources_exist() {
        let dir = tempfile::tempdir().unwrap();
        let nyt = dir.path().join("nyt/history");
        let jhu = dir.path().join("jhu/history");
        std::fs::create_dir_all(&nyt).unwrap();
        std::fs::create_dir_all(&jhu).unwrap();
        std::fs::write(
            nyt.join("2020-08-13T17-25-03Z_aaaaaaaaaa.csv"),
            "date,cases,deaths\n",
        )
        .unwrap();
        std::fs::write(jhu.join("x_2020-08-14T00-35-28Z_bbbbbbbbbb.csv"), "Date\n").unwrap();
        std::fs::write(
            nyt.join("2020-08-14T05-25-03Z_cccccccccc.csv"),
            "date,cases,deaths\n1",
        )
        .unwrap();
        let steps = load_dir(dir.path()).unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].len(), 2);
        assert!(
            steps[1][0]
                .sha
                .as_deref()
                .unwrap()
                .starts_with("cccccccccc")
        );
        assert_eq!(steps[1][0].repo, "nytimes/covid-19-data");
    }
}
