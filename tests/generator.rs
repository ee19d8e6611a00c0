//! The generator's own footing: the open-file limit raised at start-up (or a run that
//! cannot have enough refused in one line), and requests in flight counted where they
//! start and end, not from what the aggregator has taken in. All on the embedded mock.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{quick, read_json, run, scenario};
use llmload::engine::Stop;
use llmload::run::{RunOptions, Watcher, run_with_stop};
use llmload::scenario::Scenario;

/// `llmload ARGS…` under `sh -c 'ulimit …'`: the limits set there are the process's.
fn under_ulimit(limits: &str, args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("{limits} && exec \"$0\" \"$@\"")).arg(env!("CARGO_BIN_EXE_llmload")).args(args);
    c.env_remove("OPENAI_API_KEY");
    c
}

/// One test at a time: each loads the cores, and the saturation tests judge them.
static CPU: Mutex<()> = Mutex::new(());

const WIDE: &str = "[[stage]]\nname = \"300-way\"\nconcurrency = 300\nrequests = 600\n";

#[test]
fn a_low_soft_open_file_limit_is_raised_at_start_up() {
    let _cpu = CPU.lock().unwrap_or_else(|e| e.into_inner());
    // 300 connections and the mock's 300 ends: 664 descriptors against a soft 256.
    let (dir, path) = scenario(&quick("base_latency_ms = 20", WIDE));
    let out = dir.path().join("r.json");
    let args = ["run", path.to_str().unwrap(), "--headless", "--no-progress", "--json", out.to_str().unwrap()];
    let o = run(under_ulimit("ulimit -Sn 256", &args), Duration::from_secs(60));
    assert!(o.status.success(), "{}", o.stderr);
    let s = &read_json(&out)["stages"][0]["requests"];
    assert_eq!((s["ok"].as_u64(), s["failed"].as_u64()), (Some(600), Some(0)), "{s}");
}

#[test]
fn a_hard_open_file_limit_below_the_need_is_refused_in_one_line() {
    let _cpu = CPU.lock().unwrap_or_else(|e| e.into_inner());
    let (_dir, path) = scenario(&quick("base_latency_ms = 20", WIDE));
    let o = run(under_ulimit("ulimit -n 300", &["run", path.to_str().unwrap(), "--headless"]), Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(1), "{}", o.stderr);
    let line = o.stderr.trim();
    assert!(!line.contains('\n'), "{line}");
    assert!(line.contains("needs about 664 open files") && line.contains("the hard limit is 300"), "{line}");
    assert!(line.contains("ulimit -Hn") && line.contains("lower the concurrency"), "{line}");
}

#[test]
fn in_flight_never_reads_more_than_the_concurrency() {
    let _cpu = CPU.lock().unwrap_or_else(|e| e.into_inner());
    // A fast mock: records reach the aggregator in batches, and those still queued to
    // it were counted in flight once (the dashboard read 98/50).
    let text = quick("base_latency_ms = 0", "[[stage]]\nname = \"50-way\"\nconcurrency = 50\nrequests = 3000\n");
    let scenario = Scenario::parse(&text, "fast.toml", None).unwrap();
    let seen = Arc::new(Mutex::new((0u64, 0u32)));
    let max = seen.clone();
    let watcher: Watcher = Box::new(move |mut rx, _stop| {
        tokio::spawn(async move {
            loop {
                if let Some(s) = &rx.borrow_and_update().current {
                    let mut m = max.lock().unwrap();
                    m.0 = m.0.max(s.in_flight());
                    m.1 += 1;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let opts = RunOptions { watcher: Some(watcher), ..RunOptions::quiet() };
    let outcome = rt.block_on(run_with_stop(scenario, opts, Stop::default())).unwrap();
    let v = serde_json::to_value(&outcome.result).unwrap();
    assert_eq!(v["stages"][0]["requests"]["ok"].as_u64(), Some(3000));
    let (max, snapshots) = *seen.lock().unwrap();
    assert!(snapshots >= 2, "{snapshots} snapshots of the running stage");
    assert!(max <= 50, "in flight read {max} at 50-way");
}

/// Runs `text` headless with `--json`; (result, stdout + stderr, exit code).
fn run_json(text: &str) -> (serde_json::Value, String, Option<i32>) {
    run_json_on(text, false)
}

/// [`run_json`], the process held to one core (`taskset -c 0`) when `one_core`.
fn run_json_on(text: &str, one_core: bool) -> (serde_json::Value, String, Option<i32>) {
    let (dir, path) = scenario(text);
    let out = dir.path().join("r.json");
    let args = ["run", path.to_str().unwrap(), "--headless", "--no-progress", "--json", out.to_str().unwrap()];
    let cmd = match one_core {
        false => common::cmd(&args),
        true => {
            let mut c = Command::new("taskset");
            c.arg("-c")
                .arg("0")
                .arg(env!("CARGO_BIN_EXE_llmload"))
                .args(args)
                .env_remove("OPENAI_API_KEY")
                .stdin(std::process::Stdio::null());
            c
        }
    };
    let o = run(cmd, Duration::from_secs(120));
    (read_json(&out), format!("{}{}", o.stdout, o.stderr), o.status.code())
}

#[test]
fn a_saturated_generator_says_so_and_still_exits_zero() {
    let _cpu = CPU.lock().unwrap_or_else(|e| e.into_inner());
    // 2,000 streams whose tokens come as fast as the mock makes them, on one core (the
    // process held to it): more work than the core takes. On all cores it is not: the
    // embedded mock has one thread, and the client's reading became cheap enough
    // (issue 33) that the two together can stay under the busy share of two cores.
    let text = "name = \"busy\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = true\n\
                [mock]\nbase_latency_ms = 0\ninter_token_ms = 0\noutput_tokens = 200\n\
                [prompts]\nlist = [\"hi\"]\n[[stage]]\nname = \"2000 streams\"\nconcurrency = 2000\nduration = \"3s\"\n";
    let (v, text, code) = run_json_on(text, true);
    common::assert_schema_valid(&v);
    let g = &v["generator"];
    assert_eq!(g["cores"], 1, "the process saw the one core it was held to: {g}");
    assert_eq!(g["near_saturation"], true, "{g}");
    let warning = g["warning"].as_str().unwrap();
    let why = ["llmload used", "llmload's scheduler woke"];
    assert!(why.iter().any(|w| warning.starts_with(w)) && warning.ends_with("latencies above p99 may include client delay"), "{warning}");
    assert!(text.contains(&format!("warning: {warning}")), "{text}");
    assert_eq!(code, Some(0), "the warning informs; it never fails the run");
}

#[test]
fn a_quiet_run_gives_no_saturation_warning() {
    let _cpu = CPU.lock().unwrap_or_else(|e| e.into_inner());
    let (v, text, code) = run_json(&quick("base_latency_ms = 20", "[[stage]]\nname = \"seq\"\nconcurrency = 1\nrequests = 40\n"));
    common::assert_schema_valid(&v);
    let g = &v["generator"];
    assert_eq!((g["near_saturation"].as_bool(), g["warning"].as_str()), (Some(false), None), "{g}");
    assert!(g["cores"].as_u64().unwrap() >= 1 && g["ticks"].as_u64().unwrap() >= 50, "{g}");
    assert!(!text.contains("warning: llmload"), "{text}");
    assert_eq!(code, Some(0));
}

#[test]
fn a_machine_kept_busy_by_another_process_is_said_to_be_shared_not_blamed_on_llmload() {
    let _cpu = CPU.lock().unwrap_or_else(|e| e.into_inner());
    // A server under test beside llmload, as far as the cores can tell: a spinning
    // process per core, niced so that llmload's own threads still run when they wake.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut spinners: Vec<_> = (0..cores)
        .map(|_| std::process::Command::new("nice").args(["-n", "19", "sh", "-c", "while :; do :; done"]).spawn().expect("spawn a spinner"))
        .collect();
    let (v, text, code) = run_json(&quick("base_latency_ms = 20", "[[stage]]\nname = \"seq\"\nconcurrency = 1\nrequests = 100\n"));
    for s in &mut spinners {
        let _ = s.kill();
        let _ = s.wait();
    }
    common::assert_schema_valid(&v);
    let g = &v["generator"];
    assert!(g["machine_busy_busiest_second"].as_f64().unwrap() >= 0.9, "the spinners kept the cores busy: {g}");
    assert_eq!((g["near_saturation"].as_bool(), g["warning"].as_str()), (Some(false), None), "llmload itself was not: {g}");
    let shared = g["shared"].as_str().unwrap_or_else(|| panic!("{g}"));
    assert!(shared.starts_with("the machine was shared: its cores were"), "{shared}");
    assert!(text.contains(&format!("note: {shared}")) && !text.contains("warning:"), "{text}");
    assert_eq!(code, Some(0));
}
