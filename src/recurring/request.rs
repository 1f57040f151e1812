//! Requests for the recurring view and the top calls, as the API and the CLI take them.

use serde::{Deserialize, Serialize};

use super::view::{self, Call, Filter, Report, ViewSettings, parse_window};
use crate::projection::Snapshot;

/// A bad parameter: its name and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid parameter `{0}`: {1}")]
pub struct BadParameter(pub &'static str, pub String);

fn instant(name: &'static str, text: &str) -> Result<i64, BadParameter> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| BadParameter(name, format!("`{text}` is not RFC 3339: {e}")))
}

/// `GET /v1/recurring` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecurringRequest {
    /// Window length (`7d`, `24h`); default from `[recurring] window`.
    pub window: Option<String>,
    /// Window end (RFC 3339); default: the newest ticket's creation.
    pub to: Option<String>,
    /// Tickets to be listed; default from `[recurring] min-tickets`.
    pub min_tickets: Option<u32>,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this category.
    pub category: Option<String>,
    /// Only this channel.
    pub channel: Option<String>,
    /// `problem` or `kb`: only those candidates.
    pub candidates: Option<String>,
    /// Most issues listed (default 50).
    pub limit: Option<usize>,
}

/// The view settings, window end and filter a request asks for.
fn resolve(
    base: &ViewSettings,
    r: &RecurringRequest,
) -> Result<(ViewSettings, Option<i64>, Filter), BadParameter> {
    let mut settings = base.clone();
    if let Some(w) = &r.window {
        settings.window_ms = parse_window(w).map_err(|e| BadParameter("window", e.to_string()))?;
    }
    if let Some(n) = r.min_tickets {
        if n == 0 {
            return Err(BadParameter("min_tickets", "must be at least 1".into()));
        }
        settings.min_tickets = n;
    }
    let to = r.to.as_deref().map(|t| instant("to", t)).transpose()?;
    let filter = Filter {
        tenant: r.tenant.clone(),
        category: r.category.clone(),
        channel: r.channel.clone(),
    };
    Ok((settings, to, filter))
}

/// The recurring view a request asks for.
pub fn recurring(
    snapshot: &Snapshot,
    base: &ViewSettings,
    r: &RecurringRequest,
) -> Result<Report, BadParameter> {
    let (settings, to, filter) = resolve(base, r)?;
    let keep: fn(&view::Issue) -> bool = match r.candidates.as_deref() {
        None => |_| true,
        Some("problem") => |i| i.problem_candidate,
        Some("kb") => |i| i.kb_candidate,
        Some(other) => {
            return Err(BadParameter(
                "candidates",
                format!("`{other}`: expected `problem` or `kb`"),
            ));
        }
    };
    let mut report = view::compute(snapshot, &settings, to, &filter);
    report.issues.retain(keep);
    report.issues.truncate(r.limit.unwrap_or(50));
    Ok(report)
}

/// `GET /v1/top-calls` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TopCallsRequest {
    /// How many (default 10, at most 1000).
    pub n: Option<usize>,
    /// Period start (RFC 3339, exclusive); default: one `[recurring] window` before `to`.
    pub from: Option<String>,
    /// Period end (RFC 3339); default: the newest ticket's creation.
    pub to: Option<String>,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this category.
    pub category: Option<String>,
    /// Only this channel (`phone`, `email`, …).
    pub channel: Option<String>,
}

/// The most common calls of a period.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopCalls {
    /// Period start (exclusive).
    pub from: String,
    /// Period end.
    pub to: String,
    /// Tickets created in the period (after the filter).
    pub tickets: u64,
    /// The calls, most tickets first.
    pub calls: Vec<Call>,
}

/// The top calls a request asks for.
pub fn top_calls(
    snapshot: &Snapshot,
    base: &ViewSettings,
    r: &TopCallsRequest,
) -> Result<TopCalls, BadParameter> {
    let n = r.n.unwrap_or(10);
    if n == 0 || n > 1000 {
        return Err(BadParameter("n", "must be 1–1000".into()));
    }
    let to = r.to.as_deref().map(|t| instant("to", t)).transpose()?;
    let from = r.from.as_deref().map(|t| instant("from", t)).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(BadParameter("from", "must be before `to`".into()));
    }
    let filter = Filter {
        tenant: r.tenant.clone(),
        category: r.category.clone(),
        channel: r.channel.clone(),
    };
    let (from, to, tickets, calls) = view::top_calls(snapshot, base, from, to, n, &filter);
    Ok(TopCalls {
        from,
        to,
        tickets,
        calls,
    })
}
