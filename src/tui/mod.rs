//! The live dashboard. It reads Snapshots and keys and draws; it never touches engine
//! state. The loop is generic over ratatui's Backend and an input stream, so tests run
//! it on a TestBackend with scripted keys.

mod app;
mod terminal;
mod ui;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::Event;
use futures_util::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::watch;

pub use app::{Action, App, Bucket, Scale, buckets};
pub use terminal::{TerminalGuard, install_panic_hook};
pub use ui::render;

use crate::engine::{STOP_GRACE, Stop};
use crate::metrics::Snapshot;

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
                            stop.soft.cancel();
                            let hard = stop.hard.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(STOP_GRACE).await;
                                hard.cancel();
                            });
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
