//! `[prompts] synthetic = …` as written → the workload's length distributions: the
//! field's shorthand (`"N(480,240)/(300,150)"`), a table of an input and an output
//! distribution, or a list of weighted buckets; and `tokenizer = …` → the counting
//! tokenizer. Each problem says which field and which forms are accepted.

use toml::Value;

use crate::workload::Tokenizer;
use crate::workload::dist::{Bucket, Dist, LengthSpec, MAX_TOKENS};

const DIST_FORMS: &str =
    "a token count, { mean, stdev, min, max } (normal), { min, max } (uniform), { median, p99 } or { mu, sigma } (lognormal)";

/// The length spec of `synthetic`; Err names the field at fault.
pub(super) fn lengths(v: &Value) -> Result<LengthSpec, String> {
    let spec = match v {
        Value::String(s) => return LengthSpec::parse_shorthand(s).map_err(|e| format!("prompts.synthetic {e}")),
        Value::Table(t) => {
            if let Some(k) = t.keys().find(|k| !matches!(k.as_str(), "input" | "output")) {
                return Err(format!("prompts.synthetic: unknown field `{k}`; expected `input` and `output`"));
            }
            let input = t.get("input").ok_or("prompts.synthetic needs `input` (the prompt's length in tokens)")?;
            LengthSpec::Apart {
                input: dist(input).map_err(|e| format!("prompts.synthetic.input: {e}"))?,
                output: t.get("output").map(dist).transpose().map_err(|e| format!("prompts.synthetic.output: {e}"))?,
            }
        }
        Value::Array(items) => LengthSpec::Buckets(
            items
                .iter()
                .enumerate()
                .map(|(i, b)| bucket(b).map_err(|e| format!("prompts.synthetic[{i}]: {e}")))
                .collect::<Result<_, _>>()?,
        ),
        _ => {
            return Err("prompts.synthetic must be a shorthand such as \"D(100,100)\", a table { input = …, output = … } \
                 or a list of buckets [{ input = 128, output = 512, weight = 0.7 }, …]"
                .into());
        }
    };
    match spec.problems().first() {
        Some(p) => Err(format!("prompts.synthetic: {p}")),
        None => Ok(spec),
    }
}

fn bucket(v: &Value) -> Result<Bucket, String> {
    let t = v.as_table().ok_or("a bucket is a table { input = 128, output = 512, weight = 0.7 }")?;
    if let Some(k) = t.keys().find(|k| !matches!(k.as_str(), "input" | "output" | "weight")) {
        return Err(format!("unknown field `{k}`; a bucket has `input`, `output` and `weight`"));
    }
    let count = |k: &str| t.get(k).map(|v| whole(v).ok_or_else(|| format!("{k} must be a whole number of tokens"))).transpose();
    Ok(Bucket {
        input: count("input")?.ok_or("a bucket needs `input`")?,
        output: count("output")?,
        weight: match t.get("weight") {
            Some(w) => number(w).ok_or("weight must be a number")?,
            None => 1.0,
        },
    })
}

pub(super) fn dist(v: &Value) -> Result<Dist, String> {
    let d = match v {
        Value::Integer(_) => Dist::Fixed(whole(v).ok_or_else(|| format!("a length must be from 1 to {MAX_TOKENS} tokens"))?),
        Value::Table(t) => {
            let has = |k: &str| t.contains_key(k);
            let known: &[&str] = if has("mean") || has("stdev") {
                &["mean", "stdev", "min", "max"]
            } else if has("median") || has("p99") {
                &["median", "p99", "min", "max"]
            } else if has("mu") || has("sigma") {
                &["mu", "sigma", "min", "max"]
            } else {
                &["min", "max"]
            };
            if let Some(k) = t.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(format!("unexpected `{k}` here; expected {DIST_FORMS}"));
            }
            let num = |k: &str| t.get(k).map(|v| number(v).ok_or_else(|| format!("{k} must be a number"))).transpose();
            let need = |k: &str| num(k)?.ok_or_else(|| format!("`{k}` is missing; expected {DIST_FORMS}"));
            let bound = |k: &str, default: u32| match t.get(k) {
                Some(v) => whole(v).ok_or_else(|| format!("{k} must be a whole number of tokens from 0 to {MAX_TOKENS}")),
                None => Ok(default),
            };
            let (min, max) = (bound("min", 1)?, bound("max", MAX_TOKENS)?);
            match known[0] {
                "mean" => Dist::Normal { mean: need("mean")?, stdev: need("stdev")?, min, max },
                "median" => Dist::from_median_p99(need("median")?, need("p99")?, min, max)?,
                "mu" => Dist::LogNormal { mu: need("mu")?, sigma: need("sigma")?, min, max },
                _ if has("min") && has("max") => Dist::Uniform { min, max },
                _ => return Err(format!("expected {DIST_FORMS}")),
            }
        }
        _ => return Err(format!("expected {DIST_FORMS}")),
    };
    match d.problem() {
        Some(p) => Err(p),
        None => Ok(d),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// A whole count within 0..=MAX_TOKENS (a float such as 128.0 counts).
fn whole(v: &Value) -> Option<u32> {
    let n = number(v)?;
    (n.fract() == 0.0 && (0.0..=f64::from(MAX_TOKENS)).contains(&n)).then_some(n as u32)
}

/// Where the counting tokenizer comes from.
pub(super) enum TokenizerSource {
    BuiltIn(Tokenizer),
    /// `{ file = "…" }`, relative to the scenario's folder.
    File(String),
    /// `"server"`: the server's own, through its tokenize endpoint, or no run.
    Server,
    /// `"auto"`: the server's own when it has a tokenize endpoint, else o200k.
    Auto,
}

/// `tokenizer = "o200k_base"`, `{ file = "tokenizer.json" }`, `"server"` or `"auto"`.
pub(super) fn tokenizer(v: &Value) -> Result<TokenizerSource, String> {
    let forms =
        "expected \"auto\", \"server\", \"o200k_base\", \"cl100k_base\" or { file = \"tokenizer.json\" } (a Hugging Face tokenizer file)";
    match v {
        Value::String(name) if name == "server" => Ok(TokenizerSource::Server),
        Value::String(name) if name == "auto" => Ok(TokenizerSource::Auto),
        Value::String(name) => match Tokenizer::built_in(name) {
            Some(t) => Ok(TokenizerSource::BuiltIn(t)),
            None => Err(format!("prompts.tokenizer {name:?} is not built in; {forms}")),
        },
        Value::Table(t) => match (t.get("file").and_then(Value::as_str), t.len()) {
            (Some(f), 1) => Ok(TokenizerSource::File(f.to_string())),
            _ => Err(format!("prompts.tokenizer: {forms}")),
        },
        _ => Err(format!("prompts.tokenizer: {forms}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<LengthSpec, String> {
        let v: toml::Table = toml::from_str(&format!("synthetic = {s}")).unwrap();
        lengths(&v["synthetic"])
    }

    #[test]
    fn every_form_parses() {
        assert_eq!(parse("\"D(100,100)\"").unwrap(), LengthSpec::Apart { input: Dist::Fixed(100), output: Some(Dist::Fixed(100)) });
        assert_eq!(parse("{ input = 512 }").unwrap(), LengthSpec::Apart { input: Dist::Fixed(512), output: None });
        let LengthSpec::Apart { input, output } =
            parse("{ input = { mean = 480, stdev = 240, max = 2000 }, output = { min = 10, max = 20 } }").unwrap()
        else {
            panic!()
        };
        assert_eq!(input, Dist::Normal { mean: 480.0, stdev: 240.0, min: 1, max: 2000 });
        assert_eq!(output, Some(Dist::Uniform { min: 10, max: 20 }));
        assert!(matches!(
            parse("{ input = { median = 1000, p99 = 8000 } }").unwrap(),
            LengthSpec::Apart { input: Dist::LogNormal { .. }, .. }
        ));
        assert!(matches!(parse("{ input = { mu = 6.9, sigma = 0.5 } }").unwrap(), LengthSpec::Apart { input: Dist::LogNormal { .. }, .. }));
        let b = parse("[{ input = 128, output = 512, weight = 0.7 }, { input = 2048, output = 128, weight = 0.3 }]").unwrap();
        assert_eq!(
            b,
            LengthSpec::Buckets(vec![
                Bucket { input: 128, output: Some(512), weight: 0.7 },
                Bucket { input: 2048, output: Some(128), weight: 0.3 }
            ])
        );
    }

    #[test]
    fn each_problem_names_its_field() {
        let cases = [
            ("{ input = { min = 50, max = 10 } }", "prompts.synthetic.input: min (50) must not exceed max (10)"),
            ("{ input = 0 }", "prompts.synthetic.input: a length must be at least 1 token"),
            ("{ input = -5 }", "prompts.synthetic.input: a length must be from 1 to"),
            ("{ input = 10, output = { mean = 5 } }", "prompts.synthetic.output: `stdev` is missing"),
            ("{ input = { mean = 5, stdev = 1, median = 3 } }", "prompts.synthetic.input: unexpected `median`"),
            ("{ output = 5 }", "prompts.synthetic needs `input`"),
            ("[{ input = 128, weight = 0 }]", "prompts.synthetic: bucket 1: weight must be a positive number, got 0"),
            ("[]", "prompts.synthetic: the bucket list is empty"),
            ("\"Q(1,2)\"", "prompts.synthetic \"Q(1,2)\" does not parse; accepted:"),
            ("5", "prompts.synthetic must be a shorthand"),
        ];
        for (src, want) in cases {
            let e = parse(src).unwrap_err();
            assert!(e.starts_with(want), "{src}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn tokenizers_by_name_or_file() {
        let v = |s: &str| toml::from_str::<toml::Table>(&format!("t = {s}")).unwrap()["t"].clone();
        assert!(matches!(tokenizer(&v("\"cl100k_base\"")), Ok(TokenizerSource::BuiltIn(t)) if t.name() == "cl100k_base"));
        assert!(matches!(tokenizer(&v("{ file = \"t.json\" }")), Ok(TokenizerSource::File(f)) if f == "t.json"));
        assert!(tokenizer(&v("\"llama\"")).err().unwrap().contains("is not built in"));
        assert!(tokenizer(&v("{ path = \"x\" }")).is_err());
    }
}
