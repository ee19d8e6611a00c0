//! A GET of one URL, again and again: a server's metrics endpoint, read on a task of its
//! own with its own timeout and one kept connection, its headers (a bearer token for a
//! protected endpoint) never shown. Never the API key: a metrics endpoint is not the API.
//! (A POST with no body, for a server's admin route, goes the same way.)

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue, USER_AGENT};

use super::{ClientError, ExtraHeader, Transport, connect_within, target};

/// Most bytes of a reply read (a large vLLM exposition is ~100 KB).
const MOST_BYTES: usize = 16 << 20;

/// A URL fit to show: no user, password or query (where keys sometimes hide).
pub fn shown(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = (u.set_username(""), u.set_password(None));
    u.set_query(None);
    u.to_string()
}

pub struct Getter {
    transport: Transport,
    /// Header values that are secrets, scrubbed from what a failure says.
    secrets: Vec<String>,
}

/// A reply read whole.
pub struct Got {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Getter {
    pub fn new(url: &url::Url, headers: &[ExtraHeader], timeout: Duration, insecure: bool) -> Result<Getter, ClientError> {
        Getter::with_method(http::Method::GET, url, headers, timeout, insecure)
    }

    /// As [`Getter::new`], sending `method` with an empty body (a server's admin action).
    pub fn with_method(
        method: http::Method,
        url: &url::Url,
        headers: &[ExtraHeader],
        timeout: Duration,
        insecure: bool,
    ) -> Result<Getter, ClientError> {
        let mut map = HeaderMap::new();
        map.insert(ACCEPT, HeaderValue::from_static("text/plain;version=0.0.4;q=0.9,*/*;q=0.1"));
        map.insert(USER_AGENT, HeaderValue::from_static(concat!("llmload/", env!("CARGO_PKG_VERSION"))));
        for h in headers {
            let bad =
                || ClientError::BadHeader { name: h.name.clone(), from: h.secret_from.clone().unwrap_or_else(|| "the scenario".into()) };
            let mut value = HeaderValue::from_str(&h.value).map_err(|_| bad())?;
            value.set_sensitive(h.secret_from.is_some());
            map.append(HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| bad())?, value);
        }
        let target = target(url, url.path(), method, insecure)?;
        let transport = Transport::new(target, map, 1, timeout, connect_within(timeout, timeout));
        let secrets = headers.iter().filter(|h| h.secret_from.is_some() && !h.value.is_empty()).map(|h| h.value.clone()).collect();
        Ok(Getter { transport, secrets })
    }

    /// The reply, read whole; Err: one line, with no secret in it.
    pub async fn get(&self) -> Result<Got, String> {
        self.read().await.map_err(|e| self.secrets.iter().fold(e, |e, s| e.replace(s.as_str(), "[REDACTED]")))
    }

    async fn read(&self) -> Result<Got, String> {
        let mut resp = self.transport.post(Bytes::new()).await.map_err(|e| e.describe())?;
        let status = resp.status();
        let content_type = resp.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let body = resp.read_all(MOST_BYTES).await?;
        Ok(Got { status, content_type, body })
    }
}
