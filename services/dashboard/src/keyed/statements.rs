//! The keyed datasets' SQL, one statement per question, each served by an index of the tables
//! (migrations 0004 and 0006; `tests/it/api_keyed.rs` checks the plans): a key's rows through
//! the primary key `(state[, county], date)`; a key, a county by its FIPS code and the latest
//! date through the key lists `<dataset>_keys`; one date's rows (and a trailing average ending
//! on it) by walking the key list and probing the primary key once per key. Dates are bounded
//! with `coalesce(…, '±infinity')` rather than `$n IS NULL OR …`, so even a generic plan keeps
//! them as index conditions.

use super::Dataset;

/// The statements, with the schema spliced in once. Public so the tests can read their plans.
#[derive(Debug)]
pub struct Statements {
    /// `$1` dataset name.
    pub version: String,
    /// `$1` state.
    pub state_key: String,
    /// `$1` state, `$2` from, `$3` to, `$4` limit.
    pub state_series: String,
    /// `$1` date (NULL: the latest), `$2` limit.
    pub states_latest: String,
    /// `$1` date (NULL: the latest), `$2` limit, `$3` days in the average (int4).
    pub states_latest_avg: String,
    /// `$1` state, `$2` county.
    pub county_key: String,
    /// `$1` FIPS code.
    pub county_by_fips: String,
    /// `$1` state, `$2` county, `$3` from, `$4` to, `$5` limit.
    pub county_series: String,
    /// `$1` date (NULL: the latest), `$2` state (NULL: every state), `$3` limit.
    pub counties_latest: String,
    /// `$1` date (NULL: the latest), `$2` state (NULL: every state), `$3` limit, `$4` days in
    /// the average (int4).
    pub counties_latest_avg: String,
    /// `$1` state.
    pub county_state: String,
}

impl Statements {
    pub fn new(schema: &str) -> Self {
        let values = "cases, deaths, new_cases, new_deaths";
        let range = "date >= coalesce($from::date, '-infinity'::date) \
                     AND date <= coalesce($to::date, 'infinity'::date)";
        Self {
            version: format!(
                "SELECT run_id, rows, applied_at FROM {schema}.keyed_base WHERE dataset = $1"
            ),
            state_key: format!(
                "SELECT state, NULL::text, fips FROM {schema}.states_keys WHERE state = $1"
            ),
            state_series: format!(
                "SELECT date, {values} FROM {schema}.states_daily \
                 WHERE state = $1 AND {range} ORDER BY date LIMIT $4",
                range = range.replace("$from", "$2").replace("$to", "$3")
            ),
            states_latest: latest(schema, Dataset::States, None),
            states_latest_avg: latest(schema, Dataset::States, Some("$3")),
            county_key: format!(
                "SELECT state, county, fips FROM {schema}.counties_keys \
                 WHERE state = $1 AND county = $2"
            ),
            // A code is one county's, but a table edited by hand could list it twice: the
            // county reported most recently wins, as the latest row did before.
            county_by_fips: format!(
                "SELECT state, county, fips FROM {schema}.counties_keys \
                 WHERE fips = $1 ORDER BY last_date DESC, state, county LIMIT 1"
            ),
            county_series: format!(
                "SELECT date, {values} FROM {schema}.counties_daily \
                 WHERE state = $1 AND county = $2 AND {range} ORDER BY date LIMIT $5",
                range = range.replace("$from", "$3").replace("$to", "$4")
            ),
            counties_latest: latest(schema, Dataset::Counties, None),
            counties_latest_avg: latest(schema, Dataset::Counties, Some("$4")),
            county_state: format!("SELECT 1 FROM {schema}.counties_keys WHERE state = $1 LIMIT 1"),
        }
    }
}

/// Every key's row on one date (`$1`, NULL: the latest date of any key), by key, at most the
/// limit: the walk of `<dataset>_keys` (migration 0006, a few thousand lines) that the loader
/// keeps, skipping keys whose dates do not cover the day, with one probe of the big table's
/// primary key `(key…, date)` per key. The `LIMIT 1` keeps each probe a lookup the planner
/// cannot turn into a scan of the big table.
///
/// With `days` (the parameter holding the window's length), each row also gets the sums of
/// `new_cases` and `new_deaths` over the `days` dates ending on the day, as the last two
/// columns: one more range probe of the primary key per key. A sum is NULL unless the key has a
/// row on each of those dates (the primary key makes `count(*)` count dates) with the value
/// reported, so a gap is never averaged as a zero.
fn latest(schema: &str, dataset: Dataset, days: Option<&str>) -> String {
    let (keys, rows, key, county, filter, limit) = match dataset {
        Dataset::States => (
            format!("{schema}.states_keys"),
            format!("{schema}.states_daily"),
            &["state"][..],
            "NULL::text",
            "TRUE",
            "$2",
        ),
        Dataset::Counties => (
            format!("{schema}.counties_keys"),
            format!("{schema}.counties_daily"),
            &["state", "county"][..],
            "k.county",
            "($2::text IS NULL OR k.state = $2)",
            "$3",
        ),
    };
    let same_key = |alias: &str| {
        key.iter()
            .map(|c| format!("{alias}.{c} = k.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let order = key
        .iter()
        .map(|c| format!("k.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (sums, window) = match days {
        None => (String::new(), String::new()),
        Some(days) => {
            let sum = |field: &str| {
                format!(
                    "CASE WHEN count(*) = {days}::int4 AND count({field}) = {days}::int4 \
                     THEN sum({field}) END::int8"
                )
            };
            (
                ", w.new_cases_sum, w.new_deaths_sum".to_owned(),
                format!(
                    " CROSS JOIN LATERAL (SELECT {cases} AS new_cases_sum, {deaths} AS new_deaths_sum \
                       FROM {rows} w WHERE {same} \
                       AND w.date BETWEEN day.day - ({days}::int4 - 1) AND day.day) w",
                    cases = sum("new_cases"),
                    deaths = sum("new_deaths"),
                    same = same_key("w"),
                ),
            )
        }
    };
    format!(
        "WITH day AS (SELECT coalesce($1::date, (SELECT max(last_date) FROM {keys})) AS day) \
         SELECT d.date, k.state, {county}, d.fips, d.cases, d.deaths, d.new_cases, d.new_deaths{sums} \
         FROM day CROSS JOIN {keys} k \
         CROSS JOIN LATERAL (SELECT date, fips, cases, deaths, new_cases, new_deaths \
                             FROM {rows} d WHERE {same} AND d.date = day.day LIMIT 1) d\
         {window} \
         WHERE k.first_date <= day.day AND k.last_date >= day.day AND {filter} \
         ORDER BY {order} LIMIT {limit}",
        same = same_key("d"),
    )
}
