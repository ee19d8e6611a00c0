//! The built-in tokenizers against their peer, tiktoken-rs (not a test): memory held
//! (VmRSS before and after building), time to build, and time to encode the repo's
//! docs and README 20 times, for o200k_base and cl100k_base. Each measurement runs in a
//! child process of its own (a built encoding is kept for the process's life, so a
//! second build in one process would measure nothing), llmload's and the peer's
//! alternating, five rounds; the table gives medians and the ratio.
//! `cargo bench --bench tokenizer` (figures: docs/benchmarks.md).

use std::process::Command;
use std::time::Instant;

const ROUNDS: usize = 5;
const REPEATS: usize = 20;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// The text every round encodes: the docs and the README, as they are in the repo.
fn corpus() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<_> = std::fs::read_dir(root.join("docs")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.retain(|p| p.extension().is_some_and(|e| e == "md"));
    paths.sort();
    paths.push(root.join("README.md"));
    paths.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect::<Vec<_>>().join("\n")
}

/// In the child: builds one tokenizer, encodes the corpus, prints
/// `rss_kib build_ms encode_ms tokens`.
fn child(tool: &str, encoding: &str) {
    let text = corpus();
    let before = rss_kib();
    let t = Instant::now();
    let encode: Box<dyn Fn(&str) -> usize> = match tool {
        "llmload" => {
            let tok = llmload::workload::Tokenizer::built_in(encoding).expect("a built-in encoding");
            tok.warm_up();
            Box::new(move |s| tok.encode(s).len())
        }
        _ => {
            let bpe = match encoding {
                "o200k_base" => tiktoken_rs::o200k_base().unwrap(),
                _ => tiktoken_rs::cl100k_base().unwrap(),
            };
            Box::new(move |s| bpe.encode_ordinary(s).len())
        }
    };
    let build = t.elapsed();
    let held = rss_kib().saturating_sub(before);
    let t = Instant::now();
    let mut tokens = 0;
    for _ in 0..REPEATS {
        tokens = encode(std::hint::black_box(&text));
    }
    println!("{held} {} {} {tokens}", build.as_secs_f64() * 1e3, t.elapsed().as_secs_f64() * 1e3);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, tool, encoding, ..] = &args[..]
        && flag == "--child"
    {
        return child(tool, encoding);
    }
    let me = std::env::current_exe().unwrap();
    println!("| encoding | tool | memory held | build | encode docs ×{REPEATS} | tokens |");
    println!("|---|---|---|---|---|---|");
    for encoding in ["o200k_base", "cl100k_base"] {
        let mut figures: Vec<Vec<[f64; 4]>> = vec![Vec::new(), Vec::new()];
        for _ in 0..ROUNDS {
            for (k, tool) in ["llmload", "tiktoken-rs"].iter().enumerate() {
                let out = Command::new(&me).args(["--child", tool, encoding]).output().unwrap();
                let line = String::from_utf8_lossy(&out.stdout);
                let f: Vec<f64> = line.split_whitespace().map(|x| x.parse().unwrap()).collect();
                figures[k].push([f[0], f[1], f[2], f[3]]);
            }
        }
        let med = |k: usize, i: usize| median(figures[k].iter().map(|f| f[i]).collect());
        assert_eq!(med(0, 3), med(1, 3), "the two count the docs alike");
        for (k, tool) in ["llmload", "tiktoken-rs"].iter().enumerate() {
            let (mib, build, encode) = (med(k, 0) / 1024.0, med(k, 1), med(k, 2));
            println!("| {encoding} | {tool} | {mib:.1} MiB | {build:.0} ms | {encode:.0} ms | {:.0} |", med(k, 3));
        }
        let ratio = |i: usize| med(0, i) / med(1, i);
        println!("| {encoding} | llmload / peer | {:.2}× | {:.2}× | {:.2}× | |", ratio(0), ratio(1), ratio(2));
    }
}
