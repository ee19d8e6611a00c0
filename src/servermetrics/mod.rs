//! A server's own metrics, read while a run goes on: its exposition parsed (`parse`)
//! and mapped from each server's names to one vocabulary (`vocab`), scraped on tasks of
//! their own while the run goes on, or found by a probe of the server's `/metrics` (`scrape`),
//! and recorded as series and per-stage figures (`summary`).

pub mod parse;
pub mod scrape;
pub mod summary;
pub mod vocab;
