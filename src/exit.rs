//! The exit-code policy of every command, in one place: the five codes, the rule that
//! judges a run's (or a merge's) result, and what each code means for each command —
//! the text of every `--help` and the README's table (tests/cli.rs holds the README to
//! it). A new command or a new way to end adds its line here, not a code of its own.

use crate::report::RunResult;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done, and every verdict passed.
    Done,
    /// 1: the work could not be carried out, was aborted, or its output not written.
    Failed,
    /// 2: bad input: flags, scenario, files. Nothing was run.
    BadInput,
    /// 3: done, and a verdict failed (a threshold, a stage with no success, a gate).
    NotPassed,
    /// 130: stopped by Ctrl-C or SIGTERM; what was measured is still written.
    Interrupted,
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Failed => 1,
            Exit::BadInput => 2,
            Exit::NotPassed => 3,
            Exit::Interrupted => 130,
        }
    }

    /// The graver of two ends: a failure, then a stop, then a failed verdict, then done
    /// (bad input ends before anything runs).
    pub fn worse(self, other: Exit) -> Exit {
        let rank = |e: Exit| match e {
            Exit::Done => 0,
            Exit::NotPassed => 1,
            Exit::Interrupted => 2,
            Exit::Failed => 3,
            Exit::BadInput => 4,
        };
        if rank(other) > rank(self) { other } else { self }
    }

    /// The code of a run's result, or of the run a merge put back together, once it is
    /// written (`written`: every file asked for was): a run that failed, was aborted or
    /// did not finish is a failure, whatever its figures; then a stop; then the verdict.
    pub fn of_result(result: &RunResult, written: bool) -> Exit {
        if !written || result.aborted.is_some() || !result.complete {
            Exit::Failed
        } else if result.interrupted {
            Exit::Interrupted
        } else if result.verdict.as_ref().is_some_and(|v| !v.passed) {
            Exit::NotPassed
        } else {
            Exit::Done
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(e.code())
    }
}

/// A command that could not do its work: what it says on stderr, and how it exits.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub exit: Exit,
    /// The text printed, as it is printed.
    pub says: String,
}

impl Failure {
    /// Bad input (exit 2): `error: {what}`.
    pub fn bad(what: impl std::fmt::Display) -> Failure {
        Failure { exit: Exit::BadInput, says: format!("error: {what}") }
    }

    /// The work could not be carried out (exit 1): `error: {what}`.
    pub fn failed(what: impl std::fmt::Display) -> Failure {
        Failure { exit: Exit::Failed, says: format!("error: {what}") }
    }

    /// Problems that say where and what themselves (a scenario's, file:line:col).
    pub fn located(exit: Exit, problems: impl std::fmt::Display) -> Failure {
        Failure { exit, says: problems.to_string() }
    }
}

/// What each code means for each command; a command that never exits with a code
/// has no line for it. Flags that do not parse exit 2 for every command (clap's own).
const MEANINGS: &[(&str, Exit, &str)] = &[
    ("run", Exit::Done, "every stage had a successful request and every threshold held"),
    ("run", Exit::Failed, "the run could not be carried out, was aborted (abort_on_error_rate), or its result could not be written"),
    ("run", Exit::BadInput, "bad input: flags, scenario, files (an API key file that cannot be read or is empty too)"),
    ("run", Exit::NotPassed, "a threshold failed, or a stage had no successful request"),
    ("run", Exit::Interrupted, "interrupted (Ctrl-C, SIGTERM): the result is still written and thresholds judged"),
    ("merge", Exit::Done, "merged; every stage had a successful request and every threshold held"),
    ("merge", Exit::Failed, "merged, and a shard was aborted or did not finish; or the merged result could not be written"),
    (
        "merge",
        Exit::BadInput,
        "bad input: a file that is not a shard's result, shards of different runs or scenarios, a shard missing or twice",
    ),
    ("merge", Exit::NotPassed, "merged, and a threshold failed or a stage had no successful request"),
    ("merge", Exit::Interrupted, "merged, and a shard was interrupted"),
    ("compare", Exit::Done, "compared; no gate tripped"),
    (
        "compare",
        Exit::BadInput,
        "bad input: a file that is not an llmload result, a gate that does not parse, runs with no stage in common",
    ),
    (
        "compare",
        Exit::NotPassed,
        "a gate tripped (or its metric was not measured on both sides, or its stage was cut short on one: not comparable)",
    ),
    ("report", Exit::Done, "the page was written (gates are drawn on it; `compare` is what fails on them)"),
    ("report", Exit::Failed, "the page could not be drawn or written"),
    ("report", Exit::BadInput, "bad input: a file that is not an llmload result or a --requests-out export, a gate that does not parse"),
    ("validate", Exit::Done, "every scenario is valid (warnings are printed)"),
    ("validate", Exit::BadInput, "a scenario has problems, each printed at its file:line:col"),
    ("mock", Exit::Done, "stopped with Ctrl-C"),
    ("mock", Exit::Failed, "it could not listen on the address, or the server failed"),
    ("mock", Exit::BadInput, "bad input: a mock setting out of range"),
    ("init", Exit::Done, "the starter scenario was written"),
    ("init", Exit::BadInput, "the path exists, or cannot be written"),
];

/// The commands, in the order the table lists them.
pub const COMMANDS: [&str; 7] = ["run", "merge", "compare", "report", "validate", "mock", "init"];

/// A command's codes, as its `--help` ends.
pub fn help(command: &str) -> String {
    let mut out = String::from("Exit codes:");
    for (_, exit, says) in MEANINGS.iter().filter(|(c, ..)| *c == command) {
        out.push_str(&format!("\n  {:<4} {says}", exit.code()));
    }
    out
}

/// Every command's codes as one Markdown table (the README's).
pub fn markdown() -> String {
    let mut out = String::from("| command | code | meaning |\n|---|---|---|\n");
    for command in COMMANDS {
        for (_, exit, says) in MEANINGS.iter().filter(|(c, ..)| *c == command) {
            out.push_str(&format!("| `{command}` | {} | {says} |\n", exit.code()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_meaning_for_done_and_bad_input_and_each_code_is_distinct() {
        for command in COMMANDS {
            let help = help(command);
            assert!(help.contains("\n  0 ") && help.contains("\n  2 "), "{command}: {help}");
        }
        let all = [Exit::Done, Exit::Failed, Exit::BadInput, Exit::NotPassed, Exit::Interrupted];
        assert_eq!(all.map(Exit::code), [0, 1, 2, 3, 130]);
        assert!(MEANINGS.iter().all(|(c, ..)| COMMANDS.contains(c)));
    }
}
