//! The keyed datasets of issue 12, `states` and `counties` (the NYT series per state and per
//! county, in `states_daily` and `counties_daily`, written by the loader):
//!
//! - `GET /api/v1/{states,counties}/daily`: one key's series, with every option of
//!   `/api/v1/us/daily` (the parameters, the shaping and the rendering are [`crate::daily`]'s);
//! - `GET /api/v1/{states,counties}/latest`: every key's values on one date.
//!
//! [`params`] reads the keys and the list's parameters, [`statements`] holds the SQL (every
//! statement served by one of the tables' indexes or their key lists), [`query`] asks it,
//! [`render`] writes the list and [`routes`] are the handlers.

pub mod params;
pub mod query;
pub mod render;
pub mod routes;
pub mod statements;

use crate::daily::Field;

/// The fields of a keyed series: NYT reports no recoveries.
pub const FIELDS: [Field; 4] = [
    Field::Cases,
    Field::Deaths,
    Field::NewCases,
    Field::NewDeaths,
];

/// A keyed dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    /// Keyed by `state`.
    States,
    /// Keyed by `state, county`.
    Counties,
}

impl Dataset {
    /// The dataset's name, as in `keyed_base.dataset` and the API's paths.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::States => "states",
            Dataset::Counties => "counties",
        }
    }
}
