//! Ticket text clustering, as the projection runs it: state and math only.
//!
//! - [`text`]: ticket text into comparable tokens (masking, language, glossary, stemming);
//! - [`cluster`]: incremental clustering of IDF-weighted term vectors with content-based ids;
//! - [`state`]: the clusters of one projection, placed once per ticket and checkpointed;
//! - [`order`]: the clusters of several partitions, placed in one order on every replica.
//!
//! [`crate::recurring`] reads the clusters from a snapshot to find recurring issues.

pub mod cluster;
pub mod order;
pub mod state;
pub mod text;
