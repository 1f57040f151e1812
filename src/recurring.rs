//! Recurring-issue detection (issue 5), first part: turning ticket text into comparable tokens
//! ([`text`]). Clustering, fingerprints and the recurring view build on it.

pub mod text;
