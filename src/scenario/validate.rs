//! The file as written → the validated Scenario: every section checked, every problem
//! reported at its place, defaults filled in. Stages and `[sweep]` have files of their
//! own (`validate_stage`, `sweep`).

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::error::Problems;
use super::file::{DurationValue, ScenarioFile, SloFile, TargetFile};
use super::request::Spoken;
use super::stage::RetryPolicy;
use super::sweep::sweep_stages;
use super::validate_stage::{Defaults, TPM_NEEDS_MAX_TOKENS, rate_limit, retry_policy, stages};
use super::{BaseUrl, DEFAULT_API_KEY_ENV, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, Scenario, Target, parse_base_url};
use crate::mock::config::MockConfig;
use crate::model::{RateLimit, Slo};
use crate::workload::Prompts;

pub(super) fn validate(raw: ScenarioFile, p: &mut Problems<'_>, base_dir: &Path, server: Option<crate::workload::Tokenizer>) -> Scenario {
    let target = target(raw.target, p, base_dir);
    let mock = match raw.mock {
        Some(m) => {
            if target.base_url != BaseUrl::Mock {
                p.at(Some(m.span()), "[mock] is only used with target.base_url = \"mock\"; remove it or set base_url = \"mock\"");
            }
            for msg in m.get_ref().problems() {
                p.at(Some(m.span()), format!("mock.{msg}"));
            }
            m.into_inner()
        }
        None => MockConfig::default(),
    };

    let target_is_url = target.base_url != super::BaseUrl::Mock;
    let mut counting = super::prompts::Counting { wanted: None, server };
    let mut sources = super::prompts::Sources::new(target.api, base_dir, &raw.prompts, p, &mut counting);
    sources.turns = raw.conversation.is_some();
    let conversation_span = raw.conversation.as_ref().map(|c| c.span());
    let conversation = raw.conversation.and_then(|c| super::conversation::conversation(c, target.api, sources.info.seed, p));
    // A stage that speaks another API sends the scenario's prompts made for it.
    let top_prompts = raw.stages.get_ref().iter().any(|s| s.get_ref().api.is_some_and(|a| a != target.api)).then(|| raw.prompts.clone());
    let prompts = sources.resolve(raw.prompts, "prompts", p);

    let spoken = Spoken { api: target.api, stream: target.stream };
    let request = super::request::request(&raw.request, "request", spoken, base_dir, p);
    let rerank = raw.stages.get_ref().iter().any(|s| s.get_ref().api == Some(crate::model::Api::Rerank));
    let texts = super::apis::scenario_texts(&raw.request, spoken, rerank, &mut sources, p);
    if target.api == crate::model::Api::Messages {
        say_messages_limit(&request, &prompts, p);
    }

    let pricing = pricing(raw.pricing, p);
    let slo = raw.slo.map(|f| slo(f, p));
    let check = raw.check.map(|f| super::tools::check(f, base_dir, p));
    if let Some(slo) = &slo
        && (slo.ttft.is_some() || slo.itl.is_some())
        && !target.stream
    {
        p.field("slo", "ttft_ms and itl_ms need target.stream = true (only streams have a first token)");
    }

    let retry = raw.retry.as_ref().map_or_else(RetryPolicy::default, |f| retry_policy(&RetryPolicy::default(), f, "retry", p));
    let rate_limit = raw.rate_limit.as_ref().map_or_else(RateLimit::default, |f| rate_limit(&RateLimit::default(), f, "rate_limit", p));
    let abort_on_error_rate = raw.abort_on_error_rate.map(|v| {
        let r = *v.get_ref();
        if !(0.0..=1.0).contains(&r) {
            p.at(Some(v.span()), format!("abort_on_error_rate must be between 0 and 1 (a fraction of requests), got {r}"));
        }
        r
    });

    let stages_span = raw.stages.span();
    let mut raw_stages = raw.stages.into_inner();
    let stage_prompts = super::apis::stage_prompts(&mut raw_stages, top_prompts, &mut sources, p);
    if conversation.is_some() {
        super::apis::sessions_speak_chat(&raw_stages, p);
    }
    if raw_stages.is_empty() && raw.sweep.is_none() {
        p.at(Some(stages_span), "at least one [[stage]] (or a [sweep]) is needed");
    }
    let thresholds = raw.thresholds.as_ref().map_or_else(Vec::new, |f| super::validate_stage::thresholds(f, "thresholds", p));
    let tasks = super::task::tasks(
        raw.tasks,
        &super::task::StepDefaults { request: &request, texts: &texts, spoken, model: &target.model, base_dir },
        &mut sources,
        p,
    );
    let defaults =
        Defaults { request: &request, texts: &texts, spoken, retry: &retry, rate_limit, thresholds: &thresholds, base_dir, tasks: &tasks };
    let traces: Vec<_> = stage_prompts.iter().map(|own| own.as_ref().unwrap_or(&prompts).replay().cloned()).collect();
    let (mut stages, mut names) = stages(raw_stages, &traces, &defaults, p);
    if let Some(sw) = raw.sweep.as_ref().filter(|_| prompts.replay().is_some()) {
        p.at(Some(sw.span()), "a [sweep] does not go with trace prompts: a trace runs on its own clock (give stages their `speed`)");
    }
    let mut sweep = raw.sweep.as_ref().and_then(|f| sweep_stages(f, &mut stages, &mut names, &defaults, p));
    lists_fanned(&mut stages, sweep.as_mut().map(|s| &mut s.template), &stage_prompts, &prompts, p);
    tpm_weighs(stages.iter().chain(sweep.as_ref().map(|s| &s.template)), p);
    lengths_sent(&stages, &stage_prompts, &prompts, p);
    own_tools(&stages, &stage_prompts, &prompts, p);
    if check.is_some() {
        super::apis::checks_read_text(&stages, p);
    }
    if let Some(span) = conversation_span {
        sessions_fit(&stages, &traces, span, p);
    }

    Scenario {
        name: raw.name.unwrap_or_else(|| "unnamed scenario".to_string()),
        description: raw.description,
        source: None,
        source_sha256: None,
        target,
        mock,
        prompts,
        stage_prompts,
        workload: sources.info,
        request,
        pricing,
        slo,
        check,
        abort_on_error_rate,
        sweep,
        stages,
        conversation,
        warnings: Vec::new(),
        shard: crate::model::Shard::WHOLE,
        // The mock counts in the scenario's tokenizer: it has no other to find.
        server_tokenizer: counting.wanted.filter(|_| target_is_url),
        server_metrics: raw.server_metrics.map(|f| super::server_metrics::server_metrics(f, p)).unwrap_or_default(),
    }
}

/// The built-in prices with `[pricing]`'s over them.
fn pricing(f: Option<Spanned<crate::cost::PricingFile>>, p: &mut Problems<'_>) -> crate::cost::Pricing {
    let Some(f) = f else { return crate::cost::Pricing::builtin() };
    let span = f.span();
    crate::cost::Pricing::with_overrides(f.into_inner()).unwrap_or_else(|problems| {
        for msg in problems {
            p.at(Some(span.clone()), msg);
        }
        crate::cost::Pricing::builtin()
    })
}

/// A prompts file whose lines carry their own `tools` (or `tool_choice`) goes with no
/// stage that sets them too: a body would name them twice.
fn own_tools(stages: &[super::Stage], stage_prompts: &[Option<Prompts>], prompts: &Prompts, p: &mut Problems<'_>) {
    for (k, s) in stages.iter().enumerate() {
        let own = stage_prompts.get(k).and_then(Option::as_ref).unwrap_or(prompts).own_fields();
        if own && (s.request.tools.is_some() || s.request.tool_choice.is_some()) {
            p.field(
                "request.tools",
                format!("stage {:?}: its prompts' lines carry their own tools (or tool_choice): set them there or here, not both", s.name),
            );
            return;
        }
    }
}

/// A task stage whose steps fan out over a list of the input's: every line of its
/// prompts has it, and its longest sizes the stage's connections (an automatic task
/// sweep's template too, with the scenario's prompts).
fn lists_fanned(
    stages: &mut [super::Stage],
    template: Option<&mut super::Stage>,
    own: &[Option<Prompts>],
    prompts: &Prompts,
    p: &mut Problems<'_>,
) {
    let with_prompts = stages.iter_mut().enumerate().map(|(k, s)| (s, own.get(k).and_then(Option::as_ref).unwrap_or(prompts)));
    for (s, from) in with_prompts.chain(template.map(|t| (t, prompts))) {
        let Some(task) =
            s.task.as_ref().filter(|t| t.steps.iter().any(|k| matches!(k.fan_out, crate::workload::task::FanOut::Field { .. })))
        else {
            continue;
        };
        let mut def = (**task).clone();
        let mut said: Vec<String> = Vec::new();
        for step in &mut def.steps {
            let crate::workload::task::FanOut::Field { name, most } = &mut step.fan_out else { continue };
            match from.longest_list(name) {
                Ok(n) => *most = (n as u32).clamp(1, crate::workload::task::MAX_FAN_OUT),
                // Said once a list, of the first step over it.
                Err(e) if !said.contains(name) => {
                    said.push(name.clone());
                    let whose = format!("task {:?} step {:?} fans out over it", def.name, step.name);
                    p.field(&format!("stage {:?}", s.name), format!("{e} ({whose})"));
                }
                Err(_) => {}
            }
        }
        s.task = Some(std::sync::Arc::new(def));
    }
}

/// What multi-turn sessions do not go with, said once each.
fn sessions_fit(
    stages: &[super::Stage],
    traces: &[Option<std::sync::Arc<crate::workload::trace::Replay>>],
    span: std::ops::Range<usize>,
    p: &mut Problems<'_>,
) {
    if traces.iter().any(Option::is_some) {
        p.at(Some(span.clone()), "[conversation] does not go with trace prompts: a trace's sessions are its own (`session_id`)");
    }
    for s in stages {
        let images = s.texts.images.is_some();
        for (set, field) in
            [(s.ramp.is_some(), "ramp"), (s.cooldown.is_some(), "cooldown"), (s.warmup > 0 || s.warmup_auto, "warmup"), (images, "images")]
        {
            if set {
                p.at(Some(span.clone()), format!("stage {:?}: `{field}` does not go with [conversation] sessions yet", s.name));
            }
        }
        if s.task.is_some() {
            p.at(
                Some(span.clone()),
                format!("stage {:?}: a task stage does not go with [conversation]: a task's steps are its requests", s.name),
            );
        }
    }
}

/// A tokens-per-minute limit weighs a request's prompt and its output limit, which a
/// stage that generates must set (embeddings and rerank weigh their input alone).
fn tpm_weighs<'a>(mut stages: impl Iterator<Item = &'a super::Stage>, p: &mut Problems<'_>) {
    if stages.any(|s| s.rate_limit.tpm.is_some() && s.request.max_output_tokens().is_none() && s.api.generates()) {
        p.field("rate_limit.tpm", TPM_NEEDS_MAX_TOKENS);
    }
}

/// Where prompts carry their own output lengths, what the stage's limit becomes: the
/// prompt's length replaces `max_tokens`, unless `extra_body` sets one (it wins).
fn lengths_sent(stages: &[super::Stage], per_stage: &[Option<Prompts>], prompts: &Prompts, p: &mut Problems<'_>) {
    let mut said = false;
    for (i, stage) in stages.iter().enumerate() {
        let own = per_stage.get(i).and_then(Option::as_ref).unwrap_or(prompts);
        if !own.has_output_lengths() || said {
            continue;
        }
        let extra =
            stage.request.extra_body.as_ref().is_some_and(|e| e.contains_key("max_tokens") || e.contains_key("max_completion_tokens"));
        if extra {
            p.field(
                &format!("stage {}", i + 1),
                "request.extra_body sets the output limit: it is sent instead of each prompt's output length",
            );
            said = true;
        } else if stage.request.max_output_tokens().is_some() {
            p.warn(
                None,
                format!("stage {:?}: each prompt's output length is sent as its limit, instead of request.max_tokens", stage.name),
            );
            said = true;
        }
    }
}

fn target(t: TargetFile, p: &mut Problems<'_>, base_dir: &Path) -> Target {
    let base_url = {
        let text = t.base_url.get_ref().trim();
        if text == "mock" {
            BaseUrl::Mock
        } else {
            match parse_base_url(text) {
                Ok(u) => BaseUrl::Url(u),
                Err(msg) => {
                    p.at(Some(t.base_url.span()), msg);
                    BaseUrl::Mock
                }
            }
        }
    };
    if t.model.get_ref().trim().is_empty() {
        p.at(Some(t.model.span()), "target.model must not be empty");
    }
    let api_key_env = match &t.api_key_env {
        Some(v) if v.get_ref().trim().is_empty() => {
            p.at(Some(v.span()), "target.api_key_env must name an environment variable");
            String::new()
        }
        Some(v) => v.get_ref().clone(),
        // Anthropic's SDK reads its key from ANTHROPIC_API_KEY.
        None if t.api == Some(crate::model::Api::Messages) => "ANTHROPIC_API_KEY".to_string(),
        None => DEFAULT_API_KEY_ENV.to_string(),
    };
    let positive = |d: &Option<Spanned<DurationValue>>, name: &str, default: Duration, p: &mut Problems<'_>| match d {
        Some(v) if v.get_ref().0.is_zero() => {
            p.at(Some(v.span()), format!("target.{name} must be greater than zero"));
            default
        }
        Some(v) => v.get_ref().0,
        None => default,
    };
    let timeout = positive(&t.timeout, "timeout", DEFAULT_TIMEOUT, p);
    let connect_timeout = positive(&t.connect_timeout, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, p);
    let idle_timeout = t.idle_timeout.as_ref().map(|_| positive(&t.idle_timeout, "idle_timeout", DEFAULT_TIMEOUT, p));
    let api_key_file = t.api_key_file.as_ref().map(|f| {
        if let Some(env) = &t.api_key_env {
            p.at(Some(env.span()), "give target.api_key_env or target.api_key_file, not both");
        }
        if f.get_ref().trim().is_empty() {
            p.at(Some(f.span()), "target.api_key_file must name a file");
        }
        base_dir.join(f.get_ref())
    });
    let headers = t.headers.as_ref().map_or_else(Vec::new, |h| super::headers::headers(h, "target.headers", p));
    let path = t.path.as_ref().and_then(|path| match path.get_ref().trim() {
        "" => {
            p.at(Some(path.span()), "target.path must name the endpoint's path, e.g. \"v2/chat\" or \"/rerank\"");
            None
        }
        s if s.contains(['?', '#', ' ']) => {
            p.at(Some(path.span()), "target.path is a path: no query, fragment or space");
            None
        }
        s => Some(s.to_string()),
    });
    Target {
        base_url,
        api: t.api.unwrap_or_default(),
        path,
        model: t.model.into_inner(),
        api_key_env,
        stream: t.stream.unwrap_or(false),
        stream_usage: t.stream_usage.unwrap_or(true),
        timeout,
        connect_timeout,
        idle_timeout,
        api_key_file,
        insecure: false,
        headers,
    }
}

/// Anthropic's Messages requires a limit: when the scenario sets none, the one sent
/// instead, said in a line.
fn say_messages_limit(request: &crate::model::RequestParams, prompts: &crate::workload::Prompts, p: &mut Problems<'_>) {
    let limited = request.max_tokens.or(request.max_completion_tokens).is_some()
        || request.extra_body.as_ref().is_some_and(|e| e.contains_key("max_tokens"))
        || prompts.has_output_lengths();
    if !limited {
        let sent = crate::workload::MESSAGES_DEFAULT_MAX_TOKENS;
        p.warn(
            None,
            format!("target.api = \"messages\" requires a limit and request.max_tokens is not set: each request asks for {sent} tokens"),
        );
    }
}

fn slo(f: Spanned<SloFile>, p: &mut Problems<'_>) -> Slo {
    let span = f.span();
    let f = f.into_inner();
    let mut ms = |name: &str, v: Option<f64>| {
        v.and_then(|v| {
            if v.is_finite() && v > 0.0 && v <= 3_600_000.0 {
                Some(Duration::from_secs_f64(v / 1000.0))
            } else {
                p.at(Some(span.clone()), format!("slo.{name} must be between 0 (excluded) and 3600000 ms, got {v}"));
                None
            }
        })
    };
    let slo =
        Slo { ttft: ms("ttft_ms", f.ttft_ms), itl: ms("itl_ms", f.itl_ms), e2e: ms("e2e_ms", f.e2e_ms), task: ms("task_ms", f.task_ms) };
    if slo.is_empty() {
        p.at(Some(span.clone()), "[slo] sets no objective: give ttft_ms, itl_ms, e2e_ms or task_ms");
    }
    slo
}
