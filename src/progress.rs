//! The headless view of a run: a one-line progress display on stderr, redrawn from
//! snapshots, with a line left behind per finished stage.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::Snapshot;
use crate::run::Watcher;

/// A progress line on stderr when stderr is a terminal; nothing otherwise.
pub fn watcher() -> Watcher {
    Box::new(|snapshots, _stop| {
        tokio::spawn(async move {
            if std::io::stderr().is_terminal() {
                progress_line(snapshots).await;
            }
        })
    })
}

/// A one-line progress display on stderr, redrawn from snapshots; a line per stage
/// stays behind as each one finishes.
async fn progress_line(mut rx: watch::Receiver<Arc<Snapshot>>) {
    use std::io::Write;
    let mut shown_finished = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let snap = rx.borrow_and_update().clone();
        let mut err = std::io::stderr().lock();
        for s in snap.finished.iter().skip(shown_finished) {
            let _ = writeln!(
                err,
                "\r\x1b[2K✓ {} — {} ok, {} failed in {:.2} s ({:.1} req/s)",
                s.info.name,
                s.ok,
                s.failed,
                s.wall.as_secs_f64(),
                s.requests_per_s()
            );
        }
        shown_finished = snap.finished.len();
        if snap.done {
            let _ = write!(err, "\r\x1b[2K");
            return;
        }
        if let Some(c) = &snap.current {
            let planned = c.info.planned_requests.map_or(String::new(), |n| format!("/{n}"));
            // An automatic sweep's points are chosen as it runs: no total to show.
            let stage = match c.info.index < snap.total_stages {
                true => format!("{}/{}", c.info.index + 1, snap.total_stages),
                false => format!("sweep point {}", c.info.index + 1 - snap.total_stages),
            };
            let _ = write!(
                err,
                "\r\x1b[2K[{stage}] {}: {}{} done · {} in flight · {:.1} req/s · {} errors{}",
                c.info.name,
                c.done(),
                planned,
                c.in_flight(),
                c.requests_per_s(),
                c.failed,
                // Open loop: the arrival waiting for a slot is this late.
                if c.behind.as_secs_f64() >= 0.05 { format!(" · {:.1} s behind the rate", c.behind.as_secs_f64()) } else { String::new() }
            );
        }
        let _ = err.flush();
        if rx.has_changed().is_err() {
            return;
        }
    }
}
