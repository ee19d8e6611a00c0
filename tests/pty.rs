//! The real binary in a pseudo-terminal, as a person runs it: the dashboard comes up,
//! `q` leaves, the terminal is restored and the table is printed on the normal screen.
//! Traffic goes only to the embedded mock on 127.0.0.1.

mod common;
use common::*;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const LEAVE_ALT: &str = "\x1b[?1049l";
const ENTER_ALT: &str = "\x1b[?1049h";
const SHOW_CURSOR: &str = "\x1b[?25h";

struct Pty {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    out: Arc<Mutex<Vec<u8>>>,
    input: Box<dyn Write + Send>,
}

fn spawn(args: &[&str]) -> Pty {
    let pair = native_pty_system().openpty(PtySize { rows: 30, cols: 100, pixel_width: 0, pixel_height: 0 }).unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_llmload"));
    cmd.args(args);
    cmd.env("TERM", "xterm-256color");
    cmd.env_remove("NO_COLOR");
    let child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let input = pair.master.take_writer().unwrap();
    // The master must outlive the child's use of the terminal.
    std::mem::forget(pair.master);
    Pty { child, out, input }
}

impl Pty {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// The screen as a terminal shows it now (the dashboard draws by diffs, so the raw
    /// bytes never hold a line of text whole).
    fn screen(&self) -> vt100::Parser {
        let size = |n| std::num::NonZeroU16::new(n).unwrap();
        let mut p = vt100::Parser::new(size(30), size(100), 0);
        p.process(&self.out.lock().unwrap());
        p
    }

    fn wait_for(&self, needle: &str, limit: Duration) {
        let t = Instant::now();
        while !self.screen().screen().contents().contains(needle) {
            assert!(t.elapsed() < limit, "no {needle:?} on screen within {limit:?}:\n{}", self.screen().screen().contents());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn exit_code(&mut self, limit: Duration) -> u32 {
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader drain what was written last.
                std::thread::sleep(Duration::from_millis(200));
                return status.exit_code();
            }
            if t.elapsed() > limit {
                let _ = self.child.kill();
                panic!("llmload did not exit within {limit:?}:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// After the last time the dashboard left the alternate screen: what the user sees.
fn after_dashboard(text: &str) -> &str {
    let i = text.rfind(LEAVE_ALT).expect("the alternate screen was left");
    &text[i..]
}

#[test]
fn q_on_the_final_dashboard_exits_cleanly_and_prints_the_table() {
    let stages = "[[stage]]\nname = \"one\"\nconcurrency = 1\nrequests = 20\n[[stage]]\nname = \"four\"\nconcurrency = 4\nrequests = 40\n";
    let (_d, path) = scenario(&quick("base_latency_ms = 10\nper_inflight_ms = 1", stages));
    let mut pty = spawn(&["run", path.to_str().unwrap()]);
    pty.wait_for("q: exit and print", Duration::from_secs(30));
    let dash = pty.screen();
    assert!(dash.screen().alternate_screen(), "the dashboard is full screen");
    assert!(dash.screen().contents().contains("comparison"), "the dashboard was drawn");
    pty.input.write_all(b"q").unwrap();
    pty.input.flush().unwrap();
    assert_eq!(pty.exit_code(Duration::from_secs(20)), 0, "{}", pty.text());
    let text = pty.text();
    let tail = after_dashboard(&text);
    assert!(tail.contains(SHOW_CURSOR), "cursor shown again");
    assert!(!tail.contains(ENTER_ALT), "no dashboard after leaving");
    let end = pty.screen();
    let screen = end.screen();
    assert!(!screen.alternate_screen() && !screen.hide_cursor(), "terminal restored");
    let shown = screen.contents();
    let table_at = shown.find("mean latency").expect("table printed on the normal screen");
    assert!(shown[table_at..].contains("one") && shown[table_at..].contains("four"), "{shown}");
}

/// `h` switches the histogram while the run goes: streamed TTFT, then the output
/// lengths in tokens, the key line saying so.
#[test]
fn h_switches_the_histogram_mid_run() {
    let stages = "[[stage]]\nname = \"long\"\nconcurrency = 2\nrequests = 100000\n";
    let text = quick("base_latency_ms = 20\nper_inflight_ms = 0\noutput_tokens = 30", stages)
        .replace("model = \"m\"", "model = \"m\"\nstream = true");
    let (_d, path) = scenario(&text);
    let mut pty = spawn(&["run", path.to_str().unwrap()]);
    pty.wait_for("e2e latency · long (live)", Duration::from_secs(20));
    assert!(pty.screen().screen().contents().contains("h e2e/TTFT/ITL/tokens"), "the key line lists h");
    pty.input.write_all(b"h").unwrap();
    pty.input.flush().unwrap();
    pty.wait_for("TTFT · long (live)", Duration::from_secs(10));
    pty.input.write_all(b"hhh").unwrap();
    pty.input.flush().unwrap();
    pty.wait_for("output tokens · long (live)", Duration::from_secs(10));
    pty.wait_for(" tok ", Duration::from_secs(10));
    pty.input.write_all(b"qq").unwrap();
    pty.input.flush().unwrap();
    assert_eq!(pty.exit_code(Duration::from_secs(20)), 130, "{}", pty.text());
}

#[test]
fn q_mid_run_stops_writes_the_result_and_restores_the_terminal() {
    let stages = "[[stage]]\nname = \"long\"\nconcurrency = 2\nrequests = 100000\n[[stage]]\nname = \"never\"\nrequests = 1\n";
    let (d, path) = scenario(&quick("base_latency_ms = 20\nper_inflight_ms = 0", stages));
    let json = d.path().join("r.json");
    let mut pty = spawn(&["run", path.to_str().unwrap(), "--json", json.to_str().unwrap()]);
    pty.wait_for("stage 1/2", Duration::from_secs(20));
    pty.input.write_all(b"q").unwrap();
    pty.input.flush().unwrap();
    assert_eq!(pty.exit_code(Duration::from_secs(20)), 130, "a stopped run exits 130");
    let text = pty.text();
    assert!(after_dashboard(&text).contains(SHOW_CURSOR));
    let end = pty.screen();
    assert!(!end.screen().alternate_screen() && !end.screen().hide_cursor(), "terminal restored");
    assert!(end.screen().contents().contains("long (stopped)"), "{}", end.screen().contents());
    let v = read_json(&json);
    assert_eq!(v["interrupted"], true);
    let r = &v["stages"][0]["requests"];
    assert!(r["ok"].as_u64().unwrap() >= 1);
    assert_eq!(r["started"], r["ok"].as_u64().unwrap() + r["failed"].as_u64().unwrap() + r["cancelled"].as_u64().unwrap());
}
