//! The smoke of a keyed dataset (`states`, `counties`): a few lines in the dataset's upstream
//! format as each of its files, published as the extractor announces a change of the dataset, and
//! the checks of its run and table.

use dataset::keyed::{self, Spec};
use shared::events::{Counts, Extracted, Notification, Trigger};
use shared::nats::Stores;
use shared::store::{self, LatestWrite};
use shared::{Dataset, Env, Source, run_id};

use super::payload::{self, File, Published};

/// A keyed dataset's dummy files, and what its run must leave in the emptied table.
#[derive(Debug)]
pub struct Dummy {
    pub spec: &'static Spec,
    /// `(path, content)` of each file of the dataset, in the order its transform reads them.
    pub files: &'static [(&'static str, &'static str)],
    /// The rows of all files together: a (date, key) found in two files is one row.
    pub rows: u64,
    /// Rows whose FIPS code upstream left empty (New York City's): NULL in the table.
    pub rows_without_fips: u64,
    /// Rows whose deaths upstream left empty (not reported): NULL in the table, never 0.
    pub rows_without_deaths: u64,
}

/// NYT's first state days: two states, one of them reported later.
pub const STATES: Dummy = Dummy {
    spec: &keyed::STATES,
    files: &[(
        "us-states.csv",
        "date,state,fips,cases,deaths\n\
         2020-01-21,Washington,53,1,0\n\
         2020-01-22,Washington,53,1,0\n\
         2020-01-23,Washington,53,1,0\n\
         2020-01-24,Illinois,17,1,\n\
         2020-01-24,Washington,53,1,0\n",
    )],
    rows: 5,
    rows_without_fips: 0,
    rows_without_deaths: 1,
};

/// The county dataset as upstream splits it, a year's file and `recent`, overlapping on one day
/// (where both agree), with New York City's empty FIPS code and a deaths count not reported.
pub const COUNTIES: Dummy = Dummy {
    spec: &keyed::COUNTIES,
    files: &[
        (
            "us-counties-2020.csv",
            "date,county,state,fips,cases,deaths\n\
             2020-03-01,Snohomish,Washington,53061,4,1\n\
             2020-03-01,New York City,New York,,1,\n\
             2020-03-02,Snohomish,Washington,53061,6,1\n\
             2020-03-02,New York City,New York,,1,0\n",
        ),
        (
            "us-counties-recent.csv",
            "date,county,state,fips,cases,deaths\n\
             2020-03-02,Snohomish,Washington,53061,6,1\n\
             2020-03-02,New York City,New York,,1,0\n\
             2020-03-03,Snohomish,Washington,53061,8,2\n\
             2020-03-03,New York City,New York,,2,0\n",
        ),
    ],
    rows: 6,
    rows_without_fips: 3,
    rows_without_deaths: 1,
};

impl Dummy {
    fn dataset(&self) -> Dataset {
        Dataset::new(self.spec.name).expect("a keyed dataset's name is a dataset name")
    }

    /// The sources of the dataset, named after its files as the extractor names them.
    pub fn sources(&self) -> Vec<Source> {
        self.files
            .iter()
            .map(|(path, _)| Source::of_path(path).expect("the dummy files have source names"))
            .collect()
    }

    /// Stores every file, then makes each its source's latest payload, then publishes the events:
    /// as the extractor announces a change, so the transformer woken by the first event already
    /// sees every file of the dataset and the events make one run.
    pub(super) async fn publish(
        &self,
        stores: &Stores,
        env: &Env,
        trigger: &Trigger,
    ) -> anyhow::Result<Published> {
        let dataset = self.dataset();
        let sources = self.sources();
        let mut events: Vec<Extracted> = Vec::with_capacity(self.files.len());
        for ((path, content), source) in self.files.iter().zip(&sources) {
            let file = File {
                dataset: &dataset,
                dataset_sources: &sources,
                source: source.clone(),
                path,
                content,
            };
            events.push(payload::store(stores, env, file, trigger).await?);
        }
        for event in &events {
            if let LatestWrite::Newer { commit_sha } =
                store::put_latest(&stores.state, event).await?
            {
                anyhow::bail!(
                    "{} already holds a payload of a later commit ({commit_sha}): is an extractor polling {dataset} in env {env}?",
                    store::latest_key(env, &event.source)
                );
            }
        }
        for event in &events {
            shared::nats::publish(&stores.js, event).await?;
        }
        let inputs: Vec<&Extracted> = events.iter().collect();
        let names: Vec<&str> = sources.iter().map(Source::as_str).collect();
        Ok(Published {
            run_id: run_id::of_dataset(env, &dataset, &inputs, trigger),
            what: format!("published dummy {dataset} payloads ({})", names.join(", ")),
        })
    }

    /// The run inserted every row into the emptied table and touched nothing else, and the table
    /// holds those rows, NULL where upstream left a value empty; returns the step to report.
    pub(super) async fn check(
        &self,
        notification: &Notification,
        pg: &tokio_postgres::Client,
        env: &Env,
    ) -> anyhow::Result<String> {
        let expected = Counts {
            inserted: self.rows,
            ..Counts::default()
        };
        let c = notification.counts;
        if c != expected {
            anyhow::bail!(
                "the run counted {} inserted, {} updated, {} unchanged, {} removed and {} revised rows; expected {} inserted into the emptied table and nothing else",
                c.inserted,
                c.updated,
                c.unchanged,
                c.removed,
                c.revised,
                self.rows
            );
        }
        let table = self.spec.table;
        let row = pg
            .query_one(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE fips IS NULL), \
                     count(*) FILTER (WHERE deaths IS NULL) FROM \"{env}\".{table}"
                ),
                &[],
            )
            .await?;
        let [rows, without_fips, without_deaths] = [0, 1, 2].map(|i| row.get::<_, i64>(i) as u64);
        let expected = [self.rows, self.rows_without_fips, self.rows_without_deaths];
        if [rows, without_fips, without_deaths] != expected {
            anyhow::bail!(
                "{env}.{table} holds {rows} rows ({without_fips} without a FIPS code, {without_deaths} without deaths), expected {} ({} and {})",
                self.rows,
                self.rows_without_fips,
                self.rows_without_deaths
            );
        }
        Ok(format!(
            "{env}.{table} holds the {} expected rows ({} without a FIPS code, {} without deaths)",
            self.rows, self.rows_without_fips, self.rows_without_deaths
        ))
    }
}

/// Whether the env's schema has the keyed datasets' tables (migration 0004, applied by a loader
/// that knows them).
pub(super) async fn tables_exist(pg: &tokio_postgres::Client, env: &Env) -> anyhow::Result<bool> {
    let row = pg
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'keyed_base')",
            &[&env.as_str()],
        )
        .await?;
    Ok(row.get(0))
}

/// Statements emptying every keyed table of the env, `keyed_base` included: a table emptied
/// while `keyed_base` still named a run would not hold that run. The key lists (`<dataset>_keys`,
/// migration 0006) are emptied where they exist.
pub(super) fn clear_tables_sql(env: &Env) -> String {
    let mut sql = String::new();
    for spec in Spec::ALL {
        sql.push_str(&format!(
            " DELETE FROM \"{env}\".{}; DELETE FROM \"{env}\".{};",
            spec.changes_table, spec.table
        ));
        let keys = format!("\"{env}\".{}_keys", spec.name);
        sql.push_str(&format!(
            " DO $$ BEGIN IF to_regclass('{keys}') IS NOT NULL THEN DELETE FROM {keys}; END IF; END $$;"
        ));
    }
    sql.push_str(&format!(" DELETE FROM \"{env}\".keyed_base;"));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dummy files read as the transformer reads them, to the counts the smoke expects.
    fn assert_reads_as_announced(dummy: &Dummy) {
        let files: Vec<(&str, &[u8])> = dummy
            .files
            .iter()
            .map(|(path, content)| (*path, content.as_bytes()))
            .collect();
        let curated = keyed::read(dummy.spec, &files).expect("the dummy files are valid");
        assert_eq!(curated.rows() as u64, dummy.rows, "{}", dummy.spec.name);
        let csv = String::from_utf8(curated.rows_csv().unwrap()).unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let column = |name: &str| header.iter().position(|c| *c == name).unwrap();
        let (fips, deaths) = (column("fips"), column("deaths"));
        let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
        let empty = |index: usize| rows.iter().filter(|row| row[index].is_empty()).count() as u64;
        assert_eq!(empty(fips), dummy.rows_without_fips, "{}", dummy.spec.name);
        assert_eq!(
            empty(deaths),
            dummy.rows_without_deaths,
            "{}",
            dummy.spec.name
        );
    }

    #[test]
    fn the_dummy_files_read_to_the_rows_the_smoke_expects() {
        assert_reads_as_announced(&STATES);
        assert_reads_as_announced(&COUNTIES);
    }

    #[test]
    fn the_dummy_files_are_sources_of_their_dataset_as_the_extractor_names_them() {
        assert_eq!(STATES.dataset(), Dataset::STATES);
        assert_eq!(COUNTIES.dataset(), Dataset::COUNTIES);
        let names: Vec<String> = COUNTIES.sources().iter().map(ToString::to_string).collect();
        assert_eq!(names, ["us-counties-2020", "us-counties-recent"]);
    }

    #[test]
    fn every_keyed_table_is_emptied_with_its_base() {
        let sql = clear_tables_sql(&Env::new("test").unwrap());
        for table in [
            "states_daily_changes",
            "states_daily",
            "counties_daily_changes",
            "counties_daily",
            "keyed_base",
            "states_keys",
            "counties_keys",
        ] {
            assert!(
                sql.contains(&format!("DELETE FROM \"test\".{table};")),
                "{sql}"
            );
        }
    }
}
