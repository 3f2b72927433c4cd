//! `GET /api/v1/us/daily`: the time series, optionally summed per week or month, with a trailing
//! average of the daily values, as JSON or CSV.
//!
//! [`DailyQuery`] reads and checks the parameters, [`shape`] turns database rows into the series
//! asked for, and [`render`] writes it out. The keyed series (`/api/v1/{states,counties}/daily`,
//! [`crate::keyed`]) go through the same three, with their own rows ([`DayValues`]) and fields.

pub mod render;
pub mod shape;

use chrono::{Days, NaiveDate};

use crate::db::DailyRow;
use crate::params::{BadParameter, Params};

/// The most days one response covers (over 13 years): bounds the work and the response size.
/// A longer range is cut there and flagged as truncated.
pub const MAX_DAYS: usize = 5000;
pub const MAX_AVG: u32 = 60;

pub const PARAMETERS: [&str; 6] = ["from", "to", "fields", "per", "avg", "format"];

/// A column of `us_daily` the API can return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Cases,
    Deaths,
    Recovered,
    NewCases,
    NewDeaths,
    NewRecovered,
}

impl Field {
    pub const ALL: [Field; 6] = [
        Field::Cases,
        Field::Deaths,
        Field::Recovered,
        Field::NewCases,
        Field::NewDeaths,
        Field::NewRecovered,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Cases => "cases",
            Field::Deaths => "deaths",
            Field::Recovered => "recovered",
            Field::NewCases => "new_cases",
            Field::NewDeaths => "new_deaths",
            Field::NewRecovered => "new_recovered",
        }
    }

    /// Daily values add up over a period; cumulative ones are read at its end.
    pub fn is_daily(self) -> bool {
        matches!(
            self,
            Field::NewCases | Field::NewDeaths | Field::NewRecovered
        )
    }

    pub fn value(self, row: &DailyRow) -> Option<i64> {
        match self {
            Field::Cases => Some(row.cases),
            Field::Deaths => Some(row.deaths),
            Field::Recovered => row.recovered,
            Field::NewCases => row.new_cases,
            Field::NewDeaths => row.new_deaths,
            Field::NewRecovered => row.new_recovered,
        }
    }
}

/// A day of a series, as [`shape`] reads it: `us_daily`'s rows, and the keyed datasets'.
pub trait DayValues {
    fn date(&self) -> NaiveDate;
    /// `None` is "not reported".
    fn value(&self, field: Field) -> Option<i64>;
}

impl DayValues for DailyRow {
    fn date(&self) -> NaiveDate {
        self.date
    }

    fn value(&self, field: Field) -> Option<i64> {
        field.value(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    /// The `format` parameter: `json` (the default) or `csv`.
    pub fn from_params(params: &Params) -> Result<Self, BadParameter> {
        params.choice(
            "format",
            Format::Json,
            &[("json", Format::Json), ("csv", Format::Csv)],
        )
    }
}

/// A checked request for the series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyQuery {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub fields: Vec<Field>,
    pub per: Period,
    /// Days in the trailing average of each selected daily field; only with `per=day`.
    pub avg: Option<u32>,
    pub format: Format,
}

impl DailyQuery {
    pub fn parse(raw: Option<&str>) -> Result<Self, BadParameter> {
        Self::from_params(&Params::parse(raw, &PARAMETERS)?, &Field::ALL)
    }

    /// Reads [`PARAMETERS`] from `params` (which may know more, such as a series' key), for a
    /// series that has `available` fields (the default selection).
    pub fn from_params(params: &Params, available: &[Field]) -> Result<Self, BadParameter> {
        let from = params.date("from")?;
        let to = params.date("to")?;
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(BadParameter::new(
                "from",
                format!("`from` ({from}) is after `to` ({to})"),
            ));
        }
        let fields = parse_fields(params.get("fields"), available)?;
        let per = params.choice(
            "per",
            Period::Day,
            &[
                ("day", Period::Day),
                ("week", Period::Week),
                ("month", Period::Month),
            ],
        )?;
        let avg = match params.get("avg") {
            None => None,
            Some(_) => Some(params.integer("avg", 7, 2, MAX_AVG)?),
        };
        if avg.is_some() && per != Period::Day {
            return Err(BadParameter::new(
                "avg",
                format!(
                    "`avg` averages days, so it needs per=day (got per={})",
                    per.name()
                ),
            ));
        }
        if avg.is_some() && !fields.iter().any(|f| f.is_daily()) {
            let daily: Vec<&str> = available
                .iter()
                .filter(|f| f.is_daily())
                .map(|f| f.name())
                .collect();
            return Err(BadParameter::new(
                "avg",
                format!(
                    "`avg` averages daily values, but `fields` selects none of {}",
                    daily.join(", ")
                ),
            ));
        }
        let format = Format::from_params(params)?;
        Ok(Self {
            from,
            to,
            fields,
            per,
            avg,
            format,
        })
    }

    /// The first date to read: a trailing average at `from` needs the days before it.
    pub fn read_from(&self) -> Option<NaiveDate> {
        let lead = u64::from(self.avg.unwrap_or(1) - 1);
        self.from
            .map(|from| from.checked_sub_days(Days::new(lead)).unwrap_or(from))
    }

    /// How many rows to read: [`MAX_DAYS`], the days before `from` that the average needs, and
    /// one more to tell whether the range was cut.
    pub fn read_limit(&self) -> i64 {
        let lead = self.avg.unwrap_or(1) as usize - 1;
        (MAX_DAYS + lead + 1) as i64
    }

    /// A canonical form of the request for cache keys: equal queries give equal keys however the
    /// parameters were spelled or ordered.
    pub fn cache_key(&self) -> String {
        let fields: Vec<&str> = self.fields.iter().map(|f| f.name()).collect();
        format!(
            "daily|{:?}|{:?}|{}|{}|{:?}|{:?}",
            self.from,
            self.to,
            fields.join(","),
            self.per.name(),
            self.avg,
            self.format
        )
    }
}

fn parse_fields(raw: Option<&str>, available: &[Field]) -> Result<Vec<Field>, BadParameter> {
    let Some(raw) = raw else {
        return Ok(available.to_vec());
    };
    let mut fields = Vec::new();
    for name in raw.split(',').map(str::trim) {
        let field = available
            .iter()
            .copied()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = available.iter().map(|f| f.name()).collect();
                BadParameter::new(
                    "fields",
                    format!(
                        "`fields` has unknown field `{name}`: use a comma-separated list of {}",
                        known.join(", ")
                    ),
                )
            })?;
        if fields.contains(&field) {
            return Err(BadParameter::new(
                "fields",
                format!("`fields` lists `{name}` twice"),
            ));
        }
        fields.push(field);
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn no_parameters_ask_for_every_field_per_day_as_json() {
        let q = DailyQuery::parse(None).unwrap();
        assert_eq!(q.fields, Field::ALL.to_vec());
        assert_eq!(
            (q.per, q.avg, q.format, q.from, q.to),
            (Period::Day, None, Format::Json, None, None)
        );
    }

    #[test]
    fn a_full_query_is_read() {
        let q = DailyQuery::parse(Some(
            "from=2020-03-01&to=2020-04-01&fields=cases,new_cases&avg=7&format=csv",
        ))
        .unwrap();
        assert_eq!(q.fields, vec![Field::Cases, Field::NewCases]);
        assert_eq!(q.avg, Some(7));
        assert_eq!(q.format, Format::Csv);
        assert_eq!(q.read_from(), Some(date("2020-02-24")));
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases = [
            ("from=2020-05-01&to=2020-04-01", "from"),
            ("fields=cases,hospitalised", "fields"),
            ("fields=cases,cases", "fields"),
            ("per=year", "per"),
            ("avg=1", "avg"),
            ("avg=abc", "avg"),
            ("avg=7&per=week", "avg"),
            ("avg=7&fields=cases", "avg"),
            ("format=xml", "format"),
            ("to=yesterday", "to"),
            ("limit=5", "limit"),
        ];
        for (query, parameter) in cases {
            let err = DailyQuery::parse(Some(query)).unwrap_err();
            assert_eq!(err.parameter, parameter, "{query}: {err}");
        }
    }

    #[test]
    fn equal_queries_share_a_cache_key() {
        let a = DailyQuery::parse(Some("to=2020-04-01&from=2020-03-01")).unwrap();
        let b = DailyQuery::parse(Some("from=2020-03-01&to=2020-04-01&per=day")).unwrap();
        let c = DailyQuery::parse(Some("from=2020-03-01&to=2020-04-02")).unwrap();
        assert_eq!(a.cache_key(), b.cache_key());
        assert_ne!(a.cache_key(), c.cache_key());
    }

    #[test]
    fn reads_are_bounded() {
        let q = DailyQuery::parse(Some("per=month")).unwrap();
        assert_eq!(q.read_limit(), (MAX_DAYS + 1) as i64);
        let q = DailyQuery::parse(Some("avg=7")).unwrap();
        assert_eq!(q.read_limit(), (MAX_DAYS + 7) as i64);
    }
}
