//! Raw HTTP/1.1 servers on 127.0.0.1 for tests of the client against servers that
//! misbehave in one way each: a listener that hands every connection to a handler, and
//! the pieces of requests and responses written by hand.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use std::time::{Duration, Instant};

use llmload::client::{Client, ClientConfig};
use llmload::model::{RequestParams, RequestRecord};
use llmload::workload::{Prompts, Workload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves every connection to a fresh port with `handler`.
pub async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(handler(s));
        }
    });
    addr
}

/// Reads one request (head and Content-Length body); returns its head, or None when the
/// client closed the connection first.
pub async fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut piece).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&piece[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().parse().unwrap()))
        .unwrap_or(0usize);
    while buf.len() < head_end + length {
        match s.read(&mut piece).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&piece[..n]),
        }
    }
    Some(head)
}

/// Waits until the client closes the connection (reading and dropping anything it sends).
pub async fn until_closed(s: &mut TcpStream) {
    let mut piece = [0u8; 1024];
    while let Ok(1..) = s.read(&mut piece).await {}
}

/// A whole response with a Content-Length.
pub fn response(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The head of a chunked event stream.
pub const STREAM_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

/// One HTTP/1.1 chunk.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

pub fn content_event(text: &str) -> String {
    format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n")
}

/// A server that answers every request with the same bytes.
pub async fn fixed(reply: Vec<u8>) -> SocketAddr {
    let reply = Arc::new(reply);
    serve(move |mut s| {
        let reply = reply.clone();
        async move {
            while read_request(&mut s).await.is_some() {
                if s.write_all(&reply).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// The key every client here sends: never to appear in a record.
pub const KEY: &str = "sk-hostile-SECRET-0123456789";
/// Upper bound for any single request in these tests.
pub const BOUND: Duration = Duration::from_secs(10);

pub struct Cfg {
    pub stream: bool,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub pool_size: usize,
    pub body_budget: usize,
    /// https, and whether any certificate is taken.
    pub tls: Option<bool>,
}

impl Default for Cfg {
    fn default() -> Self {
        Cfg {
            stream: false,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            idle_timeout: None,
            pool_size: 1,
            body_budget: llmload::client::BODY_BUDGET_BYTES,
            tls: None,
        }
    }
}

pub fn client(addr: SocketAddr, cfg: Cfg) -> Client {
    Client::new(ClientConfig {
        base_url: url::Url::parse(&format!("{}://{addr}/v1", if cfg.tls.is_some() { "https" } else { "http" })).unwrap(),
        api: llmload::model::Api::Chat,
        path: None,
        api_key: Some(KEY.to_string()),
        api_key_env: "HOSTILE_KEY".into(),
        timeout: cfg.timeout,
        connect_timeout: cfg.connect_timeout,
        idle_timeout: cfg.idle_timeout,
        insecure: cfg.tls == Some(true),
        pool_size: cfg.pool_size,
        stream: cfg.stream,
        keep_content: false,
        texts_out: false,
        headers: Vec::new(),
        tokenizer: llmload::workload::Tokenizer::o200k(),
        body_budget: cfg.body_budget,
    })
    .unwrap()
}

/// Sends one request; returns its record and how long the call took.
pub async fn send(client: &Client) -> (RequestRecord, Duration) {
    let prompts = Prompts::from_texts(&["hello"]).expect("one prompt");
    let body = Workload::new(prompts, client.stream(), false)
        .stage(0, "m", &RequestParams::default(), &Default::default(), Default::default())
        .request(0)
        .body;
    let t = Instant::now();
    let rec = tokio::time::timeout(BOUND, client.send(body, Default::default())).await.expect("send returns within the bound");
    (rec, t.elapsed())
}
