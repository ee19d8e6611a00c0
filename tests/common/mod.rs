//! Helpers for tests that drive the real binary. All traffic stays on 127.0.0.1.
#![allow(dead_code)]

pub mod llama;
pub mod raw;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llmload"));
    c.env_remove("OPENAI_API_KEY").stdin(Stdio::null());
    c
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to the end, killing it (and failing the test) after `limit`.
pub fn run(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn llmload");
    wait(child, limit)
}

pub fn wait(mut child: Child, limit: Duration) -> Output {
    // Either stream may have been taken by the caller: it then reads as empty.
    fn drain(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    }
    let t_out = drain(child.stdout.take());
    let t_err = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("llmload did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() }
}

/// Writes a scenario into a fresh temp dir; returns (dir guard, path).
pub fn scenario(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// A quick scenario on the embedded mock with the given mock and stage tables.
pub fn quick(mock: &str, stages: &str) -> String {
    format!(
        "name = \"quick\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\n{mock}\n[prompts]\ntemplate = \"hello {{i}}\"\n{stages}"
    )
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Checks a result JSON against the committed schema.
pub fn assert_schema_valid(v: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(repo_path("docs/result.schema.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(v).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "result does not match docs/result.schema.json:\n{}", errors.join("\n"));
}

/// A JSON number, or a panic naming what was there instead.
pub fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A JSON count, or a panic naming what was there instead.
pub fn count(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// `llmload ARGS…`
pub fn cmd(args: &[&str]) -> Command {
    let mut c = bin();
    c.args(args);
    c
}

/// Runs a scenario text headless with `--json` and `env`, asserts success and that the
/// result fits the schema; its output and result.
pub fn run_headless(text: &str, env: &[(&str, &str)]) -> (Output, serde_json::Value) {
    let (d, path) = scenario(text);
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg(&path);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    assert_schema_valid(&v);
    (out, v)
}

/// Runs a scenario text with `run --json`, asserts success, returns output and result.
pub fn run_scenario(text: &str) -> (Output, serde_json::Value) {
    let (d, path) = scenario(text);
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--json"]);
    c.arg(&json).arg(&path);
    let out = run(c, Duration::from_secs(60));
    // Exit 3 is a run carried out whose verdict failed (a stage with no success, a
    // threshold): the code must say what the result says.
    assert!(matches!(out.status.code(), Some(0 | 3)), "exit {:?}: {}", out.status, out.stderr);
    let v = read_json(&json);
    assert_eq!(out.status.code() == Some(0), v["verdict"]["passed"] == true, "exit {:?}, verdict {}", out.status, v["verdict"]);
    (out, v)
}

/// Starts `llmload mock --port 0 ARGS…`; returns the child and its API root.
pub fn spawn_mock(args: &[&str]) -> (Child, String) {
    use std::io::BufRead;
    let mut child = cmd(&["mock", "--port", "0"]).args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://127.0.0.1:")).expect("mock prints its URL").to_string();
    (child, url)
}

/// Serves `app` on a free port of 127.0.0.1 from a thread and runtime of its own (so a
/// test's own runtime, or none, is no matter); returns its API root.
pub fn serve_app(app: axum::Router) -> String {
    use axum::serve::ListenerExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            // Nagle's algorithm off, as model servers (and the mock) run: else a stream's
            // first chunk after the head waits for the client's delayed ACK (~40 ms).
            let listener = tokio::net::TcpListener::from_std(listener).unwrap().tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app).await.unwrap()
        });
    });
    format!("http://{addr}/v1")
}

/// Runs a shipped scenario headless; its output and result.
pub fn run_shipped(rel: &str) -> (Output, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg(repo_path(rel));
    let out = run(c, Duration::from_secs(90));
    assert!(out.status.success(), "{}", out.stderr);
    (out, read_json(&json))
}

/// Multi-turn sessions on a mock with a prefix cache: each session opens with its own
/// 2,000-token document (a thousand groups: no two sessions share one by chance), and
/// later turns carry it and the history again, so the cache holds most of them.
pub const SESSIONS: &str = "name = \"sessions\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = true\n\
    [mock]\nbase_latency_ms = 5\nper_inflight_ms = 0\ninter_token_ms = 1\nprefill_ms_per_1k_tokens = 20\nprefix_cache_blocks = 10000\n\
    [prompts]\nsynthetic = { input = { mean = 60, stdev = 10, min = 30, max = 100 }, output = { min = 4, max = 8 } }\n\
    shared_prefix = { tokens = 2000, groups = 1000 }\nseed = 3\n[request]\nignore_eos = true\n\
    [conversation]\nturns = { min = 2, max = 4 }\nhistory = true\n\
    [[stage]]\nname = \"users\"\nconcurrency = 4\nrequests = 60\n";

/// Set by scripts/test, which installs every part the suite uses: a missing part then
/// fails its test instead of skipping it, so CI can never skip one silently.
pub const ALL_PARTS: &str = "LLMLOAD_ALL_PARTS";

/// A part a test needs beyond cargo (a browser, Prometheus, Slurm, root, a Python
/// package): `found` when it is here. When it is not, under scripts/test the test
/// fails saying what is missing; under a bare `cargo test` it is skipped, saying why on
/// the real stderr (libtest captures only `eprintln!`, which a passing test hides).
pub fn part<T>(found: Option<T>, needs: &str) -> Option<T> {
    if found.is_some() {
        return found;
    }
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    assert!(std::env::var_os(ALL_PARTS).is_none(), "{test}: needs {needs}, and {ALL_PARTS} says every part is installed");
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {test}: needs {needs}");
    None
}

/// A program on the PATH, by name.
pub fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Debian's Chromium (or `LLMLOAD_CHROMIUM`).
pub fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("LLMLOAD_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    part(path.exists().then_some(path), "Debian's chromium (scripts/test installs it; or set LLMLOAD_CHROMIUM)")
}

/// The Python of tests/requirements.txt (`LLMLOAD_PYTHON`, else the repo's .venv) when it
/// imports `modules`.
pub fn python(modules: &[&str]) -> Option<PathBuf> {
    let py = std::env::var_os("LLMLOAD_PYTHON").map_or_else(|| repo_path(".venv/bin/python"), PathBuf::from);
    let imports = py.exists()
        && Command::new(&py)
            .args(["-c", &format!("import {}", modules.join(", "))])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    part(
        imports.then_some(py),
        &format!("a Python with {} (scripts/test installs tests/requirements.txt into .venv; or set LLMLOAD_PYTHON)", modules.join(", ")),
    )
}

/// Whether this process runs as root.
pub fn root(why: &str) -> bool {
    part(rustix::process::geteuid().is_root().then_some(()), &format!("root ({why}; CI runs as root)")).is_some()
}

/// Programs on the PATH that come in one Debian package (or a few): all, or a skip.
pub fn programs(names: &[&str], package: &str) -> bool {
    part(names.iter().all(|p| program(p).is_some()).then_some(()), &format!("{package} (scripts/test installs it)")).is_some()
}

/// (wall s, behind s, below its rate) of every live view of a running open-loop stage.
pub type BehindLog = std::sync::Arc<std::sync::Mutex<Vec<(f64, f64, bool)>>>;

/// Runs `text` in-process (20 s at most) with a view that logs how far behind its rate
/// the running stage is each time a snapshot comes, as the dashboard's row would say.
pub async fn run_watching_behind(text: &str) -> (llmload::run::RunOutcome, Vec<(f64, f64, bool)>) {
    use llmload::run::{RunOptions, Watcher, run_with_stop};
    let scenario = llmload::scenario::Scenario::parse(text, "inline.toml", None).unwrap();
    let seen = BehindLog::default();
    let log = seen.clone();
    let watcher: Watcher = Box::new(move |mut rx, _stop| {
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                if let Some(c) = rx.borrow_and_update().current.as_ref().filter(|c| c.started > 0) {
                    let row = llmload::report::StageResult::summary(c);
                    let below = row.open_loop.as_ref().is_some_and(|o| o.below_target);
                    log.lock().unwrap().push((c.wall.as_secs_f64(), c.behind.as_secs_f64(), below));
                }
            }
        })
    });
    let opts = RunOptions { watcher: Some(watcher), ..RunOptions::quiet() };
    let run = run_with_stop(scenario, opts, llmload::engine::Stop::default());
    let out = tokio::time::timeout(Duration::from_secs(20), run).await.expect("ends within 20 s").expect("runs");
    let seen = seen.lock().unwrap().clone();
    (out, seen)
}
