//! The dashboard's integration tests, in one binary: the series API, the keyed datasets' API,
//! the service (runs, live events, roles, the static page), the limits that hold against abusive
//! clients, and the page in a real browser (the national charts, the county map, the map's
//! levels and measures, the comparison of states and counties).

mod api_keyed;
mod api_series;
mod api_service;
mod browser;
mod compare;
mod county_map;
mod limits;
mod map_levels;
mod map_probe;
mod support;
