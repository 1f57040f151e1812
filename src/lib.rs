//! deskwatch: event-sourced analytics and SLA monitoring for IT help desks.
//!
//! A functional core and an imperative shell, with dependencies going one way (the README's
//! architecture section has the table; a test in `architecture.rs` keeps it so):
//!
//! - leaf and contract: [`base`] (shared value types), [`event`];
//! - cores, state and math only: [`sla`], [`clustering`], [`projection`], [`recurring`],
//!   [`staffing`];
//! - storage: [`log`], [`checkpoint`], [`engine`];
//! - reading: [`query`], [`quality`], [`replay`];
//! - shell: [`clock`], [`kafka`], [`alert`], [`monitor`], [`telemetry`], [`service`], [`api`],
//!   [`import`], [`simulate`], [`config`], [`shutdown`].

pub mod alert;
pub mod api;
#[cfg(test)]
mod architecture;
pub mod base;
pub mod checkpoint;
pub mod clock;
pub mod clustering;
pub mod config;
pub mod engine;
pub mod event;
pub mod fuzz;
pub mod import;
pub mod kafka;
pub mod log;
pub mod monitor;
pub mod projection;
pub mod quality;
pub mod query;
pub mod recurring;
pub mod replay;
pub mod service;
pub mod shutdown;
pub mod simulate;
pub mod sla;
pub mod source;
pub mod staffing;
pub mod telemetry;
