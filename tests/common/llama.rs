//! A real model server for tests: llama.cpp's llama-server with Gemma-3 270M, as
//! scripts/install-llama-server builds and caches them. [`LlamaServer::start`] starts
//! one on a free loopback port, waits for `/health`, and stops it when dropped; a
//! failing test prints the server's log. One server runs at a time (a process-wide
//! lock): on 2 cores, two would time each other.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The cache scripts/install-llama-server fills, unless the environment names the files.
const CACHE: &str = ".cache/llmload-tests";
const SERVER: &str = "llama.cpp-11434.0.0-portable/bin/llama-server";
const MODEL: &str = "models/gemma3-270m-q4_k_m.gguf";
/// The model's name as the tests send it (llama-server serves whatever it loaded).
pub const MODEL_NAME: &str = "gemma3-270m";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The server binary and the model, when installed.
fn installed() -> Option<(PathBuf, PathBuf)> {
    let cache =
        || std::env::var_os("LLMLOAD_CACHE").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(CACHE)));
    let server = std::env::var_os("LLMLOAD_LLAMA_SERVER").map(PathBuf::from).or_else(|| cache().map(|c| c.join(SERVER)))?;
    let model = std::env::var_os("LLMLOAD_LLAMA_MODEL").map(PathBuf::from).or_else(|| cache().map(|c| c.join(MODEL)))?;
    (server.is_file() && model.is_file()).then_some((server, model))
}

/// A running llama-server.
pub struct LlamaServer {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl LlamaServer {
    /// Starts llama-server with the model and `args` (`-np`, `-c`, …) after the fixed
    /// ones; None (the test skips, saying why) when it is not installed. Panics, with
    /// its log, when it does not come up healthy within a minute.
    pub fn start(args: &[&str]) -> Option<LlamaServer> {
        let (server, model) = super::part(
            installed(),
            "llama.cpp's llama-server and Gemma-3 270M (scripts/install-llama-server builds them into ~/.cache/llmload-tests)",
        )?;
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("llama-server.log");
        // A port the kernel just handed out and took back: free unless raced, and a
        // server that lost the race says so in its log (the panic shows it).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(server)
            .arg("-m")
            .arg(model)
            // One thread computes: the other core is left to the server's HTTP threads
            // and to llmload, so that neither waits on the other's compute and the
            // timings compared are the server's, not the box's contention.
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "-t", "1", "--alias", MODEL_NAME, "--metrics", "--no-webui"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start llama-server");
        let mut s = LlamaServer { child, port, log, _dir: dir, _turn: turn };
        let deadline = Instant::now() + Duration::from_secs(60);
        while s.get("/health").map(|(status, _)| status) != Some(200) {
            if let Ok(Some(exit)) = s.child.try_wait() {
                panic!("llama-server exited ({exit}) before it was healthy:\n{}", s.log());
            }
            assert!(Instant::now() < deadline, "llama-server not healthy within 60 s:\n{}", s.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(s)
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// `http://127.0.0.1:PORT`
    pub fn root(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything the server wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A GET of `path` on its own connection: the status and body, None when it could
    /// not connect.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.call("GET", path, None)
    }

    /// A POST of JSON to `path`: the status and body.
    pub fn post(&self, path: &str, json: &serde_json::Value) -> (u16, String) {
        self.call("POST", path, Some(json.to_string())).expect("llama-server answers")
    }

    fn call(&self, method: &str, path: &str, body: Option<String>) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).ok()?;
        s.write_all(body.as_bytes()).ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        // Chunked bodies are left as sent: the tests read JSON replies with a length.
        Some((status, body.to_string()))
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- llama-server's log ---\n{}", self.log());
        }
    }
}
