//! What the tables of a keyed dataset must hold after a version, and what a run from one version
//! to the next must count and record, computed here from the CSV text alone — a second, plain
//! implementation of the rules (no polars, no SQL), so the services are checked against
//! something they do not share.

use std::collections::BTreeMap;

/// `(date, key columns in the table's order)`.
pub type RowKey = (String, Vec<String>);

/// A stored row: `fips` as a number (the files write it with leading zeros), then cases,
/// deaths, new cases and new deaths; `None` is NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub fips: Option<u32>,
    pub values: [Option<i64>; 4],
}

pub type Table = BTreeMap<RowKey, Row>;

/// An upstream row as the files give it: fips, cases, deaths.
type Upstream = (Option<u32>, Option<i64>, Option<i64>);

/// One revised upstream value: `(date, key, field, old, new)`.
pub type Change = (String, Vec<String>, String, Option<i64>, Option<i64>);

/// A keyed dataset's layout: its key columns as the table orders them.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub keys: &'static [&'static str],
}

pub const STATES: Layout = Layout { keys: &["state"] };
pub const COUNTIES: Layout = Layout {
    keys: &["state", "county"],
};

/// The table a version's files make: the union of the files' rows (a row in two files is the
/// same row), with each key's deltas against its previous date.
pub fn table(layout: Layout, files: &[&str]) -> Table {
    // By key, then date: each row's predecessor is the one before it with the same key.
    let mut upstream: BTreeMap<(Vec<String>, String), Upstream> = BTreeMap::new();
    for file in files {
        let mut lines = file.lines();
        let header = split(lines.next().expect("a header"));
        let column = |name: &str| {
            header
                .iter()
                .position(|c| c == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        let date = column("date");
        let keys: Vec<usize> = layout.keys.iter().map(|k| column(k)).collect();
        let (fips, cases, deaths) = (column("fips"), column("cases"), column("deaths"));
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let fields = split(line);
            let key: Vec<String> = keys.iter().map(|&i| fields[i].clone()).collect();
            let row = (
                number(&fields[fips]).map(|f| u32::try_from(f).unwrap()),
                number(&fields[cases]),
                number(&fields[deaths]),
            );
            upstream.insert((key, fields[date].clone()), row);
        }
    }
    let mut table = Table::new();
    let mut previous: Option<(Vec<String>, Option<i64>, Option<i64>)> = None;
    for ((key, date), (fips, cases, deaths)) in upstream {
        let delta = |now: Option<i64>, before: Option<Option<i64>>| match before {
            None => now,
            Some(before) => Some(now? - before?),
        };
        let before = previous.as_ref().filter(|(k, _, _)| *k == key);
        let new_cases = delta(cases, before.map(|b| b.1));
        let new_deaths = delta(deaths, before.map(|b| b.2));
        previous = Some((key.clone(), cases, deaths));
        table.insert(
            (date, key),
            Row {
                fips,
                values: [cases, deaths, new_cases, new_deaths],
            },
        );
    }
    table
}

/// DESIGN's counts of a run taking the table from `old` to `new`: inserted, updated, unchanged,
/// removed, revised (rows whose upstream cases or deaths changed).
pub fn counts(old: &Table, new: &Table) -> [u64; 5] {
    let mut counts = [0; 5];
    for (key, row) in new {
        match old.get(key) {
            None => counts[0] += 1,
            Some(before) if before == row => counts[2] += 1,
            Some(before) => {
                counts[1] += 1;
                if before.values[..2] != row.values[..2] {
                    counts[4] += 1;
                }
            }
        }
    }
    counts[3] = old.keys().filter(|key| !new.contains_key(*key)).count() as u64;
    counts
}

/// The revised values of a run from `old` to `new`, sorted as the test reads them back.
pub fn changes(old: &Table, new: &Table) -> Vec<Change> {
    let mut changes = Vec::new();
    for ((date, key), row) in new {
        let Some(before) = old.get(&(date.clone(), key.clone())) else {
            continue;
        };
        for (i, field) in ["cases", "deaths"].into_iter().enumerate() {
            if before.values[i] != row.values[i] {
                changes.push((
                    date.clone(),
                    key.clone(),
                    field.to_owned(),
                    before.values[i],
                    row.values[i],
                ));
            }
        }
    }
    changes.sort();
    changes
}

/// The fields of one CSV line; NYT quotes a field only when it holds a comma or a quote.
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

fn number(field: &str) -> Option<i64> {
    (!field.is_empty()).then(|| {
        field
            .parse()
            .unwrap_or_else(|_| panic!("{field:?} is not a count"))
    })
}

#[test]
fn the_oracle_follows_the_rules() {
    let v1 = "date,state,fips,cases,deaths\n2020-03-01,A,01,10,\n2020-03-02,A,01,15,1\n2020-03-01,B,02,3,0\n";
    let v2 = "date,state,fips,cases,deaths\n2020-03-01,A,01,11,\n2020-03-02,A,01,15,1\n2020-03-03,A,01,14,1\n";
    let (t1, t2) = (table(STATES, &[v1]), table(STATES, &[v2]));
    let a = |date: &str| t2[&(date.to_owned(), vec!["A".to_owned()])].values;
    assert_eq!(a("2020-03-01"), [Some(11), None, Some(11), None]);
    assert_eq!(a("2020-03-02"), [Some(15), Some(1), Some(4), None]);
    assert_eq!(a("2020-03-03"), [Some(14), Some(1), Some(-1), Some(0)]);
    // A revised (03-01) and its follower updated, one day added, B's only day removed.
    assert_eq!(counts(&t1, &t2), [1, 2, 0, 1, 1]);
    assert_eq!(
        changes(&t1, &t2),
        vec![(
            "2020-03-01".to_owned(),
            vec!["A".to_owned()],
            "cases".to_owned(),
            Some(10),
            Some(11)
        )]
    );
    assert_eq!(
        split("a,\"b, c\",\"d \"\"e\"\"\""),
        ["a", "b, c", "d \"e\""]
    );
}
