//! deploy/kubernetes: every manifest validates against the Kubernetes schemas offline
//! (kubernetes-validate, strict: an unknown field is an error) and holds what
//! docs/scale-out.md relies on (tests/interop/k8s_check.py); then the Job's own command
//! lines run here as its pods would — four shards with JOB_COMPLETION_INDEX 0–3 and the
//! start annotation's moment, on the ConfigMap's scenario — and the merge Job's command
//! merges them. (No cluster and no container engine here: the image is not built.)

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// `$(NAME)` replaced from `env`, as the kubelet expands a container's args.
fn expand(arg: &str, env: &[(&str, String)]) -> String {
    env.iter().fold(arg.to_string(), |a, (k, v)| a.replace(&format!("$({k})"), v))
}

#[test]
fn the_kubernetes_manifests_validate_and_their_commands_run_and_merge() {
    let Some(python) = python(&["kubernetes_validate", "yaml"]) else { return };
    let out = Command::new(python)
        .arg(repo_path("tests/interop/k8s_check.py"))
        .arg(repo_path("deploy/kubernetes"))
        .arg("1.33.0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let validated: Vec<&str> = plan["validated"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(
        validated,
        ["ConfigMap/llmload-scenario", "Job/llmload-merge", "Job/llmload-shards", "PersistentVolumeClaim/llmload-results"]
    );

    let d = tempfile::tempdir().unwrap();
    let (scenario_dir, results_dir) = (d.path().join("scenario"), d.path().join("results"));
    std::fs::create_dir_all(&scenario_dir).unwrap();
    std::fs::create_dir_all(&results_dir).unwrap();
    std::fs::write(scenario_dir.join("scenario.toml"), plan["scenario"].as_str().unwrap()).unwrap();
    let mounts = &plan["mounts"];
    // A path under a mount, to the directory standing in for it (each word of a shell
    // command too).
    let local = |a: &str| {
        let word = |w: &str| {
            for (mount, dir) in [(&mounts["scenario"], &scenario_dir), (&mounts["results"], &results_dir)] {
                if let Some(rest) = w.strip_prefix(&format!("{}/", mount.as_str().unwrap())) {
                    return format!("{}/{rest}", dir.display());
                }
            }
            w.to_string()
        };
        a.split(' ').map(word).collect::<Vec<_>>().join(" ")
    };
    // The start annotation's moment, set once at submission for every pod.
    let start = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3)).to_string();
    let shards = plan["shards"].as_u64().unwrap();
    let pods: Vec<_> = (0..shards)
        .map(|k| {
            let env = [("START_AT", start.clone()), ("RUN_ID", "k8s-test".to_string()), ("JOB_COMPLETION_INDEX", k.to_string())];
            let args: Vec<String> = plan["args"].as_array().unwrap().iter().map(|a| local(&expand(a.as_str().unwrap(), &env))).collect();
            let mut c = bin();
            c.args(&args).env("JOB_COMPLETION_INDEX", k.to_string()).env_remove("SLURM_ARRAY_TASK_ID");
            c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for (k, pod) in pods.into_iter().enumerate() {
        let out = wait(pod, Duration::from_secs(90));
        assert!(out.status.success(), "shard {k}: {}", out.stderr);
        assert!(out.stderr.contains(&format!("shard {k}/{shards} (from JOB_COMPLETION_INDEX)")), "{}", out.stderr);
    }
    // The merge Job's command, with llmload on the PATH as in the image.
    let command: Vec<String> = plan["merge"].as_array().unwrap().iter().map(|a| local(a.as_str().unwrap())).collect();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_llmload")).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = Command::new(&command[0]);
    c.args(&command[1..]).env("PATH", path);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let merged = read_json(&results_dir.join("merged.json"));
    assert_eq!((merged["merged_shards"].as_u64(), merged["run_id"].as_str()), (Some(shards), Some("k8s-test")));
    assert_eq!(merged["stages"][0]["requests"]["ok"], 2000, "the ConfigMap's 2,000 requests, over the four shards");
    assert_eq!(merged["stages"][0]["concurrency"], 64);
    for k in 0..shards {
        let shard = read_json(&results_dir.join(format!("shard-{k}.json")));
        let lag = num(&shard["start_lag_ms"]);
        assert!((0.0..1000.0).contains(&lag), "shard {k} started {lag} ms after the common moment");
    }
}
