//! At-risk and breached clocks, filtered: what `GET /v1/sla/at-risk`, `GET /v1/sla/breaches`
//! and `deskwatch sla` show, as `sla_clocks` rows filtered with DataFusion expressions (no SQL
//! text is assembled from user input).
//!
//! A listing values only the clocks its answer can come from, not the whole table: the
//! at-risk listing only open clocks (the blocks that have some); the breach listing takes the
//! ticket blocks latest breach first, by a bound read from whole columns, and stops once the
//! rows it has come after every breach the remaining blocks can hold.

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::{Expr, col, lit};
use datafusion::scalar::ScalarValue;
use serde::Deserialize;

use super::{QueryEngine, QueryError};
use crate::projection::sla_table::{self, BlockSummary, RawClocks};
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
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
    let expr = filter_expr(listing, filter)?;
    let limit = filter.limit.unwrap_or(1000);
    let snapshot = query.current();
    let Some(rules) = snapshot.sla_rules.as_deref() else {
        return Ok(Vec::new());
    };
    let now = query.sla_now();
    let value = |raw: &RecordBatch, keep: fn(&RawClocks<'_>, usize) -> bool| {
        sla_table::evaluate(&sla_table::select(raw, keep), rules, now)
    };
    let mut blocks: Vec<(&RecordBatch, BlockSummary)> = snapshot
        .sla
        .iter()
        .flatten()
        .map(|raw| (raw, sla_table::summary(raw, now)))
        .collect();
    let schema = sla_table::SCHEMA.clone();
    match listing {
        Listing::AtRisk => {
            let batches = blocks
                .iter()
                .filter(|(_, s)| s.open > 0)
                .map(|(raw, _)| value(raw, sla_table::is_open))
                .collect();
            Ok(query
                .filter_sort(schema, batches, expr, "deadline", true, limit)
                .await?)
        }
        Listing::Breaches => {
            blocks.retain(|(_, s)| s.latest_breach.is_some());
            blocks.sort_by_key(|(_, s)| std::cmp::Reverse(s.latest_breach));
            let (mut taken, mut step) = (0, 1);
            let mut batches = Vec::new();
            loop {
                let end = (taken + step).min(blocks.len());
                for (raw, _) in &blocks[taken..end] {
                    batches.push(value(raw, sla_table::may_have_breached));
                }
                (taken, step) = (end, step * 2);
                let rows = query
                    .filter_sort(
                        schema.clone(),
                        batches.clone(),
                        expr.clone(),
                        "breached_at",
                        false,
                        limit,
                    )
                    .await?;
                // Done when the rest cannot hold a breach later than the last row kept.
                let bound = blocks.get(taken).and_then(|(_, s)| s.latest_breach);
                let full = rows.iter().map(RecordBatch::num_rows).sum::<usize>() >= limit;
                let done = match bound {
                    None => true,
                    Some(b) => full && last_breach(&rows).is_some_and(|last| last > b),
                };
                if done {
                    return Ok(rows);
                }
            }
        }
    }
}

/// The filter of `listing` and `filter` as one expression over `sla_clocks`.
fn filter_expr(listing: Listing, filter: &SlaFilter) -> Result<Expr, ListingError> {
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
    Ok(expr)
}

/// `breached_at` of the last row of `rows`.
fn last_breach(rows: &[RecordBatch]) -> Option<i64> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::TimestampMillisecondType;
    let last = rows.iter().rev().find(|b| b.num_rows() > 0)?;
    let column = last
        .column_by_name("breached_at")?
        .as_primitive::<TimestampMillisecondType>();
    let i = column.len() - 1;
    column.is_valid(i).then(|| column.value(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::{Projection, Snapshot};
    use crate::query::to_json_rows;
    use crate::simulate::{Params, Simulator};

    /// The listings, which value only the clocks their answer can come from, equal the same
    /// question asked of the whole `sla_clocks` table, over several ticket blocks, with and
    /// without filters, at limits that stop early and that take everything.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listings_equal_a_full_scan_of_sla_clocks() {
        let rules = crate::config::Config::load(None).unwrap().sla_rules();
        let mut projection = Projection::with_rules(rules);
        let events: Vec<_> = Simulator::new(Params {
            tickets: 40_000,
            seed: 3,
            per_day: 4000.0,
            ..Params::default()
        })
        .collect();
        // The desk as it was when 95 % of its tickets had arrived: the last blocks have open
        // clocks.
        let mut created: Vec<i64> = events
            .iter()
            .filter(|e| matches!(e.payload, crate::event::Payload::Created(_)))
            .map(|e| e.occurred_at.timestamp_millis())
            .collect();
        created.sort_unstable();
        let cutoff = created[created.len() * 95 / 100];
        for (offset, e) in events.iter().enumerate() {
            if e.occurred_at.timestamp_millis() <= cutoff {
                projection.apply(e, offset as u64);
            }
        }
        let snapshot = projection.snapshot(&Snapshot::default());
        assert!(snapshot.sla.iter().flatten().count() >= 3, "several blocks");
        let query = QueryEngine::valued_at(Some(cutoff + 3_600_000)).unwrap();
        query.publish(snapshot);
        let filters = [
            SlaFilter::default(),
            SlaFilter {
                priority: Some("P2".into()),
                ..SlaFilter::default()
            },
            SlaFilter {
                clock: Some("first_response".into()),
                to: Some("2026-01-20T00:00:00Z".into()),
                ..SlaFilter::default()
            },
        ];
        let (mut compared, mut at_risk) = (0, 0);
        for listing in [Listing::AtRisk, Listing::Breaches] {
            for filter in &filters {
                for limit in [1, 50, 1_000_000] {
                    let filter = SlaFilter {
                        limit: Some(limit),
                        ..filter.clone()
                    };
                    let ours =
                        to_json_rows(&list(&query, listing, &filter).await.unwrap()).unwrap();
                    let (order, direction) = match listing {
                        Listing::AtRisk => ("deadline", "asc"),
                        Listing::Breaches => ("breached_at", "desc"),
                    };
                    let full = query
                        .ctx
                        .table("sla_clocks")
                        .await
                        .unwrap()
                        .filter(filter_expr(listing, &filter).unwrap())
                        .unwrap()
                        .sort(vec![
                            col(order).sort(direction == "asc", false),
                            col("ticket_id").sort(true, false),
                        ])
                        .unwrap()
                        .limit(0, Some(limit))
                        .unwrap()
                        .collect()
                        .await
                        .unwrap();
                    let full = to_json_rows(&full).unwrap();
                    assert_eq!(ours, full, "{listing:?} {filter:?}");
                    compared += ours.len();
                    if listing == Listing::AtRisk {
                        at_risk += ours.len();
                    }
                }
            }
        }
        assert!(
            compared > 1000,
            "the listings are not empty: {compared} rows"
        );
        let states = to_json_rows(
            &query
                .sql("select state, level, count(*) as n from sla_clocks group by 1, 2")
                .await
                .unwrap(),
        )
        .unwrap();
        assert!(at_risk > 0, "some clocks are at risk: {states:?}");
    }
}
