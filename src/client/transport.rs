//! The HTTP/1.1 transport, on hyper's client connections directly: llmload keeps its own
//! idle connections (plain TCP or rustls), and each request drives its connection in
//! its own task. No spawned connection task, no tower stack, no URL parsed per request:
//! a load generator's cost per request is what it measures against (docs/benchmarks.md,
//! "Against oha").

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, HeaderMap, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A byte stream a connection runs on: TCP, or TLS over it.
pub(super) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

type Io = TokioIo<Heard>;

/// A connection's bytes, noting whether any arrived since the flag was last cleared:
/// a reused connection that ended before a byte of its response came can be resent
/// (the server closed it, unseen, while it sat idle), one that ended after cannot.
struct Heard {
    io: Box<dyn Stream>,
    /// Set by every read that brought bytes; shared with the connection's [`Conn`].
    heard: Arc<AtomicBool>,
}

impl AsyncRead for Heard {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut me.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            // Relaxed: written and read by the one task that drives the connection.
            me.heard.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Heard {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// One HTTP/1.1 connection: its sender, and the connection future that does its I/O
/// (None once it ended).
struct Conn {
    send: http1::SendRequest<Full<Bytes>>,
    io: Option<http1::Connection<Io, Full<Bytes>>>,
    /// It served a request before: a server may have closed it meanwhile.
    reused: bool,
    /// Bytes arrived since the request being sent went out ([`Heard`]).
    heard: Arc<AtomicBool>,
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
    /// Waits until it can take a request; false when it closed instead. The connection
    /// is polled first, every time: a server's close that arrived while it sat idle is
    /// read there (a cheap poll of the socket's readiness, no read when none came), so
    /// no request goes out on a connection already known to be gone. Its sender alone
    /// may say ready without a look at the socket.
    async fn ready(&mut self) -> bool {
        let (send, io) = (&mut self.send, &mut self.io);
        poll_fn(|cx| {
            if let Some(c) = io.as_mut()
                && Pin::new(c).poll(cx).is_ready()
            {
                *io = None;
                return Poll::Ready(false);
            }
            send.poll_ready(cx).map(|r| r.is_ok())
        })
        .await
    }
}

/// How a request failed below HTTP.
#[derive(Debug)]
pub(super) enum Error {
    /// No connection within the connect timeout (TCP and TLS handshakes together).
    ConnectTimeout(Duration),
    /// The address did not resolve, or the TCP connection was refused or failed; with
    /// the host and port tried (a URL's host never holds credentials).
    Connect(std::io::Error, String),
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
            Error::Connect(e, to) => format!("connect to {to}: {}", chain(e)),
            Error::Tls(e) => format!("TLS handshake: {}", chain(e)),
            Error::Timeout(d) => format!("timed out after {d:?}"),
            Error::Send(e) => chain(e),
            Error::Body(e) => format!("body: {}", chain(e)),
        }
    }
}

/// The connection ended under the request: closed (before or while its response head
/// would come), reset, or canceled unsent. Not a timeout, a parse error or a TLS alert.
fn ended(e: &hyper::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return true;
    }
    let mut cur = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(io.kind(), BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof);
        }
        cur = err.source();
    }
    false
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
    /// POST for the API; GET for a server's metrics.
    pub method: Method,
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
    /// It was sent again on a new connection: its reused one ended unanswered.
    reconnected: bool,
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

    /// Sends `body` (POST; a GET's is empty) with the fixed headers; the response once
    /// its head arrived.
    pub(super) async fn post(&self, body: Bytes) -> Result<Response<'_>, Error> {
        let start = Instant::now();
        let mut deadline = Box::pin(tokio::time::sleep_until((start + self.timeout).into()));
        let request = || {
            let mut req = Request::new(Full::new(body.clone()));
            *req.method_mut() = self.target.method.clone();
            *req.uri_mut() = self.target.path.clone();
            req.headers_mut().clone_from(&self.headers);
            req
        };
        let work = async {
            let mut conn = self.checkout(start).await?;
            let mut reconnected = false;
            loop {
                conn.heard.store(false, Ordering::Relaxed);
                let sent = conn.send.try_send_request(request());
                match drive(&mut conn.io, sent).await {
                    Ok(resp) => return Ok((conn, resp, reconnected)),
                    Err(mut e) => {
                        // A reused connection that ended before any byte of the response
                        // came: the server closed it while it sat idle (or right after
                        // the last response, keep-alive headers notwithstanding), and the
                        // request never reached it. Sent again once, on a new connection,
                        // as pooled clients do; a new connection's failure stands.
                        let unsent = e.take_message().is_some();
                        let unanswered = !conn.heard.load(Ordering::Relaxed) && ended(e.error());
                        if !(conn.reused && (unsent || unanswered)) {
                            return Err(Error::Send(e.into_error()));
                        }
                        reconnected = true;
                        conn = Box::pin(self.connect(start)).await?;
                    }
                }
            }
        };
        let (conn, resp, reconnected) = tokio::select! {
            biased;
            r = work => r?,
            _ = deadline.as_mut() => return Err(Error::Timeout(self.timeout)),
        };
        let (head, body) = resp.into_parts();
        Ok(Response { status: head.status.as_u16(), headers: head.headers, body, conn: Some(conn), transport: self, deadline, reconnected })
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
            let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port)).await.map_err(|e| {
                let host = if t.host.contains(':') { format!("[{}]", t.host) } else { t.host.clone() };
                Error::Connect(e, format!("{host}:{}", t.port))
            })?;
            let _ = tcp.set_nodelay(true);
            let stream: Box<dyn Stream> = match &t.tls {
                None => Box::new(tcp),
                Some((connector, name)) => Box::new(connector.connect(name.clone(), tcp).await.map_err(Error::Tls)?),
            };
            let heard = Arc::new(AtomicBool::new(false));
            let (send, io) = http1::handshake(TokioIo::new(Heard { io: stream, heard: heard.clone() })).await.map_err(Error::Send)?;
            Ok(Conn { send, io: Some(io), reused: false, heard })
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

    /// The whole body, at most `most` bytes (more is an error, never kept); errors in
    /// one line.
    pub(super) async fn read_all(&mut self, most: usize) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk().await.map_err(|e| e.describe())? {
            if body.len() + chunk.len() > most {
                return Err(format!("a reply over {} MiB", most >> 20));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// It was sent again on a new connection, its reused one having ended unanswered.
    pub(super) fn reconnected(&self) -> bool {
        self.reconnected
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
