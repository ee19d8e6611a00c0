//! Token-length control end to end (issue 13): synthetic prompts of exact lengths in
//! o200k and in Hugging Face tokenizer files the test trains itself, output lengths
//! asked for and achieved under `ignore_eos` on the mock, "ended short" without it,
//! shared prefixes lowering TTFT by the mock's modelled amount, ShareGPT datasets, and
//! every bad input as one located line before any request.

mod common;
use common::*;

use std::path::Path;
use std::time::Duration;

use llmload::model::Api;
use llmload::scenario::Scenario;
use llmload::workload::Tokenizer;
use llmload::workload::dist::rng_for;
use llmload::workload::synth::{WORDS, WordPool};

/// A BPE tokenizer.json trained on this repo's docs (English prose and tables, not
/// llmload's word list: which words are one token is the vocabulary's business, as in
/// a real model's), byte-level (GPT-2, Llama 3, Qwen) or Metaspace (SentencePiece style:
/// Llama 2, Mistral, Gemma), so the test needs no download.
fn trained_tokenizer(dir: &Path, metaspace: bool) -> std::path::PathBuf {
    use tokenizers::decoders::DecoderWrapper;
    use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
    use tokenizers::normalizers::NormalizerWrapper;
    use tokenizers::pre_tokenizers::PreTokenizerWrapper;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
    use tokenizers::processors::PostProcessorWrapper;
    use tokenizers::{TokenizerBuilder, TokenizerImpl};

    let corpus: Vec<String> =
        ["docs/scenario.md", "docs/metrics.md", "README.md"].iter().map(|f| repo_path(f).display().to_string()).collect();
    let (pre, dec) = if metaspace {
        let m = Metaspace::new('▁', PrependScheme::First, true);
        (PreTokenizerWrapper::Metaspace(m.clone()), DecoderWrapper::Metaspace(m))
    } else {
        (PreTokenizerWrapper::ByteLevel(ByteLevel::default()), DecoderWrapper::ByteLevel(ByteLevel::default()))
    };
    let mut tok: TokenizerImpl<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper> =
        TokenizerBuilder::new().with_model(BPE::default()).with_pre_tokenizer(Some(pre)).with_decoder(Some(dec)).build().unwrap();
    let mut trainer = BpeTrainerBuilder::new().vocab_size(3000).min_frequency(2).show_progress(false);
    if !metaspace {
        trainer = trainer.initial_alphabet(ByteLevel::alphabet().into_iter().collect());
    }
    tok.train_from_files(&mut trainer.build(), corpus).unwrap();
    let path = dir.join(if metaspace { "metaspace.json" } else { "byte-level.json" });
    std::fs::write(&path, tok.to_string(false).unwrap()).unwrap();
    path
}

#[test]
fn input_lengths_are_exact_in_hugging_face_tokenizer_files() {
    let dir = tempfile::tempdir().unwrap();
    for metaspace in [false, true] {
        let path = trained_tokenizer(dir.path(), metaspace);
        let tok = Tokenizer::from_file(&path, "t.json").unwrap();
        let pool = WordPool::new(&tok).unwrap();
        // Some of llmload's words are split in this vocabulary: the pool keeps the rest.
        let split = WORDS.split(' ').filter(|w| !w.is_empty() && tok.count(&format!(" {w}")) > 1).count();
        assert!(split > 0, "the vocabulary is not made to fit the word list");
        for (i, n) in [1u32, 3, 6, 7, 64, 500, 2048].into_iter().enumerate() {
            for seed in 0..4 {
                let (text, count) = pool.text(n, Some(i as u64 * 10 + seed), &mut rng_for(seed, 1, i as u64));
                assert_eq!((count, tok.count(&text)), (u64::from(n), u64::from(n)), "metaspace {metaspace}, n {n}, seed {seed}");
            }
        }
    }
}

#[test]
fn a_scenario_counts_in_its_tokenizer_file_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = trained_tokenizer(dir.path(), true);
    let bytes = std::fs::read(&path).unwrap();
    let text = format!(
        "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[prompts]\nsynthetic = \"D(300,8)\"\ntokenizer = {{ file = {:?} }}\n\
         [request]\nignore_eos = true\n[[stage]]\nconcurrency = 4\nrequests = 12\n",
        path.display().to_string()
    );
    let (_out, v) = run_scenario(&text);
    assert_schema_valid(&v);
    let w = &v["scenario"]["workload"];
    assert_eq!(w["tokenizer"], path.display().to_string());
    let file = &w["files"][0];
    assert_eq!(count(&file["bytes"]), bytes.len() as u64);
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(file["sha256"], sha);
    let len = &v["stages"][0]["tokens"]["input_length"];
    assert_eq!((count(&len["min"]), count(&len["max"])), (300, 300), "{len}");
}

#[test]
fn the_token_lengths_scenario_sends_and_gets_exact_lengths() {
    let (out, v) = run_shipped("scenarios/token-lengths.toml");
    assert_schema_valid(&v);
    let stages = v["stages"].as_array().unwrap();
    for s in stages {
        let t = &s["tokens"];
        assert_eq!(count(&s["requests"]["ok"]), 64, "{}", s["name"]);
        // The mock honours ignore_eos: every reply is as long as asked.
        let target = &t["target_output"];
        assert_eq!(count(&target["ended_short"]), 0, "{}", s["name"]);
        assert_eq!(num(&target["achieved_mean"]), num(&target["target"]["mean"]), "{}", s["name"]);
        assert_eq!(count(&t["output"]), count(&t["completion"]), "usage and the sum agree");
        // What the mock counted of each prompt (o200k, content only) is what was built.
        assert_eq!((count(&t["prompt"]), count(&t["prompt_disagree"])), (count(&t["input"]), 0), "{}", s["name"]);
        assert!(num(&s["throughput"]["total_tokens_per_s"]) > num(&s["throughput"]["output_tokens_per_s"]));
    }
    let fixed = &stages[1]["tokens"];
    assert_eq!((count(&fixed["input_length"]["min"]), count(&fixed["input_length"]["max"])), (1000, 1000));
    assert_eq!((count(&fixed["output_length"]["min"]), count(&fixed["output_length"]["max"])), (200, 200));
    let normal = &stages[0]["tokens"]["input_length"];
    let mean = num(&normal["mean"]);
    assert!((380.0..580.0).contains(&mean) && count(&normal["min"]) < count(&normal["max"]), "N(480,240): {normal}");
    // The same seed builds the same prompts (loaded anew), each of its drawn length.
    let s = Scenario::load(&repo_path("scenarios/token-lengths.toml")).unwrap();
    let again = Scenario::load(&repo_path("scenarios/token-lengths.toml")).unwrap();
    let tok = Tokenizer::o200k();
    for i in 0..64 {
        let p = s.prompts.prompt_in(0, i);
        let sent: serde_json::Value = serde_json::from_str(p.json.get()).unwrap();
        assert_eq!(tok.prompt_tokens(&sent), p.tokens(&tok), "request {i}");
        assert_eq!(p.json.get(), again.prompts.prompt_in(0, i).json.get());
    }
    let other_seed = Scenario::parse(
        &std::fs::read_to_string(repo_path("scenarios/token-lengths.toml")).unwrap().replace("seed = 1", "seed = 2"),
        "t.toml",
        None,
    )
    .unwrap();
    assert_ne!(s.prompts.prompt_in(0, 0).json.get(), other_seed.prompts.prompt_in(0, 0).json.get());
    // The table shows the lengths asked and got.
    assert!(out.stdout.contains("in/out tok"), "{}", out.stdout);
    assert!(out.stdout.contains("1000/200"), "{}", out.stdout);
}

#[test]
fn replies_that_end_short_are_counted_and_warned_of() {
    // No ignore_eos: the mock answers with its own 16 tokens whatever is asked.
    let text = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 5\noutput_tokens = 16\n\
                [prompts]\nsynthetic = { input = 50, output = { min = 100, max = 200 } }\n[[stage]]\nname = \"short\"\nconcurrency = 4\nrequests = 20\n";
    let (out, v) = run_scenario(text);
    let t = &v["stages"][0]["tokens"]["target_output"];
    assert_eq!((count(&t["ended_short"]), num(&t["ended_short_share"])), (20, 1.0), "{t}");
    assert_eq!(num(&t["achieved_mean"]), 16.0);
    let all = format!("{}{}", out.stdout, out.stderr);
    // The mock says why each reply ended (its own end: "stop"), and the warning says it
    // judged by that.
    assert_eq!(count(&v["stages"][0]["finish_reasons"]["stop"]), 20);
    assert!(
        all.contains(
            "short: WARNING: 100 % of replies ended before their target length (by their finish_reason: not \"length\"): does the server honour ignore_eos?"
        ),
        "{all}"
    );
    // min_tokens instead of ignore_eos: capped at each request's length, it pins it.
    let pinned = text.replace("[[stage]]", "[request]\nmin_tokens = 100000\n[[stage]]");
    let (out, v) = run_scenario(&pinned);
    let t = &v["stages"][0]["tokens"]["target_output"];
    assert_eq!(count(&t["ended_short"]), 0, "{t}");
    assert_eq!(num(&t["achieved_mean"]), num(&t["target"]["mean"]));
    assert!(!out.stdout.contains("WARNING"), "{}", out.stdout);
    assert!(!out.stdout.contains("prefix cache"), "no stage hit the cache and no prompts share a prefix: no line\n{}", out.stdout);
}

#[test]
fn a_shared_prefix_lowers_ttft_by_the_modelled_prefill() {
    // 2,100 input tokens each; with a shared 2,000-token prefix, all but the first
    // request of the group find it cached and pay prefill for 100 tokens only.
    let text = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = true\n[mock]\nbase_latency_ms = 20\nper_inflight_ms = 0\n\
                prefill_ms_per_1k_tokens = 50\n[prompts]\nsynthetic = \"D(2100,4)\"\n[request]\nignore_eos = true\n\
                [[stage]]\nname = \"unique\"\nrequests = 12\n\
                [[stage]]\nname = \"shared\"\nrequests = 12\nprompts = { synthetic = \"D(100,4)\", shared_prefix = { tokens = 2000, groups = 1 } }\n";
    let (out, v) = run_scenario(text);
    // A stage hit the cache (11 of 12 requests find 2,000 of 2,100 tokens: 87 %): every
    // stage's share is told, the 0 % beside it.
    assert!(out.stdout.contains("unique: the server's prefix cache held 0 % of prompt tokens"), "{}", out.stdout);
    assert!(out.stdout.contains("shared: the server's prefix cache held 87 % of prompt tokens"), "{}", out.stdout);
    let ttft = |i: usize| num(&v["stages"][i]["ttft_ms"]["p50"]);
    let input = |i: usize| num(&v["stages"][i]["tokens"]["input_length"]["mean"]);
    assert_eq!((input(0), input(1)), (2100.0, 2100.0));
    // Modelled: 2,000 cached tokens × 50 ms per 1k = 100 ms less before the first token.
    let saved = ttft(0) - ttft(1);
    assert!((85.0..=115.0).contains(&saved), "unique {} ms, shared {} ms: saved {saved} ms, modelled 100", ttft(0), ttft(1));
}

#[test]
fn the_sharegpt_scenario_samples_with_its_seed_and_says_it_oversampled() {
    let (out, v) = run_shipped("scenarios/sharegpt.toml");
    assert!(out.stdout.contains("in/out tok"), "the table shows lengths asked and got:\n{}", out.stdout);
    assert_schema_valid(&v);
    let d = &v["scenario"]["workload"]["datasets"][0];
    assert_eq!((count(&d["entries"]), count(&d["prompts"]), d["oversampled"].as_bool()), (22, 40, Some(true)), "{d}");
    assert!(count(&d["usable"]) < 40);
    let f = &v["scenario"]["workload"]["files"][0];
    assert_eq!(f["path"], "data/sharegpt-small.json");
    assert_eq!(v["scenario"]["workload"]["seed"], 7);
    let t = &v["stages"][0]["tokens"];
    assert_eq!(count(&t["target_output"]["ended_short"]), 0);
    assert!(count(&t["output_length"]["max"]) > count(&t["output_length"]["min"]), "reply lengths vary: {t}");
    // The prompts are the conversations' first human turns.
    let s = Scenario::load(&repo_path("scenarios/sharegpt.toml")).unwrap();
    let all = std::fs::read_to_string(repo_path("scenarios/data/sharegpt-small.json")).unwrap();
    for i in 0..40 {
        let p: serde_json::Value = serde_json::from_str(s.prompts.prompt(i).json.get()).unwrap();
        let asked = p[0]["content"].as_str().unwrap();
        assert!(all.contains(&serde_json::to_string(asked).unwrap()), "{asked}");
    }
    assert_eq!(s.prompts.api(), Api::Chat);
}

#[test]
fn bad_lengths_datasets_and_tokenizers_are_one_located_line_each() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.json"), r#"[{"conversations": [{"from": "human", "value": "hi"}]}, {"convo": 1}]"#).unwrap();
    std::fs::write(dir.path().join("not-a-tokenizer.json"), r#"{"hello": "world"}"#).unwrap();
    let base = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[[stage]]\nrequests = 1\n[prompts]\n";
    let cases = [
        ("synthetic = { input = { min = 500, max = 100 } }", "7:13: prompts.synthetic.input: min (500) must not exceed max (100)"),
        ("synthetic = { input = 0 }", "7:13: prompts.synthetic.input: a length must be at least 1 token"),
        ("synthetic = [{ input = 128, output = 512, weight = 0 }]", "7:13: prompts.synthetic: bucket 1: weight must be a positive number"),
        ("synthetic = \"N(480)\"", "7:13: prompts.synthetic \"N(480)\" needs an input and an output pair"),
        ("synthetic = \"D(10,10)\"\nshared_prefix = { tokens = 10, groups = 0 }", "8:17: prompts.shared_prefix: groups must be from 1"),
        ("sharegpt = \"bad.json\"", "7:12: prompts.sharegpt"),
        ("sharegpt = \"missing.json\"", "7:12: prompts.sharegpt \"missing.json\": cannot read"),
        ("synthetic = \"D(10,10)\"\ntokenizer = { file = \"nope.json\" }", "8:13: prompts.tokenizer: cannot read"),
        ("synthetic = \"D(10,10)\"\ntokenizer = { file = \"not-a-tokenizer.json\" }", "not a Hugging Face tokenizer.json"),
        ("synthetic = \"D(10,10)\"\ntokenizer = \"llama\"", "8:13: prompts.tokenizer \"llama\" is not built in"),
        ("template = \"x\"\nsample = 5", "8:10: prompts.sample goes with `sharegpt` only"),
    ];
    for (prompts, want) in cases {
        let path = dir.path().join("s.toml");
        std::fs::write(&path, format!("{base}{prompts}\n")).unwrap();
        let out = run(cmd(&["validate", path.to_str().unwrap()]), Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{prompts}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{prompts}: want {want:?} in:\n{}", out.stderr);
        assert!(out.stderr.lines().all(|l| l.starts_with(path.to_str().unwrap())), "{}", out.stderr);
        assert!(!out.stderr.contains("panicked"));
    }
    // A dataset entry of the wrong shape is named by its index.
    std::fs::write(dir.path().join("s.toml"), format!("{base}sharegpt = \"bad.json\"\n")).unwrap();
    let out = run(cmd(&["validate", dir.path().join("s.toml").to_str().unwrap()]), Duration::from_secs(30));
    assert!(out.stderr.contains("bad.json: entry 1: expected {\"conversations\""), "{}", out.stderr);
}
