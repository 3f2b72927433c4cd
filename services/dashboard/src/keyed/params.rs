//! The keyed routes' own parameters: the key of a series (`state`; for a county `state` and
//! `county`, or `fips`) and the list's (`date`, `state`, `avg`, `format`). The series' options are
//! [`DailyQuery`]'s, read from the same [`Params`].

use chrono::NaiveDate;

use super::{Dataset, FIELDS};
use crate::daily::{self, DailyQuery, Format, MAX_AVG};
use crate::params::{BadParameter, Params};

/// A longer value is not a state or county name (the longest NYT names are about 35 characters).
pub const MAX_NAME_CHARS: usize = 100;

/// The key of the series asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRequest {
    State(String),
    County {
        state: String,
        county: String,
    },
    /// A county by its five-digit FIPS code.
    CountyFips(String),
}

impl KeyRequest {
    /// The parameter an unknown key is reported against.
    pub fn parameter(&self) -> &'static str {
        match self {
            KeyRequest::State(_) => "state",
            KeyRequest::County { .. } => "county",
            KeyRequest::CountyFips(_) => "fips",
        }
    }

    /// One sentence for a key the dataset does not hold.
    pub fn unknown(&self) -> String {
        match self {
            KeyRequest::State(state) => format!(
                "there is no state `{state}` in the states dataset (see /api/v1/states/latest for the names)"
            ),
            KeyRequest::County { state, county } => format!(
                "there is no county `{county}` in state `{state}` in the counties dataset \
                 (see /api/v1/counties/latest?state=… for the names)"
            ),
            KeyRequest::CountyFips(fips) => {
                format!("there is no county with FIPS code `{fips}` in the counties dataset")
            }
        }
    }
}

/// A checked request for one key's series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesQuery {
    pub key: KeyRequest,
    pub daily: DailyQuery,
}

impl SeriesQuery {
    pub fn parse(dataset: Dataset, raw: Option<&str>) -> Result<Self, BadParameter> {
        let key_parameters: &[&str] = match dataset {
            Dataset::States => &["state"],
            Dataset::Counties => &["state", "county", "fips"],
        };
        let known: Vec<&str> = daily::PARAMETERS
            .iter()
            .chain(key_parameters)
            .copied()
            .collect();
        let params = Params::parse(raw, &known)?;
        let key = match dataset {
            Dataset::States => KeyRequest::State(name(&params, "state")?.ok_or_else(|| {
                BadParameter::new(
                    "state",
                    "`state` is required: the state whose series to return, e.g. state=New York",
                )
            })?),
            Dataset::Counties => county_key(&params)?,
        };
        let daily = DailyQuery::from_params(&params, &FIELDS)?;
        Ok(Self { key, daily })
    }

    /// A canonical form of the request for cache keys.
    pub fn cache_key(&self, dataset: Dataset) -> String {
        format!(
            "{}|daily|{:?}|{}",
            dataset.name(),
            self.key,
            self.daily.cache_key()
        )
    }
}

fn county_key(params: &Params) -> Result<KeyRequest, BadParameter> {
    let state = name(params, "state")?;
    let county = name(params, "county")?;
    match (params.get("fips"), state, county) {
        (Some(fips), None, None) => Ok(KeyRequest::CountyFips(county_fips(fips)?)),
        (Some(_), _, _) => Err(BadParameter::new(
            "fips",
            "give either `fips` or `state` and `county`, not both",
        )),
        (None, Some(state), Some(county)) => Ok(KeyRequest::County { state, county }),
        (None, None, _) => Err(BadParameter::new(
            "state",
            "`state` is required, with `county` (or give `fips`): the county whose series to \
             return, e.g. state=Texas&county=Harris or fips=48201",
        )),
        (None, Some(_), None) => Err(BadParameter::new(
            "county",
            "`county` is required with `state`: the county whose series to return, e.g. \
             state=Texas&county=Harris",
        )),
    }
}

/// A county FIPS code: five digits (the first two the state's).
fn county_fips(raw: &str) -> Result<String, BadParameter> {
    if raw.len() == 5 && raw.bytes().all(|b| b.is_ascii_digit()) {
        Ok(raw.to_owned())
    } else {
        Err(BadParameter::new(
            "fips",
            format!("`fips` must be a county's five-digit FIPS code, e.g. 48201, got `{raw}`"),
        ))
    }
}

/// A state or county name as the dataset spells it (matched exactly).
fn name(params: &Params, parameter: &str) -> Result<Option<String>, BadParameter> {
    let Some(raw) = params.get(parameter) else {
        return Ok(None);
    };
    if raw.chars().count() > MAX_NAME_CHARS || raw.chars().any(char::is_control) {
        return Err(BadParameter::new(
            parameter,
            format!(
                "`{parameter}` must be a name of at most {MAX_NAME_CHARS} characters, without control characters"
            ),
        ));
    }
    Ok(Some(raw.to_owned()))
}

/// A checked request for the list of keys on one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestQuery {
    /// `None`: the latest date in the table.
    pub date: Option<NaiveDate>,
    /// Counties only: one state's counties (`None`: every county).
    pub state: Option<String>,
    /// Days in the trailing average of `new_cases` and `new_deaths` ending on the date, as
    /// `avg` of the series (2 to [`MAX_AVG`]); `None`: no averages.
    pub avg: Option<u32>,
    pub format: Format,
}

impl LatestQuery {
    pub fn parse(dataset: Dataset, raw: Option<&str>) -> Result<Self, BadParameter> {
        let known: &[&str] = match dataset {
            Dataset::States => &["date", "avg", "format"],
            Dataset::Counties => &["date", "state", "avg", "format"],
        };
        let params = Params::parse(raw, known)?;
        let avg = match params.get("avg") {
            None => None,
            Some(_) => Some(params.integer("avg", 7, 2, MAX_AVG)?),
        };
        Ok(Self {
            date: params.date("date")?,
            state: name(&params, "state")?,
            avg,
            format: Format::from_params(&params)?,
        })
    }

    /// A canonical form of the request for cache keys.
    pub fn cache_key(&self, dataset: Dataset) -> String {
        format!(
            "{}|latest|{:?}|{:?}|{:?}|{:?}",
            dataset.name(),
            self.date,
            self.state,
            self.avg,
            self.format
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(dataset: Dataset, query: &str) -> Result<SeriesQuery, BadParameter> {
        SeriesQuery::parse(dataset, Some(query))
    }

    #[test]
    fn a_state_series_takes_the_us_options() {
        let q = series(
            Dataset::States,
            "state=New+York&from=2020-03-01&fields=new_cases&avg=7&format=csv",
        )
        .unwrap();
        assert_eq!(q.key, KeyRequest::State("New York".into()));
        assert_eq!(q.daily.fields, vec![crate::daily::Field::NewCases]);
        assert_eq!((q.daily.avg, q.daily.format), (Some(7), Format::Csv));
        // Without `fields`, every keyed field.
        let q = series(Dataset::States, "state=Ohio").unwrap();
        assert_eq!(q.daily.fields, FIELDS.to_vec());
    }

    #[test]
    fn a_county_is_named_by_state_and_county_or_by_fips() {
        let q = series(Dataset::Counties, "state=Texas&county=Harris").unwrap();
        assert_eq!(
            q.key,
            KeyRequest::County {
                state: "Texas".into(),
                county: "Harris".into()
            }
        );
        let q = series(Dataset::Counties, "fips=48201").unwrap();
        assert_eq!(q.key, KeyRequest::CountyFips("48201".into()));
    }

    #[test]
    fn bad_or_missing_keys_are_named() {
        let cases = [
            (Dataset::States, "", "state"),
            (Dataset::States, "state=", "state"),
            (Dataset::States, "county=Harris&state=Texas", "county"),
            (Dataset::States, "fips=48", "fips"),
            (Dataset::States, "state=Ohio&fields=recovered", "fields"),
            (Dataset::States, "state=Ohio&avg=7&fields=cases", "avg"),
            (Dataset::Counties, "county=Harris", "state"),
            (Dataset::Counties, "state=Texas", "county"),
            (Dataset::Counties, "fips=4820", "fips"),
            (Dataset::Counties, "fips=4820x", "fips"),
            (Dataset::Counties, "fips=48201&state=Texas", "fips"),
            (
                Dataset::Counties,
                "state=Texas&county=Harris&per=year",
                "per",
            ),
        ];
        for (dataset, query, parameter) in cases {
            let err = series(dataset, query).unwrap_err();
            assert_eq!(err.parameter, parameter, "{dataset:?} {query}: {err}");
        }
        let long = format!("state={}", "x".repeat(MAX_NAME_CHARS + 1));
        assert_eq!(
            series(Dataset::States, &long).unwrap_err().parameter,
            "state"
        );
        let err = series(Dataset::States, "state=Ohio&avg=7&fields=cases").unwrap_err();
        assert!(
            err.error.ends_with("none of new_cases, new_deaths"),
            "{err}"
        );
    }

    #[test]
    fn the_list_takes_a_date_and_for_counties_a_state() {
        let q = LatestQuery::parse(Dataset::Counties, Some("state=Texas&date=2021-01-05")).unwrap();
        assert_eq!(q.state.as_deref(), Some("Texas"));
        assert_eq!(q.date, "2021-01-05".parse().ok());
        assert_eq!(
            LatestQuery::parse(Dataset::States, Some("state=Texas"))
                .unwrap_err()
                .parameter,
            "state"
        );
        assert_eq!(
            LatestQuery::parse(Dataset::States, Some("date=2021-13-01"))
                .unwrap_err()
                .parameter,
            "date"
        );
    }

    #[test]
    fn the_list_takes_a_trailing_average_as_the_series_do() {
        let q = LatestQuery::parse(Dataset::States, Some("avg=7&date=2021-01-05")).unwrap();
        assert_eq!(q.avg, Some(7));
        assert_eq!(
            LatestQuery::parse(Dataset::Counties, None).unwrap().avg,
            None
        );
        for bad in ["avg=1", "avg=61", "avg=x", "avg=7&avg=7"] {
            assert_eq!(
                LatestQuery::parse(Dataset::Counties, Some(bad))
                    .unwrap_err()
                    .parameter,
                "avg",
                "{bad}"
            );
        }
        let plain = LatestQuery::parse(Dataset::States, Some("date=2021-01-05")).unwrap();
        assert_ne!(
            q.cache_key(Dataset::States),
            plain.cache_key(Dataset::States)
        );
    }

    #[test]
    fn equal_requests_share_a_cache_key_and_keys_do_not() {
        let a = series(Dataset::States, "state=Ohio&from=2020-03-01").unwrap();
        let b = series(Dataset::States, "from=2020-03-01&state=Ohio").unwrap();
        let c = series(Dataset::States, "from=2020-03-01&state=Iowa").unwrap();
        assert_eq!(a.cache_key(Dataset::States), b.cache_key(Dataset::States));
        assert_ne!(a.cache_key(Dataset::States), c.cache_key(Dataset::States));
        assert_ne!(a.cache_key(Dataset::States), a.cache_key(Dataset::Counties));
    }
}
