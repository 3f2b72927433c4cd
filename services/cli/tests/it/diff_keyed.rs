//! `etl diff --dataset states|counties`: what a run with these files would change in the table,
//! against the real PostgreSQL, without writing anything.

use crate::support::{TestEnv, code, etl, json, stderr, stdout};

const V1: &str = "date,state,fips,cases,deaths
2021-01-01,Washington,53,100,2
2021-01-01,Guam,66,3,0
2021-01-02,Washington,53,110,3
2021-01-02,Guam,66,4,
";

/// Washington's first day revised (100 → 101), Guam gone, a new day.
const V2: &str = "date,state,fips,cases,deaths
2021-01-01,Washington,53,101,2
2021-01-02,Washington,53,110,3
2021-01-03,Washington,53,125,3
";

#[tokio::test]
async fn a_keyed_preview_counts_against_the_table_and_writes_nothing() {
    let t = TestEnv::new("cli").await;
    let env = t.env.as_str();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let (v1, v2) = (file("v1.csv", V1), file("us-states.csv", V2));

    // Nothing stored yet: every row would be new.
    let output = etl(&[
        "diff",
        "--env",
        env,
        "--dataset",
        "states",
        "--file",
        &v1,
        "--json",
    ])
    .await;
    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    let preview = json(&output);
    assert_eq!(preview["would"], "apply");
    assert_eq!(preview["counts"]["inserted"], 4);

    // Stored as the loader leaves V1 (deltas per key).
    let client = test_support::migrate(&t.env).await;
    client
        .batch_execute(&format!(
            "INSERT INTO \"{env}\".states_daily
                 (date, state, fips, cases, deaths, new_cases, new_deaths, run_id) VALUES
             ('2021-01-01', 'Washington', '53', 100, 2, 100, 2, 'r1'),
             ('2021-01-02', 'Washington', '53', 110, 3, 10, 1, 'r1'),
             ('2021-01-01', 'Guam', '66', 3, 0, 3, 0, 'r1'),
             ('2021-01-02', 'Guam', '66', 4, NULL, 1, NULL, 'r1')"
        ))
        .await
        .unwrap();
    let output = etl(&[
        "diff",
        "--env",
        env,
        "--dataset",
        "states",
        "--file",
        &v2,
        "--json",
    ])
    .await;
    assert_eq!(
        code(&output),
        Some(1),
        "half the rows go: refused by rule 7"
    );
    let preview = json(&output);
    assert_eq!(preview["would"], "refused_by_loader", "{preview}");
    let counts = &preview["counts"];
    assert_eq!(
        [
            &counts["inserted"],
            &counts["updated"],
            &counts["unchanged"],
            &counts["removed"],
            &counts["revised"]
        ],
        [1, 2, 0, 2, 1]
    );
    assert!(
        preview["changes"]
            .as_str()
            .unwrap()
            .contains("2021-01-01,Washington,cases,100,101"),
        "{preview}"
    );

    // In words, with the loader's share raised: it would apply.
    let output = crate::support::etl_with(
        &["diff", "--env", env, "--dataset", "states", "--file", &v2],
        &[("MAX_REMOVED_SHARE", "0.9")],
    )
    .await;
    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("insert 1, update 2, leave 0 unchanged, remove 2 rows"),
        "{}",
        stdout(&output)
    );

    // A bad file is the transform's refusal, naming the file; nothing was written.
    let bad = file(
        "bad.csv",
        "date,state,fips,cases,deaths\n2021-01-01,Washington,53,-1,0\n",
    );
    let output = etl(&["diff", "--env", env, "--dataset", "states", "--file", &bad]).await;
    assert_eq!(code(&output), Some(1));
    assert!(
        stdout(&output).contains("would fail at transform") && stdout(&output).contains("bad.csv"),
        "{}",
        stdout(&output)
    );
    let stored: i64 = client
        .query_one(&format!("SELECT count(*) FROM \"{env}\".states_daily"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 4, "the previews wrote nothing");
    t.clean_up().await;
}
