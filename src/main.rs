//! llmload binary: parse the CLI, dispatch, map errors to exit codes.
//! Exit codes: 0 done, 1 run failed, 2 bad input (flags, scenario), 130 stopped by the user.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use crossterm::event::EventStream;
use llmload::cli::{Cli, Command, MockArgs, RunArgs, ValidateArgs};
use llmload::report::{Cost, failure_notes, fmt_cost, render_table};
use llmload::run::{RunOptions, Watcher, progress_watcher, run};
use llmload::scenario::redact_url;
use llmload::scenario::{BaseUrl, Scenario, parse_base_url};
use llmload::tui::{App, LoopEnd, TerminalGuard};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

const EXIT_FAILED: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
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
        Command::Run(args) => rt.block_on(cmd_run(args)),
        Command::Validate(args) => cmd_validate(args),
        Command::Mock(args) => rt.block_on(cmd_mock(args)),
    }
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

async fn cmd_run(args: RunArgs) -> ExitCode {
    let mut scenario = match load(&args.scenario) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Some(url) = &args.base_url {
        match parse_base_url(url) {
            _ if url.trim() == "mock" => scenario.target.base_url = BaseUrl::Mock,
            Ok(u) => scenario.target.base_url = BaseUrl::Url(u),
            Err(msg) => {
                note(&format!("error: --base-url: {msg}"));
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        }
    }
    if let Some(model) = args.model {
        if model.trim().is_empty() {
            note("error: --model: must not be empty");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        scenario.target.model = model;
    }
    if let Some(var) = args.api_key_env {
        scenario.target.api_key_env = var;
        scenario.target.api_key_file = None;
    }
    if let Some(path) = args.api_key_file {
        scenario.target.api_key_file = Some(path);
    }
    let t = &mut scenario.target;
    t.timeout = args.timeout.unwrap_or(t.timeout);
    t.connect_timeout = args.connect_timeout.unwrap_or(t.connect_timeout);
    t.idle_timeout = args.idle_timeout.or(t.idle_timeout);
    if args.insecure {
        t.insecure = true;
        note("WARNING: --insecure: TLS certificates are NOT verified; anyone on the path can read the API key and every reply");
    }
    if args.tpm.is_some() && scenario.request.max_tokens.is_none() {
        note(&format!("error: --tpm {}", llmload::scenario::TPM_NEEDS_MAX_TOKENS));
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    // An automatic sweep's points are made from its template as it runs.
    let template = scenario.sweep.as_mut().map(|s| &mut s.template);
    for stage in scenario.stages.iter_mut().chain(template) {
        stage.rate_limit.rpm = args.rpm.or(stage.rate_limit.rpm);
        stage.rate_limit.tpm = args.tpm.or(stage.rate_limit.tpm);
        stage.retry.max_attempts = args.max_attempts.unwrap_or(stage.retry.max_attempts);
    }
    let json_to_stdout = args.json.as_deref() == Some(Path::new("-"));
    // The dashboard needs stdout to be the screen; JSON on stdout or a pipe means plain.
    let dashboard = !args.headless && !json_to_stdout && std::io::stdout().is_terminal();
    let held: Arc<Mutex<Vec<String>>> = Arc::default();
    let opts = if dashboard {
        // Lines written under the dashboard would be lost in the alternate screen: hold
        // them until it is gone.
        let sink = held.clone();
        let target = match &scenario.target.base_url {
            BaseUrl::Mock => "mock".to_string(),
            BaseUrl::Url(u) => redact_url(u),
        };
        let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let app = App::new(&scenario, &target, color);
        RunOptions {
            notes: Arc::new(move |line: &str| sink.lock().unwrap_or_else(|p| p.into_inner()).push(line.to_string())),
            watcher: Some(dashboard_watcher(app, held.clone())),
        }
    } else {
        RunOptions { notes: Arc::new(note), watcher: (!args.no_progress).then(progress_watcher) }
    };
    let outcome = run(scenario, opts).await;
    for line in held.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        note(&line);
    }
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            note(&format!("error: {e}"));
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let result = &outcome.result;
    let mut text = render_table(&result.stages);
    if let Some(c) = &result.cost {
        text.push_str(&format!(
            "\ncost of the run: {} ({} per 1,000 requests)\n",
            fmt_cost(c),
            fmt_cost(&Cost { amount: c.per_1k_requests, ..c.clone() })
        ));
    }
    if let Some(s) = &result.sweep {
        text.push_str(&format!("\nsweep: {}\n", s.summary));
    }
    if let Some(a) = &outcome.aborted {
        text.push_str(&format!("\n{a}; later stages were not run\n"));
    }
    let notes = failure_notes(&result.stages);
    if !notes.is_empty() {
        text.push('\n');
        text.push_str(&notes);
    }
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
    if failed || outcome.aborted.is_some() {
        return ExitCode::from(EXIT_FAILED);
    }
    if outcome.interrupted { ExitCode::from(EXIT_INTERRUPTED) } else { ExitCode::SUCCESS }
}

/// The dashboard as the run's view: full screen while the run goes and until the user
/// leaves, the terminal restored on every path.
fn dashboard_watcher(mut app: App, held: Arc<Mutex<Vec<String>>>) -> Watcher {
    Box::new(move |snapshots, stop| {
        tokio::spawn(async move {
            let hold = |line: String| held.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            let mut guard = match TerminalGuard::enter() {
                Ok(g) => g,
                Err(e) => return hold(format!("note: no dashboard ({e}); running headless")),
            };
            let result = match Terminal::new(CrosstermBackend::new(std::io::stdout())) {
                Ok(mut terminal) => llmload::tui::run_loop(&mut terminal, &mut app, snapshots, EventStream::new(), &stop).await,
                Err(e) => Err(e),
            };
            guard.restore();
            // The run goes on without a view; its result is written all the same.
            match result {
                Ok(LoopEnd::Left) => {}
                Ok(LoopEnd::InputLost) => note("note: keyboard input lost: the dashboard closed; the run goes on (Ctrl-C stops it)"),
                Err(e) => hold(format!("note: the dashboard stopped ({e}); the run went on headless")),
            }
        })
    })
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
    llmload::tokens::warm_up();
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
