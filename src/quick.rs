//! Runs without a file: `llmload run --base-url URL --model M --concurrency 1,10` builds
//! the scenario from its flags (as TOML, so it is checked like any file and
//! `--print-scenario` shows it), and `llmload init` writes a commented starter file.

use toml::{Table, Value};

/// What a quick run's flags say.
#[derive(Debug, Clone, Default)]
pub struct Quick {
    pub base_url: String,
    pub model: Option<String>,
    pub concurrency: Vec<u32>,
    pub rate: Vec<f64>,
    pub requests: Option<u64>,
    pub duration: Option<String>,
    pub stream: bool,
    /// `target.api`, when not chat.
    pub api: Option<String>,
    pub prompt: Option<String>,
    pub synthetic: Option<String>,
    pub max_tokens: Option<u32>,
}

/// Requests per stage when neither `--requests` nor `--duration` is given.
const DEFAULT_REQUESTS: u64 = 100;

impl Quick {
    /// The scenario as TOML; an error names the flag that is missing or wrong.
    pub fn scenario(&self) -> Result<String, String> {
        let mock = self.base_url == "mock";
        let model = match (&self.model, mock) {
            (Some(m), _) => m.clone(),
            (None, true) => "mock-model".to_string(),
            (None, false) => return Err("a run without a scenario file needs --model (and --base-url)".into()),
        };
        if !self.concurrency.is_empty() && !self.rate.is_empty() {
            return Err("give --concurrency or --rate, not both".into());
        }
        let mut target = Table::new();
        target.insert("base_url".into(), self.base_url.clone().into());
        target.insert("model".into(), model.into());
        target.insert("stream".into(), self.stream.into());
        if let Some(api) = &self.api {
            target.insert("api".into(), api.clone().into());
        }
        let mut prompts = Table::new();
        match (&self.prompt, &self.synthetic) {
            (Some(_), Some(_)) => return Err("give --prompt or --synthetic, not both".into()),
            (None, Some(s)) => {
                prompts.insert("synthetic".into(), s.clone().into());
            }
            (p, None) => {
                let p = p.clone().unwrap_or_else(|| "Write a haiku about load testing.".into());
                prompts.insert("list".into(), Value::Array(vec![p.into()]));
            }
        }
        let loads: Vec<(&str, Value, String)> = if self.rate.is_empty() {
            let levels = if self.concurrency.is_empty() { vec![1] } else { self.concurrency.clone() };
            levels
                .iter()
                .map(|&c| ("concurrency", Value::Integer(c.into()), if c == 1 { "sequential".into() } else { format!("{c}-way") }))
                .collect()
        } else {
            self.rate.iter().map(|&r| ("rate", Value::Float(r), format!("{r}/s"))).collect()
        };
        let stages: Vec<Value> = loads
            .into_iter()
            .map(|(key, load, name)| {
                let mut s = Table::new();
                s.insert("name".into(), name.into());
                s.insert(key.into(), load);
                match (&self.duration, self.requests) {
                    (Some(d), n) => {
                        s.insert("duration".into(), d.clone().into());
                        if let Some(n) = n {
                            s.insert("requests".into(), Value::Integer(n as i64));
                        }
                    }
                    (None, n) => {
                        s.insert("requests".into(), Value::Integer(n.unwrap_or(DEFAULT_REQUESTS) as i64));
                    }
                }
                Value::Table(s)
            })
            .collect();
        let mut doc = Table::new();
        doc.insert("name".into(), "quick run".into());
        doc.insert("target".into(), Value::Table(target));
        doc.insert("prompts".into(), Value::Table(prompts));
        if let Some(n) = self.max_tokens {
            let mut r = Table::new();
            r.insert("max_tokens".into(), Value::Integer(n.into()));
            doc.insert("request".into(), Value::Table(r));
        }
        doc.insert("stage".into(), Value::Array(stages));
        toml::to_string(&doc).map_err(|e| format!("cannot write the scenario: {e}"))
    }
}

/// A starter scenario that validates and runs on the embedded mock, speaking `api`
/// (chat when None).
pub fn starter(stream: bool, api: Option<&str>) -> String {
    // Embeddings and rerank answer in one body: they never stream.
    let stream = stream && !matches!(api, Some("embeddings" | "rerank"));
    let mut s = STARTER.replace("stream = false", if stream { "stream = true" } else { "stream = false" });
    let limit = "max_tokens = 64\n";
    let line = match api {
        Some("embeddings") => {
            s = s.replace(limit, "batch_size = 8               # inputs per request, or { min = 1, max = 32 }\n");
            "api = \"embeddings\"          # POST /v1/embeddings: each prompt an input, in batches\n"
        }
        Some("rerank") => {
            let fields = "documents = 16               # synthetic documents per query …\n\
                          document_tokens = 128        # … this long (a count or a distribution)\n\
                          top_n = 4                    # the most results asked back\n";
            s = s.replace(limit, fields);
            "api = \"rerank\"              # POST /v1/rerank: each prompt a query\n"
        }
        Some("completions") => "api = \"completions\"         # POST /v1/completions with a text prompt\n",
        Some("responses") => "api = \"responses\"           # OpenAI's Responses API: POST /v1/responses\n",
        Some("messages") => {
            s = s.replace("api_key_env = \"OPENAI_API_KEY\"", "api_key_env = \"ANTHROPIC_API_KEY\"");
            "api = \"messages\"            # Anthropic's Messages: POST /v1/messages, the key as x-api-key\n"
        }
        _ => "",
    };
    s.replacen("stream = ", &format!("{line}stream = "), 1)
}

const STARTER: &str = r#"# A starter llmload scenario: runs as it is on the embedded mock (no key, no network).
#   llmload run llmload.toml
# Point it at your endpoint with --base-url http://HOST:PORT/v1 --model NAME, or edit
# [target] below. Every field is in docs/scenario.md.
name = "starter"

[target]
base_url = "mock"            # or "http://127.0.0.1:8000/v1"
model = "mock-model"
api_key_env = "OPENAI_API_KEY" # the key is read from this variable, never from the file
stream = false               # true: time to first token and inter-token latency too
timeout = "60s"

[mock]
base_latency_ms = 80         # the mock's time per request …
per_inflight_ms = 2          # … plus this per request in flight

[prompts]
template = "Write Python code that computes {i}!"   # {i}: the request's number
# synthetic = "N(480,240)/(300,150)"  # or prompts of drawn input/output token lengths

[request]
max_tokens = 64

# What every stage must meet; a failed threshold exits 3.
[thresholds]
error_rate = "< 0.01"
p99_ms = "< 2000"

[[stage]]
name = "sequential"
concurrency = 1
requests = 20

[[stage]]
name = "10-way"
concurrency = 10
requests = 100

# An open loop instead: arrivals per second whether or not earlier requests are done.
# [[stage]]
# name = "5/s"
# rate = 5
# duration = "30s"
"#;
