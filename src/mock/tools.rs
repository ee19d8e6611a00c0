//! The mock's tool calls. A chat request that offers `tools` is answered with a call
//! to one of them — the one `tool_choice` names, else one drawn by the request — when `tool_choice`
//! requires one, or at `tool_call_rate` under `"auto"`; never under `"none"`. Its
//! arguments are made to fit the tool's JSON Schema (every property, by its type,
//! enum, default or bounds; objects and arrays within); `reply` streams them as OpenAI
//! does (tests/fixtures/tools).

use serde_json::{Map, Value, json};

/// The tools a request lets the mock call (the one it names, or every one offered),
/// and whether it must call one.
#[derive(Debug, Clone)]
pub(super) struct ToolAsk {
    pub choices: Vec<(String, Value)>,
    pub forced: bool,
}

impl ToolAsk {
    /// The tool request `seq` calls: its name and parameters' schema.
    pub fn pick(&self, seq: u64) -> (&str, &Value) {
        let (name, schema) = &self.choices[(super::vectors::hash(&[&seq.to_string()]) % self.choices.len() as u64) as usize];
        (name, schema)
    }
}

/// The call offered by `tools` under `choice`, if any.
pub(super) fn asked(tools: Option<&Value>, choice: Option<&Value>) -> Option<ToolAsk> {
    let tools = tools?.as_array()?;
    let function = |t: &Value| Some((t["function"]["name"].as_str()?.to_string(), t["function"]["parameters"].clone()));
    let (named, forced) = match choice {
        Some(Value::String(s)) if s == "none" => return None,
        Some(Value::String(s)) => (None, s == "required"),
        Some(c) => (c["function"]["name"].as_str(), true),
        None => (None, false),
    };
    let choices: Vec<(String, Value)> = match named {
        Some(n) => vec![function(tools.iter().find(|t| t["function"]["name"] == n)?)?],
        None => tools.iter().filter_map(function).collect(),
    };
    (!choices.is_empty()).then_some(ToolAsk { choices, forced })
}

/// Whether request `seq` calls under `rate` (a call that is required always does).
pub(super) fn calls(ask: &ToolAsk, rate: f64, seq: u64) -> bool {
    ask.forced || super::vectors::unit(seq) < rate
}

/// A value of `schema` drawn by `seq`: an object's every property, an array of its
/// fewest items (one when unbounded), an enum's, a `const`'s or a default's value, a
/// number within its bounds, a string within its lengths; `$ref` (within the schema),
/// `anyOf` / `oneOf` (the first), `allOf` (its objects' properties together) followed.
pub(super) fn fit(schema: &Value, seq: u64) -> Value {
    fit_in(schema, schema, seq, 0, &std::cell::Cell::new(MAX_VALUES))
}

/// Deepest nesting followed, and the most values made: a recursive schema ends there
/// (a request's schema could otherwise ask for 64^16 of them).
const MAX_DEPTH: u32 = 16;
const MAX_VALUES: u32 = 10_000;

fn fit_in(root: &Value, schema: &Value, seq: u64, depth: u32, budget: &std::cell::Cell<u32>) -> Value {
    // Every value counts, those cut at the depth too.
    if budget.get() == 0 {
        return Value::Null;
    }
    budget.set(budget.get() - 1);
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    let deeper = |s: &Value| fit_in(root, s, seq, depth + 1, budget);
    if let Some(target) = schema["$ref"].as_str().and_then(|r| r.strip_prefix('#')).and_then(|p| root.pointer(p)) {
        return deeper(target);
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.get(seq as usize % e.len().max(1))) {
        return first.clone();
    }
    if let Some(d) = schema.get("default") {
        return d.clone();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(first) = schema[key].as_array().and_then(|a| a.first()) {
            return deeper(first);
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        // Each part's object, merged: their properties together.
        let mut out = Map::new();
        for part in all {
            match deeper(part) {
                Value::Object(o) => out.extend(o),
                other if all.len() == 1 => return other,
                _ => {}
            }
        }
        return Value::Object(out);
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or("string"),
        Value::String(k) => k.as_str(),
        _ if schema.get("properties").is_some() => "object",
        _ if schema.get("items").is_some() => "array",
        _ => "string",
    };
    match kind {
        "object" => Value::Object(schema["properties"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), deeper(v))).collect()),
        "array" => {
            let n = schema["minItems"].as_u64().unwrap_or(1).min(schema["maxItems"].as_u64().unwrap_or(u64::MAX)).min(64);
            Value::Array((0..n).map_while(|_| (budget.get() > 0).then(|| deeper(&schema["items"]))).collect())
        }
        "integer" => json!(bounded(schema, (seq % 97) as f64).round() as i64),
        "number" => json!(bounded(schema, (seq % 97) as f64 + 0.5)),
        "boolean" => json!(seq.is_multiple_of(2)),
        "null" => Value::Null,
        _ => {
            let mut text = format!("value {}", seq % 10_000);
            let (min, max) = (schema["minLength"].as_u64().unwrap_or(0) as usize, schema["maxLength"].as_u64().map(|m| m as usize));
            while text.chars().count() < min.min(4096) {
                text.push('x');
            }
            if let Some(max) = max {
                text = text.chars().take(max).collect();
            }
            json!(text)
        }
    }
}

/// `x` within the schema's bounds (exclusive ones by a step inside).
fn bounded(schema: &Value, x: f64) -> f64 {
    let lo = schema["minimum"].as_f64().or_else(|| schema["exclusiveMinimum"].as_f64().map(|m| m + 1.0)).unwrap_or(f64::MIN);
    let hi = schema["maximum"].as_f64().or_else(|| schema["exclusiveMaximum"].as_f64().map(|m| m - 1.0)).unwrap_or(f64::MAX);
    x.clamp(lo, hi.max(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Value {
        json!([
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
                "city": {"type": "string"}, "units": {"type": "string", "enum": ["c", "f"]}, "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "detail": {"type": "object", "properties": {"hourly": {"type": "boolean"}}}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "noop"}}
        ])
    }

    #[test]
    fn arguments_fit_the_tools_schema() {
        let ask = asked(Some(&tools()), None).unwrap();
        let schema = &ask.choices[0].1;
        let args = fit(schema, 12);
        let v = jsonschema::validator_for(schema).unwrap();
        assert!(v.is_valid(&args), "{args}");
        assert_eq!((args["units"].as_str(), args["days"].as_i64()), (Some("c"), Some(7)));
        assert!(args["detail"]["hourly"].is_boolean());
    }

    #[test]
    fn refs_alternatives_constants_and_lengths_are_followed() {
        let schema = json!({
            "$defs": {"place": {"type": "object", "properties": {"name": {"type": "string", "minLength": 20}}, "required": ["name"]}},
            "type": "object",
            "properties": {
                "where": {"$ref": "#/$defs/place"},
                "kind": {"const": "forecast"},
                "when": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]},
                "both": {"allOf": [{"type": "object", "properties": {"a": {"type": "integer", "exclusiveMinimum": 200}}}, {"properties": {"b": {"type": "boolean"}}}]},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3},
                "tree": {"$ref": "#"}
            },
            "required": ["where", "kind", "when", "both", "tags"]
        });
        for seq in [0, 7, 96] {
            let args = fit(&schema, seq);
            let mut without_tree = args.clone();
            without_tree.as_object_mut().unwrap().remove("tree");
            let v = jsonschema::validator_for(&schema).unwrap();
            assert!(v.is_valid(&without_tree), "{args}: {:?}", v.iter_errors(&without_tree).map(|e| e.to_string()).collect::<Vec<_>>());
            assert_eq!((args["kind"].as_str(), args["tags"].as_array().map(Vec::len)), (Some("forecast"), Some(2)));
        }
    }

    #[test]
    fn a_schema_that_asks_for_too_much_is_cut_short() {
        let schema = json!({"type": "array", "minItems": 64, "items": {"$ref": "#"}});
        let v = fit(&schema, 1);
        assert!(v.to_string().len() < 200_000, "bounded");
    }

    #[test]
    fn the_choice_decides_which_tool_and_whether() {
        let t = tools();
        assert_eq!(asked(Some(&t), Some(&json!({"type": "function", "function": {"name": "noop"}}))).unwrap().pick(3).0, "noop");
        // Offered two, it calls either, by the request.
        let either = asked(Some(&t), None).unwrap();
        let weather = (0..100).filter(|&s| either.pick(s).0 == "get_weather").count();
        assert!((30..70).contains(&weather), "{weather}");
        assert!(asked(Some(&t), Some(&json!("none"))).is_none());
        assert!(asked(Some(&t), Some(&json!("required"))).unwrap().forced);
        let auto = asked(Some(&t), Some(&json!("auto"))).unwrap();
        let share = (0..1000).filter(|&s| calls(&auto, 0.3, s)).count();
        assert!((250..350).contains(&share), "{share}");
        assert!(asked(None, None).is_none());
    }
}
