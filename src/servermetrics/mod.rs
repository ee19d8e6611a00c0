//! A server's own metrics, read while a run goes on: its exposition parsed (`parse`)
//! and mapped from each server's names to one vocabulary (`vocab`), scraped on tasks of
//! their own, or found by a probe of the server's `/metrics` (`scrape`), recorded as
//! series and per-stage figures (`summary`), other families kept raw when asked
//! (`keep`), set beside the client's figures on the stage's own seconds (`beside`), and
//! what bound the server over a stage said in a sentence (`diagnose`).
//! Beside them, the server's prefix cache emptied before each stage when asked (`reset`).

pub mod beside;
pub mod diagnose;
pub mod keep;
pub mod parse;
pub mod reset;
pub mod scrape;
pub mod summary;
pub mod vocab;
