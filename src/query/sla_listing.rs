//! At-risk and breached clocks, filtered: what `GET /v1/sla/at-risk`, `GET /v1/sla/breaches`
//! and `deskwatch sla` show. Built on the `sla_clocks` table with DataFusion expressions (no
//! SQL text is assembled from user input).

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::{Expr, col, lit};
use datafusion::scalar::ScalarValue;
use serde::Deserialize;

use super::{QueryEngine, QueryError};
use crate::sla::ClockKind;

/// Which clocks to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Open, past a warning threshold, not breached; soonest deadline first.
    AtRisk,
    /// Breached (open or stopped); latest breach first.
    Breaches,
}

/// Filters; every one given must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaFilter {
    /// Tenant.
    pub tenant: Option<String>,
    /// Assignment group.
    pub group: Option<String>,
    /// Priority (P1–P4).
    pub priority: Option<String>,
    /// Clock (`first_response`, …).
    pub clock: Option<String>,
    /// From this instant (RFC 3339): breach time, or deadline for at-risk clocks.
    pub from: Option<String>,
    /// Before this instant (RFC 3339).
    pub to: Option<String>,
    /// Most rows (default 1000).
    pub limit: Option<usize>,
}

/// A filter that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    /// A filter value is invalid.
    #[error("invalid filter `{0}`: {1}")]
    Filter(&'static str, String),
    /// The query failed.
    #[error(transparent)]
    Query(#[from] QueryError),
}

fn instant(name: &'static str, text: &str) -> Result<Expr, ListingError> {
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| ListingError::Filter(name, format!("`{text}` is not RFC 3339: {e}")))?;
    Ok(lit(ScalarValue::TimestampMillisecond(
        Some(t.timestamp_millis()),
        Some("UTC".into()),
    )))
}

/// The clocks of `listing` that match `filter`.
pub async fn list(
    query: &QueryEngine,
    listing: Listing,
    filter: &SlaFilter,
) -> Result<Vec<RecordBatch>, ListingError> {
    let mut expr = match listing {
        Listing::AtRisk => col("state")
            .in_list(vec![lit("running"), lit("paused")], false)
            .and(col("level").gt(lit(0u8))),
        Listing::Breaches => col("state").eq(lit("breached")),
    };
    if let Some(p) = &filter.priority {
        if crate::event::Priority::parse(p).is_none() {
            return Err(ListingError::Filter(
                "priority",
                format!("`{p}` is not P1–P4"),
            ));
        }
        expr = expr.and(col("priority").eq(lit(p.as_str())));
    }
    if let Some(c) = &filter.clock {
        if ClockKind::parse(c).is_none() {
            return Err(ListingError::Filter(
                "clock",
                format!("`{c}` is not time_to_own, first_response, next_reply or resolution"),
            ));
        }
        expr = expr.and(col("clock").eq(lit(c.as_str())));
    }
    if let Some(t) = &filter.tenant {
        expr = expr.and(col("tenant").eq(lit(t.as_str())));
    }
    if let Some(g) = &filter.group {
        expr = expr.and(col("assignment_group").eq(lit(g.as_str())));
    }
    let time = match listing {
        Listing::AtRisk => "deadline",
        Listing::Breaches => "breached_at",
    };
    if let Some(from) = &filter.from {
        expr = expr.and(col(time).gt_eq(instant("from", from)?));
    }
    if let Some(to) = &filter.to {
        expr = expr.and(col(time).lt(instant("to", to)?));
    }
    let (order, ascending) = match listing {
        Listing::AtRisk => ("deadline", true),
        Listing::Breaches => ("breached_at", false),
    };
    let batches = query
        .filtered_sorted(
            "sla_clocks",
            expr,
            order,
            ascending,
            filter.limit.unwrap_or(1000),
        )
        .await?;
    Ok(batches)
}
