//! Query-string parameters: every endpoint names the parameters it knows, and anything unknown,
//! repeated or malformed is a 400 that names the parameter.

use chrono::NaiveDate;
use serde::Serialize;

/// A parameter that cannot be used; becomes a 400 with this JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{error}")]
pub struct BadParameter {
    /// The parameter's name.
    pub parameter: String,
    /// One sentence: what is wrong and what is accepted.
    pub error: String,
}

impl BadParameter {
    pub fn new(parameter: &str, error: impl Into<String>) -> Self {
        Self {
            parameter: parameter.to_owned(),
            error: error.into(),
        }
    }
}

/// Dates outside this window are typos, not questions about COVID-19 data.
pub const EARLIEST_DATE: NaiveDate = NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date");
pub const LATEST_DATE: NaiveDate = NaiveDate::from_ymd_opt(2099, 12, 31).expect("valid date");

/// The parameters of one request. An empty value (`from=`) counts as not given, so a form can
/// send its empty fields.
#[derive(Debug)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Self, BadParameter> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !known.contains(&name.as_ref()) {
                let expected = if known.is_empty() {
                    "this endpoint takes no parameters".to_owned()
                } else {
                    format!("known parameters are {}", known.join(", "))
                };
                return Err(BadParameter::new(
                    &name,
                    format!("unknown parameter `{name}`: {expected}"),
                ));
            }
            if pairs.iter().any(|(n, _)| n == name.as_ref()) {
                return Err(BadParameter::new(
                    &name,
                    format!("parameter `{name}` is given more than once"),
                ));
            }
            pairs.push((name.into_owned(), value.trim().to_owned()));
        }
        Ok(Self { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// An ISO date (`YYYY-MM-DD`) within the supported window.
    pub fn date(&self, name: &str) -> Result<Option<NaiveDate>, BadParameter> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
            BadParameter::new(
                name,
                format!("`{name}` must be a date as YYYY-MM-DD, got `{raw}`"),
            )
        })?;
        if !(EARLIEST_DATE..=LATEST_DATE).contains(&date) {
            return Err(BadParameter::new(
                name,
                format!("`{name}` must be between {EARLIEST_DATE} and {LATEST_DATE}, got {date}"),
            ));
        }
        Ok(Some(date))
    }

    /// A whole number in `min..=max`.
    pub fn integer(
        &self,
        name: &str,
        default: u32,
        min: u32,
        max: u32,
    ) -> Result<u32, BadParameter> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(BadParameter::new(
                name,
                format!("`{name}` must be a whole number from {min} to {max}, got `{raw}`"),
            )),
        }
    }

    /// One of `choices` (by name).
    pub fn choice<T: Copy>(
        &self,
        name: &str,
        default: T,
        choices: &[(&str, T)],
    ) -> Result<T, BadParameter> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|(n, _)| *n == raw)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                BadParameter::new(
                    name,
                    format!("`{name}` must be one of {}, got `{raw}`", names.join(", ")),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        let err = Params::parse(Some("form=2020-01-01"), &["from", "to"]).unwrap_err();
        assert_eq!(err.parameter, "form");
        assert!(err.error.contains("known parameters are from, to"), "{err}");

        let err = Params::parse(Some("from=2020-01-01&from=2020-02-01"), &["from"]).unwrap_err();
        assert_eq!(err.parameter, "from");
        assert!(err.error.contains("more than once"));
    }

    #[test]
    fn empty_values_count_as_not_given() {
        let params = Params::parse(Some("from=&to=2020-02-01"), &["from", "to"]).unwrap();
        assert_eq!(params.date("from").unwrap(), None);
        assert_eq!(
            params.date("to").unwrap(),
            NaiveDate::from_ymd_opt(2020, 2, 1)
        );
    }

    #[test]
    fn dates_must_be_iso_and_within_the_window() {
        let params = Params::parse(
            Some("a=01/02/2020&b=1999-12-31&c=2020-02-30"),
            &["a", "b", "c"],
        )
        .unwrap();
        assert!(params.date("a").unwrap_err().error.contains("YYYY-MM-DD"));
        assert!(
            params
                .date("b")
                .unwrap_err()
                .error
                .contains("between 2000-01-01")
        );
        assert!(params.date("c").is_err());
    }

    #[test]
    fn integers_are_bounded() {
        let params = Params::parse(Some("n=0&m=7&k=x"), &["n", "m", "k"]).unwrap();
        assert!(params.integer("n", 7, 1, 10).is_err());
        assert_eq!(params.integer("m", 1, 1, 10).unwrap(), 7);
        assert!(
            params
                .integer("k", 1, 1, 10)
                .unwrap_err()
                .error
                .contains("got `x`")
        );
        assert_eq!(params.integer("absent", 3, 1, 10).unwrap(), 3);
    }

    #[test]
    fn choices_list_what_is_accepted() {
        let params = Params::parse(Some("per=year"), &["per"]).unwrap();
        let err = params
            .choice("per", 0, &[("day", 0), ("week", 1)])
            .unwrap_err();
        assert_eq!(err.error, "`per` must be one of day, week, got `year`");
    }
}
