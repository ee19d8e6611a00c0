//! The image Kubernetes runs (deploy/Dockerfile), built and run here, with no registry:
//! a Debian bookworm base made by debootstrap from Debian's own packages and imported
//! into podman, the Dockerfile's `host` target (the runtime stage, with this build's
//! binary) built on it with buildah's chroot isolation, then the image's own file system
//! mounted (`podman image mount`) and run by chroot as user 65534 — `--version`, a quick
//! run on the embedded mock, and a run against a mock on the host — with the CA
//! certificates present. Containers themselves cannot start on these machines (crun is
//! refused `setrlimit` of RLIMIT_NOFILE and RLIMIT_NPROC, and cgroups in hybrid mode):
//! docs/scale-out.md says what is and is not exercised. Needs root, debootstrap and
//! podman (scripts/test installs them).

mod common;
use common::*;

use std::process::Command;
use std::time::Duration;

const BASE: &str = "localhost/llmload-test-base:bookworm";
const IMAGE: &str = "localhost/llmload:test";

/// A command's output, failing the test with what it said when it fails.
fn ok(c: Command, limit: Duration) -> Output {
    let shown = format!("{c:?}");
    let out = run(c, limit);
    assert!(out.status.success(), "{shown}: {}\n{}", out.stdout, out.stderr);
    out
}

fn podman(args: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.args(args);
    c
}

/// The base image: debootstrap's minimal bookworm with CA certificates, made once per
/// machine (kept in podman's store).
fn base() {
    if podman(&["image", "exists", BASE]).status().is_ok_and(|s| s.success()) {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("rootfs");
    let mut c = Command::new("debootstrap");
    c.args(["--variant=minbase", "--include=ca-certificates", "bookworm"]).arg(&root).arg("http://deb.debian.org/debian");
    ok(c, Duration::from_secs(600));
    let tar = d.path().join("rootfs.tar");
    let mut c = Command::new("tar");
    c.arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".");
    ok(c, Duration::from_secs(120));
    let mut c = podman(&["import"]);
    c.arg(&tar).arg(BASE);
    ok(c, Duration::from_secs(120));
}

/// Runs `args` inside the image's file system, by chroot, as user 65534.
fn inside(root: &str, args: &[&str]) -> Output {
    let mut c = Command::new("chroot");
    c.args(["--userspec=65534:65534", root]).args(args);
    ok(c, Duration::from_secs(120))
}

#[test]
fn the_image_is_built_from_the_dockerfile_and_runs_as_nobody() {
    if !root("debootstrap, podman and chroot") || !programs(&["debootstrap", "podman", "chroot", "tar"], "debootstrap and podman") {
        return;
    }
    base();
    // The build context: this build's binary, nothing else.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_llmload"), ctx.path().join("llmload")).unwrap();
    let mut c = podman(&["build", "--isolation", "chroot", "--target", "host", "--build-arg", "BIN=llmload", "-t", IMAGE]);
    c.arg("--build-arg").arg(format!("BASE={BASE}")).arg("-f").arg(repo_path("deploy/Dockerfile")).arg(ctx.path());
    ok(c, Duration::from_secs(300));
    let config = ok(podman(&["image", "inspect", "--format", "{{.Config.User}} {{.Config.Entrypoint}}", IMAGE]), Duration::from_secs(30));
    assert_eq!(config.stdout.trim(), "65534:65534 [llmload]");
    let root = ok(podman(&["image", "mount", IMAGE]), Duration::from_secs(30)).stdout.trim().to_string();
    let checks = std::panic::catch_unwind(|| {
        let v = inside(&root, &["/usr/local/bin/llmload", "--version"]);
        assert!(v.stdout.starts_with("llmload "), "{}", v.stdout);
        let who = inside(&root, &["/bin/sh", "-c", "id -u; test -s /etc/ssl/certs/ca-certificates.crt && echo certificates"]);
        assert_eq!(who.stdout.split_whitespace().collect::<Vec<_>>(), ["65534", "certificates"], "{}", who.stdout);
        let quick = inside(
            &root,
            &[
                "/usr/local/bin/llmload",
                "run",
                "--base-url",
                "mock",
                "--model",
                "m",
                "--concurrency",
                "2",
                "--requests",
                "20",
                "--headless",
            ],
        );
        assert!(quick.stdout.contains("20 requests"), "{}", quick.stdout);
        // A mock on the host, across the (shared) loopback.
        let (mut mock, url) = spawn_mock(&["--base-latency-ms", "5"]);
        let host = std::panic::catch_unwind(|| {
            let args = [
                "/usr/local/bin/llmload",
                "run",
                "--base-url",
                &url,
                "--model",
                "m",
                "--concurrency",
                "2",
                "--requests",
                "10",
                "--headless",
            ];
            inside(&root, &args)
        });
        let _ = mock.kill();
        let host = host.unwrap_or_else(|e| std::panic::resume_unwind(e));
        assert!(
            host.stdout.contains("10 requests") && host.stdout.lines().nth(2).is_some_and(|l| l.trim_end().ends_with(" 0")),
            "{}",
            host.stdout
        );
    });
    let _ = podman(&["image", "unmount", IMAGE]).status();
    if let Err(e) = checks {
        std::panic::resume_unwind(e);
    }
    let size = ok(podman(&["image", "inspect", "--format", "{{.Size}}", IMAGE]), Duration::from_secs(30));
    eprintln!("image {IMAGE}: {} bytes (this build's binary)", size.stdout.trim());
}
