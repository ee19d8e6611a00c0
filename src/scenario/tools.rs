//! `[request] tools`, `tool_choice`, `parallel_tool_calls` and `response_format` →
//! the JSON sent as written, checked in place: `tools` a list of OpenAI function tools,
//! each named once, its `parameters` (when given) a JSON Schema that compiles;
//! `tool_choice` one of `"auto"`, `"none"`, `"required"` or a function among the tools;
//! `response_format` of a type OpenAI names, a `json_schema` one with a schema that
//! compiles. Chat only: the other APIs shape tools their own way, and a field that
//! would be sent and ignored is refused instead. And `[check] schema`: a JSON Schema
//! file every reply must fit, compiled before the run.

use serde_json::{Value, json};
use toml::Spanned;

use super::error::Problems;
use super::file::{CheckFile, RequestFile};
use crate::model::{Api, RequestParams};

/// Sets `params`' tool and format fields from `f` (named `what`), each checked.
/// `tools` may be a file's name (a JSON list of tools, beside the scenario).
pub(super) fn tools(f: &RequestFile, what: &str, api: Api, base_dir: &std::path::Path, params: &mut RequestParams, p: &mut Problems<'_>) {
    let fields = [
        ("tools", f.tools.as_ref().map(Spanned::span)),
        ("tool_choice", f.tool_choice.as_ref().map(Spanned::span)),
        ("response_format", f.response_format.as_ref().map(Spanned::span)),
    ];
    if api != Api::Chat {
        for (field, at) in fields.into_iter().filter(|(_, at)| at.is_some()) {
            p.at(at, format!("{what}.{field} is spoken on target.api = \"chat\" only, not {:?}", api.name()));
        }
        if f.parallel_tool_calls.is_some() {
            p.at(None, format!("{what}.parallel_tool_calls is spoken on target.api = \"chat\" only, not {:?}", api.name()));
        }
        return;
    }
    let value = |v: &Spanned<toml::Value>, field: &str, p: &mut Problems<'_>| match json(v.get_ref()) {
        Ok(j) => Some(j),
        Err(why) => {
            p.at(Some(v.span()), format!("{what}.{field}: {why}"));
            None
        }
    };
    let mut names = Vec::new();
    let listed = |t: &Spanned<toml::Value>, p: &mut Problems<'_>| match t.get_ref() {
        toml::Value::String(file) => {
            let path = base_dir.join(file);
            let read = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()));
            match read.and_then(|text| serde_json::from_str::<Value>(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))) {
                Ok(list) => Some(list),
                Err(why) => {
                    p.at(Some(t.span()), format!("{what}.tools: {why}"));
                    None
                }
            }
        }
        _ => value(t, "tools", p),
    };
    if let Some(t) = &f.tools
        && let Some(list) = listed(t, p)
    {
        match check_tools(&list, &mut names) {
            Ok(()) => params.tools = Some(list),
            Err(why) => p.at(Some(t.span()), format!("{what}.tools{why}")),
        }
    }
    // A stage's choice alone is checked against the tools it inherits (`merged`).
    let stage = what != "request";
    if let Some(c) = &f.tool_choice
        && let Some(choice) = value(c, "tool_choice", p)
    {
        match check_choice(&choice, &names, f.tools.is_some()).or_else(|e| if stage && f.tools.is_none() { Ok(()) } else { Err(e) }) {
            Ok(()) => params.tool_choice = Some(choice),
            Err(why) => p.at(Some(c.span()), format!("{what}.tool_choice {why}")),
        }
    }
    params.parallel_tool_calls = f.parallel_tool_calls;
    if let Some(r) = &f.response_format
        && let Some(format) = value(r, "response_format", p)
    {
        match check_format(&format) {
            Ok(()) => params.response_format = Some(format),
            Err(why) => p.at(Some(r.span()), format!("{what}.response_format{why}")),
        }
    }
}

/// A list of function tools, each named once with a schema that compiles. Err: where
/// (`[1].function.parameters`) and why.
fn check_tools(list: &Value, names: &mut Vec<String>) -> Result<(), String> {
    let tools = list.as_array().filter(|l| !l.is_empty()).ok_or(" must be a non-empty list of tools")?;
    for (i, t) in tools.iter().enumerate() {
        if t["type"] != "function" {
            return Err(format!("[{i}].type must be \"function\""));
        }
        let name =
            t["function"]["name"].as_str().filter(|n| !n.is_empty()).ok_or(format!("[{i}].function.name must be a non-empty string"))?;
        if names.iter().any(|n| n == name) {
            return Err(format!("[{i}].function.name {name:?} is used twice"));
        }
        names.push(name.to_string());
        if let Some(schema) = t["function"].get("parameters") {
            schema_compiles(schema).map_err(|why| format!("[{i}].function.parameters is not a JSON Schema: {why}"))?;
        }
    }
    Ok(())
}

/// A stage's parameters, its table over the scenario's, checked together: a choice
/// among the tools it ends up with, and no chat-only field on a stage of another API.
pub(super) fn merged(params: &RequestParams, api: Api, what: &str, at: Option<std::ops::Range<usize>>, p: &mut Problems<'_>) {
    if api != Api::Chat {
        let set = [
            ("tools", params.tools.is_some()),
            ("tool_choice", params.tool_choice.is_some()),
            ("response_format", params.response_format.is_some()),
        ];
        if let Some((field, _)) = set.iter().find(|(_, on)| *on) {
            p.at(
                at,
                format!(
                    "{what}: {field} is spoken on api = \"chat\" only, and this stage speaks {:?} (set it on the chat stages' own request)",
                    api.name()
                ),
            );
        }
        return;
    }
    if let Some(choice) = &params.tool_choice {
        let names: Vec<String> = params
            .tools
            .iter()
            .flat_map(|t| t.as_array().into_iter().flatten())
            .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
            .collect();
        if let Err(why) = check_choice(choice, &names, params.tools.is_some()) {
            p.at(at, format!("{what}.tool_choice {why}"));
        }
    }
}

fn check_choice(choice: &Value, names: &[String], has_tools: bool) -> Result<(), String> {
    if !has_tools {
        return Err("needs tools".into());
    }
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(()),
        Value::Object(_) => match choice["function"]["name"].as_str() {
            Some(n) if choice["type"] == "function" && names.iter().any(|t| t == n) => Ok(()),
            Some(n) => Err(format!("names {n:?}, which is not among the tools")),
            None => Err("must be { type = \"function\", function = { name = … } }".into()),
        },
        _ => Err(format!("must be \"auto\", \"none\", \"required\" or a function, got {choice}")),
    }
}

fn check_format(format: &Value) -> Result<(), String> {
    match format["type"].as_str() {
        Some("text" | "json_object") => Ok(()),
        Some("json_schema") => {
            let schema = format["json_schema"].get("schema").ok_or(".json_schema.schema is missing")?;
            if format["json_schema"]["name"].as_str().is_none_or(str::is_empty) {
                return Err(".json_schema.name must be a non-empty string".into());
            }
            schema_compiles(schema).map_err(|why| format!(".json_schema.schema is not a JSON Schema: {why}"))
        }
        _ => Err(format!(".type must be \"text\", \"json_object\" or \"json_schema\", got {}", json!(format["type"]))),
    }
}

/// Whether `schema` compiles as a JSON Schema; Err: the validator's reason.
pub(super) fn schema_compiles(schema: &Value) -> Result<(), String> {
    jsonschema::validator_for(schema).map(|_| ()).map_err(|e| e.to_string())
}

/// A TOML value as JSON. Dates become RFC 3339 strings; JSON has no NaN or infinity.
pub(super) fn json(v: &toml::Value) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).ok_or(format!("{f} has no JSON form"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(json).collect::<Result<_, _>>()?),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| Ok((k.clone(), json(v)?))).collect::<Result<_, String>>()?),
    })
}

/// `[check]`: `expect = "json"` with `required_keys`, or `schema = "file.json"` (a
/// JSON Schema file beside the scenario, read and compiled now).
pub(super) fn check(f: Spanned<CheckFile>, base_dir: &std::path::Path, p: &mut Problems<'_>) -> crate::check::Expect {
    let span = f.span();
    let f = f.into_inner();
    let json = crate::check::Expect::Json { required_keys: f.required_keys.clone() };
    let Some(file) = f.schema else {
        if f.expect.as_deref() != Some("json") {
            p.at(Some(span), format!("check.expect must be \"json\" (or give check.schema), got {:?}", f.expect.unwrap_or_default()));
        }
        return json;
    };
    if f.expect.as_deref().is_some_and(|e| e != "schema") || !f.required_keys.is_empty() {
        p.at(Some(file.span()), "check.schema goes alone (or with expect = \"schema\"): the schema says what is required");
    }
    let path = base_dir.join(file.get_ref());
    let schema = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| format!("{} is not JSON: {e}", path.display())))
        .and_then(|v| {
            crate::check::Schema::new(file.get_ref().clone(), &v).map_err(|e| format!("{} is not a JSON Schema: {e}", path.display()))
        });
    match schema {
        Ok(s) => crate::check::Expect::Schema(std::sync::Arc::new(s)),
        Err(why) => {
            p.at(Some(file.span()), format!("check.schema: {why}"));
            json
        }
    }
}
