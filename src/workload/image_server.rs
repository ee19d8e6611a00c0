//! `images = { as_url = true }`: a stage's images served over HTTP from 127.0.0.1 by
//! llmload itself, for servers that fetch an image by URL (vLLM, SGLang and TGI do) —
//! so the request carries a short URL and the server's fetch and decode are part of
//! what is measured. One axum server per stage, on a thread of its own (its own
//! runtime: the engine's workers never serve it), up for as long as the stage's
//! requests are; `GET /images/{k}.{png|jpg}` answers image *k* of the pool.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::picture::Picture;

/// The running server; dropping it stops it.
#[derive(Debug)]
pub struct ImageServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for ImageServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

type Images = Arc<Vec<(Vec<u8>, &'static str)>>;

impl ImageServer {
    /// Serves `images` on a port of 127.0.0.1 the kernel picks.
    pub fn start(images: &[Picture]) -> std::io::Result<ImageServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let images: Images = Arc::new(images.iter().map(|p| (p.bytes.clone(), p.format.mime())).collect());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("llmload-images".into()).spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                let app = Router::new().route("/images/{name}", get(image)).with_state(images);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        })?;
        Ok(ImageServer { addr, stop: Some(stop) })
    }

    /// Image `k`'s URL, named with `extension`.
    pub fn url(&self, k: usize, extension: &str) -> String {
        format!("http://{}/images/{k}.{extension}", self.addr)
    }
}

async fn image(State(images): State<Images>, Path(name): Path<String>) -> Response {
    let k = name.split_once('.').and_then(|(k, _)| k.parse::<usize>().ok());
    match k.and_then(|k| images.get(k)) {
        Some((bytes, mime)) => ([(header::CONTENT_TYPE, *mime)], bytes.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, "no such image").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::picture::Format;
    use std::io::{Read, Write};

    #[test]
    fn each_image_is_served_at_its_url_until_the_server_is_dropped() {
        let pictures = [Picture::draw(8, 8, Format::Png, 1), Picture::draw(9, 9, Format::Jpeg, 2)];
        let server = ImageServer::start(&pictures).unwrap();
        let get = |path: &str| {
            let mut s = std::net::TcpStream::connect(server.addr).unwrap();
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
            out
        };
        let url = server.url(1, "jpg");
        assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/images/1.jpg"), "{url}");
        let reply = get("/images/1.jpg");
        assert!(reply.starts_with(b"HTTP/1.0 200") || reply.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&reply));
        assert!(reply.ends_with(&pictures[1].bytes) && String::from_utf8_lossy(&reply).contains("image/jpeg"));
        assert!(String::from_utf8_lossy(&get("/images/7.png")).contains("404"));
        let addr = server.addr;
        drop(server);
        // Stopped: no longer answers (give its thread a moment to close the listener).
        let gone = (0..50).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::net::TcpStream::connect(addr).is_err()
        });
        assert!(gone, "still listening after drop");
    }
}
