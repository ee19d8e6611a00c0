//! The request generator: where prompts come from (`prompts`), how each request's body
//! is built (`body`) and how its tokens are counted (`tokens`). The engine asks a
//! stage's [`StageRequests`] for request *i* and gets it ready to send; it never builds
//! JSON itself.

mod body;
pub mod prompts;
pub mod tokens;

use crate::model::{RequestParams, RequestSpec};
use body::BodyParts;
pub use prompts::{Prompt, Prompts};

/// What every request of a run is made of: its prompts (made for the endpoint spoken),
/// and how the target is asked (a stream or not, with a usage chunk or not).
#[derive(Debug, Clone)]
pub struct Workload {
    prompts: Prompts,
    stream: bool,
    stream_usage: bool,
}

impl Workload {
    pub fn new(prompts: Prompts, stream: bool, stream_usage: bool) -> Workload {
        Workload { prompts, stream, stream_usage }
    }

    /// The requests of a stage that sends `model` with `params`.
    pub fn stage(&self, model: &str, params: &RequestParams) -> StageRequests {
        let parts = BodyParts::new(model, params, self.prompts.api(), self.stream, self.stream_usage);
        StageRequests { prompts: self.prompts.clone(), parts }
    }
}

/// The requests of one stage, by request number.
#[derive(Debug)]
pub struct StageRequests {
    prompts: Prompts,
    parts: BodyParts,
}

impl StageRequests {
    /// Request number `i` (within its stage), ready to send.
    pub fn request(&self, i: u64) -> RequestSpec {
        RequestSpec { body: self.parts.body(&self.prompts.prompt(i).json) }
    }

    /// Tokens of request `i`'s prompt text, counted on first use (loading the tokenizer
    /// is not free, and most runs take the server's usage).
    pub fn input_tokens(&self, i: u64) -> u64 {
        self.prompts.prompt(i).tokens()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_cycle_through_fixed_prompts_and_number_templates() {
        let params = RequestParams { max_tokens: Some(8), ..RequestParams::default() };
        let fixed = Workload::new(Prompts::from_texts(&["a", "b"]).unwrap(), false, true).stage("m", &params);
        let body = |r: &StageRequests, i| String::from_utf8(r.request(i).body.to_vec()).unwrap();
        assert_eq!(body(&fixed, 0), body(&fixed, 2));
        assert_ne!(body(&fixed, 0), body(&fixed, 1));
        let user_b = serde_json::to_string(&serde_json::json!([{"role": "user", "content": "b"}])).unwrap();
        assert_eq!(body(&fixed, 1), format!(r#"{{"model":"m","messages":{user_b},"stream":false,"max_tokens":8}}"#));
        let template = Workload::new(Prompts::template(crate::model::Api::Chat, "say {i}".into(), None), true, true).stage("m", &params);
        assert!(body(&template, 7).contains("say 7"), "{}", body(&template, 7));
        assert!(body(&template, 7).contains(r#""stream":true,"stream_options":{"include_usage":true}"#));
        assert_eq!(template.input_tokens(7), tokens::count("say 7"));
    }
}
