//! `llmload report` in a real browser: results of runs on the mock drawn as a page that
//! headless Chromium (Debian's, installed by scripts/test) opens offline, with no
//! script error, every chart laid out with data marks (the page's own check, read back
//! with --dump-dom) and a screenshot that is not blank (without Chromium, under a bare
//! `cargo test`, the page's content is checked and the browser's part skipped). Also the page's content (the
//! charts named by the issue, the comparison and its gates) and bad input.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Headless Chromium on a file, with no network at all: every host resolves to nothing,
/// so a page that fetched anything would show it as an error, not load it.
fn browser(chromium: &Path, dir: &Path, page: &Path, extra: &[&str]) -> Output {
    let mut c = std::process::Command::new(chromium);
    c.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", dir.join("chromium-profile").display()))
    .args(extra)
    .arg(format!("file://{}", page.display()))
    .stdin(std::process::Stdio::null());
    run(c, Duration::from_secs(60))
}

/// What the page's check wrote on its root element, and every chart's own verdict.
struct Checked {
    root: String,
    charts: Vec<String>,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(tag[at..].split('"').next()?.to_string())
}

fn check_in_browser(chromium: &Path, dir: &Path, page: &Path) -> Checked {
    let out = browser(chromium, dir, page, &["--dump-dom", "--window-size=1280,1800"]);
    assert!(out.status.success(), "chromium: {}", out.stderr);
    let dom = out.stdout;
    let root = dom
        .split("<html")
        .nth(1)
        .and_then(|s| s.split('>').next())
        .unwrap_or_else(|| panic!("no <html> in the DOM: {dom:.300}"))
        .to_string();
    let charts = dom.split("<svg class=\"chart\"").skip(1).map(|s| s.split('>').next().unwrap().to_string()).collect();
    Checked { root, charts }
}

/// The page loaded with no script error, its check ran, and every chart drew.
fn assert_drawn(c: &Checked, at_least: usize) {
    assert_eq!(attr(&c.root, "data-error"), None, "a script error: {}", c.root);
    assert_eq!(attr(&c.root, "data-checked").as_deref(), Some("yes"), "the page's check did not run to its end: {}", c.root);
    assert!(c.charts.len() >= at_least, "{} charts, wanted {at_least} or more", c.charts.len());
    assert_eq!(attr(&c.root, "data-charts"), Some(c.charts.len().to_string()));
    // At 1280 px, the page does not scroll sideways: wide tables scroll in their box.
    let width: u32 = attr(&c.root, "data-page-width").and_then(|w| w.parse().ok()).unwrap_or(u32::MAX);
    assert!(width <= 1280, "the page is {width} px wide at 1280: {}", c.root);
    assert_eq!(attr(&c.root, "data-loose-tables").as_deref(), Some("0"), "a table outside a scrolling box");
    for chart in &c.charts {
        assert_eq!(attr(chart, "data-drawn").as_deref(), Some("yes"), "a chart without data marks: {chart}");
    }
}

/// A screenshot of the page's top: decoded, it must hold ink, many shades and the
/// palette's blue (a drawn chart), not a white or single-colour page.
fn assert_screenshot_not_blank(chromium: &Path, dir: &Path, page: &Path) {
    let png = dir.join("shot.png");
    let out = browser(chromium, dir, page, &[&format!("--screenshot={}", png.display()), "--window-size=1000,1800"]);
    assert!(out.status.success() && png.exists(), "chromium: {}", out.stderr);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().expect("a frame that fits in memory")];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let inked = pixels.iter().filter(|p| p[..3].iter().any(|c| *c < 200)).count();
    let blue = pixels.iter().filter(|p| p[0] < 40 && (90..150).contains(&p[1]) && (150..220).contains(&p[2])).count();
    let shades: std::collections::HashSet<&[u8]> = pixels.iter().map(|p| &p[..3]).collect();
    assert!(inked * 100 > pixels.len(), "under 1 % of the screenshot is ink: {inked} of {}", pixels.len());
    assert!(blue > 500, "the palette's blue is nearly absent ({blue} pixels): no chart drew");
    assert!(shades.len() > 50, "{} colours only", shades.len());
}

fn run_to(dir: &Path, name: &str, text: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let json = dir.join(format!("{name}.json"));
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).args(extra).arg(&path);
    let out = run(c, Duration::from_secs(90));
    assert!(out.status.success(), "{}", out.stderr);
    json
}

fn report(args: &[&str], files: &[&Path]) -> Output {
    let mut c = cmd(&["report"]);
    c.args(args).args(files);
    run(c, Duration::from_secs(60))
}

/// Streams at three loads with input lengths that vary, an SLO, a threshold and warmup.
const STREAMED: &str = r#"name = "report: streamed"
[target]
base_url = "mock"
model = "m"
stream = true
[mock]
base_latency_ms = 10
per_inflight_ms = 1
prefill_ms_per_1k_tokens = 40
inter_token_ms = 1
output_tokens = 4
output_tokens_max = 16
[slo]
ttft_ms = 60
[thresholds]
p99_ms = "< 5000"
[prompts]
synthetic = "N(300,150)/(10,4)"
seed = 3
[[stage]]
name = "1 user"
concurrency = 1
requests = 20
warmup = 3
[[stage]]
name = "4 users"
concurrency = 4
requests = 60
[[stage]]
name = "16 users"
concurrency = 16
duration = "3s"
cooldown = "1s"
"#;

#[test]
fn a_streamed_run_draws_every_chart_offline_in_chromium() {
    // Without a browser the page's own content is still checked (a bare `cargo test`).
    let browser = chromium();
    let d = tempfile::tempdir().unwrap();
    let requests = d.path().join("requests.jsonl");
    let json = run_to(d.path(), "streamed", STREAMED, &["--requests-out", requests.to_str().unwrap()]);
    let page = d.path().join("report.html");
    let out = report(&["-o", page.to_str().unwrap(), "--requests", requests.to_str().unwrap()], &[&json]);
    assert!(out.status.success(), "{}", out.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch (the SVG namespace is a name, not a fetch).
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for fetch in ["http://", "https://", "<link", " src=", "@import", "url("] {
        assert!(!without_ns.contains(fetch), "the page refers to {fetch}");
    }
    for id in [
        "latency-load",
        "throughput-load",
        "ttft-load",
        "tradeoff",
        "ttft-input",
        "stage-0-distributions",
        "stage-2-distributions",
        "stage-2-seconds",
    ] {
        assert!(html.contains(&format!("<figure id=\"{id}\">")), "no figure {id}; notes: {}", out.stderr);
    }
    for words in [
        "Time to first token",
        "Inter-token latency",
        "Input length",
        "Output length",
        "ideal linear scaling",
        "SLO: each request ≤ 60 ms",
        "p99_ms &lt; 5000",
        "Far above the curves, not drawn: threshold p99_ms &lt; 5000",
    ] {
        assert!(html.contains(words), "the page lacks {words:?}");
    }
    // The cooldown is shaded after the window, unless it ended within 50 ms of the last
    // second of the series (the cooldown lasts only until the window's last request
    // ends: a sliver so thin is left unlabelled, one run in twenty or so).
    let v = read_json(&json);
    let stage = &v["stages"][2];
    let close = num(&stage["window_offset_s"]) + num(&stage["wall_time_s"]);
    let end = stage["series"].as_array().unwrap().last().map_or(0.0, |x| num(&x["t_s"]) + 1.0);
    assert!(count(&stage["cooldown_requests"]) > 0, "the cooldown sent requests: {}", stage["cooldown_requests"]);
    let shaded = html.contains("\n cooldown\n</text>");
    assert_eq!(shaded, close < end - 0.05, "cooldown label {shaded}: window closed at {close} s, the series ends at {end} s");
    // Every chart has a title, axis labels and a caption.
    assert!(html.matches("<figcaption>").count() >= 8);
    // Charts across stages 5, per stage 5 histograms, and 3 panels of seconds for the
    // one stage long enough to have a series.
    assert!(
        out.stderr.contains("not drawn: 1 user: per-second series: the stage lasted 1 s, too short for one (it takes 3)"),
        "{}",
        out.stderr
    );
    if let Some(b) = browser {
        let checked = check_in_browser(&b, d.path(), &page);
        assert_drawn(&checked, 5 + 3 * 5 + 3);
        assert_screenshot_not_blank(&b, d.path(), &page);
    }
}

/// Two non-streamed stages on a mock of `base_ms` + 1 ms per request in flight.
fn pair_run(dir: &Path, name: &str, base_ms: u32) -> PathBuf {
    let text = quick(
        &format!("base_latency_ms = {base_ms}\nper_inflight_ms = 1\njitter_ms = 2"),
        "[[stage]]\nname = \"2-way\"\nconcurrency = 2\nrequests = 60\n[[stage]]\nname = \"8-way\"\nconcurrency = 8\nrequests = 160\n",
    );
    run_to(dir, name, &text, &[])
}

#[test]
fn before_and_after_lay_over_each_other_with_the_verdicts_and_gates() {
    // Without a browser the page's own content is still checked (a bare `cargo test`).
    let browser = chromium();
    let d = tempfile::tempdir().unwrap();
    let before = pair_run(d.path(), "before", 20);
    let after = pair_run(d.path(), "after", 40);
    let page = d.path().join("pair.html");
    let out = report(&["-o", page.to_str().unwrap(), "--fail-on", "p99_ms:+10%"], &[&before, &after]);
    assert!(out.status.success(), "report draws; compare is what gates: {}", out.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("after against before"), "the comparison section");
    let p99_row = html.split("<tr><td class=\"text\">p99_ms</td>").nth(1).and_then(|r| r.split("</tr>").next()).expect("a p99_ms row");
    assert_eq!(p99_row.matches("class=\"fail\"").count(), 2, "p99 twice as long is worse beyond noise in both stages: {p99_row}");
    assert!(p99_row.contains(" worse</td>"));
    assert!(html.contains("p99_ms:+10%") && html.contains("<span class=\"fail\">FAIL</span>"), "the gate tripped");
    // The runs are told apart by name in every legend.
    assert!(html.contains("p99 · after") && html.contains("ok requests/s · before"));
    assert!(html.matches("<div class=\"legend\">").count() >= 3 + 2, "every overlay carries a key");
    if let Some(b) = browser {
        let checked = check_in_browser(&b, d.path(), &page);
        assert_drawn(&checked, 3 + 2);
        assert_screenshot_not_blank(&b, d.path(), &page);
    }
}

#[test]
fn what_cannot_be_drawn_is_said_in_a_line_and_other_scenarios_still_lay_over() {
    let d = tempfile::tempdir().unwrap();
    let one = run_to(
        d.path(),
        "one",
        &quick("base_latency_ms = 5\nper_inflight_ms = 0", "[[stage]]\nname = \"2-way\"\nconcurrency = 2\nrequests = 20\n"),
        &[],
    );
    let other = pair_run(d.path(), "other", 5);
    let page = d.path().join("r.html");
    let out = report(&["-o", page.to_str().unwrap()], &[&one]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stderr.contains("not drawn: End-to-end latency against load: every stage ran at one load"), "{}", out.stderr);
    assert!(std::fs::read_to_string(&page).unwrap().contains("Not drawn: Throughput against load"));
    std::fs::write(
        d.path().join("one.json"),
        std::fs::read_to_string(&one).unwrap().replace("\"name\": \"quick\"", "\"name\": \"another\""),
    )
    .unwrap();
    let out = report(&["-o", page.to_str().unwrap()], &[&one, &other]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stderr.contains("note: other ran “quick”, one ran “another”: stages are matched by name"), "{}", out.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    let shared = html.split("<figure id=\"stage-0-distributions\">").nth(1).and_then(|f| f.split("</figure>").next()).unwrap();
    assert!(shared.contains(">one</span>") && shared.contains(">other</span>"), "the stage both have is laid over, keyed by run");
    // A result as schema 1 wrote it (no window offset, no verdict) still draws.
    let mut v = read_json(&other);
    v["schema_version"] = 1.into();
    for s in v["stages"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("window_offset_s");
    }
    v.as_object_mut().unwrap().remove("verdict");
    let old = d.path().join("old.json");
    std::fs::write(&old, serde_json::to_string(&v).unwrap()).unwrap();
    let out = report(&["-o", page.to_str().unwrap()], &[&old]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(std::fs::read_to_string(&page).unwrap().contains("<figure id=\"throughput-load\">"));
}

#[test]
fn bad_input_is_one_line_and_exit_2_and_leaves_no_page() {
    let d = tempfile::tempdir().unwrap();
    let page = d.path().join("r.html");
    let not_result = d.path().join("x.json");
    std::fs::write(&not_result, "{\"hello\": 1}").unwrap();
    let broken = d.path().join("b.json");
    std::fs::write(&broken, "{\"schema_version\": 2, ").unwrap();
    let text = d.path().join("t.txt");
    std::fs::write(&text, "not json").unwrap();
    for (file, says) in [
        (&not_result, "not an llmload result (no schema_version)"),
        (&broken, "not JSON"),
        (&text, "not JSON"),
        (&d.path().join("none.json"), "cannot read"),
    ] {
        let out = report(&["-o", page.to_str().unwrap()], &[file]);
        assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
        assert!(
            out.stderr.starts_with("error: ") && out.stderr.contains(&file.display().to_string()) && out.stderr.contains(says),
            "{}",
            out.stderr
        );
        assert!(!page.exists(), "no page for bad input");
    }
    let good = run_to(d.path(), "g", &quick("base_latency_ms = 5", "[[stage]]\nname = \"s\"\nconcurrency = 1\nrequests = 5\n"), &[]);
    let jsonl = d.path().join("r.jsonl");
    std::fs::write(&jsonl, "{\"stage\": \"s\"}\n").unwrap();
    let out = report(&["-o", page.to_str().unwrap(), "--requests", jsonl.to_str().unwrap()], &[&good]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("r.jsonl:1: not a line of `run --requests-out`"), "{}", out.stderr);
    let out = report(&["-o", page.to_str().unwrap(), "--fail-on", "p99_ms"], &[&good]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let out = report(&["-o", d.path().join("no/such/dir/r.html").to_str().unwrap()], &[&good]);
    assert_eq!(out.status.code(), Some(1), "an unwritable page fails the command: {}", out.stderr);
    assert!(!page.exists());
}

#[test]
fn a_sweep_marks_its_knee_and_its_slo_limit_on_the_throughput_chart() {
    let d = tempfile::tempdir().unwrap();
    // Two at a time, 20 ms each: 50 req/s alone, 100 from two on (the knee); from 4 on,
    // requests queue, and at 8 the 60 ms SLO breaks.
    let text = "name = \"sweep\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 20\nper_inflight_ms = 0\ncapacity = 2\n\
                [prompts]\ntemplate = \"hi {i}\"\n[slo]\ne2e_ms = 60\n[sweep]\nconcurrency = [1, 2, 4, 8]\nrequests = 40\n";
    let json = run_to(d.path(), "sweep", text, &[]);
    let v = read_json(&json);
    let (knee, limit) = (num(&v["sweep"]["knee"]["load"]), num(&v["sweep"]["slo"]["largest_meeting_load"]));
    let page = d.path().join("sweep.html");
    let out = report(&["-o", page.to_str().unwrap()], &[&json]);
    assert!(out.status.success(), "{}", out.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    let throughput =
        html.split("<figure id=\"throughput-load\">").nth(1).and_then(|f| f.split("</figure>").next()).expect("the throughput figure");
    assert!(
        throughput.contains("\nknee\n</text>") && throughput.contains("\nSLO limit\n</text>"),
        "knee at {knee}, SLO limit at {limit}, marked by name"
    );
    assert!(
        html.contains("<b>Sweep:</b>") && html.contains(&escape_html(v["sweep"]["summary"].as_str().unwrap())),
        "the sweep's verdict in words"
    );
    assert!(html.contains("SLO: each request ≤ 60 ms"), "the SLO's line on the latency chart");
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

#[test]
fn warmup_seconds_are_shaded_up_to_where_the_window_opened() {
    let d = tempfile::tempdir().unwrap();
    // Two workers, 50 ms a request: 20 warmup requests take 0.5 s, then 3 s measured.
    let text =
        quick("base_latency_ms = 50\nper_inflight_ms = 0", "[[stage]]\nname = \"warm\"\nconcurrency = 2\nwarmup = 20\nduration = \"3s\"\n");
    let json = run_to(d.path(), "warm", &text, &[]);
    let v = read_json(&json);
    let offset = num(&v["stages"][0]["window_offset_s"]);
    assert!((0.45..0.7).contains(&offset), "the window opened {offset} s after the stage started, not ~0.5 s");
    let page = d.path().join("warm.html");
    let out = report(&["-o", page.to_str().unwrap()], &[&json]);
    assert!(out.status.success(), "{}", out.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    let seconds =
        html.split("<figure id=\"stage-0-seconds\">").nth(1).and_then(|f| f.split("</figure>").next()).expect("the seconds figure");
    assert_eq!(seconds.matches("\n warmup, ramp\n</text>").count(), 3, "shaded in each of the three panels");
    assert!(seconds.contains("outside the window (warmup, ramp, cooldown)"), "the warmup requests drawn, not a stall");
}

#[test]
fn sessions_are_drawn_turn_by_turn_with_the_prefix_cache_at_work() {
    // Without a browser the page's own content is still checked (a bare `cargo test`).
    let browser = chromium();
    let d = tempfile::tempdir().unwrap();
    let text = SESSIONS;
    let json = run_to(d.path(), "sessions", text, &[]);
    let page = d.path().join("sessions.html");
    let out = report(&["-o", page.to_str().unwrap()], &[&json]);
    assert!(out.status.success(), "{}", out.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    let turns = html.split("<figure id=\"stage-0-turns\">").nth(1).and_then(|f| f.split("</figure>").next()).expect("the by-turn figure");
    for words in ["TTFT by turn", "Prompt tokens found in the prefix cache, by turn", "turn in the session", "cached (%)"] {
        assert!(turns.contains(words), "the by-turn figure lacks {words:?}");
    }
    // The first turn's document is new to the cache; later turns find it.
    let v = read_json(&json);
    let share = |k: usize| num(&v["stages"][0]["sessions"]["by_turn"][k]["cached_share"]);
    assert!(share(0) < 0.1 && share(1) > 0.8, "cached share by turn {} then {}", share(0), share(1));
    let Some(b) = browser else { return };
    let checked = check_in_browser(&b, d.path(), &page);
    // Across stages: only the trade-off needs no second load (it needs a second stage
    // too: left out); the stage: 5 histograms (output lengths vary), 2 by turn.
    assert_drawn(&checked, 2);
    let drawn_turns = checked.charts.iter().filter(|c| c.contains("by turn")).count();
    assert_eq!(drawn_turns, 2, "both by-turn panels drew: {:?}", checked.charts);
}

/// The server's own metrics (the mock's, read with nothing configured): its series under
/// the client's on the run's clock, each stage's start marked, and its queue and KV
/// cache against load beside the latency and throughput charts — drawn in Chromium.
#[test]
fn the_servers_metrics_are_drawn_under_the_clients() {
    // Without a browser the page's own content is still checked (a bare `cargo test`).
    let browser = chromium();
    let d = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_path("tests/data/report/server.toml")).unwrap().replace("\"3s\"", "\"2s\"");
    let json = run_to(d.path(), "server", &text, &[]);
    let page = d.path().join("server.html");
    let out = report(&["-o", page.to_str().unwrap()], &[&json]);
    assert!(out.status.success(), "{}", out.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    let figure = |id: &str| -> String {
        let open = format!("<figure id=\"{id}\">");
        html.split(open.as_str()).nth(1).and_then(|f| f.split("</figure>").next()).unwrap_or_else(|| panic!("no figure {id}")).to_string()
    };
    let load = figure("server-load");
    for words in ["Server: requests waiting and running against load", "Server: KV-cache usage against load", "waiting (max)"] {
        assert!(load.contains(words), "the server-against-load figure lacks {words:?}");
    }
    let over_run = figure("server-run-0");
    for words in ["Client: requests finished per second", "Server: requests running and waiting", "seconds since the run started", "8-way"]
    {
        assert!(over_run.contains(words), "the run's timeline lacks {words:?}");
    }
    // It comes after the charts across stages, before each stage's own.
    let (across, timeline, stage) = (html.find("id=\"latency-load\""), html.find("id=\"server-run-0\""), html.find("Stage “2-way”</h2>"));
    assert!(across < timeline && timeline < stage, "{across:?} {timeline:?} {stage:?}");
    let Some(b) = browser else { return };
    let checked = check_in_browser(&b, d.path(), &page);
    assert_drawn(&checked, 6);
    let server_panels = checked.charts.iter().filter(|c| c.contains("Server:")).count();
    assert_eq!(server_panels, 4, "2 against load, 2 over the run: {:?}", checked.charts);
}
