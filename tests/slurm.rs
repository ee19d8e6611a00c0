//! deploy/slurm on a real Slurm: deploy/slurm/run-local.sh starts munged, slurmctld and
//! slurmd for 127.0.0.1 from a temporary configuration (Debian's slurm-wlm, installed
//! by scripts/test), runs one mock, submits the sbatch script as a 4-task job array,
//! merges the shards and checks the merge exactly (its checks are the script's; this
//! test runs it and reads its verdict). Needs root, as CI runs; without root or Slurm (a
//! bare `cargo test`) it says it skipped and why.

mod common;
use common::*;

use std::process::Command;
use std::time::Duration;

#[test]
fn a_four_task_slurm_array_runs_the_shards_and_they_merge_exactly() {
    if !programs(&["slurmctld", "slurmd", "sbatch", "munged"], "Debian's slurm-wlm and munge")
        || !root("to start slurmctld, slurmd and munged")
    {
        return;
    }
    let mut c = Command::new(repo_path("deploy/slurm/run-local.sh"));
    c.arg(env!("CARGO_BIN_EXE_llmload"));
    let out = run(c, Duration::from_secs(180));
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let report =
        out.stdout.lines().find(|l| l.starts_with("16-way: 400 ok = ")).unwrap_or_else(|| panic!("no merge line:\n{}", out.stdout));
    assert!(report.contains("from shards [0, 1, 2, 3] of 4") && report.contains("merged histogram = the shards' added"), "{report}");
    assert!(report.contains("run id slurm-"), "the array's job id is the run id: {report}");
    assert!(out.stdout.contains("verdict: pass"), "{}", out.stdout);
}
