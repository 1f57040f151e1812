//! Value types every layer shares and that depend on nothing of the pipeline: instants in
//! milliseconds and interned strings ([`interner`]).

pub mod interner;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;
