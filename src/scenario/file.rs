//! The scenario file as written (serde model). Type errors, unknown keys and
//! out-of-range numbers are caught here by serde, so they carry the toml span.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::mock::MockConfig;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub name: Option<String>,
    pub description: Option<String>,
    pub target: TargetFile,
    pub mock: Option<Spanned<MockConfig>>,
    pub prompts: Spanned<PromptsFile>,
    #[serde(default)]
    pub request: RequestFile,
    #[serde(rename = "stage")]
    pub stages: Spanned<Vec<Spanned<StageFile>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    pub base_url: Spanned<String>,
    pub model: Spanned<String>,
    pub api_key_env: Option<Spanned<String>>,
    pub stream: Option<Spanned<bool>>,
    pub timeout: Option<Spanned<DurationValue>>,
    pub connect_timeout: Option<Spanned<DurationValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsFile {
    pub list: Option<Spanned<Vec<String>>>,
    pub template: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    /// Optional system message put before every text prompt.
    pub system: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFile {
    pub max_tokens: Option<NonZeroU32>,
    pub temperature: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageFile {
    pub name: Option<String>,
    pub concurrency: Option<NonZeroU32>,
    pub requests: Option<NonZeroU64>,
    pub duration: Option<Spanned<DurationValue>>,
    pub model: Option<String>,
    #[serde(default)]
    pub warmup: u64,
}

/// A duration written as a string ("30s", "1m 30s", "250ms") or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurationValue(pub Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
        }
        let secs = match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a duration such as \"30s\", \"500ms\" or a number of seconds"))?
        {
            Raw::Text(s) => {
                return humantime::parse_duration(s.trim())
                    .map(DurationValue)
                    .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e} (write e.g. \"30s\" or \"500ms\")")));
            }
            Raw::Int(i) => i as f64,
            Raw::Float(f) => f,
        };
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(serde::de::Error::custom(format!(
                "invalid duration {secs}: must be zero or more seconds"
            )));
        }
        Ok(DurationValue(Duration::from_secs_f64(secs)))
    }
}
