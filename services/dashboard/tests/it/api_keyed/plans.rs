//! Every statement of the keyed routes is planned, for its values and generically, on tables of
//! realistic shape, and none reads a whole data table: the key lists (`<dataset>_keys`, a line
//! per key) are there to be walked, the rows only through an index.

use dashboard::keyed::query::Statements;

use crate::support::TestDb;

/// A statement to plan: its name, SQL, parameter types and the argument lists to plan it with.
struct Planned<'a> {
    name: &'static str,
    sql: &'a str,
    types: &'static str,
    arguments: &'static [&'static str],
}

fn planned<'a>(
    name: &'static str,
    sql: &'a str,
    types: &'static str,
    arguments: &'static [&'static str],
) -> Planned<'a> {
    Planned {
        name,
        sql,
        types,
        arguments,
    }
}

fn statements(sql: &Statements) -> [Planned<'_>; 10] {
    [
        planned("state_key", &sql.state_key, "text", &["'State 7'"]),
        planned(
            "state_series",
            &sql.state_series,
            "text, date, date, bigint",
            &[
                "'State 7', NULL, NULL, 5001",
                "'State 7', '2020-03-05', '2020-03-20', 5001",
            ],
        ),
        planned(
            "states_latest",
            &sql.states_latest,
            "date, bigint",
            &["NULL, 10001", "'2020-03-10', 10001"],
        ),
        planned(
            "states_latest_avg",
            &sql.states_latest_avg,
            "date, bigint, int4",
            &["NULL, 10001, 7", "'2020-03-10', 10001, 7"],
        ),
        planned(
            "county_key",
            &sql.county_key,
            "text, text",
            &["'State 7', 'County 6'"],
        ),
        planned("county_by_fips", &sql.county_by_fips, "text", &["'00006'"]),
        planned(
            "county_series",
            &sql.county_series,
            "text, text, date, date, bigint",
            &[
                "'State 7', 'County 6', NULL, NULL, 5001",
                "'State 7', 'County 6', '2020-03-05', NULL, 5001",
            ],
        ),
        planned(
            "counties_latest",
            &sql.counties_latest,
            "date, text, bigint",
            &[
                "NULL, NULL, 10001",
                "'2020-03-10', NULL, 10001",
                "NULL, 'State 7', 10001",
            ],
        ),
        planned(
            "counties_latest_avg",
            &sql.counties_latest_avg,
            "date, text, bigint, int4",
            &[
                "NULL, NULL, 10001, 7",
                "'2020-03-10', NULL, 10001, 7",
                "NULL, 'State 7', 10001, 7",
            ],
        ),
        planned("county_state", &sql.county_state, "text", &["'State 7'"]),
    ]
}

#[tokio::test]
async fn every_keyed_query_is_served_by_an_index() {
    let db = TestDb::new().await;
    db.create_schema().await;
    let s = db.schema();
    // 56 states over 100 days, 3,000 counties over 30 days (90,000 rows: the planner weighs
    // an index against a table of a few hundred pages), written in key order as the loader
    // writes them; then statistics, as autovacuum would gather them.
    db.client
        .batch_execute(&format!(
            "INSERT INTO {s}.states_daily (date, state, fips, cases, deaths, new_cases, new_deaths, run_id)
             SELECT date '2020-03-01' + d, 'State ' || k, lpad(k::text, 2, '0'), k * 1000 + d, k + d, 1, 1, 'run-1'
             FROM generate_series(1, 56) AS k, generate_series(0, 99) AS d;
             INSERT INTO {s}.counties_daily (date, state, county, fips, cases, deaths, new_cases, new_deaths, run_id)
             SELECT date '2020-03-01' + d, 'State ' || (c % 56 + 1), 'County ' || c, lpad(c::text, 5, '0'),
                    c + d, d, 1, 1, 'run-1'
             FROM generate_series(1, 3000) AS c, generate_series(0, 29) AS d;
             ANALYZE {s}.states_daily;
             ANALYZE {s}.counties_daily;"
        ))
        .await
        .unwrap();
    db.refresh_keys().await;
    db.client
        .batch_execute(&format!(
            "ANALYZE {s}.states_keys; ANALYZE {s}.counties_keys;"
        ))
        .await
        .unwrap();
    let sql = Statements::new(&s);
    let mut checked = 0;
    // The first executions of a prepared statement get plans for their values, later ones may
    // get a generic plan: both must use an index.
    for mode in ["force_custom_plan", "force_generic_plan"] {
        db.client
            .batch_execute(&format!("SET plan_cache_mode = {mode}"))
            .await
            .unwrap();
        for Planned {
            name,
            sql: statement,
            types,
            arguments: argument_lists,
        } in statements(&sql)
        {
            db.client
                .batch_execute(&format!("PREPARE {name} ({types}) AS {statement}"))
                .await
                .unwrap_or_else(|err| panic!("{name} prepares: {err}"));
            for arguments in argument_lists {
                let plan: Vec<String> = db
                    .client
                    .simple_query(&format!("EXPLAIN EXECUTE {name} ({arguments})"))
                    .await
                    .unwrap()
                    .into_iter()
                    .filter_map(|message| match message {
                        tokio_postgres::SimpleQueryMessage::Row(row) => {
                            row.get(0).map(str::to_owned)
                        }
                        _ => None,
                    })
                    .collect();
                let plan = plan.join("\n");
                assert!(
                    !plan.contains("Seq Scan on states_daily")
                        && !plan.contains("Seq Scan on counties_daily"),
                    "{name} ({arguments}), {mode}, reads a whole table:\n{plan}"
                );
                // A statement reading only a key list (a few thousand short lines) may scan it.
                assert!(
                    plan.contains("Index") || !plan.contains("_daily"),
                    "{name} ({arguments}), {mode}, uses no index:\n{plan}"
                );
                checked += 1;
            }
            db.client
                .batch_execute(&format!("DEALLOCATE {name}"))
                .await
                .unwrap();
        }
    }
    assert_eq!(checked, 2 * 18);
}
