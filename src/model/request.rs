//! What is sent: the request parameters a scenario sets, and a request ready to go.

use serde::Serialize;

/// Generation parameters sent with every request of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

/// One request as the workload yields it and the client sends it: the body is
/// serialized once, before the clock runs, and shared by its retries.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// The JSON body, ready to send.
    pub body: bytes::Bytes,
}
