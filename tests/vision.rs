//! Images against the mock: each request carries its images as content parts, the
//! mock charges OpenAI's tile rule into its prefill, so TTFT grows with the pixels by
//! the mock's known cost; the result counts images, pixels, bytes and the server's
//! prompt tokens; datasets with images are read; and what cannot be sent is refused in
//! one located line before any request.

mod common;
use common::*;

use std::time::Duration;

/// A chat stream on the mock: 50 ms to the first token, 40 ms per 1,000 prompt tokens.
fn text(stages: &str) -> String {
    format!(
        "name = \"vision\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = true\n\
         [mock]\nbase_latency_ms = 50\nper_inflight_ms = 0\ninter_token_ms = 2\nprefill_ms_per_1k_tokens = 40\n\
         [prompts]\ntemplate = \"Describe picture {{i}}.\"\n[request]\nmax_tokens = 8\n{stages}"
    )
}

fn stage(name: &str, images: &str) -> String {
    format!("[[stage]]\nname = \"{name}\"\nconcurrency = 1\nrequests = 6\nrequest = {{ images = {images} }}\n")
}

#[test]
fn images_cost_their_tiles_in_prompt_tokens_and_ttft() {
    let stages = [
        stage("text", "{ count = 0 }"),
        // 512² at high: one tile, 85 + 170 = 255 tokens.
        stage("one tile", "{ size = \"512x512\", detail = \"high\" }"),
        // Two of 1024×1024 at auto: each 768² → 4 tiles → 765 tokens.
        stage("two of four tiles", "{ count = 2, size = \"1024x1024\", format = \"jpeg\" }"),
        // Low detail: 85 whatever the size (JPEG: a 4 MB PNG's parse would show in TTFT).
        stage("low", "{ size = \"1024x1024\", format = \"jpeg\", detail = \"low\" }"),
    ];
    let (out, v) = run_headless(&text(&stages.concat()), &[]);
    let s = |k: usize| &v["stages"][k];
    let text_tokens = num(&s(0)["tokens"]["input_length"]["mean"]) as u64;
    assert!(s(0)["images"].is_null(), "no image, no figures: {}", s(0)["images"]);
    for (k, images, image_tokens, pixels) in [(1, 1, 255, 512 * 512), (2, 2, 2 * 765, 2 * 1024 * 1024), (3, 1, 85, 1024 * 1024)] {
        let i = &s(k)["images"];
        assert_eq!((count(&i["requests"]), count(&i["images"])), (6, 6 * images), "{i}");
        assert_eq!(count(&i["pixels"]["p50"]), pixels, "{i}");
        assert_eq!(count(&i["prompt_tokens"]["min"]), text_tokens + image_tokens, "stage {k}: {i}");
        assert_eq!(count(&i["prompt_tokens"]["max"]), text_tokens + image_tokens, "stage {k}: {i}");
        assert!(count(&i["bytes"]["min"]) > 1000, "encoded, not flat: {i}");
        // A text count cannot see image tokens: not compared as a disagreement.
        assert_eq!(count(&s(k)["tokens"]["prompt_compared"]), 0, "{}", s(k)["tokens"]);
    }
    // TTFT: the mock's 50 ms, plus 40 ms per 1,000 prompt tokens.
    let ttft = |k: usize| num(&s(k)["ttft_ms"]["p50"]);
    for (k, image_tokens) in [(1, 255.0), (2, 1530.0), (3, 85.0)] {
        let extra = ttft(k) - ttft(0);
        let want = image_tokens * 0.04;
        assert!((extra - want).abs() < 6.0, "stage {k}: TTFT {} vs {} without images; want +{want} ms", ttft(k), ttft(0));
    }
    assert!(out.stdout.contains("images") && out.stdout.contains("2 × 1.05 MP"), "the table's column: {}", out.stdout);
}

/// `as_url`: the request names each image by a URL of llmload's own server on
/// 127.0.0.1; the mock fetches it and charges its tiles, which it could not do unless
/// the URL served that very image.
#[test]
fn images_served_by_url_are_fetched_and_charged() {
    let stages = [stage("data", "{ size = \"1024x1024\" }"), stage("url", "{ size = \"1024x1024\", as_url = true }")];
    let (_, v) = run_headless(&text(&stages.concat()), &[]);
    let (data, url) = (&v["stages"][0], &v["stages"][1]);
    assert_eq!(count(&url["requests"]["ok"]), 6, "{}", url["failure_examples"]);
    assert_eq!(url["images"]["prompt_tokens"], data["images"]["prompt_tokens"], "the same 765-token images");
    assert_eq!(url["images"]["pixels"], data["images"]["pixels"]);
}

/// The per-request export carries each request's images, and the report draws TTFT
/// against their pixels, with the images in its stages table.
#[test]
fn the_report_draws_ttft_against_image_pixels() {
    let stages = [stage("small", "{ size = \"256x256\" }"), stage("large", "{ size = \"1024x1024\", format = \"jpeg\" }")];
    let (d, path) = scenario(&text(&stages.concat()));
    let (json, requests, page) = (d.path().join("r.json"), d.path().join("r.jsonl"), d.path().join("r.html"));
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg("--requests-out").arg(&requests).arg(&path);
    assert!(run(c, Duration::from_secs(60)).status.success());
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&requests).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let pixels: Vec<u64> = lines.iter().filter(|l| l["phase"] == "window").map(|l| count(&l["image_pixels"])).collect();
    assert!(pixels.contains(&(256 * 256)) && pixels.contains(&(1024 * 1024)) && pixels.len() == 12, "{pixels:?}");
    assert!(lines.iter().all(|l| count(&l["images"]) == 1 && count(&l["image_bytes"]) > 0));
    let mut c = cmd(&["report", "-o"]);
    c.arg(&page).arg("--requests").arg(&requests).arg(&json);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<figure id=\"ttft-pixels\">") && html.contains("Time to first token against image pixels"), "{}", out.stderr);
    assert!(html.contains("<th>images</th>") && html.contains("1 × 1.05 MP"));
}

#[test]
fn llava_and_openai_files_carry_their_images_and_tools() {
    let dir = repo_path("scenarios/data/vision");
    let t = format!(
        "name = \"files\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = true\n[mock]\nbase_latency_ms = 5\ninter_token_ms = 1\n\
         [prompts]\ntemplate = \"x\"\n[request]\nignore_eos = true\n\
         [[stage]]\nname = \"llava\"\nconcurrency = 2\nrequests = 10\nprompts = {{ sharegpt = \"{}\" }}\n\
         [[stage]]\nname = \"openai\"\nconcurrency = 1\nrequests = 6\nprompts = {{ file = \"{}\" }}\n",
        dir.join("llava.json").display(),
        dir.join("openai.jsonl").display()
    );
    let (_, v) = run_headless(&t, &[]);
    let llava = &v["stages"][0]["images"];
    // Four of its five entries name an image (one is text only); each is 64² to 1024×768.
    assert!(count(&llava["requests"]) >= 6 && count(&llava["requests"]) < 10, "{llava}");
    assert!(count(&llava["pixels"]["min"]) >= 64 * 64 && count(&llava["pixels"]["max"]) <= 1024 * 768, "{llava}");
    let openai = &v["stages"][1];
    assert_eq!(count(&openai["images"]["images"]), 6, "{}", openai["images"]);
    // A 48×32 image at low detail costs 85.
    assert!(count(&openai["images"]["prompt_tokens"]["min"]) > 85, "{}", openai["images"]);
    // Two of its three lines offer a tool: the mock calls it.
    assert_eq!(count(&openai["tool_calls"]["replies"]), 4, "{}", openai["tool_calls"]);
}

/// What cannot be sent: one located line, exit 2, before any request.
#[test]
fn images_that_cannot_be_sent_are_refused_in_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let bad_llava = dir.path().join("llava.json");
    std::fs::write(
        &bad_llava,
        r#"[{"image": "missing.jpg", "conversations": [{"from": "human", "value": "<image>\nhi"}, {"from": "gpt", "value": "yo"}]}]"#,
    )
    .unwrap();
    let bad_line = dir.path().join("lines.jsonl");
    std::fs::write(&bad_line, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"data:image/png;base64,aGVsbG8=\"}}]}]}\n").unwrap();
    let folder = dir.path().display().to_string();
    let cases = [
        ("[request]\nimages = { size = \"1024by768\" }".to_string(), "request.images.size: \"1024by768\" is not WxH"),
        (format!("[request]\nimages = {{ folder = \"{folder}\" }}"), "broken.png: PNG does not decode"),
        ("[request]\nimages = { folder = \"/no/such/dir\" }".to_string(), "/no/such/dir: cannot read"),
        ("[request]\nimages = { count = 1 }\n[target]\napi = \"completions\"".to_string(), "takes no images"),
        (format!("[prompts]\nsharegpt = \"{}\"", bad_llava.display()), "entry 0: image"),
        (format!("[prompts]\nfile = \"{}\"", bad_line.display()), "lines.jsonl:1: messages[0].content[0].image_url: not a PNG or JPEG"),
    ];
    for (extra, says) in cases {
        // Tables after the quick scenario's own: a second [request] or [prompts] replaces it.
        let t = quick_tables(&extra);
        let (_d, path) = scenario(&t);
        let mut c = cmd(&["run", "--headless"]);
        c.arg(&path);
        let out = run(c, Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(2), "{extra}: {}", out.stderr);
        assert!(out.stderr.contains(says) && out.stderr.contains("s.toml"), "{extra}: {}", out.stderr);
        assert!(out.stderr.lines().next().is_some_and(|l| l.contains(says)), "said first, in a line: {}", out.stderr);
    }
}

/// A mock scenario of one stage whose tables are `extra`'s where it gives them.
fn quick_tables(extra: &str) -> String {
    let mut tables: Vec<(String, String)> = vec![
        ("[target]".into(), "base_url = \"mock\"\nmodel = \"m\"".into()),
        ("[prompts]".into(), "template = \"hi {i}\"".into()),
        ("[[stage]]".into(), "concurrency = 1\nrequests = 2".into()),
    ];
    let mut current: Option<usize> = None;
    for line in extra.lines() {
        if line.starts_with('[') {
            current = Some(match tables.iter().position(|(h, _)| h == line) {
                Some(k) => {
                    if line != "[target]" {
                        tables[k].1.clear();
                    }
                    k
                }
                None => {
                    tables.push((line.to_string(), String::new()));
                    tables.len() - 1
                }
            });
        } else if let Some(k) = current {
            tables[k].1.push('\n');
            tables[k].1.push_str(line);
        }
    }
    let mut out = String::from("name = \"bad\"\n");
    for (h, body) in tables {
        out.push_str(&format!("{h}\n{body}\n"));
    }
    out
}

#[test]
fn the_shipped_vision_scenario_runs() {
    let (out, v) = run_shipped("scenarios/vision.toml");
    let stages = v["stages"].as_array().unwrap();
    assert!(stages.iter().all(|s| count(&s["requests"]["failed"]) == 0 && s["images"].is_object()), "{}", out.stderr);
    let ttft: Vec<f64> = stages.iter().take(3).map(|s| num(&s["ttft_ms"]["p50"])).collect();
    assert!(ttft[0] < ttft[1] && ttft[1] < ttft[2], "TTFT grows with pixels: {ttft:?}");
}

/// Shards send the whole run's images (each request's by its number in the whole run)
/// and their figures merge exactly: the merge's images are the unsharded run's.
#[test]
fn shards_send_the_runs_images_and_merge_to_its_figures() {
    let t = text(
        "[[stage]]\nname = \"mixed\"\nconcurrency = 4\nrequests = 24\n\
                  request = { images = { count = { min = 0, max = 3 }, size = [\"64x64\", { size = \"128x96\", weight = 2 }] } }\n",
    );
    let (d, path) = scenario(&t);
    let run_to = |tag: &str, shard: Option<&str>| {
        let json = d.path().join(format!("{tag}.json"));
        let mut c = cmd(&["run", "--headless", "--json"]);
        c.arg(&json);
        if let Some(s) = shard {
            c.args(["--shard", s]);
        }
        c.arg(&path);
        assert!(run(c, Duration::from_secs(60)).status.success());
        json
    };
    let whole = read_json(&run_to("whole", None));
    let shards = [run_to("a", Some("0/2")), run_to("b", Some("1/2"))];
    let merged_path = d.path().join("merged.json");
    let mut c = cmd(&["merge", "-o"]);
    c.arg(&merged_path).args(&shards);
    let out = run(c, Duration::from_secs(30));
    assert!(out.status.success(), "{}", out.stderr);
    let merged = read_json(&merged_path);
    assert_schema_valid(&merged);
    let (m, w) = (&merged["stages"][0]["images"], &whole["stages"][0]["images"]);
    for field in ["requests", "images", "per_request", "pixels", "bytes"] {
        assert_eq!(m[field], w[field], "images.{field}: merged {m} vs whole {w}");
    }
}

/// A server that cannot see images refuses each request that carries one: counted as
/// `http_4xx` with its message, said once for the stage, not once a request.
#[test]
fn a_server_without_vision_is_said_once_a_stage() {
    let t = text(&stage("refused", "{ size = \"64x64\" }")).replace("[mock]\n", "[mock]\nvision = false\n");
    let (d, path) = scenario(&t);
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg(&path);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(3), "no success is a failed verdict: {}", out.stderr);
    let s = &read_json(&json)["stages"][0];
    assert_eq!((count(&s["requests"]["failed"]), count(&s["failures"]["http_4xx"])), (6, 6), "{}", s["failures"]);
    assert!(s["failure_examples"]["http_4xx"].as_str().unwrap().contains("HTTP 400: this model does not support image input"));
    assert_eq!(out.stdout.matches("does not support image input").count(), 1, "{}", out.stdout);
}
