//! llmload binary: parse the CLI, dispatch, map errors to exit codes.
//! Exit codes: 0 done, 1 run failed, 2 bad input (flags, scenario), 130 stopped by the user.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use llmload::cli::{Cli, Command, MockArgs, RunArgs, ValidateArgs};
use llmload::report::{failure_notes, render_table};
use llmload::run::{RunOptions, run};
use llmload::scenario::{BaseUrl, Scenario, parse_base_url};

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
    }
    let json_to_stdout = args.json.as_deref() == Some(Path::new("-"));
    // Until the dashboard lands, `run` is headless whatever --headless says.
    let _ = args.headless;
    let outcome = match run(
        scenario,
        RunOptions {
            progress: !args.no_progress,
            notes: note,
        },
    )
    .await
    {
        Ok(o) => o,
        Err(e) => {
            note(&format!("error: {e}"));
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let result = &outcome.result;
    let mut text = render_table(&result.stages);
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
    if failed {
        return ExitCode::from(EXIT_FAILED);
    }
    if outcome.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    }
}

fn cmd_validate(args: ValidateArgs) -> ExitCode {
    let mut bad = false;
    for path in &args.scenarios {
        match Scenario::load(path) {
            Ok(s) => {
                let stages: Vec<String> = s.stages.iter().map(|st| st.name.clone()).collect();
                println!(
                    "{}: ok — {:?}, {} stages ({})",
                    path.display(),
                    s.name,
                    s.stages.len(),
                    stages.join(", ")
                );
            }
            Err(e) => {
                note(&e.to_string());
                bad = true;
            }
        }
    }
    if bad { ExitCode::from(EXIT_BAD_INPUT) } else { ExitCode::SUCCESS }
}

async fn cmd_mock(args: MockArgs) -> ExitCode {
    let cfg = args.config();
    let problems = cfg.problems();
    if !problems.is_empty() {
        for p in problems {
            // Name the flag, not the scenario field: "error_rate must…" → "--error-rate must…".
            let (field, rest) = p.split_once(' ').unwrap_or((&p, ""));
            note(&format!("error: --{} {rest}", field.replace('_', "-")));
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
