//! Recurring-issue detection (issue 5), first parts: ticket text into comparable tokens
//! ([`text`]) and incremental MinHash/LSH clustering with content-based ids ([`cluster`]).
//! Fingerprints, the recurring views and their API build on these.

pub mod cluster;
pub mod text;
