//! llmload binary: parse the CLI, dispatch, and exit by the one policy of
//! `llmload::exit` (each command returns how it ended, or the failure it says).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser;
use llmload::cli::{Cli, Command, CompareArgs, InitArgs, MergeArgs, MockArgs, ReportArgs, RunArgs, ValidateArgs};
use llmload::exit::{Exit, Failure};
use llmload::report::{RunResult, run_text};
use llmload::run::{RunOptions, run};
use llmload::scenario::{BaseUrl, Scenario, redact_url};
use llmload::tui::App;
use llmload::workload::Tokenizer;

/// jemalloc, not glibc's malloc: glibc locks an arena to free a buffer another thread
/// made (a record sent to the aggregator, hyper's bytes), which a profile of 100,000
/// streams showed as futex waits. Streaming CPU per request: mimalloc 0.86× glibc's,
/// jemalloc 0.95× mimalloc's without its extra memory (docs/benchmarks.md); oha links
/// jemalloc too.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How a command ended, or what it says of why it could not do its work.
type Ended = Result<Exit, Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ended = match cli.command {
        Command::Run(args) => runtime().and_then(|rt| rt.block_on(cmd_run(*args))),
        Command::Mock(args) => runtime().and_then(|rt| rt.block_on(cmd_mock(*args))),
        Command::Validate(args) => cmd_validate(args),
        Command::Compare(args) => cmd_compare(args),
        Command::Init(args) => cmd_init(args),
        Command::Report(args) => cmd_report(args),
        Command::Merge(args) => cmd_merge(args),
    };
    let exit = ended.unwrap_or_else(|f| {
        note(&f.says);
        f.exit
    });
    exit.into()
}

/// The async runtime, for the commands that talk to the network.
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    rt.map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))
}

/// One line on stderr; a closed stderr is no reason to lose the result.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A result file read, or bad input.
fn load_result(path: &Path) -> Result<RunResult, Failure> {
    llmload::compare::load(path).map_err(Failure::bad)
}

fn cmd_compare(args: CompareArgs) -> Ended {
    use llmload::compare;
    let (bases, new) = match (&args.bases[..], &args.files[..]) {
        ([], [base, new]) => (vec![base.clone()], new.clone()),
        ([_, ..], [new]) => (args.bases.clone(), new.clone()),
        ([], [_]) => return Err(Failure::bad("compare: give BASE.json NEW.json, or --base BASE.json NEW.json")),
        _ => return Err(Failure::bad("compare: with --base, give only the new result")),
    };
    let bases = bases.iter().map(|p| load_result(p)).collect::<Result<Vec<_>, _>>()?;
    let new = load_result(&new)?;
    if let Some(line) = compare::nothing_in_common(&bases, &new) {
        return Err(Failure::bad(line));
    }
    let c = compare::compare(&bases, &new, &args.gates.fail_on, args.gates.min_effect());
    let _ = write!(std::io::stdout().lock(), "{}", compare::render(&c, args.format));
    Ok(if c.tripped() { Exit::NotPassed } else { Exit::Done })
}

fn cmd_merge(args: MergeArgs) -> Ended {
    let shards = args.files.iter().map(|path| Ok((path.clone(), load_result(path)?))).collect::<Result<Vec<_>, Failure>>()?;
    let notes = llmload::merge::notes(&shards);
    let merged = llmload::merge::merge(shards).map_err(Failure::bad)?;
    for n in &notes {
        note(n);
    }
    let written = merged.write_atomic(&args.output).map_err(|e| note(&format!("error: cannot write {}: {e}", args.output.display())));
    let _ = write!(std::io::stdout().lock(), "{}", run_text(&merged, None, args.format, args.ci));
    if written.is_ok() {
        note(&format!("wrote {} ({} shards)", args.output.display(), merged.merged_shards.unwrap_or(0)));
    }
    // As `run` exits: a shard that aborted or did not finish fails the whole run.
    Ok(Exit::of_result(&merged, written.is_ok()))
}

fn cmd_report(args: ReportArgs) -> Ended {
    use llmload::html;
    if args.requests.len() > args.files.len() {
        let (r, f) = (args.requests.len(), args.files.len());
        return Err(Failure::bad(format!("report: {r} --requests files for {f} results; give at most one per result")));
    }
    let mut runs = Vec::new();
    for (i, path) in args.files.iter().enumerate() {
        let result = load_result(path)?;
        let requests = args.requests.get(i).map(|p| html::load_requests(p)).transpose().map_err(Failure::bad)?;
        runs.push(html::Run { name: html::run_name(&args.files, i), result, requests });
    }
    let report = html::build(&runs, &args.gates.fail_on, args.gates.min_effect()).map_err(|e| Failure::failed(format!("report: {e}")))?;
    for n in &report.notes {
        // Stage and file names come from the results: no control codes reach the terminal.
        let shown: String = n.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
        note(&format!("note: {shown}"));
    }
    llmload::report::write_atomic(&args.output, report.html.as_bytes())
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", args.output.display())))?;
    note(&format!("wrote {}", args.output.display()));
    Ok(Exit::Done)
}

fn cmd_init(args: InitArgs) -> Ended {
    use std::io::ErrorKind;
    // create_new: never over a file that is there.
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&args.path);
    let written = file.and_then(|mut f| f.write_all(llmload::quick::starter(args.stream, args.api.as_deref()).as_bytes()));
    let shown = args.path.display();
    match written {
        Ok(()) => {
            note(&format!("wrote {shown}; run it with: llmload run {shown}"));
            Ok(Exit::Done)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(Failure::bad(format!("{shown} exists; give another path"))),
        Err(e) => Err(Failure::bad(format!("cannot write {shown}: {e}"))),
    }
}

/// The scenario cut to this process's shard, and when and as what run it starts.
fn launched(scenario: Scenario, args: &RunArgs) -> Result<(Scenario, llmload::launch::Launch), String> {
    use llmload::launch;
    let (shard, from) = launch::shard(args.shard.as_deref(), args.shards, &launch::LaunchEnv::read())?;
    let start_at = args.start_at.as_deref().map(|t| launch::start_at(t, std::time::SystemTime::now())).transpose()?;
    let scenario = scenario.shard(shard)?;
    if !shard.is_whole() {
        note(&format!(
            "shard {}/{} (from {from}): its share of every stage; merge the shards' results with `llmload merge`",
            shard.index, shard.count
        ));
        if scenario.target.base_url == BaseUrl::Mock {
            note("note: base_url = \"mock\": each shard runs an embedded mock of its own, so the shards measure N mocks, not one server");
        }
    }
    let run_id = launch::run_id(args.run_id.as_deref(), scenario.source_sha256.as_deref(), shard.count, start_at)?;
    let launched_as = (!from.is_empty()).then_some(shard);
    Ok((scenario, launch::Launch { start_at, run_id: Some(run_id), shard: launched_as }))
}

/// The scenario of a run: its file, or the one the quick-run flags make. Ok(None):
/// `--print-scenario` printed it, and nothing is to run.
fn scenario_of(args: &mut RunArgs, server: Option<Tokenizer>) -> Result<Option<Scenario>, Failure> {
    if let Some(path) = &args.scenario {
        if let Some(flag) = args.quick_flag() {
            return Err(Failure::bad(format!(
                "{flag} is for a run without a scenario file; {} has its own stages and prompts",
                path.display()
            )));
        }
        return Scenario::load_counting(path, server).map(Some).map_err(|e| Failure::located(Exit::BadInput, e));
    }
    let text = match args.quick_scenario.clone() {
        Some(text) => text,
        None => args.quick().and_then(|q| q.scenario()).map_err(Failure::bad)?,
    };
    args.quick_scenario = Some(text.clone());
    if args.print_scenario {
        let _ = write!(std::io::stdout().lock(), "{text}");
        return Ok(None);
    }
    // The flags made the target: they override nothing.
    (args.base_url, args.model) = (None, None);
    Scenario::parse_counting(&text, "the quick-run flags", None, server).map(Some).map_err(|e| Failure::located(Exit::BadInput, e))
}

/// The scenario as this process runs it: warnings said, flags applied, cut to its shard.
fn prepared(args: &mut RunArgs) -> Result<Option<(Scenario, llmload::launch::Launch)>, Failure> {
    let Some(mut scenario) = scenario_of(args, None)? else { return Ok(None) };
    for w in &scenario.warnings {
        note(&w.to_string());
    }
    let applied = scenario.apply(&args.overrides());
    // Said as soon as it is set, even when a later flag is refused.
    if scenario.target.insecure {
        note("WARNING: --insecure: TLS certificates are NOT verified; anyone on the path can read the API key and every reply");
    }
    applied.map_err(Failure::bad)?;
    if let Some(required) = scenario.server_tokenizer {
        scenario = counted_by_server(scenario, args, required)?;
    }
    launched(scenario, args).map(Some).map_err(Failure::bad)
}

/// The scenario read again with the server's tokenizer, found through its tokenize
/// endpoint (its prompts then built to lengths in the model's own tokens). None found:
/// `tokenizer = "server"` is refused (exit 2, before any request); `"auto"` counts in
/// o200k, and says so.
fn counted_by_server(scenario: Scenario, args: &mut RunArgs, required: bool) -> Result<Scenario, Failure> {
    match llmload::run::server_tokenizer(&scenario) {
        Ok(tok) => {
            let mut again = scenario_of(args, Some(tok))?.expect("read once already");
            again.apply(&args.overrides()).map_err(Failure::bad)?;
            Ok(again)
        }
        Err(why) if required => Err(Failure::bad(format!("prompts.tokenizer = \"server\": {why}"))),
        Err(why) => {
            let mut scenario = scenario;
            scenario.workload.tokenizer_note = Some(format!("token counts are estimates in o200k_base, another model's tokenizer: {why}"));
            Ok(scenario)
        }
    }
}

/// What the run shows while it goes and writes as it goes: the dashboard (its notes
/// held until it is gone) or the plain progress line; checkpoints, exports, the
/// Prometheus endpoint.
async fn options(
    scenario: &Scenario,
    args: &RunArgs,
    launch: llmload::launch::Launch,
    held: &Arc<Mutex<Vec<String>>>,
) -> Result<RunOptions, Failure> {
    let json_to_stdout = json_to_stdout(args);
    // The dashboard needs stdout to be the screen; JSON on stdout or a pipe means plain.
    let dashboard = !args.headless && !json_to_stdout && std::io::stdout().is_terminal();
    let opts = if dashboard {
        // Lines written under the dashboard would be lost in the alternate screen: hold
        // them until it is gone.
        let held = held.clone();
        let hold = move |line: String| held.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        let target = match &scenario.target.base_url {
            BaseUrl::Mock => "mock".to_string(),
            BaseUrl::Url(u) => redact_url(u),
        };
        let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let app = App::new(scenario, &target, color);
        let notes = hold.clone();
        RunOptions {
            notes: Arc::new(move |line: &str| notes(line.to_string())),
            watcher: Some(llmload::tui::watcher(app, hold)),
            ..RunOptions::quiet()
        }
    } else {
        RunOptions { notes: Arc::new(note), watcher: (!args.no_progress).then(llmload::progress::watcher), ..RunOptions::quiet() }
    };
    let prometheus = match args.prometheus_listen {
        Some(addr) => {
            let ep = llmload::export::Endpoint::bind(addr)
                .await
                .map_err(|e| Failure::bad(format!("--prometheus-listen {addr}: cannot listen: {e}")))?;
            if let Ok(at) = ep.local_addr() {
                note(&format!("prometheus: http://{at}/metrics"));
            }
            Some((ep, args.prometheus_linger))
        }
        None => None,
    };
    let server_metrics = args
        .server_metrics
        .iter()
        .map(|u| match url::Url::parse(u) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(url),
            _ => Err(Failure::bad(format!("--server-metrics {u:?}: not an http(s) URL, e.g. http://127.0.0.1:8000/metrics"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let reset_prefix_cache = match args.reset_prefix_cache.as_deref() {
        None => None,
        Some("") => Some(llmload::scenario::ResetAt::Known),
        Some(p) if p.starts_with('/') => Some(llmload::scenario::ResetAt::Path(p.to_string())),
        Some(p) => return Err(Failure::bad(format!("--reset-prefix-cache={p:?}: give the server's path, e.g. /flush_cache"))),
    };
    Ok(RunOptions {
        server_metrics,
        reset_prefix_cache,
        // A result file (not stdout) is checkpointed while the run goes on.
        checkpoint: args.json.clone().filter(|_| !json_to_stdout),
        requests_out: args.requests_out.clone(),
        requests_out_text: args.requests_out_text,
        launch,
        prometheus,
        ..opts
    })
}

async fn cmd_run(mut args: RunArgs) -> Ended {
    let Some((scenario, launch)) = prepared(&mut args)? else { return Ok(Exit::Done) };
    if let Some(k) = args.repeat.filter(|k| *k > 1) {
        return repeated(scenario, launch, k, &args).await;
    }
    let held: Arc<Mutex<Vec<String>>> = Arc::default();
    let opts = options(&scenario, &args, launch, &held).await?;
    let outcome = run(scenario, opts).await;
    for line in held.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        note(&line);
    }
    let outcome = outcome.map_err(|e| if e.is_bad_input() { Failure::bad(e) } else { Failure::failed(e) })?;
    let result = &outcome.result;
    let written = write_run(result, &run_text(result, outcome.aborted.as_ref(), args.format, args.ci), &args);
    Ok(Exit::of_result(result, written))
}

/// `--repeat K`: the scenario run K times, one after the other, until a stop, an
/// abort or a run that could not be carried out (what ran before it is still written);
/// one result with every repetition's figures, the exit code the worst repetition's.
async fn repeated(scenario: Scenario, launch: llmload::launch::Launch, k: u32, args: &RunArgs) -> Ended {
    let mut results = Vec::new();
    let mut failure = None;
    for i in 1..=k {
        note(&format!("repetition {i} of {k}"));
        let held: Arc<Mutex<Vec<String>>> = Arc::default();
        let opts = options(&scenario, args, launch.clone(), &held).await?;
        let outcome = run(scenario.clone(), opts).await;
        for line in held.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            note(&line);
        }
        match outcome {
            Ok(o) => {
                let ended = o.interrupted || o.aborted.is_some();
                results.push(o.result);
                if ended {
                    break;
                }
            }
            Err(e) if results.is_empty() => return Err(if e.is_bad_input() { Failure::bad(e) } else { Failure::failed(e) }),
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
        if let Some(pause) = args.repeat_pause.filter(|_| i < k) {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = tokio::signal::ctrl_c() => break,
            }
        }
    }
    let worst = results.iter().map(|r| Exit::of_result(r, true)).fold(Exit::Done, Exit::worse);
    let Some(result) = llmload::report::repeats::combine(results, k) else { return Ok(Exit::Done) };
    let written = write_run(&result, &run_text(&result, None, args.format, args.ci), args);
    if let Some(e) = failure {
        note(&format!("error: a repetition could not be carried out, the ones before it are written: {e}"));
        return Ok(Exit::Failed);
    }
    Ok(if written { worst } else { Exit::Failed })
}

/// `--json -`: the result on stdout (then the table goes to stderr).
fn json_to_stdout(args: &RunArgs) -> bool {
    args.json.as_deref() == Some(Path::new("-"))
}

/// The result and the table where they go, and the JUnit verdict; false when any of
/// them could not be written (each said on stderr). The result file first: a closed
/// stdout (a pipe whose reader died on the same Ctrl-C) must not cost what was
/// measured. Writes to std streams never panic here.
fn write_run(result: &RunResult, text: &str, args: &RunArgs) -> bool {
    let mut written = true;
    match &args.json {
        Some(_) if json_to_stdout(args) => {
            let json = serde_json::to_string_pretty(result).expect("result serializes");
            if let Err(e) = writeln!(std::io::stdout().lock(), "{json}") {
                note(&format!("error: cannot write the result to stdout: {e}"));
                written = false;
            }
            let _ = write!(std::io::stderr(), "{text}");
        }
        Some(path) => {
            if let Err(e) = result.write_atomic(path) {
                note(&format!("error: cannot write {}: {e}", path.display()));
                written = false;
            }
            let _ = write!(std::io::stdout().lock(), "{text}");
        }
        None => {
            let _ = write!(std::io::stdout().lock(), "{text}");
        }
    }
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, llmload::report::junit(result))
    {
        note(&format!("error: cannot write {}: {e}", path.display()));
        written = false;
    }
    written
}

fn cmd_validate(args: ValidateArgs) -> Ended {
    let mut bad = false;
    for path in &args.scenarios {
        match Scenario::load(path) {
            Ok(s) => {
                let stages: Vec<String> = s.stages.iter().map(|st| st.name.clone()).collect();
                let mut plan = Vec::new();
                if !stages.is_empty() {
                    plan.push(format!("{} stages ({})", stages.len(), stages.join(", ")));
                }
                if let Some(sweep) = &s.sweep
                    && let Some(auto) = sweep.auto
                {
                    plan.push(format!("an automatic sweep from {} (up to {} points)", sweep.stage(auto.start, 0).name, auto.max_points));
                }
                for w in &s.warnings {
                    note(&w.to_string());
                }
                println!("{}: ok — {:?}, {}", path.display(), s.name, plan.join(", then "));
            }
            Err(e) => {
                note(&e.to_string());
                bad = true;
            }
        }
    }
    Ok(if bad { Exit::BadInput } else { Exit::Done })
}

/// A mock problem in terms of flags: "error_rate must…" → "--error-rate must…", for
/// every knob named in it (`errors` is the repeatable `--error`).
fn flag_names(problem: &str) -> String {
    let mut out = String::with_capacity(problem.len() + 8);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let is_knob = word.contains('_') || matches!(word.as_str(), "errors" | "seed");
        if is_knob && word.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            out.push_str("--");
            out.push_str(&if word == "errors" { "error".to_string() } else { word.replace('_', "-") });
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in problem.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

async fn cmd_mock(args: MockArgs) -> Ended {
    let cfg = args.config();
    let problems = cfg.problems();
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| format!("error: {}", flag_names(p))).collect();
        return Err(Failure::located(Exit::BadInput, lines.join("\n")));
    }
    let addr = std::net::SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| Failure::failed(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().map_or(addr, |a| a);
    println!("llmload mock listening on http://{local}/v1 (Ctrl-C to stop)");
    let _ = std::io::stdout().flush();
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    llmload::mock::serve(listener, cfg, shutdown).await.map_err(|e| Failure::failed(format!("mock server: {e}")))?;
    Ok(Exit::Done)
}
