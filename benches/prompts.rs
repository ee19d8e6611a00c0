//! Synthetic prompt generation speed (not a test): prompts/s built to 1k and 8k input
//! tokens in o200k, one core and all cores (as a stage builds them ahead), beside the
//! peer that bounds it — one o200k count of a text as long (each prompt is counted
//! whole once, to be exact). Medians of alternating rounds. `cargo bench --bench prompts`.

use std::time::Instant;

use llmload::model::{Api, RequestParams};
use llmload::workload::dist::LengthSpec;
use llmload::workload::synth::WordPool;
use llmload::workload::synthetic::Synthetic;
use llmload::workload::{Prompts, Tokenizer, Workload};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let tok = Tokenizer::o200k();
    let pool = std::sync::Arc::new(WordPool::new(&tok).unwrap());
    println!(
        "| input tokens | prompts/s, 1 core | prompts/s, all cores (stage ahead) | o200k counts/s of as long a text (peer) | generation / count |"
    );
    println!("|---|---|---|---|---|");
    for input in [1000u32, 8000] {
        let n: u64 = if input == 1000 { 2000 } else { 300 };
        let spec = LengthSpec::parse_shorthand(&format!("D({input},16)")).unwrap();
        let prompts = Prompts::synthetic(Api::Chat, Synthetic::new(spec, None, 1, pool.clone()), "bench".into());
        let text = pool.text(input, Some(0), &mut llmload::workload::dist::rng_for(9, 9, 9)).0;
        let (mut one, mut all, mut peer) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..5u64 {
            let t = Instant::now();
            for i in 0..n {
                std::hint::black_box(prompts.prompt_in(round, i));
            }
            one.push(n as f64 / t.elapsed().as_secs_f64());
            let mut stage = Workload::new(prompts.clone(), false, false).stage(
                round as usize + 10,
                "m",
                &RequestParams::default(),
                &Default::default(),
                Default::default(),
            );
            let t = Instant::now();
            stage.prepare(n, true);
            all.push(n as f64 / t.elapsed().as_secs_f64());
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(tok.count(std::hint::black_box(&text)));
            }
            peer.push(n as f64 / t.elapsed().as_secs_f64());
        }
        let (one, all, peer) = (median(one), median(all), median(peer));
        println!("| {input} | {one:.0} | {all:.0} | {peer:.0} | {:.2}× the count's time |", peer / one);
    }
}
