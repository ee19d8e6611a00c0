//! Whether shards ran one scenario: their scenarios as they ran (overrides from the
//! command line included, which the file's sha256 does not see) must be equal but for
//! what sharding deals out — workers, requests, warmups and slots, which differ by one
//! at most between shards, and the seeds, which differ by design.

use serde_json::Value;

/// Dealt round-robin: a shard's share differs from another's by one at most.
const DEALT: [&str; 4] = ["concurrency", "requests", "warmup", "max_in_flight"];

/// The scenario with what sharding changes taken out (and the file's path, which may be
/// spelled differently on different machines).
fn normalized(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("source");
    }
    for st in v.get_mut("stages").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(o) = st.as_object_mut() {
            for key in DEALT.iter().chain(&["seed"]) {
                o.remove(*key);
            }
        }
    }
    v
}

/// The first place where `a` and `b` differ, as a path (`stages[1].rate`).
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let at = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                first_difference(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), &at)
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]")))
        }
        _ => (a != b).then(|| path.to_string()),
    }
}

/// Ok when `other`'s scenario is `first`'s but for its share; else where it differs.
pub fn same_scenario(first: &Value, other: &Value) -> Result<(), String> {
    if let Some(at) = first_difference(&normalized(first), &normalized(other), "") {
        return Err(format!("its {at} differs ({} against {})", shown(other, &at), shown(first, &at)));
    }
    let stages = |v: &Value| v.get("stages").and_then(Value::as_array).cloned().unwrap_or_default();
    for (k, (a, b)) in stages(first).iter().zip(&stages(other)).enumerate() {
        for key in DEALT {
            if let (Some(x), Some(y)) = (a.get(key).and_then(Value::as_u64), b.get(key).and_then(Value::as_u64))
                && x.abs_diff(y) > 1
            {
                return Err(format!("its stages[{k}].{key} is {y} against {x}, not shares of one run"));
            }
        }
    }
    Ok(())
}

/// The value at a `first_difference` path, for the message.
fn shown(v: &Value, path: &str) -> String {
    let mut at = v;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, i)) => (k, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        at = at.get(key).unwrap_or(&Value::Null);
        if let Some(i) = index {
            at = at.get(i).unwrap_or(&Value::Null);
        }
    }
    let s = at.to_string();
    if s.chars().count() > 60 { format!("{}…", s.chars().take(60).collect::<String>()) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shares_of_one_run_are_one_scenario_and_overrides_are_not() {
        let a = json!({"source": "a/s.toml", "target": {"model": "m"}, "stages": [{"name": "c", "concurrency": 13, "requests": 13, "seed": 1}]});
        let b =
            json!({"source": "s.toml", "target": {"model": "m"}, "stages": [{"name": "c", "concurrency": 12, "requests": 12, "seed": 9}]});
        assert_eq!(same_scenario(&a, &b), Ok(()));
        let model = json!({"source": "s.toml", "target": {"model": "other"}, "stages": [{"name": "c", "concurrency": 12, "requests": 12}]});
        assert_eq!(same_scenario(&a, &model).unwrap_err(), "its target.model differs (\"other\" against \"m\")");
        let more = json!({"target": {"model": "m"}, "stages": [{"name": "c", "concurrency": 13, "requests": 200}]});
        assert_eq!(same_scenario(&a, &more).unwrap_err(), "its stages[0].requests is 200 against 13, not shares of one run");
    }
}
