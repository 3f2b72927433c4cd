//! The keyed tables: their names and key columns, and the SQL fragments built from them.

use shared::Env;

use crate::db;

/// A keyed dataset's table in an env's schema (migration 0004): rows keyed by `key` and `date`,
/// revisions in `<name>_changes`, the table's base in `keyed_base` under `dataset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// The dataset's name, as in `keyed_base.dataset` (and the events).
    pub dataset: &'static str,
    /// The rows' table.
    pub name: &'static str,
    /// The revisions' table.
    pub changes: &'static str,
    /// The key columns besides `date`, in the CSV's order.
    pub key: &'static [&'static str],
}

impl Table {
    /// The NYT series per state: `states_daily`, keyed by `state`.
    pub const STATES: Table = Table {
        dataset: "states",
        name: "states_daily",
        changes: "states_daily_changes",
        key: &["state"],
    };

    /// The NYT series per county: `counties_daily`, keyed by `state, county`.
    pub const COUNTIES: Table = Table {
        dataset: "counties",
        name: "counties_daily",
        changes: "counties_daily_changes",
        key: &["state", "county"],
    };

    /// Every keyed table.
    pub const ALL: [Table; 2] = [Table::STATES, Table::COUNTIES];

    /// The table of a dataset named `dataset`, if it is a keyed one.
    pub fn of(dataset: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.dataset == dataset)
    }

    /// `"<schema>".<name>`.
    pub(crate) fn qualified(&self, env: &Env) -> String {
        format!("{}.{}", db::schema(env), self.name)
    }

    /// `"<schema>".<changes>`.
    pub(crate) fn qualified_changes(&self, env: &Env) -> String {
        format!("{}.{}", db::schema(env), self.changes)
    }

    /// The key columns: `state` or `state, county`.
    pub(crate) fn key_list(&self) -> String {
        self.key.join(", ")
    }

    /// The key columns prefixed by `alias`: `s.state, s.county`.
    pub(crate) fn key_of(&self, alias: &str) -> String {
        self.key
            .iter()
            .map(|k| format!("{alias}.{k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `a.date = b.date AND a.<key> = b.<key> ...`: the same row in two relations.
    pub(crate) fn same_row(&self, a: &str, b: &str) -> String {
        std::iter::once("date")
            .chain(self.key.iter().copied())
            .map(|c| format!("{a}.{c} = {b}.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// A temporary staging table's name for this table: `<name>_<what>` (per table, so both
    /// keyed datasets can be staged in one transaction).
    pub(crate) fn staging(&self, what: &str) -> String {
        format!("{}_stage_{what}", self.name)
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
    }

    #[test]
    fn a_row_is_matched_on_its_date_and_every_key_column() {
        assert_eq!(
            Table::COUNTIES.same_row("t", "s"),
            "t.date = s.date AND t.state = s.state AND t.county = s.county"
        );
        assert_eq!(Table::STATES.key_of("s"), "s.state");
        assert_eq!(Table::COUNTIES.key_list(), "state, county");
    }

    #[test]
    fn names_are_qualified_by_the_env_schema() {
        let env = Env::new("user").unwrap();
        assert_eq!(Table::STATES.qualified(&env), "\"user\".states_daily");
        assert_eq!(
            Table::COUNTIES.qualified_changes(&env),
            "\"user\".counties_daily_changes"
        );
    }
}
