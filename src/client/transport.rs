//! The HTTP/1.1 transport, on hyper's client connections directly: llmload keeps its own
//! idle connections (plain TCP or rustls), and each request drives its connection in
//! its own task. No spawned connection task, no tower stack, no URL parsed per request:
//! a load generator's cost per request is what it measures against (docs/benchmarks.md,
//! "Against oha").

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Mutex;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, HeaderMap, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;

/// A byte stream a connection runs on: TCP, or TLS over it.
pub(super) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

type Io = TokioIo<Box<dyn Stream>>;

/// One HTTP/1.1 connection: its sender, and the connection future that does its I/O
/// (None once it ended).
struct Conn {
    send: http1::SendRequest<Full<Bytes>>,
    io: Option<http1::Connection<Io, Full<Bytes>>>,
    /// It served a request before: a server may have closed it meanwhile.
    reused: bool,
}

/// Polls `fut`, driving the connection `io` while it waits; once the connection ended,
/// `fut` alone (it then ends too: its channel to the connection is gone).
async fn drive<F: Future>(io: &mut Option<http1::Connection<Io, Full<Bytes>>>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(v);
        }
        if let Some(c) = io
            && Pin::new(c).poll(cx).is_ready()
        {
            *io = None;
            return fut.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
}

impl Conn {
    /// Waits until it can take a request; false when it closed instead.
    async fn ready(&mut self) -> bool {
        let send = &mut self.send;
        self.io.is_some() && drive(&mut self.io, poll_fn(|cx| send.poll_ready(cx))).await.is_ok() && self.io.is_some()
    }
}

/// How a request failed below HTTP.
#[derive(Debug)]
pub(super) enum Error {
    /// No connection within the connect timeout (TCP and TLS handshakes together).
    ConnectTimeout(Duration),
    /// The address did not resolve, or the TCP connection was refused or failed.
    Connect(std::io::Error),
    /// The TLS handshake failed (a bad certificate, a server that does not speak TLS).
    Tls(std::io::Error),
    /// The whole request's timeout passed.
    Timeout(Duration),
    /// The request could not be sent, or its response head not read.
    Send(hyper::Error),
    /// The response body broke off.
    Body(hyper::Error),
}

impl Error {
    pub(super) fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_) | Error::ConnectTimeout(_))
    }

    /// One line: what failed, with its causes, and never a URL.
    pub(super) fn describe(&self) -> String {
        match self {
            Error::ConnectTimeout(d) => format!("connect timed out after {d:?}"),
            Error::Connect(e) => format!("connect: {}", chain(e)),
            Error::Tls(e) => format!("TLS handshake: {}", chain(e)),
            Error::Timeout(d) => format!("timed out after {d:?}"),
            Error::Send(e) => chain(e),
            Error::Body(e) => format!("body: {}", chain(e)),
        }
    }
}

/// An error and its sources, each once.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let part = err.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        cur = err.source();
    }
    text
}

/// Where requests go and how connections to it are made.
pub(super) struct Target {
    /// Host and port, as connected to.
    pub host: String,
    pub port: u16,
    /// The request's path and query (origin form).
    pub path: Uri,
    /// TLS, when the scheme is https: the connector and the name verified.
    pub tls: Option<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>)>,
}

/// The connections to one target, and the headers every request carries.
pub(super) struct Transport {
    target: Target,
    /// Every request's headers (Host first), built once.
    headers: HeaderMap,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    timeout: Duration,
    connect_timeout: Duration,
}

/// A response whose head arrived; its body is read with [`Response::chunk`]. Read to its
/// end, its connection goes back to the pool.
pub(super) struct Response<'t> {
    status: u16,
    headers: HeaderMap,
    body: Incoming,
    conn: Option<Conn>,
    transport: &'t Transport,
    /// The whole request's deadline.
    deadline: Pin<Box<Sleep>>,
}

impl Transport {
    pub(super) fn new(target: Target, mut headers: HeaderMap, max_idle: usize, timeout: Duration, connect_timeout: Duration) -> Transport {
        let default_port = if target.tls.is_some() { 443 } else { 80 };
        let host = match target.host.contains(':') {
            true => format!("[{}]", target.host),
            false => target.host.clone(),
        };
        let host = if target.port == default_port { host } else { format!("{host}:{}", target.port) };
        if let Ok(v) = HeaderValue::from_str(&host) {
            headers.insert(HOST, v);
        }
        Transport { target, headers, idle: Mutex::new(Vec::new()), max_idle, timeout, connect_timeout }
    }

    /// POSTs `body` with the fixed headers; the response once its head arrived.
    pub(super) async fn post(&self, body: Bytes) -> Result<Response<'_>, Error> {
        let start = Instant::now();
        let mut deadline = Box::pin(tokio::time::sleep_until((start + self.timeout).into()));
        let request = || {
            let mut req = Request::new(Full::new(body.clone()));
            *req.method_mut() = Method::POST;
            *req.uri_mut() = self.target.path.clone();
            req.headers_mut().clone_from(&self.headers);
            req
        };
        let work = async {
            // A reused connection the server closed unseen gives the request back unsent:
            // sent again once, on a new connection.
            let mut conn = self.checkout(start).await?;
            loop {
                let sent = conn.send.try_send_request(request());
                match drive(&mut conn.io, sent).await {
                    Ok(resp) => return Ok((conn, resp)),
                    Err(mut e) => {
                        if !(conn.reused && e.take_message().is_some()) {
                            return Err(Error::Send(e.into_error()));
                        }
                        conn = Box::pin(self.connect(start)).await?;
                    }
                }
            }
        };
        let (conn, resp) = tokio::select! {
            biased;
            r = work => r?,
            _ = deadline.as_mut() => return Err(Error::Timeout(self.timeout)),
        };
        let (head, body) = resp.into_parts();
        Ok(Response { status: head.status.as_u16(), headers: head.headers, body, conn: Some(conn), transport: self, deadline })
    }

    /// An idle connection that is still open, else a new one.
    async fn checkout(&self, start: Instant) -> Result<Conn, Error> {
        loop {
            let Some(mut conn) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() else { break };
            if conn.ready().await {
                return Ok(conn);
            }
        }
        // Boxed: a new connection is rare, and its future (TCP, TLS, handshake) is large;
        // inline, every request's future would carry it and be copied with it.
        Box::pin(self.connect(start)).await
    }

    /// A new connection: TCP (and TLS), then the HTTP/1.1 handshake.
    async fn connect(&self, start: Instant) -> Result<Conn, Error> {
        // Bounded by the connect timeout, and by what is left of the whole request's.
        let limit = self.connect_timeout.min(self.timeout.saturating_sub(start.elapsed()));
        let open = async {
            let t = &self.target;
            let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port)).await.map_err(Error::Connect)?;
            let _ = tcp.set_nodelay(true);
            let stream: Box<dyn Stream> = match &t.tls {
                None => Box::new(tcp),
                Some((connector, name)) => Box::new(connector.connect(name.clone(), tcp).await.map_err(Error::Tls)?),
            };
            let (send, io) = http1::handshake(TokioIo::new(stream)).await.map_err(Error::Send)?;
            Ok(Conn { send, io: Some(io), reused: false })
        };
        match tokio::time::timeout(limit, open).await {
            Ok(conn) => conn,
            Err(_) => Err(Error::ConnectTimeout(limit)),
        }
    }

    /// Keeps a connection whose response was read to its end.
    fn put_back(&self, mut conn: Conn) {
        if conn.io.is_none() || conn.send.is_closed() {
            return;
        }
        conn.reused = true;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}

impl Response<'_> {
    pub(super) fn status(&self) -> u16 {
        self.status
    }

    pub(super) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body's length as the server declares it.
    pub(super) fn content_length(&self) -> Option<u64> {
        hyper::body::Body::size_hint(&self.body).exact()
    }

    /// The next piece of the body; None at its end.
    pub(super) async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let Some(conn) = self.conn.as_mut() else { return Ok(None) };
            let frame = tokio::select! {
                biased;
                f = drive(&mut conn.io, self.body.frame()) => f,
                _ = self.deadline.as_mut() => return Err(Error::Timeout(self.transport.timeout)),
            };
            match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => return Ok(Some(data)),
                    // Trailers: nothing llmload reads.
                    Err(_) => continue,
                },
                Some(Err(e)) => {
                    self.conn = None;
                    return Err(Error::Body(e));
                }
                None => {
                    if let Some(conn) = self.conn.take() {
                        self.transport.put_back(conn);
                    }
                    return Ok(None);
                }
            }
        }
    }
}
