//! The mock's tool calls. A chat request that offers `tools` is answered with a call
//! to one of them — the one `tool_choice` names, else the first — when `tool_choice`
//! requires one, or at `tool_call_rate` under `"auto"`; never under `"none"`. Its
//! arguments are made to fit the tool's JSON Schema (every property, by its type,
//! enum, default or bounds; objects and arrays within); `reply` streams them as OpenAI
//! does (tests/fixtures/tools).

use serde_json::{Map, Value, json};

/// The tool a request lets the mock call, and whether it must.
#[derive(Debug, Clone)]
pub(super) struct ToolAsk {
    pub name: String,
    pub schema: Value,
    pub forced: bool,
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
    let tool = match named {
        Some(n) => tools.iter().find(|t| t["function"]["name"] == n)?,
        None => tools.first()?,
    };
    let (name, schema) = function(tool)?;
    Some(ToolAsk { name, schema, forced })
}

/// Whether request `seq` calls under `rate` (a call that is required always does).
pub(super) fn calls(ask: &ToolAsk, rate: f64, seq: u64) -> bool {
    ask.forced || super::vectors::unit(seq) < rate
}

/// A value of `schema` drawn by `seq`: an object's every property, an array of one
/// item, an enum's (or a default's) value, a number within its bounds, a string.
pub(super) fn fit(schema: &Value, seq: u64) -> Value {
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.get(seq as usize % e.len().max(1))) {
        return first.clone();
    }
    if let Some(d) = schema.get("default") {
        return d.clone();
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or("string"),
        Value::String(k) => k.as_str(),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match kind {
        "object" => {
            let mut out = Map::new();
            for (k, v) in schema["properties"].as_object().into_iter().flatten() {
                out.insert(k.clone(), fit(v, seq));
            }
            Value::Object(out)
        }
        "array" => json!([fit(&schema["items"], seq)]),
        "integer" => json!(bounded(schema, (seq % 97) as f64).round() as i64),
        "number" => json!(bounded(schema, (seq % 97) as f64 + 0.5)),
        "boolean" => json!(seq.is_multiple_of(2)),
        _ => json!(format!("value {}", seq % 10_000)),
    }
}

fn bounded(schema: &Value, x: f64) -> f64 {
    let lo = schema["minimum"].as_f64().unwrap_or(f64::MIN);
    let hi = schema["maximum"].as_f64().unwrap_or(f64::MAX);
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
        let args = fit(&ask.schema, 12);
        let v = jsonschema::validator_for(&ask.schema).unwrap();
        assert!(v.is_valid(&args), "{args}");
        assert_eq!((args["units"].as_str(), args["days"].as_i64()), (Some("c"), Some(7)));
        assert!(args["detail"]["hourly"].is_boolean());
    }

    #[test]
    fn the_choice_decides_which_tool_and_whether() {
        let t = tools();
        assert_eq!(asked(Some(&t), Some(&json!({"type": "function", "function": {"name": "noop"}}))).unwrap().name, "noop");
        assert!(asked(Some(&t), Some(&json!("none"))).is_none());
        assert!(asked(Some(&t), Some(&json!("required"))).unwrap().forced);
        let auto = asked(Some(&t), Some(&json!("auto"))).unwrap();
        let share = (0..1000).filter(|&s| calls(&auto, 0.3, s)).count();
        assert!((250..350).contains(&share), "{share}");
        assert!(asked(None, None).is_none());
    }
}
