//! Recurring-issue detection (issue 5).
//!
//! - [`text`]: ticket text into comparable tokens (masking, language, glossary, stemming);
//! - [`cluster`]: incremental clustering of IDF-weighted term vectors with content-based ids;
//! - [`state`]: the clusters of one projection, placed once per ticket and checkpointed;
//! - [`view`]: fingerprints and their recurrence over a window, computed from a snapshot:
//!   the recurring issues, problem and knowledge-base candidates, and the top calls;
//! - [`request`]: the API's and the CLI's parameters;
//! - [`monitor`]: a running service's metrics and problem alerts;
//! - [`quality`]: pair precision, recall and F1 on labelled real tickets, against a TF-IDF
//!   reference.

pub mod cluster;
pub mod monitor;
pub mod quality;
pub mod request;
pub mod state;
pub mod text;
pub mod view;
