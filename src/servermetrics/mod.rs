//! A server's own metrics, read while a run goes on: its exposition parsed (`parse`)
//! and mapped from each server's names to one vocabulary (`vocab`), scraped on tasks of
//! their own while the run goes on, or found by a probe of the server's `/metrics` (`scrape`),
//! recorded as series and per-stage figures (`summary`), and what bound the server over
//! a stage said in a sentence (`diagnose`).

pub mod diagnose;
pub mod parse;
pub mod scrape;
pub mod summary;
pub mod vocab;
