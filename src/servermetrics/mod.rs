//! A server's own metrics, read while a run goes on: its exposition parsed (`parse`)
//! and mapped from each server's names to one vocabulary (`vocab`).

pub mod parse;
pub mod vocab;
