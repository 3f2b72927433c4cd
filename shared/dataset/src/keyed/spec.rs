//! The two keyed datasets: their names, key columns and tables (keyed-contract.md, "Datasets").

use crate::error::shorten;

/// A keyed dataset: rows identified by (date, key), the key being one or more text columns.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    /// The dataset's name in events and object names: `states` or `counties`.
    pub name: &'static str,
    /// The key columns besides `date`, in the order of the table's primary key.
    pub keys: &'static [&'static str],
    /// The table the loader writes (`<name>_daily`).
    pub table: &'static str,
    /// The table of revised values (`<name>_daily_changes`).
    pub changes_table: &'static str,
}

/// NYT `us-states.csv`: `date,state,fips,cases,deaths`.
pub const STATES: Spec = Spec {
    name: "states",
    keys: &["state"],
    table: "states_daily",
    changes_table: "states_daily_changes",
};

/// NYT `us-counties*.csv`: `date,county,state,fips,cases,deaths`.
pub const COUNTIES: Spec = Spec {
    name: "counties",
    keys: &["state", "county"],
    table: "counties_daily",
    changes_table: "counties_daily_changes",
};

impl Spec {
    pub const ALL: [&'static Spec; 2] = [&STATES, &COUNTIES];

    /// `states` or `counties`; `None` for any other name.
    pub fn by_name(name: &str) -> Option<&'static Spec> {
        Self::ALL.into_iter().find(|spec| spec.name == name)
    }

    /// The columns of a curated row, of the `rows` CSV and of the Parquet object, in order:
    /// `date,<key>,fips,cases,deaths,new_cases,new_deaths`.
    pub fn row_columns(&self) -> Vec<&'static str> {
        let mut columns = vec!["date"];
        columns.extend_from_slice(self.keys);
        columns.extend_from_slice(&["fips", "cases", "deaths", "new_cases", "new_deaths"]);
        columns
    }

    /// The columns of the `removed` CSV: `date,<key>`.
    pub fn removed_columns(&self) -> Vec<&'static str> {
        let mut columns = vec!["date"];
        columns.extend_from_slice(self.keys);
        columns
    }

    /// The columns of the `changes` CSV: `date,<key>,field,old_value,new_value`.
    pub fn changes_columns(&self) -> Vec<&'static str> {
        let mut columns = self.removed_columns();
        columns.extend_from_slice(&["field", "old_value", "new_value"]);
        columns
    }

    /// A key for a message: `state "Washington", county "Snohomish"` (values shortened and
    /// escaped, so hostile input stays one short line).
    pub(crate) fn describe_key<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> String {
        self.keys
            .iter()
            .zip(values)
            .map(|(column, value)| format!("{column} {:?}", shorten(value)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Key values joined by NUL: one string per key that sorts as the tuple of its values do
/// (NUL sorts first and never occurs in a payload, which `payload` refuses).
pub(crate) const KEY_SEPARATOR: char = '\0';

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_found_by_name_and_list_their_columns_in_contract_order() {
        assert_eq!(Spec::by_name("counties"), Some(&COUNTIES));
        assert_eq!(Spec::by_name("states"), Some(&STATES));
        assert_eq!(Spec::by_name("us"), None);
        assert_eq!(
            COUNTIES.row_columns(),
            [
                "date",
                "state",
                "county",
                "fips",
                "cases",
                "deaths",
                "new_cases",
                "new_deaths"
            ]
        );
        assert_eq!(
            STATES.changes_columns(),
            ["date", "state", "field", "old_value", "new_value"]
        );
        assert_eq!(
            COUNTIES.describe_key(["New York", "New York City"]),
            "state \"New York\", county \"New York City\""
        );
    }
}
