//! llmload binary: parse the CLI, dispatch, map errors to exit codes.
//! Exit codes (`cli::EXIT_CODES`): 0 passed, 1 run failed, 2 bad input (flags, scenario),
//! 3 a threshold failed or a stage had no success, 130 stopped by the user.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use clap::Parser;
use llmload::cli::{Cli, Command, CompareArgs, InitArgs, MergeArgs, MockArgs, ReportArgs, RunArgs, ValidateArgs};
use llmload::report::run_text;
use llmload::run::{RunOptions, run};
use llmload::scenario::{BaseUrl, Scenario, redact_url};
use llmload::tui::App;

const EXIT_FAILED: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
const EXIT_NOT_PASSED: u8 = 3;
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            note(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match cli.command {
        Command::Run(args) => rt.block_on(cmd_run(*args)),
        Command::Validate(args) => cmd_validate(args),
        Command::Mock(args) => rt.block_on(cmd_mock(args)),
        Command::Compare(args) => cmd_compare(args),
        Command::Init(args) => cmd_init(args),
        Command::Report(args) => cmd_report(args),
        Command::Merge(args) => cmd_merge(args),
    }
}

fn cmd_compare(args: CompareArgs) -> ExitCode {
    use llmload::compare;
    let gates: Result<Vec<_>, _> = args.fail_on.iter().map(|g| compare::Gate::parse(g)).collect();
    let (bases, new) = match (&args.bases[..], &args.files[..]) {
        ([], [base, new]) => (vec![base.clone()], new.clone()),
        ([_, ..], [new]) => (args.bases.clone(), new.clone()),
        ([], [_]) => return bad("compare: give BASE.json NEW.json, or --base BASE.json NEW.json"),
        _ => return bad("compare: with --base, give only the new result"),
    };
    let gates = match gates {
        Ok(g) => g,
        Err(e) => return bad(&e),
    };
    if !(args.min_effect >= 0.0 && args.min_effect.is_finite()) {
        return bad(&format!("--min-effect must be a percentage ≥ 0, got {}", args.min_effect));
    }
    let load = |p: &Path| compare::load(p);
    let bases: Result<Vec<_>, _> = bases.iter().map(|p| load(p)).collect();
    let (bases, new) = match (bases, load(&new)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => return bad(&e),
    };
    let c = compare::compare(&bases, &new, &gates, args.min_effect / 100.0);
    let _ = write!(std::io::stdout().lock(), "{}", compare::render(&c, args.format));
    if c.tripped() { ExitCode::from(EXIT_NOT_PASSED) } else { ExitCode::SUCCESS }
}

fn cmd_merge(args: MergeArgs) -> ExitCode {
    let mut shards = Vec::new();
    for path in &args.files {
        match llmload::compare::load(path) {
            Ok(r) => shards.push((path.clone(), r)),
            Err(e) => return bad(&e),
        }
    }
    let notes = llmload::merge::notes(&shards);
    let merged = match llmload::merge::merge(shards) {
        Ok(m) => m,
        Err(e) => return bad(&e),
    };
    for n in &notes {
        note(n);
    }
    if let Err(e) = merged.write_atomic(&args.output) {
        note(&format!("error: cannot write {}: {e}", args.output.display()));
        return ExitCode::from(EXIT_FAILED);
    }
    let _ = write!(std::io::stdout().lock(), "{}", run_text(&merged, None, args.format));
    note(&format!("wrote {} ({} shards)", args.output.display(), merged.merged_shards.unwrap_or(0)));
    // As `run` exits: a shard that aborted or did not finish fails the whole run.
    if merged.aborted.is_some() || !merged.complete {
        return ExitCode::from(EXIT_FAILED);
    }
    if merged.interrupted {
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    if merged.verdict.as_ref().is_some_and(|v| v.passed) { ExitCode::SUCCESS } else { ExitCode::from(EXIT_NOT_PASSED) }
}

fn cmd_report(args: ReportArgs) -> ExitCode {
    use llmload::{compare, html};
    if args.requests.len() > args.files.len() {
        return bad(&format!(
            "report: {} --requests files for {} results; give at most one per result",
            args.requests.len(),
            args.files.len()
        ));
    }
    if !(args.min_effect >= 0.0 && args.min_effect.is_finite()) {
        return bad(&format!("--min-effect must be a percentage ≥ 0, got {}", args.min_effect));
    }
    let gates: Result<Vec<_>, _> = args.fail_on.iter().map(|g| compare::Gate::parse(g)).collect();
    let gates = match gates {
        Ok(g) => g,
        Err(e) => return bad(&e),
    };
    let mut runs = Vec::new();
    for (i, path) in args.files.iter().enumerate() {
        let result = match compare::load(path) {
            Ok(r) => r,
            Err(e) => return bad(&e),
        };
        let requests = match args.requests.get(i).map(|p| html::load_requests(p)) {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => return bad(&e),
            None => None,
        };
        runs.push(html::Run { name: html::run_name(&args.files, i), result, requests });
    }
    let report = match html::build(&runs, &gates, args.min_effect / 100.0) {
        Ok(r) => r,
        Err(e) => {
            note(&format!("error: report: {e}"));
            return ExitCode::from(EXIT_FAILED);
        }
    };
    for n in &report.notes {
        // Stage and file names come from the results: no control codes reach the terminal.
        let shown: String = n.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
        note(&format!("note: {shown}"));
    }
    match llmload::report::write_atomic(&args.output, report.html.as_bytes()) {
        Ok(()) => {
            note(&format!("wrote {}", args.output.display()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            note(&format!("error: cannot write {}: {e}", args.output.display()));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// One line of bad input, exit 2.
fn bad(line: &str) -> ExitCode {
    note(&format!("error: {line}"));
    ExitCode::from(EXIT_BAD_INPUT)
}

/// One line on stderr; a closed stderr is no reason to lose the result.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn load(path: &Path) -> Result<Scenario, ExitCode> {
    Scenario::load(path).map_err(|e| {
        note(&e.to_string());
        ExitCode::from(EXIT_BAD_INPUT)
    })
}

fn cmd_init(args: InitArgs) -> ExitCode {
    use std::io::ErrorKind;
    // create_new: never over a file that is there.
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&args.path);
    let written = file.and_then(|mut f| f.write_all(llmload::quick::starter(args.stream).as_bytes()));
    match written {
        Ok(()) => {
            note(&format!("wrote {}; run it with: llmload run {}", args.path.display(), args.path.display()));
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => bad(&format!("{} exists; give another path", args.path.display())),
        Err(e) => bad(&format!("cannot write {}: {e}", args.path.display())),
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

/// The scenario of a run: its file, or the one the quick-run flags make.
fn scenario_of(args: &mut RunArgs) -> Result<Scenario, ExitCode> {
    if let Some(path) = &args.scenario {
        if let Some(flag) = args.quick_flag() {
            return Err(bad(&format!("{flag} is for a run without a scenario file; {} has its own stages and prompts", path.display())));
        }
        return load(path);
    }
    let text = args.quick().and_then(|q| q.scenario()).map_err(|e| bad(&e))?;
    if args.print_scenario {
        let _ = write!(std::io::stdout().lock(), "{text}");
        return Err(ExitCode::SUCCESS);
    }
    // The flags made the target: they override nothing.
    (args.base_url, args.model) = (None, None);
    Scenario::parse(&text, "the quick-run flags", None).map_err(|e| {
        note(&e.to_string());
        ExitCode::from(EXIT_BAD_INPUT)
    })
}

async fn cmd_run(mut args: RunArgs) -> ExitCode {
    let mut scenario = match scenario_of(&mut args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    for w in &scenario.warnings {
        note(&w.to_string());
    }
    let applied = scenario.apply(&args.overrides());
    // Said as soon as it is set, even when a later flag is refused.
    if scenario.target.insecure {
        note("WARNING: --insecure: TLS certificates are NOT verified; anyone on the path can read the API key and every reply");
    }
    if let Err(msg) = applied {
        note(&format!("error: {msg}"));
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let (scenario, launch) = match launched(scenario, &args) {
        Ok(x) => x,
        Err(e) => return bad(&e),
    };
    let json_to_stdout = args.json.as_deref() == Some(Path::new("-"));
    // The dashboard needs stdout to be the screen; JSON on stdout or a pipe means plain.
    let dashboard = !args.headless && !json_to_stdout && std::io::stdout().is_terminal();
    let held: Arc<Mutex<Vec<String>>> = Arc::default();
    let hold = {
        let held = held.clone();
        move |line: String| held.lock().unwrap_or_else(|p| p.into_inner()).push(line)
    };
    let opts = if dashboard {
        // Lines written under the dashboard would be lost in the alternate screen: hold
        // them until it is gone.
        let target = match &scenario.target.base_url {
            BaseUrl::Mock => "mock".to_string(),
            BaseUrl::Url(u) => redact_url(u),
        };
        let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let app = App::new(&scenario, &target, color);
        let notes = hold.clone();
        RunOptions {
            notes: Arc::new(move |line: &str| notes(line.to_string())),
            watcher: Some(llmload::tui::watcher(app, hold)),
            checkpoint: None,
            ..RunOptions::quiet()
        }
    } else {
        RunOptions { notes: Arc::new(note), watcher: (!args.no_progress).then(llmload::progress::watcher), ..RunOptions::quiet() }
    };
    // A result file (not stdout) is checkpointed while the run goes on.
    let opts = RunOptions {
        checkpoint: args.json.clone().filter(|_| !json_to_stdout),
        requests_out: args.requests_out.clone(),
        requests_out_text: args.requests_out_text,
        launch,
        ..opts
    };
    let opts = match args.prometheus_listen {
        Some(addr) => match llmload::export::Endpoint::bind(addr).await {
            Ok(ep) => {
                if let Ok(at) = ep.local_addr() {
                    note(&format!("prometheus: http://{at}/metrics"));
                }
                RunOptions { prometheus: Some((ep, args.prometheus_linger)), ..opts }
            }
            Err(e) => return bad(&format!("--prometheus-listen {addr}: cannot listen: {e}")),
        },
        None => opts,
    };
    let outcome = run(scenario, opts).await;
    for line in held.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        note(&line);
    }
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            note(&format!("error: {e}"));
            return ExitCode::from(if e.is_bad_input() { EXIT_BAD_INPUT } else { EXIT_FAILED });
        }
    };
    let result = &outcome.result;
    let text = run_text(result, outcome.aborted.as_ref(), args.format);
    // The result file first: a closed stdout (a pipe whose reader died on the same
    // Ctrl-C) must not cost what was measured. Writes to std streams never panic here.
    let mut failed = false;
    match &args.json {
        Some(_) if json_to_stdout => {
            let json = serde_json::to_string_pretty(result).expect("result serializes");
            if let Err(e) = writeln!(std::io::stdout().lock(), "{json}") {
                let _ = writeln!(std::io::stderr(), "error: cannot write the result to stdout: {e}");
                failed = true;
            }
            let _ = write!(std::io::stderr(), "{text}");
        }
        Some(path) => {
            if let Err(e) = result.write_atomic(path) {
                let _ = writeln!(std::io::stderr(), "error: cannot write {}: {e}", path.display());
                failed = true;
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
        failed = true;
    }
    if failed || outcome.aborted.is_some() {
        return ExitCode::from(EXIT_FAILED);
    }
    if outcome.interrupted {
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    if result.verdict.as_ref().is_some_and(|v| !v.passed) { ExitCode::from(EXIT_NOT_PASSED) } else { ExitCode::SUCCESS }
}

fn cmd_validate(args: ValidateArgs) -> ExitCode {
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
    if bad { ExitCode::from(EXIT_BAD_INPUT) } else { ExitCode::SUCCESS }
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

async fn cmd_mock(args: MockArgs) -> ExitCode {
    let cfg = args.config();
    let problems = cfg.problems();
    if !problems.is_empty() {
        for p in problems {
            note(&format!("error: {}", flag_names(&p)));
        }
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let addr = std::net::SocketAddr::new(args.host, args.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            note(&format!("error: cannot listen on {addr}: {e}"));
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let local = listener.local_addr().map_or(addr, |a| a);
    println!("llmload mock listening on http://{local}/v1 (Ctrl-C to stop)");
    let _ = std::io::stdout().flush();
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match llmload::mock::serve(listener, cfg, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note(&format!("error: mock server: {e}"));
            ExitCode::from(EXIT_FAILED)
        }
    }
}
