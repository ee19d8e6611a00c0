//! Building the result: a stage's figures into its StageResult (live, for every frame
//! of a view, and final, with encoded histograms and cost), and the run's RunResult from
//! the scenario and what the engine ran.

use serde::Serialize;

use super::dists::Histograms;
use super::result::*;
use super::sweep::ended_early;
use crate::cost::Pricing;
use crate::metrics::StageStats;
use crate::mock::config::MockConfig;
use crate::model::{Aborted, RequestParams, Slo};
use crate::scenario::{BaseUrl, Scenario, Stage, Sweep, Target};

impl Cost {
    /// `usd` shown in the scenario's currency, and per 1,000 of `ok` requests.
    fn new(pricing: &Pricing, usd: f64, ok: u64) -> Cost {
        let amount = pricing.in_currency(usd);
        let per_1k_requests = if ok > 0 { amount * 1000.0 / ok as f64 } else { 0.0 };
        Cost { currency: pricing.currency.clone(), amount, usd, per_1k_requests }
    }
}

/// Scenario fields as recorded in the result: the scenario as it ran, an automatic
/// sweep's stages and points included.
#[derive(Serialize)]
struct ScenarioRecord<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    target: &'a Target,
    #[serde(skip_serializing_if = "Option::is_none")]
    mock: Option<&'a MockConfig>,
    prompts: &'a str,
    /// The stages with prompts of their own, by name.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    stage_prompts: std::collections::BTreeMap<&'a str, &'a str>,
    /// Tokenizer, seed and every file the prompts were read from (sha256).
    workload: crate::workload::provenance::WorkloadInfo,
    request: &'a RequestParams,
    #[serde(skip_serializing_if = "Option::is_none")]
    slo: Option<&'a Slo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<serde_json::Value>,
    currency: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    abort_on_error_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sweep: Option<Sweep>,
    /// As asked (header values never): the endpoints named, the probe, `keep`, resets.
    #[serde(skip_serializing_if = "Option::is_none")]
    server_metrics: Option<&'a crate::scenario::ServerMetricsConfig>,
    stages: Vec<&'a Stage>,
}

impl<'a> ScenarioRecord<'a> {
    /// `scenario` with the stages an automatic sweep ran (`swept`) after its own, and
    /// the sweep's points as they ran.
    fn new(scenario: &'a Scenario, swept: &'a [Stage]) -> ScenarioRecord<'a> {
        let sweep = scenario.sweep.clone().map(|mut s| {
            if s.auto.is_some() {
                s.points = swept.iter().map(|st| st.load.rate().unwrap_or_else(|| f64::from(st.load.concurrency()))).collect();
            }
            s
        });
        ScenarioRecord {
            name: &scenario.name,
            description: &scenario.description,
            source: scenario.source.as_ref().map(|p| p.display().to_string()),
            target: &scenario.target,
            mock: (scenario.target.base_url == BaseUrl::Mock).then_some(&scenario.mock),
            server_metrics: Some(&scenario.server_metrics).filter(|m| **m != crate::scenario::ServerMetricsConfig::default()),
            prompts: &scenario.prompts.source,
            // With the server's tokenizer: the calls it took (counted until the end).
            workload: crate::workload::provenance::WorkloadInfo {
                tokenize: scenario.prompts.tokenizer().remote().map(|r| r.stats()),
                ..scenario.workload.clone()
            },
            stage_prompts: scenario
                .stages
                .iter()
                .zip(&scenario.stage_prompts)
                .filter_map(|(s, p)| Some((s.name.as_str(), p.as_ref()?.source.as_str())))
                .collect(),
            request: &scenario.request,
            slo: scenario.slo.as_ref(),
            check: scenario.check.as_ref().map(|e| match e {
                crate::check::Expect::Json { required_keys } => serde_json::json!({"expect": "json", "required_keys": required_keys}),
                crate::check::Expect::Schema(s) => serde_json::json!({"expect": "schema", "schema": s.source}),
            }),
            currency: &scenario.pricing.currency,
            abort_on_error_rate: scenario.abort_on_error_rate,
            sweep,
            stages: scenario.stages.iter().chain(swept).collect(),
        }
    }
}

/// What the run was, beside the scenario and the figures.
pub struct RunMeta {
    pub started_at: std::time::SystemTime,
    pub finished_at: std::time::SystemTime,
    pub interrupted: bool,
    pub aborted: Option<Aborted>,
    pub mock_url: Option<String>,
    /// The stages an automatic sweep ran, in order, as the engine made them.
    pub swept: Vec<Stage>,
    /// The generator's health over the run, when it was watched.
    pub generator: Option<crate::metrics::HealthView>,
    pub launch: LaunchMeta,
    /// The server's metrics as scraped, when they were.
    pub server_metrics: Option<crate::servermetrics::scrape::ServerRead>,
    /// What emptying the server's prefix cache did before each stage, by its index.
    pub prefix_resets: std::collections::BTreeMap<usize, crate::servermetrics::reset::ResetOutcome>,
}

/// Which shard ran, of which run, and when it was to start and did.
#[derive(Debug, Clone, Default)]
pub struct LaunchMeta {
    /// Set when launched as a shard.
    pub shard: Option<crate::model::Shard>,
    pub run_id: Option<String>,
    pub start_at: Option<std::time::SystemTime>,
    /// Started this late after `start_at`, ms.
    pub start_lag: Option<f64>,
}

/// Each endpoint's figures over `s`'s measured window, beside the client's.
fn server_in_window(
    s: &StageStats,
    first: Option<&StageStats>,
    read: Option<&crate::servermetrics::scrape::ServerRead>,
) -> Vec<crate::servermetrics::summary::StageServer> {
    let (Some(read), Some(opened)) = (read, s.window_opened) else { return Vec::new() };
    let unix = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let from = unix(opened);
    let (start, to, seconds) =
        (from - s.window_offset.map_or(0.0, |d| d.as_secs_f64()), from + s.wall.as_secs_f64(), s.series.seconds().len());
    // A cooldown's requests end after the window: the stage ends with its last second.
    let end = if s.cooldown_done > 0 { start + seconds as f64 } else { to };
    let times = crate::servermetrics::beside::StageTimes { start, from, to, end, seconds };
    let (ttft, itl) = (s.ttft.summary(), s.itl.summary());
    let client = crate::servermetrics::diagnose::ClientFigures {
        ttft_p50: ttft.as_ref().map(|t| t.p50),
        ttft_p99: ttft.as_ref().map(|t| t.p99),
        itl_p50: itl.map(|t| t.p50),
        input_tokens: s.input_tokens,
        output_tokens: s.output_tokens,
        first_itl_p50: first.filter(|f| f.info.index != s.info.index).and_then(|f| Some((f.itl.summary()?.p50, f.info.name.clone()))),
    };
    crate::servermetrics::beside::per_stage(read, times, &client)
}

impl RunResult {
    /// The result of `scenario` as it ran: `stages` are the aggregator's figures, one
    /// per stage run (an automatic sweep's points included).
    pub fn build(scenario: &Scenario, stages: &[StageStats], meta: RunMeta) -> RunResult {
        let record = ScenarioRecord::new(scenario, &meta.swept);
        let t = &scenario.target;
        let result = RunResult {
            schema_version: SCHEMA_VERSION,
            tool: Tool { name: "llmload".into(), version: env!("CARGO_PKG_VERSION").into() },
            scenario: serde_json::to_value(&record).expect("scenario serializes"),
            target: TargetInfo {
                base_url: serde_json::to_value(&t.base_url).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                api: t.api,
                mock_url: meta.mock_url,
                model: t.model.clone(),
                stream: t.stream,
                timeout_s: t.timeout.as_secs_f64(),
                connect_timeout_s: t.connect_timeout.as_secs_f64(),
                idle_timeout_s: t.idle_timeout.map(|d| d.as_secs_f64()),
                insecure: t.insecure,
            },
            host: host(),
            command_line: command_line(std::env::args()),
            scenario_sha256: scenario.source_sha256.clone(),
            run_id: meta.launch.run_id.clone(),
            shard: meta.launch.shard,
            start_at: meta.launch.start_at.map(|t| humantime::format_rfc3339_micros(t).to_string()),
            start_lag_ms: meta.launch.start_lag,
            merged_shards: None,
            started_at: humantime::format_rfc3339_millis(meta.started_at).to_string(),
            finished_at: humantime::format_rfc3339_millis(meta.finished_at).to_string(),
            duration_s: meta.finished_at.duration_since(meta.started_at).map_or(0.0, |d| d.as_secs_f64()),
            interrupted: meta.interrupted,
            complete: true,
            aborted: meta.aborted.map(|a| AbortedInfo {
                stage: a.stage,
                error_rate: a.error_rate,
                requests: a.requests,
                mid_stage: a.mid_stage,
                threshold: a.threshold,
            }),
            stages: stages
                .iter()
                .map(|s| StageResult {
                    server: server_in_window(s, stages.first(), meta.server_metrics.as_ref()),
                    prefix_cache_reset: meta.prefix_resets.get(&s.info.index).cloned(),
                    ..StageResult::from_stats(s).priced(&scenario.pricing)
                })
                .collect(),
            sweep: None,
            cost: None,
            definitions: super::definitions(),
            verdict: None,
            repeats: None,
            generator: meta.generator.map(|g| GeneratorInfo {
                cores: g.cores,
                cpu_cores_mean: g.cpu_mean,
                cpu_cores_busiest_second: g.cpu_busiest,
                machine_busy_busiest_second: g.machine_busiest,
                scheduling_delay_ms: Delay {
                    p50: g.late_p50.as_secs_f64() * 1e3,
                    p99: g.late_p99.as_secs_f64() * 1e3,
                    max: g.late_max.as_secs_f64() * 1e3,
                },
                ticks: g.ticks,
                near_saturation: g.warning().is_some(),
                warning: g.warning(),
                shared: g.shared(),
            }),
            server_metrics: meta.server_metrics.as_ref().map(|r| crate::servermetrics::summary::ServerMetrics {
                endpoints: r.scraped.iter().map(crate::servermetrics::summary::EndpointRecord::of).collect(),
                note: r.note.clone(),
            }),
        };
        let mut result = result.total_cost(&scenario.pricing);
        result.conclude(scenario);
        result
    }

    /// The sweep and the verdict, from the stages as they are (again, once a watcher's
    /// findings are on them: a point stopped at saturation is over the limit).
    pub fn conclude(&mut self, scenario: &Scenario) {
        let early = ended_early(self.aborted.is_some(), self.interrupted);
        self.sweep = scenario.sweep.as_ref().map(|s| SweepResult::build(s, &self.stages, scenario.slo.as_ref(), early));
        self.verdict = Some(Verdict::judge(scenario, self));
    }

    /// Sets the run's total cost from its stages.
    fn total_cost(mut self, pricing: &Pricing) -> Self {
        let priced: Vec<&Cost> = self.stages.iter().filter_map(|s| s.cost.as_ref()).collect();
        if !priced.is_empty() {
            let usd: f64 = priced.iter().map(|c| c.usd).sum();
            let ok: u64 = self.stages.iter().filter(|s| s.cost.is_some()).map(|s| s.requests.ok).sum();
            self.cost = Some(Cost::new(pricing, usd, ok));
        }
        self
    }
}

/// This machine's name, as `uname -n` says it.
fn host() -> Option<String> {
    rustix::system::uname().nodename().to_str().ok().map(str::to_string)
}

/// The command line as given, with every URL's credentials and query redacted (flags
/// name files and variables, never hold a key).
fn command_line(args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|a| {
        let (flag, value) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (format!("{f}="), v.to_string()),
            _ => (String::new(), a.clone()),
        };
        match url::Url::parse(&value) {
            Ok(u) if u.has_host() => format!("{flag}{}", crate::scenario::redact_url(&u)),
            _ => a,
        }
    })
    .collect()
}

impl StageResult {
    /// The stage's result, with every distribution encoded.
    pub fn from_stats(s: &StageStats) -> StageResult {
        let mut r = Self::summary(s);
        r.series = s.series.seconds();
        r.histograms = Histograms::of(s);
        r.items = super::items(s, true);
        r.tool_calls = super::tool_calls(s, true);
        r.images = super::images::images(s, true);
        r.ci = super::ci::stage_ci(&r, crate::stats::LEVEL);
        r
    }

    /// The stage's cost from the tokens of its successful requests: per request, the
    /// server's usage where sent, else the counts made here.
    pub fn priced(mut self, pricing: &Pricing) -> StageResult {
        // A task stage's steps may each ask another model: its tasks' costs add up.
        let usd = match &self.tasks {
            Some(t) => (t.totals.priced > 0 && t.totals.priced == t.ok + t.failed).then_some(t.totals.cost_usd),
            None => pricing.cost_usd(&self.model, self.tokens.input, self.tokens.output),
        };
        if let Some(usd) = usd {
            self.cost = Some(Cost::new(pricing, usd, self.requests.ok));
        }
        self.tasks = self.tasks.map(|t| t.priced(pricing));
        self
    }

    /// The figures without the encoded histogram: cheap enough for every frame of a
    /// live view.
    pub fn summary(s: &StageStats) -> StageResult {
        StageResult {
            index: s.info.index,
            name: s.info.name.clone(),
            kind: if s.info.rate.is_some() { "open" } else { "closed" }.into(),
            concurrency: s.info.concurrency,
            model: s.info.model.clone(),
            planned: Planned { requests: s.info.planned_requests, duration_s: s.info.planned_duration.map(|d| d.as_secs_f64()) },
            warmup_requests: s.warmup_done,
            cooldown_requests: s.cooldown_done,
            interrupted: s.interrupted,
            aborted: s.aborted,
            wall_time_s: s.wall.as_secs_f64(),
            window_start: s.window_opened.map(|t| humantime::format_rfc3339_micros(t).to_string()),
            window_end: s.window_opened.map(|t| humantime::format_rfc3339_micros(t + s.wall).to_string()),
            window_offset_s: s.window_offset.map(|d| d.as_secs_f64()),
            requests: Requests { started: s.started, ok: s.ok, failed: s.failed, cancelled: s.cancelled },
            error_rate: s.error_rate(),
            failures: s.failures.iter().map(|(k, v)| (k.as_str().to_string(), *v)).collect(),
            failure_examples: s.failure_examples.iter().map(|(k, v)| (k.as_str().to_string(), v.to_string())).collect(),
            status_codes: s.status_codes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            latency_ms: s.latency.summary(),
            ttft_ms: s.ttft.summary(),
            itl_ms: s.itl.summary(),
            chunk_gap_ms: s.chunk_gap.summary(),
            partial_ttft_ms: s.partial_ttft.summary(),
            ttft_answer_ms: s.ttft_answer.summary(),
            thinking_ms: s.thinking.summary(),
            streams_without_done: s.streams_without_done,
            reconnects: s.reconnects,
            finish_reasons: s.finish_reasons,
            throughput: throughput(s),
            tokens: tokens(s),
            items: super::items(s, false),
            tool_calls: super::tool_calls(s, false),
            images: super::images::images(s, false),
            sessions: super::sessions::sessions(s),
            tasks: super::tasks::tasks(s),
            goodput: s.goodput().map(|per_s| Goodput { requests: s.slo_met, per_s }),
            checks: checks(s),
            server: Vec::new(),
            prefix_cache_reset: None,
            cost: None,
            bytes_received: s.bytes_received,
            retries: retries(s),
            attempt_latency_ms: s.attempt_latency.summary(),
            open_loop: s.info.rate.map(|target_rate| open_loop(s, target_rate)),
            rate_limiter: s.info.rate_limit.is_set().then(|| RateLimiter {
                rpm: s.info.rate_limit.rpm,
                tpm: s.info.rate_limit.tpm,
                delayed: s.limited,
                wait_ms: s.limiter_wait.summary(),
            }),
            // Filled by from_stats: a live view has no use for it.
            series: Vec::new(),
            histograms: Histograms::default(),
            ci: None,
            until: None,
            warmup_detected_s: None,
            warmup_said: None,
            saturated: None,
        }
    }
}

fn throughput(s: &StageStats) -> Throughput {
    Throughput {
        requests_per_s: s.requests_per_s(),
        ok_per_s: s.ok_per_s(),
        output_tokens_per_s: s.output_tokens_per_s(),
        output_tokens_per_s_per_user: s.tokens_per_s_per_user(),
        output_tokens_per_s_per_user_itl: s.itl_tokens_per_s_per_user(),
        input_tokens_per_s: s.input_tokens_per_s(),
        total_tokens_per_s: s.input_tokens_per_s() + s.output_tokens_per_s(),
    }
}

fn tokens(s: &StageStats) -> Tokens {
    Tokens {
        prompt: s.prompt_tokens,
        completion: s.completion_tokens,
        requests_with_usage: s.with_usage,
        output: s.output_tokens,
        input: s.input_tokens,
        client_prompt: s.client_prompt_tokens,
        client_completion: s.client_completion_tokens,
        prompt_disagree: (s.prompt_compared > 0).then_some(s.prompt_disagree),
        completion_disagree: (s.completion_compared > 0).then_some(s.completion_disagree),
        prompt_compared: s.prompt_compared,
        completion_compared: s.completion_compared,
        reasoning: s.reasoning_tokens,
        input_length: s.input_len.summary(),
        output_length: s.output_len.summary(),
        target_output: s.target_output.summary().map(|target| TargetOutput {
            target,
            achieved_mean: s.target_achieved.mean().unwrap_or(0.0),
            ended_short: s.ended_short,
            ended_short_share: s.ended_short_share().unwrap_or(0.0),
            judged_by_finish_reason: s.ended_by_reason,
        }),
        cached: s.cached_share().map(|share| Cached { requests: s.with_cached, tokens: s.cached_tokens, share, of: s.cached_of }),
        source: super::result::CountSources { output: s.output_sources, input: s.input_sources },
    }
}

fn checks(s: &StageStats) -> Option<Checks> {
    let failed: u64 = s.checks_failed.values().sum();
    let total = s.checks_passed + failed;
    (total > 0).then(|| Checks {
        passed: s.checks_passed,
        failed,
        invalid_rate: failed as f64 / total as f64,
        failures: s.checks_failed.iter().map(|(k, v)| (k.as_str().to_string(), *v)).collect(),
        schema_failures: s.check_where.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    })
}

fn retries(s: &StageStats) -> Retries {
    Retries {
        attempts: s.attempts,
        total: s.retries(),
        by_cause: s.retries_by_cause.iter().map(|(k, v)| (k.as_str().to_string(), *v)).collect(),
        requests_retried: s.retried,
        recovered: s.recovered,
        retry_after_honoured: s.retry_after_waits,
        not_sent: s.retries_not_sent,
    }
}

/// An open loop's rates: scheduled and achieved, and whether it fell below its target.
fn open_loop(s: &StageStats, target_rate: f64) -> OpenLoop {
    // Rates over spans plus one gap (n arrivals at rate r span (n − 1)/r). The
    // schedule's own rate is the yardstick: random arrivals vary around the
    // target, and that is not llmload falling short. Live: over the wall time.
    let gap = 1.0 / target_rate;
    let (sent_span, due_span) =
        s.schedule.map_or((s.wall.as_secs_f64(), s.wall.as_secs_f64()), |(a, b)| (a.as_secs_f64() + gap, b.as_secs_f64() + gap));
    let per = |n: u64, span: f64| if span > 0.0 { n as f64 / span } else { 0.0 };
    // Sessions, where the stage starts sessions at the rate (user-centric load).
    let arrived = match s.sessions.started() {
        0 => s.started,
        n => n,
    };
    let achieved_rate = per(arrived, sent_span);
    let scheduled_rate = per(arrived + s.unsent, due_span);
    // Short: over 5 % of the arrivals due were never sent. Late: sending ended
    // behind the schedule by over 5 % of it (at least 50 ms, so one late
    // timer tick on a short stage is no alarm).
    let short = s.unsent as f64 > (1.0 - RATE_WARNING) * (arrived + s.unsent) as f64;
    let late = sent_span - due_span > ((1.0 - RATE_WARNING) * due_span).max(0.05);
    OpenLoop {
        arrival: s.info.arrival.unwrap_or("constant").to_string(),
        target_rate,
        scheduled_rate,
        achieved_rate,
        below_target: match s.finished {
            true => short || late,
            // Live: the arrival waiting for a slot is due that far back.
            false => s.behind.as_secs_f64() > ((1.0 - RATE_WARNING) * s.wall.as_secs_f64()).max(0.05),
        },
        max_in_flight: s.info.concurrency,
        not_sent: s.unsent,
        schedule_lag_ms: s.schedule_lag.summary(),
        latency_uncorrected_ms: s.latency_uncorrected.summary(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTO: &str = "name = \"t\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[prompts]\nlist = [\"hello\"]\n[sweep]\nconcurrency = \"auto\"\nduration = \"2s\"\n";

    #[test]
    fn the_record_of_an_automatic_sweep_is_the_scenario_as_it_ran() {
        let s = Scenario::parse(AUTO, "s.toml", None).unwrap();
        let sweep = s.sweep.as_ref().unwrap();
        let swept = [sweep.stage(1.0, 0), sweep.stage(2.0, 1)];
        let ran = serde_json::to_value(ScenarioRecord::new(&s, &swept)).unwrap();
        assert_eq!(ran["stages"].as_array().unwrap().len(), 2);
        assert_eq!(ran["stages"][1]["name"], "2-way");
        assert_eq!(ran["sweep"]["points"], serde_json::json!([1.0, 2.0]));
        // Before it ran: no stages, no points.
        let planned = serde_json::to_value(ScenarioRecord::new(&s, &[])).unwrap();
        assert_eq!((planned["stages"].as_array().unwrap().len(), &planned["sweep"]["points"]), (0, &serde_json::json!([])));
    }
}
