//! A small JSON Schema checker for the parts of the draft `schema/status.schema.json` uses
//! (`type`, `required`, `properties`, `items`, `enum`, `minimum`, local `$ref`), so the test can
//! hold `etl status --json` to the schema kept in the repo.

use serde_json::Value;

/// The schema of `etl status --json`.
pub fn status_schema() -> Value {
    let text = include_str!("../../schema/status.schema.json");
    serde_json::from_str(text).expect("the status schema is JSON")
}

/// Every place `value` breaks `schema`, as `path: problem`.
pub fn violations(schema: &Value, value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    check(schema, schema, value, "$", &mut found);
    found
}

fn check(root: &Value, schema: &Value, value: &Value, path: &str, found: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference
            .strip_prefix("#/")
            .map(|pointer| format!("/{pointer}"))
            .and_then(|pointer| root.pointer(&pointer));
        match target {
            Some(target) => check(root, target, value, path, found),
            None => found.push(format!("{path}: unresolved $ref {reference}")),
        }
        return;
    }
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let ok = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "null" => value.is_null(),
            other => {
                found.push(format!("{path}: the checker does not know type {other}"));
                true
            }
        };
        if !ok {
            found.push(format!("{path}: expected {kind}, found {value}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        found.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    if let (Some(minimum), Some(number)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && number < minimum
    {
        found.push(format!("{path}: {number} is below {minimum}"));
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if value.get(name).is_none() {
                found.push(format!("{path}: {name} is missing"));
            }
        }
    }
    if let (Some(properties), Some(object)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (name, property) in properties {
            if let Some(field) = object.get(name) {
                check(root, property, field, &format!("{path}.{name}"), found);
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check(root, items, item, &format!("{path}[{i}]"), found);
        }
    }
}

#[test]
fn the_checker_finds_a_missing_field_a_wrong_type_and_a_bad_word() {
    let schema = status_schema();
    let mut status = serde_json::json!({
        "healthy": true, "problems": [], "warnings": [],
        "nats": {"reachable": true, "address": "nats://x:4222"},
        "postgres": {"reachable": true, "address": "x:5432"},
        "services": [], "missing_services": [], "sources": [],
        "streams": [{"name": "ETL", "available": true, "messages": 1, "bytes": 2,
                     "consumers": [{"name": "loader-all", "lag": 0, "in_flight": 0, "redelivered": 0}]}],
        "envs": [{"env": "prod", "latest_run": {"run_id": "r", "dataset": "us", "status": "succeeded"},
                  "latest_runs": [{"run_id": "r", "dataset": "us", "status": "succeeded"}]}],
    });
    assert_eq!(violations(&schema, &status), Vec::<String>::new());
    status["nats"] = serde_json::json!({"reachable": "yes", "address": "a"});
    status["streams"][0]["consumers"][0]["lag"] = serde_json::json!(-1);
    status["envs"][0]["latest_run"]["status"] = serde_json::json!("fine");
    status.as_object_mut().unwrap().remove("warnings");
    let found = violations(&schema, &status);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("$.nats.reachable: expected boolean"))
    );
    assert!(found.iter().any(|v| v == "$: warnings is missing"));
}
