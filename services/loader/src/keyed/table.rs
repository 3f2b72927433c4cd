//! The keyed tables: their names and key columns (from `dataset::keyed::Spec`, the one list of
//! keyed datasets), and the SQL fragments built from them.

use dataset::keyed::{self, Spec};
use shared::Env;

use crate::db;

/// A keyed dataset's table in an env's schema (migration 0004): rows keyed by `key` and `date`,
/// revisions in `<name>_changes`, the table's base in `keyed_base` under `dataset`, and its keys
/// in `<dataset>_keys` (0006). The names are the dataset's [`Spec`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    spec: &'static Spec,
}

impl Table {
    /// The NYT series per state: `states_daily`, keyed by `state`.
    pub const STATES: Table = Table {
        spec: &keyed::STATES,
    };

    /// The NYT series per county: `counties_daily`, keyed by `state, county`.
    pub const COUNTIES: Table = Table {
        spec: &keyed::COUNTIES,
    };

    /// The table of a dataset named `dataset`, if it is a keyed one.
    pub fn of(dataset: &str) -> Option<Table> {
        Spec::by_name(dataset).map(Table::from)
    }

    /// The dataset's spec.
    pub fn spec(&self) -> &'static Spec {
        self.spec
    }

    /// The dataset's name, as in `keyed_base.dataset` (and the events).
    pub fn dataset(&self) -> &'static str {
        self.spec.name
    }

    /// The rows' table.
    pub fn table_name(&self) -> &'static str {
        self.spec.table
    }

    /// The revisions' table.
    pub fn changes(&self) -> &'static str {
        self.spec.changes_table
    }

    /// The key columns besides `date`, in the CSV's order.
    pub fn key(&self) -> &'static [&'static str] {
        self.spec.keys
    }

    /// `"<schema>".<name>`.
    pub(crate) fn qualified(&self, env: &Env) -> String {
        format!("{}.{}", db::schema(env), self.table_name())
    }

    /// `"<schema>".<changes>`.
    pub(crate) fn qualified_changes(&self, env: &Env) -> String {
        format!("{}.{}", db::schema(env), self.changes())
    }

    /// `"<schema>".<dataset>_keys`: the keys the table holds (see `keys`).
    pub(crate) fn qualified_keys(&self, env: &Env) -> String {
        format!("{}.{}_keys", db::schema(env), self.dataset())
    }

    /// The key columns: `state` or `state, county`.
    pub(crate) fn key_list(&self) -> String {
        self.key().join(", ")
    }

    /// The key columns prefixed by `alias`: `s.state, s.county`.
    pub(crate) fn key_of(&self, alias: &str) -> String {
        self.key()
            .iter()
            .map(|k| format!("{alias}.{k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `a.<key> = b.<key> AND ...`: the same key in two relations.
    pub(crate) fn same_key(&self, a: &str, b: &str) -> String {
        self.key()
            .iter()
            .map(|c| format!("{a}.{c} = {b}.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// `a.date = b.date AND a.<key> = b.<key> ...`: the same row in two relations.
    pub(crate) fn same_row(&self, a: &str, b: &str) -> String {
        format!("{a}.date = {b}.date AND {}", self.same_key(a, b))
    }

    /// A temporary staging table's name for this table: `<name>_<what>` (per table, so both
    /// keyed datasets can be staged in one transaction).
    pub(crate) fn staging(&self, what: &str) -> String {
        format!("{}_stage_{what}", self.table_name())
    }
}

impl From<&'static Spec> for Table {
    fn from(spec: &'static Spec) -> Table {
        Table { spec }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_name_their_tables() {
        assert_eq!(Table::of("counties"), Some(Table::COUNTIES));
        assert_eq!(Table::of("states"), Some(Table::STATES));
        assert_eq!(Table::of("us"), None);
        assert_eq!(Table::STATES.table_name(), "states_daily");
        assert_eq!(Table::COUNTIES.changes(), "counties_daily_changes");
        assert_eq!(Table::COUNTIES.key(), ["state", "county"]);
    }

    #[test]
    fn a_row_is_matched_on_its_date_and_every_key_column() {
        assert_eq!(
            Table::COUNTIES.same_row("t", "s"),
            "t.date = s.date AND t.state = s.state AND t.county = s.county"
        );
        assert_eq!(
            Table::COUNTIES.same_key("k", "r"),
            "k.state = r.state AND k.county = r.county"
        );
        assert_eq!(Table::STATES.key_of("s"), "s.state");
        assert_eq!(Table::COUNTIES.key_list(), "state, county");
    }

    #[test]
    fn names_are_qualified_by_the_env_schema() {
        let env = Env::new("user").unwrap();
        assert_eq!(Table::STATES.qualified(&env), "\"user\".states_daily");
        assert_eq!(
            Table::COUNTIES.qualified_keys(&env),
            "\"user\".counties_keys"
        );
        assert_eq!(
            Table::COUNTIES.qualified_changes(&env),
            "\"user\".counties_daily_changes"
        );
    }
}
