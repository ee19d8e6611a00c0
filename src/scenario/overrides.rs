//! What the command line changes in a scenario: `llmload run` flags applied on top of
//! the file, checked the way the file is.

use std::path::PathBuf;
use std::time::Duration;

use super::validate_stage::TPM_NEEDS_MAX_TOKENS;
use super::{BaseUrl, Scenario, parse_base_url};

/// Flags that override the scenario; None (or false) leaves the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// "mock" or an API root.
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key_env: Option<String>,
    pub api_key_file: Option<PathBuf>,
    pub timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub insecure: bool,
    /// Client-side limits and attempts, for every stage (an automatic sweep's too).
    pub rpm: Option<f64>,
    pub tpm: Option<f64>,
    pub max_attempts: Option<u32>,
}

impl Scenario {
    /// The scenario with `o` applied. An error is one line that names the flag.
    pub fn apply(&mut self, o: &Overrides) -> Result<(), String> {
        if let Some(url) = &o.base_url {
            self.target.base_url = match parse_base_url(url) {
                _ if url.trim() == "mock" => BaseUrl::Mock,
                Ok(u) => BaseUrl::Url(u),
                Err(msg) => return Err(format!("--base-url: {msg}")),
            };
        }
        if let Some(model) = &o.model {
            if model.trim().is_empty() {
                return Err("--model: must not be empty".into());
            }
            self.target.model = model.clone();
        }
        if let Some(var) = &o.api_key_env {
            self.target.api_key_env = var.clone();
            self.target.api_key_file = None;
        }
        if let Some(path) = &o.api_key_file {
            self.target.api_key_file = Some(path.clone());
        }
        let t = &mut self.target;
        t.timeout = o.timeout.unwrap_or(t.timeout);
        t.connect_timeout = o.connect_timeout.unwrap_or(t.connect_timeout);
        t.idle_timeout = o.idle_timeout.or(t.idle_timeout);
        t.insecure |= o.insecure;
        // An automatic sweep's points are made from its template as it runs.
        let template = self.sweep.as_mut().map(|s| &mut s.template);
        let stages: Vec<&mut super::Stage> = self.stages.iter_mut().chain(template).collect();
        if o.tpm.is_some() && stages.iter().any(|s| s.request.max_output_tokens().is_none()) {
            return Err(format!("--tpm {TPM_NEEDS_MAX_TOKENS}"));
        }
        for stage in stages {
            stage.rate_limit.rpm = o.rpm.or(stage.rate_limit.rpm);
            stage.rate_limit.tpm = o.tpm.or(stage.rate_limit.tpm);
            stage.retry.max_attempts = o.max_attempts.unwrap_or(stage.retry.max_attempts);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTO: &str = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[prompts]\nlist = [\"hi\"]\n[[stage]]\nrequests = 1\n[sweep]\nconcurrency = \"auto\"\nduration = \"1s\"\n";

    fn scenario() -> Scenario {
        Scenario::parse(AUTO, "s.toml", None).unwrap()
    }

    #[test]
    fn flags_replace_the_files_values_everywhere_they_apply() {
        let mut s = scenario();
        let o = Overrides {
            base_url: Some("http://127.0.0.1:8000/v1".into()),
            model: Some("other".into()),
            api_key_env: Some("MY_KEY".into()),
            timeout: Some(Duration::from_secs(5)),
            insecure: true,
            rpm: Some(600.0),
            max_attempts: Some(3),
            ..Overrides::default()
        };
        s.apply(&o).unwrap();
        assert!(matches!(&s.target.base_url, BaseUrl::Url(u) if u.as_str() == "http://127.0.0.1:8000/v1"));
        assert_eq!((s.target.model.as_str(), s.target.api_key_env.as_str()), ("other", "MY_KEY"));
        assert_eq!((s.target.timeout, s.target.insecure), (Duration::from_secs(5), true));
        // Every stage, and the template an automatic sweep makes its points from.
        let template = &s.sweep.as_ref().unwrap().template;
        for stage in [&s.stages[0], template] {
            assert_eq!((stage.rate_limit.rpm, stage.retry.max_attempts), (Some(600.0), 3));
        }
        // Unset flags leave the file's values; "mock" is the embedded mock.
        let mut s = scenario();
        s.apply(&Overrides { base_url: Some(" mock ".into()), ..Overrides::default() }).unwrap();
        assert_eq!(s.target.base_url, BaseUrl::Mock);
        assert_eq!((s.target.model.as_str(), s.stages[0].retry.max_attempts), ("m", 1));
    }

    #[test]
    fn a_bad_flag_is_one_line_that_names_it() {
        let err = |o: Overrides| scenario().apply(&o).unwrap_err();
        assert!(
            err(Overrides { base_url: Some("ftp://x".into()), ..Overrides::default() })
                .starts_with("--base-url: base_url must start with http")
        );
        assert_eq!(err(Overrides { model: Some("  ".into()), ..Overrides::default() }), "--model: must not be empty");
        assert_eq!(err(Overrides { tpm: Some(1000.0), ..Overrides::default() }), format!("--tpm {TPM_NEEDS_MAX_TOKENS}"));
    }
}
