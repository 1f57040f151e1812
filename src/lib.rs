//! deskwatch: event-sourced analytics and SLA monitoring for IT help desks.
//!
//! The modules follow the data flow: [`event`] (the contract) → [`log`] (the durable, ordered
//! record of events) → [`projection`] (events folded into ticket state and history, as Arrow)
//! → [`checkpoint`] / [`engine`] (the single writer that ties them together) → [`query`] (SQL)
//! → [`api`] (HTTP). [`simulate`] produces realistic event streams with known ground truth.

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
pub mod staffing;
pub mod telemetry;
