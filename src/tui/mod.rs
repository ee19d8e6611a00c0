//! The live dashboard. It reads Snapshots and keys and draws; it never touches engine
//! state. The loop is generic over ratatui's Backend and an input stream, so tests run
//! it on a TestBackend with scripted keys.

mod app;
mod fit;
mod histogram;
mod table;
mod terminal;
mod ui;

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event, EventStream};
use futures_util::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use tokio::sync::watch;

pub use app::{Action, App, Bucket, HistView, Scale, buckets, buckets_of};
pub use terminal::{TerminalGuard, install_panic_hook};
pub use ui::render;

use crate::engine::Stop;
use crate::metrics::Snapshot;
use crate::run::Watcher;

/// Shortest time between two frames: at most 20 frames a second, whatever the
/// request rate.
pub const FRAME: Duration = Duration::from_millis(50);

/// Why the dashboard loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopEnd {
    /// The user left (or the run ended after a stop).
    Left,
    /// Keys can no longer be read while the run goes on: the caller should give the
    /// terminal back (so Ctrl-C works again) and let the run finish headless.
    InputLost,
}

/// Runs the dashboard until the user leaves (after the run ends, or after a stop once
/// the run has ended). Draws only when something changed.
pub async fn run_loop<B, S>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    mut input: S,
    stop: &Stop,
) -> Result<LoopEnd, B::Error>
where
    B: Backend,
    S: Stream<Item = io::Result<Event>> + Unpin,
{
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut snapshots_open = true;
    loop {
        if app.should_exit() {
            terminal.draw(|f| render(f, app))?;
            return Ok(LoopEnd::Left);
        }
        tokio::select! {
            _ = tick.tick() => {
                if dirty {
                    terminal.draw(|f| render(f, app))?;
                    dirty = false;
                }
            }
            changed = snapshots.changed(), if snapshots_open => match changed {
                Ok(()) => {
                    app.on_snapshot(snapshots.borrow_and_update().clone());
                    dirty = true;
                }
                Err(_) => snapshots_open = false,
            },
            _ = stop.soft.cancelled(), if !app.stopping => {
                app.stopped_externally();
                dirty = true;
            }
            ev = input.next() => match ev {
                Some(Ok(Event::Key(key))) => {
                    match app.on_key(key) {
                        Action::None => {}
                        Action::Stop => {
                            // At once, so nothing new starts while the grace task is spawned.
                            stop.soft.cancel();
                            let stop = stop.clone();
                            tokio::spawn(async move { stop.gracefully(std::future::pending()).await });
                        }
                        Action::StopNow => stop.hard.cancel(),
                        Action::Exit => return Ok(LoopEnd::Left),
                    }
                    dirty = true;
                }
                Some(Ok(Event::Resize(..))) => {
                    terminal.autoresize()?;
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Ok(if app.done() { LoopEnd::Left } else { LoopEnd::InputLost }),
            },
        }
    }
}

/// The dashboard as the run's view: full screen while the run goes and until the user
/// leaves, the terminal restored on every path. What it has to say goes to `hold`, to be
/// printed once the screen is given back.
pub fn watcher(mut app: App, hold: impl Fn(String) + Send + Sync + 'static) -> Watcher {
    Box::new(move |snapshots, stop| {
        tokio::spawn(async move {
            let mut guard = match TerminalGuard::enter() {
                Ok(g) => g,
                Err(e) => return hold(format!("note: no dashboard ({e}); running headless")),
            };
            let result = match Terminal::new(CrosstermBackend::new(std::io::stdout())) {
                Ok(mut terminal) => run_loop(&mut terminal, &mut app, snapshots, EventStream::new(), &stop).await,
                Err(e) => Err(e),
            };
            guard.restore();
            // The run goes on without a view; its result is written all the same.
            match result {
                Ok(LoopEnd::Left) => {}
                Ok(LoopEnd::InputLost) => {
                    let _ = writeln!(io::stderr(), "note: keyboard input lost: the dashboard closed; the run goes on (Ctrl-C stops it)");
                }
                Err(e) => hold(format!("note: the dashboard stopped ({e}); the run went on headless")),
            }
        })
    })
}
