//! Property tests of the scenario parser against hostile input: random bytes, and
//! valid scenarios mutated at random. It never panics, and every problem is one line
//! that names the file and, where it has one, a line:col inside the text.
//! (The SSE parser has its own properties in src/client/sse.rs.)

use llmload::model::Api;
use llmload::scenario::{Location, Scenario};
use llmload::workload::Tokenizer;
use llmload::workload::dataset::{Selection, sharegpt};
use llmload::workload::dist::LengthSpec;
use llmload::workload::trace::{self, Cut, Format, Input};
use proptest::prelude::*;

const EXAMPLES: [&str; 7] = [
    include_str!("../scenarios/seed-comparison.toml"),
    include_str!("../scenarios/weekend-spike.toml"),
    include_str!("../scenarios/streaming.toml"),
    include_str!("../scenarios/rag-summaries.toml"),
    include_str!("../scenarios/token-lengths.toml"),
    include_str!("../scenarios/sharegpt.toml"),
    include_str!("../scenarios/trace-replay.toml"),
];

const SHAREGPT: &str = include_str!("../scenarios/data/sharegpt-small.json");
const TRACE: &str = include_str!("../scenarios/data/conversation-trace.jsonl");

/// The shipped scenarios' folder: their data files resolve from it.
fn scenarios_dir() -> &'static std::path::Path {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
}

/// Parses `text`; on error checks that every problem is well formed.
fn check(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = Scenario::parse(text, "s.toml", Some(scenarios_dir())) {
        prop_assert!(!e.problems.is_empty());
        let lines = text.split('\n').count();
        for p in &e.problems {
            let shown = p.to_string();
            prop_assert!(!shown.contains('\n'), "a problem spans lines: {shown:?}");
            prop_assert!(shown.starts_with("s.toml:"), "{shown}");
            if let Location::Span { line, col } = p.location {
                prop_assert!(line >= 1 && line <= lines && col >= 1, "{shown} outside a {lines}-line text");
            }
        }
    }
    Ok(())
}

/// Edits that break a scenario in the ways people and tools do.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Number(usize, String),
    DuplicateLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let junk = prop_oneof![
        "[\\[\\]{}=\"'#,.\\\\\n a-z0-9_-]{1,12}".boxed(),
        Just("[[stage]]\n".to_string()).boxed(),
        Just("[retry]\nmax_attempts = 99999\n".to_string()).boxed(),
        Just("rate_limit = { rpm = -1 }\n".to_string()).boxed(),
        Just("\u{0}\u{feff}é☕".to_string()).boxed(),
    ];
    let number = prop_oneof![
        Just("0"),
        Just("-1"),
        Just("1e308"),
        Just("nan"),
        Just("inf"),
        Just("18446744073709551616"),
        Just("\"9999999999d\""),
        Just("1.5")
    ]
    .prop_map(String::from);
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), junk).prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<usize>(), number).prop_map(|(at, s)| Edit::Number(at, s)),
        any::<usize>().prop_map(Edit::DuplicateLine),
    ]
}

fn apply(text: &str, e: &Edit) -> String {
    let mut s = text.to_string();
    let at = |i: usize, s: &str| s.floor_char_boundary(i % (s.len() + 1));
    match e {
        Edit::Delete(i, n) => {
            let a = at(*i, &s);
            let b = s.floor_char_boundary((a + n).min(s.len()));
            s.replace_range(a..b, "");
        }
        Edit::Insert(i, junk) => {
            let a = at(*i, &s);
            s.insert_str(a, junk);
        }
        // The n-th number in the text becomes another value.
        Edit::Number(i, v) => {
            let spans: Vec<(usize, usize)> =
                s.match_indices(|c: char| c.is_ascii_digit()).map(|(p, _)| p).fold(Vec::new(), |mut acc: Vec<(usize, usize)>, p| {
                    match acc.last_mut() {
                        Some(last) if last.1 == p => last.1 = p + 1,
                        _ => acc.push((p, p + 1)),
                    }
                    acc
                });
            if !spans.is_empty() {
                let (a, b) = spans[i % spans.len()];
                s.replace_range(a..b, v);
            }
        }
        Edit::DuplicateLine(i) => {
            let lines: Vec<&str> = text.lines().collect();
            let k = i % lines.len().max(1);
            let mut out: Vec<&str> = lines.clone();
            if let Some(l) = lines.get(k) {
                out.insert(k, l);
            }
            s = out.join("\n");
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn random_toml_shaped_text_never_panics(text in "([a-z_]{1,10} = (\"[^\"\n]{0,8}\"|-?[0-9]{1,20}|[0-9]\\.[0-9]e[0-9]{1,3}|true|\\[\\]|\\{\\})\n|\\[{1,2}[a-z_.]{1,10}\\]{1,2}\n){0,20}") {
        check(&text)?;
    }

    #[test]
    fn mutated_examples_never_panic(which in 0usize..EXAMPLES.len(), edits in proptest::collection::vec(edit(), 1..6)) {
        let mut text = EXAMPLES[which].to_string();
        for e in &edits {
            text = apply(&text, e);
        }
        check(&text)?;
    }

    /// A ShareGPT file mutated at random: prompts, or one-line problems, never a panic.
    #[test]
    fn mutated_datasets_never_panic(edits in proptest::collection::vec(edit(), 1..6), sample in proptest::option::of(1u64..100)) {
        let mut text = SHAREGPT.to_string();
        for e in &edits {
            text = apply(&text, e);
        }
        let tok = Tokenizer::o200k();
        let sel = Selection { sample, seed: 1, ..Selection::default() };
        match sharegpt(Api::Chat, &text, &tok, &sel) {
            Ok(((prompts, _), info)) => prop_assert_eq!(prompts.len() as u64, info.prompts),
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                for p in problems {
                    prop_assert!(!p.contains('\n'), "{}", p);
                }
            }
        }
    }

    /// A Mooncake trace (or the same lines as a plain JSONL trace) mutated at random,
    /// cut anywhere: a replay whose every line fits, or problems that name a line in
    /// the file, one line each, never a panic.
    #[test]
    fn mutated_traces_never_panic(
        edits in proptest::collection::vec(edit(), 1..6),
        jsonl in any::<bool>(),
        block in prop_oneof![Just(512u32), 1u32..2048],
        start in 0u64..4_000_000,
        requests in proptest::option::of(1u64..200),
    ) {
        let mut text = TRACE.to_string();
        for e in &edits {
            text = apply(&text, e);
        }
        let format = if jsonl { Format::Jsonl } else { Format::Mooncake };
        let cut = Cut { start_us: start, requests, ..Cut::default() };
        let lines = text.split('\n').count();
        match trace::read(Api::Chat, &text, format, block, &Tokenizer::o200k(), &cut) {
            Ok(t) => {
                prop_assert!(t.lines.len() <= t.in_file && requests.is_none_or(|n| t.lines.len() as u64 <= n));
                for l in &t.lines {
                    if let Input::Blocks { tokens, ids } = &l.input {
                        prop_assert_eq!(ids.len() as u64, u64::from(*tokens).div_ceil(u64::from(block)));
                    }
                    prop_assert!(l.next.is_none_or(|n| (n as usize) < t.lines.len()));
                }
            }
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                for (line, why) in problems {
                    prop_assert!(line >= 1 && line <= lines, "line {} of {}", line, lines);
                    prop_assert!(!why.contains('\n') && why.len() < 400, "{}", why);
                }
            }
        }
    }

    /// Any text as the field's length shorthand: a spec or a one-line error.
    #[test]
    fn any_shorthand_parses_or_says_why(text in "[DNUdnu]?\\(?[-0-9., ]{0,12}\\)?(/\\([-0-9., ]{0,12}\\))?") {
        if let Err(e) = LengthSpec::parse_shorthand(&text) {
            prop_assert!(!e.contains('\n') && (e.contains("accepted:") || e.contains("must")), "{}", e);
        }
    }
}

/// Invalid UTF-8 in a file is a one-line error, not a panic.
#[test]
fn a_file_that_is_not_utf8_is_one_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("bin.toml");
    std::fs::write(&path, b"name = \"\xff\xfe\"\n").unwrap();
    let e = Scenario::load(&path).unwrap_err().to_string();
    assert!(e.contains("bin.toml") && e.contains("cannot read scenario") && !e.contains('\n'), "{e}");
}
