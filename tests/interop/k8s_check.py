"""Validates deploy/kubernetes/*.yaml against the Kubernetes schemas, offline
(kubernetes-validate carries them), checks the fields docs/scale-out.md relies on, and
prints what the shards and the merge run, for tests/deploy.rs to run for real.

usage: k8s_check.py DIR VERSION"""
import glob
import json
import os
import sys

import kubernetes_validate
import yaml

directory, version = sys.argv[1], sys.argv[2]
docs = {}
for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if doc is None:
                continue
            # strict: a field the schema does not know is an error, not ignored.
            kubernetes_validate.validate(doc, version, strict=True)
            docs[(doc["kind"], doc["metadata"]["name"])] = doc


def check(cond, what):
    if not cond:
        sys.exit("deploy/kubernetes: " + what)


shards = docs[("Job", "llmload-shards")]
spec = shards["spec"]
check(spec["completionMode"] == "Indexed", "the shards' Job is not Indexed")
check(spec["completions"] == spec["parallelism"], "completions != parallelism: shards would not run at once")
pod = spec["template"]
(c,) = pod["spec"]["containers"]
args = c["args"]
check(args[args.index("--shards") + 1] == str(spec["completions"]), "--shards is not the Job's completions")
env = {e["name"]: e for e in c["env"]}
annotation = env["START_AT"]["valueFrom"]["fieldRef"]["fieldPath"]
check(annotation == "metadata.annotations['llmload/start-at']", "START_AT is not read from the start annotation")
check("llmload/start-at" in pod["metadata"]["annotations"], "the pod template has no start annotation")
check(args[args.index("--start-at") + 1] == "$(START_AT)", "--start-at is not $(START_AT)")
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
out = args[args.index("--json") + 1]
check(out.startswith(mounts["results"] + "/") and "$(JOB_COMPLETION_INDEX)" in out, "each shard's result is not on the results volume by its index")
claim = volumes["results"]["persistentVolumeClaim"]["claimName"]
pvc = docs[("PersistentVolumeClaim", claim)]
check("ReadWriteMany" in pvc["spec"]["accessModes"], "the results volume is not ReadWriteMany")
cm = docs[("ConfigMap", volumes["scenario"]["configMap"]["name"])]
check(args[1] == mounts["scenario"] + "/scenario.toml" and "scenario.toml" in cm["data"], "the scenario is not the ConfigMap's file")
merge = docs[("Job", "llmload-merge")]
(m,) = merge["spec"]["template"]["spec"]["containers"]
check(m["volumeMounts"][0]["mountPath"] == mounts["results"], "the merge reads another volume")
json.dump(
    {
        "shards": spec["completions"],
        "args": args,
        "scenario": cm["data"]["scenario.toml"],
        "merge": m["command"],
        "mounts": mounts,
        "validated": sorted(f"{k}/{n}" for k, n in docs),
    },
    sys.stdout,
)
