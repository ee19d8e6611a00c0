//! llmload against a real model server: llama.cpp's llama-server with Gemma-3 270M on
//! the CPU (tests/common/llama.rs starts it; scripts/install-llama-server builds it).
//! Short runs, each asserting what a server someone else wrote could make fail: the
//! timings agree with the server's own, lengths are honoured, the knee is where its
//! slots run out, sessions reuse its cache, an overflow is its own kind of failure.

mod common;

use std::path::Path;
use std::time::Duration;

use common::llama::{LlamaServer, MODEL_NAME};
use serde_json::Value;

/// One run against the server: its output, result and requests-out lines.
struct Ran {
    out: common::Output,
    result: Value,
    lines: Vec<Value>,
}

/// Runs `body` (everything after `[target]`'s fields) against `server`.
fn run(server: &LlamaServer, stream: bool, body: &str, args: &[&str]) -> Ran {
    let text = format!(
        "name = \"llama-server\"\n[target]\nbase_url = \"{}\"\nmodel = \"{MODEL_NAME}\"\nstream = {stream}\ntimeout = \"60s\"\n{body}",
        server.base_url()
    );
    let (dir, path) = common::scenario(&text);
    let (json, lines) = (dir.path().join("r.json"), dir.path().join("requests.jsonl"));
    let mut c = common::cmd(&["run", "--headless", "--no-progress", "--json"]);
    c.arg(&json).arg("--requests-out").arg(&lines).args(args).arg(&path);
    let out = common::run(c, Duration::from_secs(240));
    assert!(matches!(out.status.code(), Some(0 | 3)), "exit {:?}: {}\n{}", out.status, out.stderr, server.log());
    let result = common::read_json(&json);
    common::assert_schema_valid(&result);
    Ran { out, result, lines: read_lines(&lines) }
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn f(v: &Value) -> f64 {
    common::num(v)
}

/// Every request of every stage succeeded and none was lost: started = ok.
fn assert_all_ok(ran: &Ran) {
    for s in ran.result["stages"].as_array().unwrap() {
        let r = &s["requests"];
        assert_eq!(common::count(&r["failed"]), 0, "{}: {}\n{}", s["name"], ran.out.stdout, s["errors"]);
        assert_eq!(r["started"], r["ok"], "{}", s["name"]);
    }
    assert!(ran.lines.iter().all(|l| l["outcome"] == "ok"));
}

#[test]
fn streamed_timings_agree_with_the_servers_own() {
    let Some(server) = LlamaServer::start(&["-c", "4096", "-np", "4"]) else { return };
    for concurrency in [1, 4] {
        let body = format!(
            "[prompts]\ntemplate = \"Write a short line about the number {{i}}.\"\n[request]\nmax_tokens = 24\nignore_eos = true\n\
             [[stage]]\nname = \"{concurrency}-way\"\nconcurrency = {concurrency}\nrequests = 12\n"
        );
        let ran = run(&server, true, &body, &[]);
        assert_all_ok(&ran);
        assert_eq!(ran.lines.len(), 12);
        let stage = &ran.result["stages"][0];
        let mut output = 0;
        // A request that arrives mid-step waits for that step before its slot starts:
        // a decode step (measured: up to 1.5 of them), or another request's prompt when
        // it came in while that prompt was being read. The first is the usual case and
        // holds for the median; the second bounds every request.
        let longest_prompt = ran.lines.iter().map(|l| f(&l["server_timings"]["prompt_ms"])).fold(0.0, f64::max);
        let mut excess = Vec::new();
        for l in &ran.lines {
            let t = &l["server_timings"];
            assert!(t.is_object(), "llama-server sends its timings: {l}");
            // What llmload counted is what the server generated and said in its usage.
            assert_eq!(l["output_tokens"], t["predicted_n"], "{l}");
            assert_eq!(common::count(&l["output_tokens"]), 24, "{l}");
            output += common::count(&l["output_tokens"]);
            // TTFT holds the server's prompt time and what surrounds it (HTTP, the chat
            // template, a slot taken): never less, and little more when nothing queues
            // (4 slots, at most 4 in flight).
            let (ttft, prompt) = (f(&l["ttft_ms"]), f(&t["prompt_ms"]));
            assert!(ttft >= prompt, "{concurrency}-way: TTFT {ttft} ms under the server's prompt time {prompt} ms");
            // ITL is the server's generation time per decode step, seen from outside:
            // the last chunk's trip and [DONE] are all that differ.
            let (itl, per_token) = (f(&l["itl_ms"]), f(&t["per_token_ms"]));
            let step = if concurrency > 1 { 1.5 * per_token } else { 0.0 };
            let usual = 20.0 + 0.1 * prompt + step;
            let wait = if concurrency > 1 { longest_prompt.max(step) } else { 0.0 };
            assert!(ttft - prompt <= usual + wait, "{concurrency}-way: TTFT {ttft} ms vs prompt {prompt} ms");
            excess.push((ttft - prompt) - usual);
            assert!((itl - per_token).abs() <= 2.0 + 0.1 * per_token, "{concurrency}-way: ITL {itl} ms vs the server's {per_token} ms");
        }
        excess.sort_by(f64::total_cmp);
        assert!(excess[excess.len() / 2] <= 0.0, "{concurrency}-way: most requests wait at most one decode step: {excess:?}");
        assert_eq!(common::count(&stage["tokens"]["output"]), output, "{}", stage["tokens"]);
        // This server closes its connection after every stream: what was sent again is
        // counted once, in the stage and on its request's line, and never failed.
        let resent = ran.lines.iter().filter(|l| l["reconnected"] == true).count() as u64;
        assert_eq!(common::count(&stage["reconnects"]), resent);
        assert_eq!(common::count(&stage["tokens"]["requests_with_usage"]), 12, "{}", stage["tokens"]);
        assert_eq!(common::count(&stage["tokens"]["completion"]), output, "the server's usage: {}", stage["tokens"]);
    }
}

#[test]
fn drawn_output_lengths_are_honoured() {
    let Some(server) = LlamaServer::start(&["-c", "4096", "-np", "4"]) else { return };
    // Each request asks its own length (8 to 32, sent as its max_tokens); with
    // ignore_eos the server writes exactly that many.
    let body = "[prompts]\nsynthetic = \"U(16,48)/(8,32)\"\nseed = 3\n[request]\nignore_eos = true\n\
                [[stage]]\nname = \"drawn lengths\"\nconcurrency = 4\nrequests = 12\n";
    for stream in [true, false] {
        let ran = run(&server, stream, body, &[]);
        assert_all_ok(&ran);
        let tokens = &ran.result["stages"][0]["tokens"];
        let target = &tokens["target_output"];
        assert_eq!(f(&target["target"]["mean"]), f(&target["achieved_mean"]), "stream {stream}: {tokens}");
        assert_eq!(common::count(&target["ended_short"]), 0, "{tokens}");
        assert_eq!(tokens["output_length"], target["target"], "achieved lengths are the targets: {tokens}");
        assert!(common::count(&target["target"]["min"]) < common::count(&target["target"]["max"]), "lengths drawn: {tokens}");
        assert!(!ran.out.stdout.contains("ended short"), "{}", ran.out.stdout);
        assert_eq!(common::count(&tokens["completion"]), common::count(&tokens["output"]), "the server's usage is the count: {tokens}");
    }
}

/// Where this server's knee is, and why. It computes on one thread, so a second slot
/// shares that thread: what two decodes at once gain is the box's (here 15 tokens took
/// ~400 ms alone and ~780 two at once; a CI box gained 28 % once). Beyond its two slots
/// nothing is gained and requests wait for one.
///
/// The prompt cache is off: with it, Gemma 3's sliding-window cache let two requests in
/// flight share their common 23-token prefix (prefill ~60 ms) while one after another
/// reused a token (~170 ms), so 2-way "gained" 20–40 % from the cache, not the slots;
/// a knee found at 2-way on that held in most runs and failed in CI (1.04×).
#[test]
fn a_one_thread_server_plateaus_by_its_slots_and_queues_beyond_them() {
    let Some(server) = LlamaServer::start(&["-c", "2048", "-np", "2"]) else { return };
    let body = "[prompts]\ntemplate = \"Count to {i}.\"\n[request]\nmax_tokens = 16\nignore_eos = true\n\
                extra_body = { cache_prompt = false }\n\
                [sweep]\nconcurrency = [1, 2, 4, 8]\nrequests = 16\nknee_gain = 0.2\n\
                [server_metrics]\n";
    let ran = run(&server, true, body, &[]);
    assert_all_ok(&ran);
    let sweep = &ran.result["sweep"];
    let points = sweep["points"].as_array().unwrap();
    let rate = |i: usize| f(&points[i]["throughput"]);
    let ttft = |i: usize| f(&ran.result["stages"][i]["ttft_ms"]["p50"]);
    let why = format!("{}\n{}", sweep, ran.out.stdout);
    for l in &ran.lines {
        assert_eq!(l["server_timings"]["cache_n"], 0, "the prompt cache is off: {l}");
    }
    // Beyond its two slots no doubling gains a fifth: the knee is at the slots or before
    // them. Whether the second slot gains is the box's: on this one 1.02× (one compute
    // thread), on a quieter CI box 1.28× once (two decodes sharing reads of the weights).
    for i in 2..4 {
        assert!(rate(i) < 1.2 * rate(i - 1), "no slot is left beyond 2: {why}");
    }
    let knee = sweep["knee"]["stage"].as_str().unwrap_or_default();
    assert!(knee == "sequential" || knee == "2-way", "the knee is at the slots or before: {why}");
    let said = sweep["summary"].as_str().unwrap();
    assert!(said.contains("plateaus") && (said.contains("from 1-way") || said.contains("from 2-way")), "{said}");
    assert!(ran.out.stdout.contains(said), "the table says it: {}", ran.out.stdout);
    // Beyond the slots a request waits for one: TTFT grows with the queue (measured:
    // 440 ms at 2-way, 1670 at 4-way), and the server says requests waited.
    assert!(
        ttft(2) > 2.0 * ttft(1) && ttft(3) > 1.5 * ttft(2),
        "TTFT p50 by point: {} {} {} {}: {why}",
        ttft(0),
        ttft(1),
        ttft(2),
        ttft(3)
    );
    let waited = |i: usize| f(&ran.result["stages"][i]["server"][0]["waiting"]["max"]);
    assert_eq!(waited(0), 0.0, "one at a time never waits: {}", ran.result["stages"][0]["server"]);
    assert!(waited(3) > 0.0, "8 asked of 2 slots: {}", ran.result["stages"][3]["server"]);
}

#[test]
fn completions_streamed_and_not() {
    let Some(server) = LlamaServer::start(&["-c", "4096", "-np", "4"]) else { return };
    let body = "api = \"completions\"\n[prompts]\ntemplate = \"Once upon a time, number {i}\"\n[request]\nmax_tokens = 16\nignore_eos = true\n\
                [[stage]]\nname = \"completions\"\nconcurrency = 2\nrequests = 6\n";
    for stream in [true, false] {
        let ran = run(&server, stream, body, &[]);
        assert_all_ok(&ran);
        let stage = &ran.result["stages"][0];
        assert_eq!(common::count(&stage["tokens"]["completion"]), 6 * 16, "stream {stream}: {}", stage["tokens"]);
        assert_eq!(common::count(&stage["tokens"]["output"]), 6 * 16);
        for l in &ran.lines {
            assert_eq!(l["output_tokens"], 16, "{l}");
            assert_eq!(l["server_timings"]["predicted_n"], 16, "{l}");
            assert_eq!(l["ttft_ms"].is_number(), stream, "{l}");
            // A completion's prompt is the text itself: no chat template around it.
            assert!(common::count(&l["server_timings"]["prompt_n"]) + common::count(&l["server_timings"]["cache_n"]) <= 16, "{l}");
        }
    }
}

#[test]
fn sessions_carry_the_real_replies_and_reuse_the_servers_cache() {
    let Some(server) = LlamaServer::start(&["-c", "4096", "-np", "4"]) else { return };
    let body = "[prompts]\ntemplate = \"Tell me about the color number {i}.\"\n[request]\nmax_tokens = 12\nignore_eos = true\n\
                [conversation]\nturns = 3\nhistory = true\n\
                [[stage]]\nname = \"2 users\"\nconcurrency = 2\nrequests = 12\n";
    let ran = run(&server, true, body, &["--requests-out-text"]);
    assert_all_ok(&ran);
    let sessions = &ran.result["stages"][0]["sessions"];
    assert_eq!(common::count(&sessions["finished"]), 4, "{sessions}");
    let mut by_session: std::collections::BTreeMap<u64, Vec<&Value>> = Default::default();
    for l in &ran.lines {
        by_session.entry(common::count(&l["session"])).or_default().push(l);
    }
    assert_eq!(by_session.len(), 4);
    for (id, turns) in &mut by_session {
        turns.sort_by_key(|l| common::count(&l["turn"]));
        assert_eq!(turns.len(), 3, "session {id}");
        for k in 1..3 {
            let (before, now) = (turns[k - 1], turns[k]);
            // The history sent is the server's own earlier reply, word for word.
            let messages = now["prompt"].as_array().unwrap_or_else(|| panic!("messages: {now}"));
            let said = messages.iter().rfind(|m| m["role"] == "assistant").unwrap_or_else(|| panic!("{now}"));
            assert_eq!(said["content"], before["reply"], "session {id} turn {k}");
            assert!(!before["reply"].as_str().unwrap().is_empty());
            // The server's prefix cache holds what the turn before sent and got back.
            let cached = |l: &Value| common::count(&l["server_timings"]["cache_n"]);
            let sent = |l: &Value| cached(l) + common::count(&l["server_timings"]["prompt_n"]);
            assert!(cached(now) > cached(before), "session {id} turn {k}: cached {} then {}", cached(before), cached(now));
            // All of the earlier prompt but its end: the template's cue for the model's
            // turn is rendered otherwise once a reply follows it (seen: 27 of 32).
            assert!(4 * cached(now) >= 3 * sent(before), "session {id} turn {k}: the earlier prompt is cached: {before} then {now}");
        }
    }
    let by_turn = sessions["by_turn"].as_array().unwrap();
    let share = |t: usize| f(&by_turn[t]["cached_share"]);
    assert!(share(2) > share(0), "{sessions}");
}

#[test]
fn a_context_overflow_is_the_servers_400_with_its_message() {
    // One slot of 256 tokens; a prompt of about 400.
    let Some(server) = LlamaServer::start(&["-c", "256", "-np", "1"]) else { return };
    let body = "[prompts]\nsynthetic = \"D(400,8)\"\n[[stage]]\nname = \"too long\"\nconcurrency = 1\nrequests = 3\n";
    for stream in [true, false] {
        let ran = run(&server, stream, body, &[]);
        let stage = &ran.result["stages"][0];
        assert_eq!(common::count(&stage["requests"]["failed"]), 3, "stream {stream}: {}", ran.out.stdout);
        assert_eq!(common::count(&stage["failures"]["http_4xx"]), 3, "{}", stage["failures"]);
        assert_eq!(common::count(&stage["status_codes"]["400"]), 3, "{}", stage["status_codes"]);
        let example = stage["failure_examples"]["http_4xx"].as_str().unwrap();
        assert!(example.contains("HTTP 400") && example.contains("context"), "{example}");
        assert!(ran.out.stdout.contains("context"), "the table shows the message: {}", ran.out.stdout);
        assert_eq!(common::count(&stage["reconnects"]), 0);
        assert!(ran.lines.iter().all(|l| l["outcome"] == "http_4xx"));
    }
}

/// With `tokenizer = "server"`, prompts are built in Gemma's own tokens through
/// llama-server's `POST /tokenize`: each reaches the model as the length asked plus the
/// chat template's fixed tokens (the same for every prompt), and replies count alike.
#[test]
fn the_servers_tokenizer_builds_prompts_to_exact_lengths() {
    let Some(server) = LlamaServer::start(&["-c", "4096", "-np", "2"]) else { return };
    let body = "[prompts]\nsynthetic = \"U(40,160)/(12,12)\"\ntokenizer = \"server\"\n[request]\nignore_eos = true\n\
                [[stage]]\nname = \"exact\"\nconcurrency = 2\nrequests = 10\n";
    for stream in [true, false] {
        let ran = run(&server, stream, body, &[]);
        assert_all_ok(&ran);
        let workload = &ran.result["scenario"]["workload"];
        assert!(workload["tokenizer"].as_str().unwrap().starts_with("server: llama.cpp POST"), "{workload}");
        assert!(common::count(&workload["tokenize"]["calls"]) > 0, "{workload}");
        // The server's prompt tokens (processed + cached) less the length asked: the
        // template's fixed part, one figure for every prompt of 40 to 160 tokens.
        let overheads: Vec<u64> = ran
            .lines
            .iter()
            .map(|l| {
                let t = &l["server_timings"];
                common::count(&t["prompt_n"]) + common::count(&t["cache_n"]) - common::count(&l["input_tokens"])
            })
            .collect();
        let lengths: std::collections::BTreeSet<u64> = ran.lines.iter().map(|l| common::count(&l["input_tokens"])).collect();
        assert!(lengths.len() > 3, "lengths drawn: {lengths:?}");
        assert!(overheads.iter().all(|o| *o == overheads[0]), "chat template overheads {overheads:?}");
        eprintln!("Gemma-3's chat template adds {} tokens to a prompt (llama-server)", overheads[0]);
        let t = &ran.result["stages"][0]["tokens"];
        // Usage sent: it is the source, and the server's tokenizer agrees with it.
        assert_eq!(common::count(&t["source"]["output"]["usage"]), 10, "{t}");
        assert_eq!(common::count(&t["output"]), 120, "{t}");
        if stream {
            assert_eq!((common::count(&t["completion_compared"]), &t["completion_disagree"]), (10, &Value::from(0)), "{t}");
        }
    }
}

/// llama-server's own metrics (`--metrics`: `llamacpp:` names) are found at its
/// `/metrics` with nothing configured, read every second, and agree with the client:
/// with 2 slots, running never reads above 2; at 8-way requests wait; its token counters
/// over each window are what the client counted.
#[test]
fn the_servers_metrics_are_read_beside_the_run() {
    let Some(server) = LlamaServer::start(&["-c", "4096", "-np", "2"]) else { return };
    let body = "[prompts]\nsynthetic = \"D(64,32)\"\n[request]\nignore_eos = true\n\
                [[stage]]\nname = \"2-way\"\nconcurrency = 2\nrequests = 8\n\
                [[stage]]\nname = \"8-way\"\nconcurrency = 8\nrequests = 16\n\
                [server_metrics]\nkeep = [\"^llamacpp:n_decode_total$\"]\n";
    // llama-server has no route to empty its prompt cache: asked, each stage says so, and
    // the run goes on.
    let ran = run(&server, true, body, &["--reset-prefix-cache"]);
    assert_all_ok(&ran);
    for stage in ran.result["stages"].as_array().unwrap() {
        let why = "POST /reset_prefix_cache: status 404; POST /flush_cache: status 404";
        assert_eq!(stage["prefix_cache_reset"], serde_json::json!({"ok": false, "path": "/flush_cache", "error": why}));
    }
    let sm = &ran.result["server_metrics"]["endpoints"][0];
    // Kept raw: its decode calls, one point a scrape, never falling.
    let kept = &sm["kept"][0];
    assert_eq!(kept["name"], "llamacpp:n_decode_total", "{}", sm["kept"]);
    let decodes: Vec<f64> = kept["points"].as_array().unwrap().iter().map(|p| f(&p[1])).collect();
    assert!(decodes.windows(2).all(|w| w[0] <= w[1]) && decodes.last() > decodes.first(), "{decodes:?}");
    assert_eq!((sm["name"].as_str(), sm["server"].as_str()), (Some("server"), Some("llama_cpp")), "{sm}");
    assert_eq!(common::count(&sm["scrapes_failed"]), 0, "{sm}");
    let series = sm["series"].as_array().unwrap();
    assert!(series.len() >= 3, "a scrape a second: {}", series.len());
    assert!(series.iter().all(|p| f(&p["running"]) <= 2.0), "2 slots: {series:?}");
    for stage in ran.result["stages"].as_array().unwrap() {
        let s = &stage["server"][0];
        let t = &stage["tokens"];
        // The server's counters over the window hold every request of it (and none of
        // the other stage's: the windows do not overlap).
        assert_eq!(f(&s["generation_tokens"]["delta"]), f(&t["output"]), "{}: {s}", stage["name"]);
        // Its prompt counters (processed + held in cache) may count a token more per
        // request: a prompt the cache held whole has its last token evaluated again.
        let (server_prompt, requests) = (f(&s["prompt_tokens"]["delta"]), f(&stage["requests"]["ok"]));
        assert!((f(&t["prompt"])..=f(&t["prompt"]) + requests).contains(&server_prompt), "{}: {s} against {t}", stage["name"]);
    }
    let eight = &ran.result["stages"][1]["server"][0];
    assert_eq!(f(&eight["running"]["max"]), 2.0, "{eight}");
    assert!(f(&eight["waiting"]["max"]) > 0.0, "8 asked of 2 slots: some wait: {eight}");
    // Its slots, not its KV cache (which it does not report), bound it: said so.
    let said = eight["bound"].as_str().unwrap_or_default();
    assert!(said.contains("the server admits at most 2 at once") && !said.contains("KV cache bound"), "{said}");
    assert!(ran.out.stdout.contains("8-way: server (server): requests queued"), "{}", ran.out.stdout);
}

/// The Responses API and Anthropic's Messages, as llama-server serves them: each
/// stream read whole (its last event, no `[DONE]`), the output the server's own usage;
/// the Responses stream's timings (on `response.completed`) its generated tokens.
#[test]
fn the_responses_and_messages_apis_agree_with_the_server() {
    let Some(server) = LlamaServer::start(&["-c", "4096", "-np", "2"]) else { return };
    for api in ["responses", "messages"] {
        for stream in [true, false] {
            let body = format!(
                "api = \"{api}\"\n[prompts]\ntemplate = \"Write a short line about the number {{i}}.\"\n[request]\nmax_tokens = 16\n\
                 [[stage]]\nname = \"{api}\"\nconcurrency = 2\nrequests = 6\n"
            );
            let ran = run(&server, stream, &body, &[]);
            assert_all_ok(&ran);
            let tokens = &ran.result["stages"][0]["tokens"];
            let what = format!("{api}, stream {stream}: {tokens}");
            assert_eq!(common::count(&tokens["requests_with_usage"]), 6, "{what}");
            assert_eq!(common::count(&tokens["completion"]), common::count(&tokens["output"]), "{what}");
            assert!(common::count(&tokens["output"]) > 0 && common::count(&tokens["output"]) <= 6 * 16, "{what}");
            for l in &ran.lines {
                if stream && api == "responses" {
                    let t = &l["server_timings"];
                    assert_eq!(l["output_tokens"], t["predicted_n"], "{what}: {l}");
                    // TTFT holds the server's prompt time; ITL is its decode step seen
                    // from outside.
                    assert!(f(&l["ttft_ms"]) >= f(&t["prompt_ms"]), "{what}: {l}");
                    if common::count(&l["output_tokens"]) > 2 {
                        let (itl, per_token) = (f(&l["itl_ms"]), f(&t["per_token_ms"]));
                        assert!((itl - per_token).abs() <= 5.0 + 0.25 * per_token, "{what}: ITL {itl} vs {per_token}");
                    }
                }
                if stream {
                    assert!(f(&l["ttft_ms"]) > 0.0, "{what}: {l}");
                }
            }
        }
    }
}

/// A task whose steps speak the server's four text APIs in turn — the Responses API,
/// Messages, completions, chat — each reading the one before's real reply: every body
/// the server takes, and each step's prompt, as the server counts it, holds the reply
/// before it.
#[test]
fn a_tasks_steps_speak_each_their_own_api_to_the_server() {
    let Some(server) = LlamaServer::start(&["-c", "4096", "-np", "2"]) else { return };
    let body = "[prompts]\ntemplate = \"Name a fruit, number {i}.\"\n[request]\nmax_tokens = 8\nignore_eos = true\n\
                [[task]]\nname = \"t\"\n\
                [[task.step]]\nname = \"responses\"\napi = \"responses\"\nprompt = \"{prompt}\"\n\
                [[task.step]]\nname = \"messages\"\napi = \"messages\"\nprompt = \"Say more: {answer}\"\n\
                [[task.step]]\nname = \"completions\"\napi = \"completions\"\nprompt = \"Go on: {answer}\"\n\
                [[task.step]]\nname = \"chat\"\nprompt = \"Sum up: {answer}\"\n\
                [[stage]]\nname = \"tasks\"\ntask = \"t\"\nconcurrency = 2\nrequests = 2\n";
    let ran = run(&server, true, body, &["--requests-out-text"]);
    assert_all_ok(&ran);
    let t = &ran.result["stages"][0]["tasks"];
    assert_eq!((common::count(&t["ok"]), f(&t["requests_per_task"])), (2, 4.0), "{t}");
    for task in 0..2u64 {
        let step = |k: u64| ran.lines.iter().find(|l| l["task"] == task && l["step"] == k).unwrap();
        for k in 0..4 {
            // Each step's 8 tokens, by the server's own usage in its API's shape.
            assert_eq!(common::count(&step(k)["output_tokens"]), 8, "task {task} step {k}: {}", step(k));
        }
        for k in 1..4 {
            // Messages (the Responses API's input, Anthropic's, chat's) or one text
            // (completions), ending with the reply before it.
            let prompt = &step(k)["prompt"];
            let text = prompt.as_str().or_else(|| prompt[0]["content"].as_str()).unwrap_or_default();
            let before = step(k - 1)["reply"].as_str().unwrap_or_default();
            assert!(!before.is_empty() && text.ends_with(before), "task {task} step {k}: {prompt} after {before:?}");
        }
    }
}

/// A sweep of tasks against the real server, each task fanning out over its JSONL
/// line's own documents: one request per document, and the points judged by tasks.
#[test]
fn a_task_sweep_fans_out_over_each_lines_documents() {
    let Some(server) = LlamaServer::start(&["-c", "4096", "-np", "2"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.jsonl");
    let lines: String = (0..3)
        .map(|k| {
            serde_json::json!({"prompt": format!("Question {k}"), "documents": (0..=k).map(|j| format!("Fact {j}.")).collect::<Vec<_>>()})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let body = format!(
        "[prompts]\nfile = {:?}\n[request]\nmax_tokens = 4\nignore_eos = true\n\
         [[task]]\nname = \"t\"\n\
         [[task.step]]\nname = \"read\"\nprompt = \"{{prompt}} {{item}}\"\nfan_out = {{ field = \"documents\" }}\n\
         [[task.step]]\nname = \"answer\"\nprompt = \"{{answers}}\"\n\
         [sweep]\ntask = \"t\"\nconcurrency = [1, 2]\nrequests = 3\n",
        file.display().to_string()
    );
    let ran = run(&server, true, &body, &[]);
    assert_all_ok(&ran);
    let sw = &ran.result["sweep"];
    assert_eq!(sw["task"], "t", "{sw}");
    for (p, s) in sw["points"].as_array().unwrap().iter().zip(ran.result["stages"].as_array().unwrap()) {
        assert_eq!((common::count(&s["tasks"]["ok"]), f(&p["throughput"])), (3, f(&s["tasks"]["per_s"])), "{p}");
        // Tasks 0, 1, 2 read 1, 2, 3 documents, then answer: 9 requests.
        assert_eq!(common::count(&s["requests"]["ok"]), 9, "{}", s["name"]);
    }
}

/// Embeddings on a second instance, started with `--embeddings --pooling mean` (Gemma
/// has no pooling of its own): batches of 1 and 4 synthetic inputs of exact lengths in
/// the server's own tokenizer, every reply checked (a vector per input, one length,
/// every number finite), and the server's count of what it read agreeing with
/// llmload's: each input's tokens and the few the server adds to each.
#[test]
fn embeddings_batches_are_read_and_counted_as_the_server_counts() {
    let Some(server) = LlamaServer::start(&["-c", "2048", "-np", "2", "--embeddings", "--pooling", "mean"]) else { return };
    let body = "api = \"embeddings\"\n[prompts]\nsynthetic = { input = 24 }\ntokenizer = \"server\"\n\
                [[stage]]\nname = \"one\"\nconcurrency = 2\nrequests = 6\n\
                [[stage]]\nname = \"four\"\nconcurrency = 2\nrequests = 6\nrequest = { batch_size = 4, encoding_format = \"base64\" }\n";
    let ran = run(&server, false, body, &[]);
    assert_all_ok(&ran);
    for (s, n) in ran.result["stages"].as_array().unwrap().iter().zip([1u64, 4]) {
        let (tokens, items) = (&s["tokens"], &s["items"]);
        let what = format!("{}: {tokens} {items}", s["name"]);
        assert_eq!((common::count(&items["total"]), common::count(&tokens["requests_with_usage"])), (6 * n, 6), "{what}");
        // Each input is 24 tokens by the server's own tokenizer; its usage adds what it
        // puts around each (a BOS, say): the same few for every input.
        let (server, client) = (common::count(&tokens["prompt"]), 6 * f(&tokens["input_length"]["mean"]) as u64);
        assert_eq!((client, common::count(&tokens["input_length"]["max"])), (6 * n * 24, n * 24), "{what}");
        let extra = server - client;
        assert!(extra % (6 * n) == 0 && extra / (6 * n) <= 2, "{what}: the server read {server} of {client} sent");
    }
}

/// Rerank on an instance started with `--rerank`: a query against 4 documents of 24
/// tokens, the 2 best asked back; every reply checked (indices of documents sent, once,
/// scores finite, at most top_n).
#[test]
fn rerank_replies_are_checked_against_the_documents_sent() {
    let Some(server) = LlamaServer::start(&["-c", "2048", "-np", "2", "--rerank"]) else { return };
    let body = "api = \"rerank\"\n[prompts]\ntemplate = \"Which passage is about {i}?\"\n\
                [request]\ndocuments = 4\ndocument_tokens = 24\ntop_n = 2\n\
                [[stage]]\nname = \"rerank\"\nconcurrency = 2\nrequests = 6\n";
    let ran = run(&server, false, body, &[]);
    assert_all_ok(&ran);
    let s = &ran.result["stages"][0];
    assert_eq!((s["items"]["kind"].as_str(), common::count(&s["items"]["total"])), (Some("documents"), 24), "{}", s["items"]);
    // The server counts every (query, document) pair it read.
    assert!(common::count(&s["tokens"]["prompt"]) >= 6 * 4 * 24, "{}", s["tokens"]);
}

/// A server that cannot see images (Gemma-3 270M has no vision projector): each
/// request with an image is its refusal, counted by status with its message, said once
/// for the stage. And tools: the server takes a body that offers them (this model's
/// template writes text, not calls: the replies are counted as text, no call made up).
#[test]
fn images_a_server_refuses_and_tools_it_takes() {
    let Some(server) = LlamaServer::start(&["-c", "2048", "-np", "2"]) else { return };
    let body = "[prompts]\ntemplate = \"What is the weather in Paris? ({i})\"\n[request]\nmax_tokens = 16\n\
                tools = [{ type = \"function\", function = { name = \"get_weather\", parameters = { type = \"object\", \
                properties = { city = { type = \"string\" } }, required = [\"city\"] } } }]\n\
                [[stage]]\nname = \"tools\"\nconcurrency = 2\nrequests = 4\n\
                [[stage]]\nname = \"image\"\nconcurrency = 2\nrequests = 6\nrequest = { images = { size = \"64x64\" } }\n";
    let ran = run(&server, true, body, &[]);
    let (tools, image) = (&ran.result["stages"][0], &ran.result["stages"][1]);
    assert_eq!(common::count(&tools["requests"]["ok"]), 4, "{}", ran.out.stdout);
    assert!(tools["tool_calls"].is_null() && common::count(&tools["tokens"]["output"]) > 0, "{}", tools["tool_calls"]);
    assert_eq!(common::count(&image["requests"]["failed"]), 6, "{}", ran.out.stdout);
    let (kind, example) = image["failure_examples"].as_object().unwrap().iter().next().unwrap();
    assert!(kind.starts_with("http_") && example.as_str().unwrap().contains("image input is not supported"), "{example}");
    // Said once for the stage, not once a request.
    assert_eq!(ran.out.stdout.matches("image input is not supported").count(), 1, "{}", ran.out.stdout);
}

/// Structured outputs: llama-server holds a reply to `response_format`'s JSON Schema
/// with its grammar, and `[check] schema` finds every reply valid; the same check
/// without the schema sent finds Gemma's prose invalid, by the first violation's path.
#[test]
fn structured_replies_are_held_to_their_schema() {
    let Some(server) = LlamaServer::start(&["-c", "2048", "-np", "2"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("weather.schema.json");
    let s = r#"{"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}, "sunny": {"type": "boolean"}}, "required": ["city", "sunny"], "additionalProperties": false}"#;
    std::fs::write(&schema, s).unwrap();
    let check = format!("[check]\nschema = \"{}\"\n", schema.display());
    let stage = "[[stage]]\nname = \"s\"\nconcurrency = 2\nrequests = 4\n";
    let prompts = "[prompts]\ntemplate = \"The weather in Paris as JSON ({i}).\"\n";
    let format = format!("response_format = {{ type = \"json_schema\", json_schema = {{ name = \"weather\", schema = {s} }} }}")
        .replace("\": ", "\" = ")
        .replace("{\"", "{ \"");
    // Greedy: a sampled reply may spend its tokens on the whitespace the grammar allows.
    let held = run(&server, true, &format!("{prompts}[request]\nmax_tokens = 96\ntemperature = 0\n{format}\n{check}{stage}"), &[]);
    assert_all_ok(&held);
    let c = &held.result["stages"][0]["checks"];
    assert_eq!((common::count(&c["passed"]), common::count(&c["failed"])), (4, 0), "{c}\n{}", held.out.stdout);
    let free = run(&server, true, &format!("{prompts}[request]\nmax_tokens = 16\n{check}{stage}"), &[]);
    let c = &free.result["stages"][0]["checks"];
    assert_eq!(common::count(&c["failed"]), 4, "prose is not the schema's object: {c}");
}

/// A task against the real server: a fan-out of three (two at once), then a step whose
/// prompt carries the three real replies — its prompt, as the server counts it, is
/// longer than any of the fan's by at least their tokens. An agent step whose model
/// answers without calling its tool ends in one call.
#[test]
fn a_task_fans_out_and_carries_the_servers_real_answers() {
    let Some(server) = LlamaServer::start(&["-c", "4096", "-np", "2"]) else { return };
    let body = "[prompts]\ntemplate = \"Name a colour, number {i}.\"\n[request]\nmax_tokens = 8\nignore_eos = true\n\
                [[task]]\nname = \"t\"\n\
                [[task.step]]\nname = \"fan\"\nprompt = \"{prompt} Answer {member}.\"\nfan_out = 3\nconcurrency = 2\n\
                [[task.step]]\nname = \"join\"\nprompt = \"Pick one of: {answers}\"\n\
                [[task.step]]\nname = \"agent\"\nprompt = \"Say yes.\"\nmax_steps = 3\nrequest = { tool_choice = \"none\" }\n\
                [[task.step.tool]]\nname = \"lookup\"\n\
                [[stage]]\nname = \"tasks\"\ntask = \"t\"\nconcurrency = 1\nrequests = 2\n";
    let ran = run(&server, true, body, &[]);
    assert_all_ok(&ran);
    let t = &ran.result["stages"][0]["tasks"];
    assert_eq!((common::count(&t["ok"]), f(&t["requests_per_task"])), (2, 5.0), "{t}");
    let prompt = |l: &Value| common::count(&l["server_timings"]["prompt_n"]) + common::count(&l["server_timings"]["cache_n"]);
    for task in 0..2u64 {
        let of = |step: u64| ran.lines.iter().filter(move |l| l["task"] == task && l["step"] == step);
        let fan = of(0).map(prompt).max().unwrap();
        let join = of(1).map(prompt).next().unwrap();
        // Three replies of 8 tokens each, and the join's own words.
        assert!(join >= fan + 3 * 8 - 8, "task {task}: the join's prompt {join} against the fan's {fan}");
        assert_eq!(of(2).count(), 1, "the agent answered at once");
    }
}

/// The run's watcher against a real server: `--repeat` keeps each repetition's
/// figures; an automatic warmup settles and opens the window; a rate well over what two
/// CPU slots serve is called saturated within seconds, its backlog dropped, and the
/// stage after it waits until the server's own queue is empty (llama-server goes on
/// with queued requests whose connections closed): its requests all succeed.
#[test]
fn the_watcher_finds_the_servers_warmup_and_its_saturation_and_repeats_are_kept() {
    let Some(server) = LlamaServer::start(&["-c", "4096", "-np", "2"]) else { return };
    let prompts = "[prompts]\ntemplate = \"Write a short line about the number {i}.\"\n[request]\nmax_tokens = 24\n";
    let body = format!("{prompts}[[stage]]\nname = \"s\"\nconcurrency = 2\nrequests = 4\n");
    let ran = run(&server, true, &body, &["--repeat", "2"]);
    assert_all_ok(&ran);
    let r = &ran.result["repeats"];
    assert_eq!(r["runs"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(common::count(&r["stages"][0]["figures"]["ttft_p50_ms"]["n"]), 2, "{r}");
    assert!(f(&r["runs"][1]["stages"]["s"]["output_tps"]) > 0.0, "{r}");
    let body = format!(
        "{prompts}[[stage]]\nname = \"auto\"\nconcurrency = 2\nwarmup = \"auto\"\nduration = \"3s\"\n\
         [[stage]]\nname = \"over\"\nrate = 12\nstop_on_saturation = true\nduration = \"60s\"\n\
         [[stage]]\nname = \"after\"\nconcurrency = 1\nrequests = 2\n"
    );
    let ran = run(&server, true, &body, &[]);
    let auto = &ran.result["stages"][0];
    let at = f(&auto["warmup_detected_s"]);
    assert!((10.0..120.0).contains(&at), "{}", auto["warmup_said"]);
    assert!(auto["warmup_said"].as_str().unwrap().starts_with("settled after"), "{}", auto["warmup_said"]);
    assert!(common::count(&auto["requests"]["ok"]) > 0, "{}", auto["requests"]);
    let over = &ran.result["stages"][1];
    let sat = &over["saturated"];
    assert!(f(&sat["after_s"]) < 30.0, "called within seconds, not at 60: {sat}");
    assert!(f(&over["wall_time_s"]) < f(&sat["after_s"]) + 5.0, "the backlog was dropped: {}", over["wall_time_s"]);
    assert!(sat["said"].as_str().unwrap().starts_with("the server could not keep up with 12/s"), "{sat}");
    let after = &ran.result["stages"][2];
    assert_eq!(after["requests"]["ok"], 2, "the next stage met an idle server: {}", ran.out.stdout);
    assert!(f(&after["latency_ms"]["max"]) < 10_000.0, "{}", after["latency_ms"]);
}
