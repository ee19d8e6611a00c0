//! Failures: transport errors classified by kind, error replies read for their
//! message (OpenAI-style JSON, or an HTML page's words), and every detail scrubbed of the
//! API key and cut to one short line.

use std::time::{Duration, Instant};

use http::header::{CONTENT_TYPE, HeaderMap};
use serde::Deserialize;

use super::transport::Error;
use super::{Client, ERROR_BODY_BYTES};
use crate::model::{FailureKind, RequestRecord};

/// An OpenAI-style error body: only `error.message` is kept, the rest is skipped unkept.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorMsg,
}

#[derive(Deserialize)]
struct ErrorMsg {
    message: String,
}

impl Client {
    /// A non-2xx reply: its kind is its status, whatever becomes of its body, whose
    /// message (from its first [`ERROR_BODY_BYTES`]) is the detail.
    pub(super) async fn read_error(&self, mut resp: super::Response<'_>, start: Instant, status: u16) -> RequestRecord {
        let head = self.read_head(&mut resp, ERROR_BODY_BYTES).await;
        let latency = start.elapsed();
        let detail = match &head.cut {
            None => format!("HTTP {status}: {}", self.server_message(&head.body, head.complete)),
            Some(why) if head.body.is_empty() => format!("HTTP {status}: (body cut: {why})"),
            // The message shortened so that why the body was cut stays in the detail.
            Some(why) => {
                let message = truncate(&self.server_message(&head.body, false), DETAIL_CHARS / 2);
                format!("HTTP {status}: {message} (body cut: {why})")
            }
        };
        self.fail(FailureKind::from_status(status), latency, Some(status), head.bytes, &detail)
    }

    /// A stream reply's Content-Type when it is present and not `text/event-stream`,
    /// scrubbed and shortened for a detail.
    pub(super) fn not_event_stream(&self, headers: &HeaderMap) -> Option<String> {
        let value = String::from_utf8_lossy(headers.get(CONTENT_TYPE)?.as_bytes()).into_owned();
        let media = value.split(';').next().unwrap_or_default().trim();
        (!media.eq_ignore_ascii_case("text/event-stream")).then(|| truncate(&self.scrub(&value), 80))
    }

    /// A stream was asked for and the reply is something else (a server that ignores
    /// `"stream": true` answers with a whole completion): a decode failure, not a cut
    /// stream. It fails on the headers: only body bytes already here are counted, so a
    /// body that drips does not hold the request until its timeout.
    pub(super) async fn not_a_stream(
        &self,
        mut resp: super::Response<'_>,
        start: Instant,
        status: u16,
        content_type: &str,
    ) -> RequestRecord {
        let mut bytes = 0u64;
        while bytes < ERROR_BODY_BYTES as u64 {
            match futures_util::FutureExt::now_or_never(resp.chunk()) {
                Some(Ok(Some(chunk))) => bytes += chunk.len() as u64,
                _ => break,
            }
        }
        let detail = format!("HTTP {status}: asked for a stream, got Content-Type {content_type} (the server ignores \"stream\": true)");
        self.fail(FailureKind::Decode, start.elapsed(), Some(status), bytes, &detail)
    }

    /// A failure record whose detail has the key scrubbed out, then cut to length.
    pub(super) fn fail(&self, kind: FailureKind, latency: Duration, status: Option<u16>, bytes: u64, detail: &str) -> RequestRecord {
        RequestRecord::failed(kind, latency, status, bytes, truncate(&self.scrub(detail), DETAIL_CHARS))
    }

    /// Removes the API key and secret header values from text a server or library
    /// produced.
    pub(super) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for k in &self.secrets {
            if out.contains(k.as_str()) {
                out = out.replace(k.as_str(), "[REDACTED]");
            }
        }
        out
    }

    /// The `error.message` of an OpenAI-style error body, else the start of the body,
    /// with the key scrubbed. `complete`: the body was read to its end.
    fn server_message(&self, body: &[u8], complete: bool) -> String {
        if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
            return self.scrub(&e.error.message);
        }
        let mut window = &body[..body.len().min(SCAN_BYTES)];
        if body.len() > SCAN_BYTES || !complete {
            // A secret cut by the window's edge (or where the body broke off) would
            // escape the scrub: drop a tail that is the start of one.
            for key in &self.secrets {
                let key = key.as_bytes();
                if let Some(n) = (1..key.len()).rev().find(|&n| window.ends_with(&key[..n])) {
                    window = &window[..window.len() - n];
                }
            }
        }
        let text = self.scrub(&String::from_utf8_lossy(window));
        // An error page from a proxy: its words, not its markup.
        let words = html_text(&text).split_whitespace().collect::<Vec<_>>().join(" ");
        match (words.is_empty(), body.is_empty()) {
            (false, _) => words,
            (true, true) => "(empty body)".to_string(),
            (true, false) => format!("({} byte body without text)", body.len()),
        }
    }
}

/// Longest failure detail kept, in characters.
pub(super) const DETAIL_CHARS: usize = 240;
/// How much of a non-JSON error body is read for its detail.
const SCAN_BYTES: usize = 2048;

/// The failure kind of a transport error.
pub(super) fn classify(e: &Error) -> FailureKind {
    match e {
        Error::ConnectTimeout(_) => FailureKind::ConnectTimeout,
        // The OS gave up on the handshake (ETIMEDOUT) before the connect timeout did.
        Error::Connect(io, _) if io.kind() == std::io::ErrorKind::TimedOut => FailureKind::ConnectTimeout,
        Error::Connect(..) | Error::Tls(_) => FailureKind::Connect,
        Error::Timeout(_) => FailureKind::Timeout,
        Error::Body(_) => FailureKind::Body,
        Error::Send(_) => FailureKind::Transport,
    }
}

fn html_text(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.trim_start().starts_with('<') {
        return s.into();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        out.push(' ');
        let tag = &rest[open + 1..];
        let Some(close) = tag.find('>') else {
            // A tag cut by the end of the window.
            return out.into();
        };
        let name = tag[..close].split(|c: char| c.is_ascii_whitespace() || c == '/').next().unwrap_or("").to_ascii_lowercase();
        rest = &tag[close + 1..];
        if name == "script" || name == "style" {
            let end = format!("</{name}");
            match rest.to_ascii_lowercase().find(&end) {
                // Lowercasing ASCII keeps byte offsets.
                Some(i) => rest = &rest[i..],
                None => return out.into(),
            }
        }
    }
    out.push_str(rest);
    out.into()
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-unit-SECRET-0123456789";

    fn client() -> Client {
        crate::client::tests::unsent(Some(KEY))
    }

    #[test]
    fn server_message_prefers_openai_error() {
        let c = client();
        assert_eq!(c.server_message(br#"{"error":{"message":"model not found"}}"#, true), "model not found");
        assert_eq!(c.server_message(b"<html>\n <b>Bad Gateway</b></html>", true), "Bad Gateway");
        assert_eq!(c.server_message(b"upstream <error>", true), "upstream <error>");
        assert_eq!(c.server_message(b"", true), "(empty body)");
    }

    #[test]
    fn the_key_is_scrubbed_wherever_it_sits_in_a_body() {
        let c = client();
        let echo = format!(r#"{{"error":{{"message":"{} bad key {KEY}"}}}}"#, "x".repeat(300));
        let cases = [
            echo.into_bytes(),
            format!("{}{KEY}", "y".repeat(100)).into_bytes(),
            // The key straddles the scan window's edge, behind a run of whitespace that
            // collapses: no prefix of it may survive.
            format!("a{}{KEY}tail", " ".repeat(SCAN_BYTES - 10)).into_bytes(),
        ];
        for body in cases {
            let rec = c.fail(FailureKind::Http4xx, Duration::ZERO, Some(401), 0, &c.server_message(&body, true));
            let detail = rec.detail.unwrap();
            assert!(!detail.contains(&KEY[..8]), "{detail}");
            assert!(detail.chars().count() <= DETAIL_CHARS + 1, "{detail}");
        }
        // A short body that broke off inside the key.
        let cut = format!("upstream says hello, {}", &KEY[..14]);
        let message = c.server_message(cut.as_bytes(), false);
        assert_eq!(message, "upstream says hello,");
        // Only a tail that is the start of the key goes: a body that broke off elsewhere
        // keeps all it had.
        assert_eq!(c.server_message(b"{\"error\":{\"message\":\"over", false), "{\"error\":{\"message\":\"over");
    }

    #[test]
    fn secret_header_values_are_scrubbed_like_the_key() {
        let header = |name: &str, value: &str, secret: bool| crate::client::ExtraHeader {
            name: name.into(),
            value: value.into(),
            secret_from: secret.then(|| "$H".to_string()),
        };
        let hdr = "hdr-SECRET-9876543210";
        let c = crate::client::tests::unsent_with(None, vec![header("api-key", hdr, true), header("x-team", "search", false)]);
        let body = format!(r#"{{"error":{{"message":"bad api-key {hdr} for team search"}}}}"#);
        assert_eq!(c.server_message(body.as_bytes(), true), "bad api-key [REDACTED] for team search", "literal values are no secret");
        let cut = format!("denied: {}", &hdr[..9]);
        assert_eq!(c.server_message(cut.as_bytes(), false), "denied:");
        // A value that is no header value is named by its header and source, never shown.
        let bad = Client::new(crate::client::ClientConfig {
            headers: vec![header("api-key", "line\nbreak", true)],
            ..crate::client::tests::config(None)
        });
        assert_eq!(bad.err().unwrap().to_string(), "target.headers.\"api-key\": the value in $H is not a valid HTTP header value");
    }

    #[test]
    fn error_messages_are_read_typed() {
        let c = client();
        let extra = format!(r#"{{"junk":[{}0],"error":{{"code":5,"message":"overloaded","param":{{"a":[1]}}}}}}"#, "0,".repeat(1000));
        assert_eq!(c.server_message(extra.as_bytes(), true), "overloaded");
        // Not the expected shape: the text of the body instead.
        assert_eq!(c.server_message(br#"{"error":"plain"}"#, true), r#"{"error":"plain"}"#);
        assert_eq!(c.server_message(b"[0,0,0]", true), "[0,0,0]");
    }

    #[test]
    fn html_pages_read_as_text() {
        let page = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title><style>body { color: red }</style>\
                    <SCRIPT>if (a < b) {}</SCRIPT></head>\r\n<body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>";
        assert_eq!(client().server_message(page.as_bytes(), true), "502 Bad Gateway 502 Bad Gateway nginx");
        // Cut by the window: no panic, the text so far.
        assert_eq!(client().server_message(b"<p>over</p><a href=\"x", true), "over");
        assert_eq!(client().server_message(b"<p>x<script>never closed", true), "x");
        assert_eq!(client().server_message("<p>café ☕</p>".as_bytes(), true), "café ☕");
    }

    #[test]
    fn invalid_utf8_in_an_error_body_is_replaced() {
        let c = client();
        assert_eq!(c.server_message(b"bad \xFF\xFE gateway", true), "bad \u{FFFD}\u{FFFD} gateway");
        assert_eq!(c.server_message(b"{\"error\":{\"message\":\"\xFF\"}}", true), "{\"error\":{\"message\":\"\u{FFFD}\"}}");
    }
}
