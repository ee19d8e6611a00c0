//! How a run is launched among others: which shard this process is (`--shard I/N`, or
//! the engine's environment — a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` with
//! `--shards N`, a Slurm job array's task id), the wall-clock moment every shard starts
//! at (`--start-at`), and the run id the shards of one run share.

use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::model::Shard;

/// How this run is launched, for the run to honour and its result to record.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Wait for this wall-clock moment before the first stage (`--start-at`).
    pub start_at: Option<SystemTime>,
    /// The id every shard of this run records.
    pub run_id: Option<String>,
    /// Launched as a shard (by a flag or a launcher's environment), even 0/1: its
    /// result says so, so a one-shard Job's merge step works.
    pub shard: Option<Shard>,
}

/// The environment a launcher sets, read once (so tests can give their own).
#[derive(Debug, Clone, Default)]
pub struct LaunchEnv {
    pub job_completion_index: Option<String>,
    pub slurm_task_id: Option<String>,
    pub slurm_task_min: Option<String>,
    pub slurm_task_count: Option<String>,
}

impl LaunchEnv {
    pub fn read() -> LaunchEnv {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        LaunchEnv {
            job_completion_index: var("JOB_COMPLETION_INDEX"),
            slurm_task_id: var("SLURM_ARRAY_TASK_ID"),
            slurm_task_min: var("SLURM_ARRAY_TASK_MIN"),
            slurm_task_count: var("SLURM_ARRAY_TASK_COUNT"),
        }
    }
}

/// Which shard this is, and where that was read from (for the note a run prints).
pub fn shard(flag: Option<&str>, shards: Option<u64>, env: &LaunchEnv) -> Result<(Shard, &'static str), String> {
    let num = |what: &str, v: &str| v.trim().parse::<u64>().map_err(|_| format!("{what}={v:?} is not a whole number ≥ 0"));
    if let Some(spec) = flag {
        let s = Shard::parse(spec)?;
        if let Some(n) = shards.filter(|n| *n != u64::from(s.count)) {
            return Err(format!("--shard {spec} says {} shards, --shards says {n}", s.count));
        }
        return Ok((s, "--shard"));
    }
    if let Some(n) = shards {
        if let Some(i) = &env.job_completion_index {
            return Ok((Shard::new(num("JOB_COMPLETION_INDEX", i)?, n)?, "JOB_COMPLETION_INDEX"));
        }
        if env.slurm_task_id.is_none() {
            return Err(format!(
                "--shards {n}: which shard this is comes from --shard I/{n}, JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID (a Slurm job array), and none is set"
            ));
        }
    }
    if let Some(id) = &env.slurm_task_id {
        // Array ids need not start at 0 (--array=1-4): the shard counts from the first.
        let min = env.slurm_task_min.as_deref().map_or(Ok(0), |m| num("SLURM_ARRAY_TASK_MIN", m))?;
        let id = num("SLURM_ARRAY_TASK_ID", id)?;
        let count = match (&env.slurm_task_count, shards) {
            (Some(c), None) => num("SLURM_ARRAY_TASK_COUNT", c)?,
            (Some(c), Some(n)) if num("SLURM_ARRAY_TASK_COUNT", c)? != n => {
                return Err(format!("--shards {n}, but SLURM_ARRAY_TASK_COUNT={c}: one shard per array task"));
            }
            (_, Some(n)) => n,
            (None, None) => return Err("SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT: give --shards N".into()),
        };
        let index = id.checked_sub(min).ok_or_else(|| format!("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}"))?;
        return Ok((Shard::new(index, count)?, "SLURM_ARRAY_TASK_ID"));
    }
    Ok((Shard::WHOLE, ""))
}

/// `--start-at`: an RFC 3339 time (`2026-12-01T10:00:00Z`), or `+30s` from `now`. A
/// moment already past is refused: shards that started late would not start together.
pub fn start_at(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let at = match text.strip_prefix('+') {
        Some(rel) => {
            let d =
                humantime::parse_duration(rel).map_err(|e| format!("--start-at {text:?}: {e} (give e.g. +30s or 2026-12-01T10:00:00Z)"))?;
            now + d
        }
        None => {
            humantime::parse_rfc3339_weak(text).map_err(|e| format!("--start-at {text:?}: {e} (give e.g. 2026-12-01T10:00:00Z or +30s)"))?
        }
    };
    if let Ok(late) = now.duration_since(at)
        && late > Duration::ZERO
    {
        return Err(format!("--start-at {text}: that was {:.1} s ago; give a moment still to come", late.as_secs_f64()));
    }
    if at.duration_since(now).is_ok_and(|d| d > Duration::from_secs(7 * 24 * 3600)) {
        return Err(format!("--start-at {text}: over a week away"));
    }
    Ok(at)
}

/// The run id every shard of one run records: given, or derived from what they share
/// (the scenario's sha256, the shard count and the common start).
pub fn run_id(given: Option<&str>, scenario_sha256: Option<&str>, count: u32, start: Option<SystemTime>) -> Result<String, String> {
    if let Some(id) = given {
        let ok = !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        return if ok { Ok(id.to_string()) } else { Err(format!("--run-id {id:?}: use 1 to 128 of A-Z a-z 0-9 - _ . :")) };
    }
    let start = start.map_or(String::new(), |t| humantime::format_rfc3339_micros(t).to_string());
    let digest = Sha256::digest(format!("{}|{count}|{start}", scenario_sha256.unwrap_or("")).as_bytes());
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> LaunchEnv {
        let get = |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        LaunchEnv {
            job_completion_index: get("JOB_COMPLETION_INDEX"),
            slurm_task_id: get("SLURM_ARRAY_TASK_ID"),
            slurm_task_min: get("SLURM_ARRAY_TASK_MIN"),
            slurm_task_count: get("SLURM_ARRAY_TASK_COUNT"),
        }
    }

    #[test]
    fn the_shard_comes_from_the_flag_or_the_launchers_environment() {
        let s = |i, n| Shard { index: i, count: n };
        assert_eq!(shard(Some("2/4"), None, &env(&[])), Ok((s(2, 4), "--shard")));
        assert_eq!(shard(None, Some(4), &env(&[("JOB_COMPLETION_INDEX", "3")])), Ok((s(3, 4), "JOB_COMPLETION_INDEX")));
        let slurm = env(&[("SLURM_ARRAY_TASK_ID", "7"), ("SLURM_ARRAY_TASK_MIN", "5"), ("SLURM_ARRAY_TASK_COUNT", "4")]);
        assert_eq!(shard(None, None, &slurm), Ok((s(2, 4), "SLURM_ARRAY_TASK_ID")));
        assert_eq!(shard(None, None, &env(&[])), Ok((Shard::WHOLE, "")));
        assert!(shard(None, Some(4), &env(&[])).unwrap_err().contains("none is set"));
        assert!(shard(None, Some(4), &env(&[("JOB_COMPLETION_INDEX", "4")])).unwrap_err().contains("outside 0 ≤ I < 4"));
        assert!(shard(Some("1/4"), Some(3), &env(&[])).unwrap_err().contains("--shards says 3"));
        assert!(shard(None, Some(3), &slurm).unwrap_err().contains("SLURM_ARRAY_TASK_COUNT=4"));
    }

    #[test]
    fn start_times_are_absolute_or_from_now_and_never_past() {
        let now = humantime::parse_rfc3339("2026-12-01T10:00:00Z").unwrap();
        assert_eq!(start_at("+30s", now), Ok(now + Duration::from_secs(30)));
        assert_eq!(start_at("2026-12-01T10:01:00Z", now), Ok(now + Duration::from_secs(60)));
        assert!(start_at("2026-12-01T09:59:00Z", now).unwrap_err().contains("that was 60.0 s ago"));
        assert!(start_at("tomorrow", now).unwrap_err().starts_with("--start-at \"tomorrow\""));
        assert!(start_at("+soon", now).is_err());
    }

    #[test]
    fn shards_of_one_run_derive_one_id() {
        let t = Some(humantime::parse_rfc3339("2026-12-01T10:00:00Z").unwrap());
        let a = run_id(None, Some("abc"), 4, t).unwrap();
        assert_eq!(a, run_id(None, Some("abc"), 4, t).unwrap());
        assert_ne!(a, run_id(None, Some("abc"), 4, None).unwrap());
        assert_eq!(a.len(), 16);
        assert_eq!(run_id(Some("bench-42"), None, 1, None).unwrap(), "bench-42");
        assert!(run_id(Some("a b"), None, 1, None).is_err());
    }
}
