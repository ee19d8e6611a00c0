//! Extra headers as a scenario gives them (`[target] headers`, an endpoint's of
//! `[server_metrics]`): each name a valid HTTP header name, once, not one llmload sets;
//! each value a string or `{ env = "VAR" }` read when the run starts.

use toml::Spanned;

use super::error::Problems;
use super::{Header, HeaderSource};

/// Headers llmload sets on every request itself.
const OWN_HEADERS: [&str; 3] = ["content-type", "content-length", "host"];

/// `[target] headers`: each name a valid HTTP header name (once, whatever its case, and
/// not one llmload sets), each value a string or `{ env = "VAR" }`; problems name the
/// header.
pub(super) fn headers(h: &Spanned<toml::Table>, field: &str, p: &mut Problems<'_>) -> Vec<Header> {
    let at = Some(h.span());
    let mut out: Vec<Header> = Vec::new();
    for (name, value) in h.get_ref() {
        let what = format!("{field}.{name:?}");
        let lower = name.to_ascii_lowercase();
        if name.trim().is_empty() || http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            p.at(at.clone(), format!("{field}: {name:?} is not an HTTP header name"));
        } else if OWN_HEADERS.contains(&lower.as_str()) {
            p.at(at.clone(), format!("{what}: llmload sets {name} itself"));
        } else if out.iter().any(|o| o.name.eq_ignore_ascii_case(name)) {
            p.at(at.clone(), format!("{what}: given twice (header names are case-insensitive)"));
        }
        let value = match value {
            toml::Value::String(v) => {
                if http::header::HeaderValue::from_str(v).is_err() {
                    p.at(at.clone(), format!("{what}: the value is not a valid HTTP header value (control characters?)"));
                }
                HeaderSource::Literal(v.clone())
            }
            toml::Value::Table(t) if t.len() == 1 && t.get("env").is_some_and(toml::Value::is_str) => {
                let var = t["env"].as_str().unwrap_or_default().to_string();
                if var.trim().is_empty() {
                    p.at(at.clone(), format!("{what}: env must name an environment variable"));
                }
                HeaderSource::Env(var)
            }
            _ => {
                p.at(at.clone(), format!("{what} must be a string, or {{ env = \"VARIABLE\" }}"));
                continue;
            }
        };
        out.push(Header { name: name.clone(), value });
    }
    out
}
