//! The HTTP API: `/v1/*` JSON, `/metrics`, `/healthz`, `/readyz`.
//!
//! One function ([`ApiError::into_response`]) maps errors to a status and a public JSON body
//! `{"error": {"code", "message"}}`; internal details are logged, not sent. Bearer tokens with
//! roles guard the routes (compared in constant time); bodies are size-limited and requests
//! time out.

use openapi::ErrorBody;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use datafusion::prelude::{col, lit};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::{Config, Role, Token};
use crate::event::parse_batch;
use crate::projection::Outcome;
use crate::query::to_json_rows;
use crate::query::workload::observe;
use crate::service::{Receipt, Service, ServiceError};
use crate::staffing::model::{Observed, WhatIf, WhatIfRequest, report, staffing};

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service.
    pub service: Arc<Service>,
    /// Accepted tokens; empty means no authentication.
    pub tokens: Arc<Vec<Token>>,
    /// Webhook sources, by name.
    pub hooks: Arc<crate::source::hook::Hooks>,
}

/// What went wrong, as the client sees it. Each kind has one HTTP status ([`Kind::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The request is malformed or names something invalid.
    Invalid,
    /// No or an unknown bearer token.
    Unauthenticated,
    /// The token lacks the role.
    Forbidden,
    /// Nothing by that name.
    NotFound,
    /// Well-formed, but it cannot be done (a target no staffing meets, a query too large).
    Unprocessable,
    /// It took longer than allowed and was cancelled.
    Timeout,
    /// Busy, stopping, or the log did not confirm: retry.
    Unavailable,
    /// Not with this backend.
    NotImplemented,
    /// A failure of the service itself; the detail is in the log, not in the answer.
    Internal,
}

impl Kind {
    /// The one place a kind becomes a status.
    fn status(self) -> StatusCode {
        match self {
            Kind::Invalid => StatusCode::BAD_REQUEST,
            Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Timeout => StatusCode::REQUEST_TIMEOUT,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error as the API reports it.
#[derive(Debug)]
pub struct ApiError {
    kind: Kind,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(kind: Kind, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            code,
            message: message.into(),
        }
    }

    /// A failure of the service: `detail` goes to the log, the client gets `public`.
    fn internal(detail: &dyn std::fmt::Display, public: &'static str) -> ApiError {
        tracing::error!(error = %detail, "{public}");
        ApiError::new(Kind::Internal, "internal", public)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.kind.status(), axum::Json(body)).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Busy => ApiError::new(
                Kind::Unavailable,
                "busy",
                "too many submissions are waiting; retry shortly",
            ),
            ServiceError::Stopped => ApiError::new(
                Kind::Unavailable,
                "stopping",
                "the service is shutting down",
            ),
            ServiceError::Durability(detail) => {
                tracing::error!(%detail, "events not made durable");
                ApiError::new(
                    Kind::Unavailable,
                    "not_durable",
                    "the log did not confirm the events; retrying is safe: events already stored are recognised by event_id",
                )
            }
            other => ApiError::internal(
                &other,
                "the events could not be made durable; none were accepted; retry",
            ),
        }
    }
}

impl From<crate::query::QueryError> for ApiError {
    fn from(e: crate::query::QueryError) -> ApiError {
        use crate::query::QueryError as Q;
        let (kind, code) = match &e {
            Q::Invalid(_) | Q::NotReadOnly(_) | Q::Execution(_) => (Kind::Invalid, "invalid_query"),
            Q::ResourcesExhausted(_) => (Kind::Unprocessable, "resources_exhausted"),
            Q::Timeout(_) => (Kind::Timeout, "timeout"),
            Q::Busy(_) => (Kind::Unavailable, "busy"),
            Q::Write { .. } => {
                return ApiError::internal(&e, "the result could not be rendered");
            }
        };
        if code != "invalid_query" {
            tracing::warn!(error = %e, "query refused");
        }
        ApiError::new(kind, code, e.to_string())
    }
}

/// The router with every route, auth, limits and timeouts.
pub fn router(state: AppState, config: &Config) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/query", post(post_query))
        .route("/v1/tickets/{id}", get(get_ticket))
        .route("/v1/sla/at-risk", get(get_at_risk))
        .route("/v1/sla/breaches", get(get_breaches))
        .route("/v1/recurring", get(get_recurring))
        .route("/v1/top-calls", get(get_top_calls))
        .route("/v1/cost", get(get_cost))
        .route("/v1/staffing", get(get_staffing))
        .route("/v1/replay", post(post_replay))
        .route("/v1/hooks/{source}", post(post_hook))
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/openapi.json", get(get_openapi))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(config.server.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(config.server.request_timeout_seconds),
        ))
        .with_state(state)
}

/// Checks the bearer token for `role` (admin may do everything).
fn authorize(state: &AppState, headers: &HeaderMap, role: Role) -> Result<(), ApiError> {
    if state.tokens.is_empty() {
        return Ok(());
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                Kind::Unauthenticated,
                "unauthenticated",
                "send an Authorization: Bearer <token> header",
            )
        })?;
    let mut holder = None;
    for t in state.tokens.iter() {
        // Compare every token, in constant time, so timing reveals nothing.
        if bool::from(t.token.expose().as_bytes().ct_eq(presented.as_bytes())) {
            holder = Some(t);
        }
    }
    let Some(token) = holder else {
        return Err(ApiError::new(
            Kind::Unauthenticated,
            "unauthenticated",
            "the bearer token is not valid",
        ));
    };
    if token.roles.contains(&role) || token.roles.contains(&Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::new(
            Kind::Forbidden,
            "forbidden",
            format!("token '{}' lacks the {role:?} role", token.name),
        ))
    }
}

#[utoipa::path(post, path = "/v1/events", tag = "events", security(("token" = [])),
    request_body(content = String, description = "A JSON array of events, or NDJSON (one event per line), each as `schemas/event.schema.json` defines (event_id, ticket_id, type, occurred_at, actor, schema_version, payload)", content_type = "application/json"),
    responses((status = 200, description = "Each event's outcome (accepted, duplicate, rejected with reason, invalid with field, or appended to Kafka with partition and offset) and the counts", body = serde_json::Value), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "The token lacks the role", body = ErrorBody), (status = 413, description = "Body over server.body-limit-bytes", body = ErrorBody), (status = 503, description = "Busy or not ready", body = ErrorBody), (status = 408, description = "Took longer than server.request-timeout-seconds", body = ErrorBody)))]
async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Role::Ingest)?;
    let entries = parse_batch(&body)
        .map_err(|e| ApiError::new(Kind::Invalid, "invalid_body", e.to_string()))?;
    if entries.is_empty() {
        return Err(ApiError::new(
            Kind::Invalid,
            "empty_body",
            "send a JSON array of events or NDJSON, one event per line",
        ));
    }
    let mut results: Vec<Value> = Vec::with_capacity(entries.len());
    let mut items = Vec::new();
    let mut slots = Vec::new();
    let invalid = state
        .service
        .metrics
        .ingest_events
        .with_label_values(&["invalid"]);
    for (position, entry) in entries {
        match entry {
            Ok((event, raw)) => {
                slots.push(results.len());
                results.push(json!({"position": position, "event_id": event.event_id}));
                items.push((event, raw));
            }
            Err(e) => {
                invalid.inc();
                state
                    .service
                    .metrics
                    .ingest_rejected
                    .with_label_values(&[e.reason])
                    .inc();
                results.push(json!({
                    "position": position, "outcome": "invalid",
                    "reason": e.reason, "field": e.field, "message": e.message,
                }));
            }
        }
    }
    let receipts = state.service.submit(items).await?;
    let (mut accepted, mut duplicates, mut rejected, mut appended) = (0, 0, 0, 0);
    for (slot, receipt) in slots.into_iter().zip(receipts) {
        let r = &mut results[slot];
        let outcome = match receipt {
            Receipt::Decided(outcome) => outcome,
            Receipt::Appended(at) => {
                appended += 1;
                r["outcome"] = json!("appended");
                r["partition"] = json!(at.partition);
                r["offset"] = json!(at.offset);
                continue;
            }
        };
        match outcome {
            Outcome::Applied => {
                accepted += 1;
                r["outcome"] = json!("accepted");
            }
            Outcome::Duplicate => {
                duplicates += 1;
                r["outcome"] = json!("duplicate");
            }
            Outcome::Rejected(rej) => {
                rejected += 1;
                r["outcome"] = json!("rejected");
                r["reason"] = json!(rej.reason);
                r["field"] = json!(rej.field);
                r["message"] = json!(rej.message);
            }
        }
    }
    let invalid = results.len() - accepted - duplicates - rejected - appended;
    Ok(axum::Json(json!({
        "accepted": accepted,
        "appended": appended,
        "duplicates": duplicates,
        "rejected": rejected + invalid,
        "results": results,
    }))
    .into_response())
}

/// `POST /v1/query` body.
#[derive(Deserialize, utoipa::ToSchema)]
struct QueryRequest {
    /// One SQL statement (DataFusion's dialect) over `tickets`, `ticket_events`, `sla_clocks`,
    /// `ticket_clusters` and the views.
    sql: String,
}

#[utoipa::path(post, path = "/v1/query", tag = "read", security(("token" = [])),
    request_body = QueryRequest,
    responses((status = 200, description = "`columns`, `rows` (objects), `row_count`, `truncated`; or CSV / Arrow IPC by `Accept`", body = serde_json::Value), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "The token lacks the role", body = ErrorBody), (status = 422, description = "The query needs more memory than [query] memory-limit (resources_exhausted)", body = ErrorBody), (status = 503, description = "Busy or not ready", body = ErrorBody), (status = 408, description = "Took longer than server.request-timeout-seconds", body = ErrorBody)))]
async fn post_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Role::Read)?;
    let request: QueryRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            Kind::Invalid,
            "invalid_body",
            format!("expected {{\"sql\": \"SELECT …\"}}: {e}"),
        )
    })?;
    let result = state.service.query.sql_bounded(&request.sql).await?;
    let columns: Vec<&String> = result.schema.fields().iter().map(|f| f.name()).collect();
    let head = format!(
        "{{\"columns\":{},\"row_count\":{},\"truncated\":{},\"rows\":[",
        serde_json::to_string(&columns).unwrap_or_else(|_| "[]".into()),
        result.rows,
        result.truncated
    );
    // The rows are encoded one batch at a time as the client reads them: the result is held
    // once, in Arrow, and never as a whole JSON text or tree.
    let result = Arc::new(result);
    let pieces = (0..result.batches.len()).map({
        let result = result.clone();
        move |i| -> Result<Bytes, std::io::Error> {
            crate::query::json_rows_piece(&result.batches[i], i == 0)
                .map(Bytes::from)
                .map_err(std::io::Error::other)
        }
    });
    let body = futures_util::stream::iter(
        std::iter::once(Ok(Bytes::from(head)))
            .chain(pieces)
            .chain(std::iter::once(Ok(Bytes::from_static(b"]}")))),
    );
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/tickets/{id}", tag = "read", security(("token" = [])),
    params(("id" = String, Path, description = "Ticket id")),
    responses((status = 200, description = "The ticket, its SLA clocks with their timelines, and its history", body = serde_json::Value), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "The token lacks the role", body = ErrorBody), (status = 404, description = "No such ticket", body = ErrorBody), (status = 503, description = "Busy or not ready", body = ErrorBody), (status = 408, description = "Took longer than server.request-timeout-seconds", body = ErrorBody)))]
async fn get_ticket(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Role::Read)?;
    let q = state.service.query.clone();
    let page = state
        .service
        .query
        .bounded(async move { Ok(ticket_page(&q, &id).await) })
        .await??;
    Ok(axum::Json(page).into_response())
}

/// An error of a query the service built itself: limits keep their status, anything else is
/// a 500 whose details go to the log, not to the client.
fn internal_query(e: crate::query::QueryError) -> ApiError {
    use crate::query::QueryError as Q;
    match e {
        Q::ResourcesExhausted(_) | Q::Timeout(_) | Q::Busy(_) => ApiError::from(e),
        other => ApiError::internal(
            &other,
            "the query behind this page failed; see the service log",
        ),
    }
}

/// The ticket, its SLA clocks with their timelines, and its history.
async fn ticket_page(q: &crate::query::QueryEngine, id: &str) -> Result<Value, ApiError> {
    let ticket = q
        .filtered("tickets", col("ticket_id").eq(lit(id)), None)
        .await
        .map_err(internal_query)?;
    let ticket = to_json_rows(&ticket).map_err(internal_query)?;
    let Some(ticket) = ticket.into_iter().next() else {
        return Err(ApiError::new(
            Kind::NotFound,
            "not_found",
            format!("no ticket {id}"),
        ));
    };
    let history = q
        .filtered(
            "ticket_events",
            col("ticket_id").eq(lit(id)),
            Some("log_offset"),
        )
        .await
        .map_err(internal_query)?;
    let history = to_json_rows(&history).map_err(internal_query)?;
    let clocks = q
        .filtered("sla_clocks", col("ticket_id").eq(lit(id)), Some("clock"))
        .await
        .map_err(internal_query)?;
    let mut clocks = to_json_rows(&clocks).map_err(internal_query)?;
    let snapshot = q.current();
    if let Some(rules) = &snapshot.sla_rules {
        let as_of = clocks
            .first()
            .and_then(|c| c["as_of"].as_str())
            .map_or(0, instant);
        let steps = timeline(rules.clone(), &ticket, &history, as_of);
        for clock in &mut clocks {
            let kind = clock["clock"]
                .as_str()
                .and_then(crate::sla::ClockKind::parse);
            let mine: Vec<Value> = steps
                .iter()
                .filter(|s| Some(s.clock) == kind)
                .map(|s| {
                    let mut v = json!({"at": crate::event::format_ms(s.at), "event": s.event});
                    if let Some(d) = &s.detail {
                        v["detail"] = Value::String(d.clone());
                    }
                    v
                })
                .collect();
            clock["timeline"] = Value::Array(mine);
        }
    }
    Ok(json!({"ticket": ticket, "sla": clocks, "history": history}))
}

/// An instant of a JSON row (RFC 3339, or the naive form DataFusion writes), in ms.
fn instant(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|d| d.and_utc().timestamp_millis())
        })
        .unwrap_or(0)
}

/// The steps of a ticket's clocks, by the SLA engine: its history rows become the changes the
/// projection gave the engine, replayed under the snapshot's rules up to `as_of`.
fn timeline(
    rules: Arc<crate::sla::Rules>,
    ticket: &Value,
    history: &[Value],
    as_of: i64,
) -> Vec<crate::sla::trace::Step> {
    use crate::event::{Channel, EventType, Priority, Role, Status};
    use crate::sla::{Subject, TicketView};
    let text = |v: &Value, k: &str| v[k].as_str().map(str::to_string);
    let (tenant, category, service) = (
        text(ticket, "tenant"),
        text(ticket, "category").unwrap_or_default(),
        text(ticket, "service"),
    );
    let Some(channel) = text(ticket, "channel").and_then(|c| Channel::parse(&c)) else {
        return Vec::new();
    };
    let created_at = text(ticket, "created_at").map_or(0, |t| instant(&t));
    let (mut status, mut responded) = (Status::New, false);
    let mut changes = Vec::with_capacity(history.len());
    for row in history {
        let (Some(kind), Some(after), Some(priority)) = (
            text(row, "event_type").and_then(|k| EventType::parse(&k)),
            text(row, "status_after").and_then(|s| Status::parse(&s)),
            text(row, "priority_after").and_then(|p| Priority::parse(&p)),
        ) else {
            continue;
        };
        let role = text(row, "actor_role").and_then(|r| Role::parse(&r));
        let comment = match (kind, row["public"].as_bool(), role) {
            (EventType::Commented, Some(public), Some(role)) => Some((public, role)),
            _ => None,
        };
        responded |= comment == Some((true, Role::Agent));
        let change = crate::projection::sla_change_of(kind, comment, status, after);
        status = after;
        let at = text(row, "occurred_at").map_or(0, |t| instant(&t));
        changes.push((
            Subject {
                priority,
                tenant: tenant.as_deref(),
                category: &category,
                channel,
                service: service.as_deref(),
            },
            status,
            responded,
            change,
            at,
        ));
    }
    let changes: Vec<_> = changes
        .iter()
        .map(|(subject, status, responded, change, at)| {
            (
                TicketView {
                    subject: *subject,
                    tenant: None,
                    status: *status,
                    created_at,
                    responded: *responded,
                },
                *change,
                *at,
            )
        })
        .collect();
    crate::sla::trace::trace(rules, &changes, as_of)
}

async fn sla_listing(
    state: &AppState,
    headers: &HeaderMap,
    listing: crate::query::sla_listing::Listing,
    filter: &crate::query::sla_listing::SlaFilter,
) -> Result<Response, ApiError> {
    use crate::query::sla_listing::{ListingError, list};
    authorize(state, headers, Role::Read)?;
    let (query, filter) = (state.service.query.clone(), filter.clone());
    let batches = state
        .service
        .query
        .bounded(async move {
            Ok(list(&query, listing, &filter).await.map_err(|e| match e {
                ListingError::Filter(..) => {
                    ApiError::new(Kind::Invalid, "invalid_filter", e.to_string())
                }
                ListingError::Query(q) => ApiError::from(q),
            }))
        })
        .await??;
    let rows = to_json_rows(&batches)
        .map_err(|e| ApiError::internal(&e, "the listing could not be rendered"))?;
    Ok(axum::Json(json!({"count": rows.len(), "clocks": rows})).into_response())
}

type FilterQuery =
    Result<Query<crate::query::sla_listing::SlaFilter>, axum::extract::rejection::QueryRejection>;

fn filter_of(q: FilterQuery) -> Result<crate::query::sla_listing::SlaFilter, ApiError> {
    q.map(|Query(f)| f).map_err(|e| {
        ApiError::new(
            Kind::Invalid,
            "invalid_filter",
            format!("{e} (filters: tenant, group, priority, clock, from, to, limit)"),
        )
    })
}

/// Open clocks past a warning threshold, soonest deadline first.
#[utoipa::path(get, path = "/v1/sla/at-risk", tag = "read", security(("token" = [])),
    params(crate::query::sla_listing::SlaFilter),
    responses((status = 200, description = "Open clocks, earliest deadline first", body = serde_json::Value), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "The token lacks the role", body = ErrorBody), (status = 503, description = "Busy or not ready", body = ErrorBody), (status = 408, description = "Took longer than server.request-timeout-seconds", body = ErrorBody)))]
async fn get_at_risk(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: FilterQuery,
) -> Result<Response, ApiError> {
    let filter = filter_of(q)?;
    sla_listing(
        &state,
        &headers,
        crate::query::sla_listing::Listing::AtRisk,
        &filter,
    )
    .await
}

/// Breached clocks, latest first.
#[utoipa::path(get, path = "/v1/sla/breaches", tag = "read", security(("token" = [])),
    params(crate::query::sla_listing::SlaFilter),
    responses((status = 200, description = "Breached clocks, latest breach first", body = serde_json::Value), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "The token lacks the role", body = ErrorBody), (status = 503, description = "Busy or not ready", body = ErrorBody), (status = 408, description = "Took longer than server.request-timeout-seconds", body = ErrorBody)))]
async fn get_breaches(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: FilterQuery,
) -> Result<Response, ApiError> {
    let filter = filter_of(q)?;
    sla_listing(
        &state,
        &headers,
        crate::query::sla_listing::Listing::Breaches,
        &filter,
    )
    .await
}

fn bad_parameter(e: impl std::fmt::Display, names: &str) -> ApiError {
    ApiError::new(
        Kind::Invalid,
        "invalid_parameter",
        format!("{e} (parameters: {names})"),
    )
}

/// Recurring fingerprints of a window, with problem and knowledge-base candidates.
#[utoipa::path(get, path = "/v1/recurring", tag = "read", security(("token" = [])),
    params(crate::recurring::request::RecurringRequest),
    responses((status = 200, description = "Fingerprints with their recurrence, spike scores and problem / KB candidates", body = serde_json::Value), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "The token lacks the role", body = ErrorBody), (status = 503, description = "Busy or not ready", body = ErrorBody), (status = 408, description = "Took longer than server.request-timeout-seconds", body = ErrorBody)))]
async fn get_recurring(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<
        Query<crate::recurring::request::RecurringRequest>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Response, ApiError> {
    const NAMES: &str = "window, to, min_tickets, tenant, category, channel, candidates, limit";
    authorize(&state, &headers, Role::Read)?;
    let Query(request) = q.map_err(|e| bad_parameter(e, NAMES))?;
    let query = &state.service.query;
    let (snapshot, settings) = (query.current(), query.recurring());
    // In a query slot (the view costs what a large query costs), computed on a blocking thread.
    let report = query
        .bounded(async move {
            tokio::task::spawn_blocking(move || {
                crate::recurring::request::recurring(&snapshot, &settings, &request)
            })
            .await
            .map_err(|e| crate::query::QueryError::Execution(e.to_string()))
        })
        .await?
        .map_err(|e| bad_parameter(e, NAMES))?;
    Ok(axum::Json(report).into_response())
}

/// The most common calls (text clusters) of a period.
#[utoipa::path(get, path = "/v1/top-calls", tag = "read", security(("token" = [])),
    params(crate::recurring::request::TopCallsRequest),
    responses((status = 200, description = "The most common calls (text clusters) with their labels and counts", body = serde_json::Value), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "The token lacks the role", body = ErrorBody), (status = 503, description = "Busy or not ready", body = ErrorBody), (status = 408, description = "Took longer than server.request-timeout-seconds", body = ErrorBody)))]
async fn get_top_calls(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<
        Query<crate::recurring::request::TopCallsRequest>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Response, ApiError> {
    const NAMES: &str = "n, from, to, tenant, category, channel";
    authorize(&state, &headers, Role::Read)?;
    let Query(request) = q.map_err(|e| bad_parameter(e, NAMES))?;
    let query = &state.service.query;
    let (snapshot, settings) = (query.current(), query.recurring());
    // In a query slot (the view costs what a large query costs), computed on a blocking thread.
    let calls = query
        .bounded(async move {
            tokio::task::spawn_blocking(move || {
                crate::recurring::request::top_calls(&snapshot, &settings, &request)
            })
            .await
            .map_err(|e| crate::query::QueryError::Execution(e.to_string()))
        })
        .await?
        .map_err(|e| bad_parameter(e, NAMES))?;
    Ok(axum::Json(calls).into_response())
}

/// The what-if of a cost or staffing request and the observed workload.
async fn cost_inputs(
    state: &AppState,
    headers: &HeaderMap,
    q: Result<Query<WhatIfRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<(WhatIf, Observed), ApiError> {
    authorize(state, headers, Role::Read)?;
    let Query(request) = q.map_err(|e| bad_parameter(e, WhatIfRequest::NAMES))?;
    let what_if = request.what_if().map_err(|(k, m)| {
        bad_parameter(
            format!("invalid parameter `{k}`: {m}"),
            WhatIfRequest::NAMES,
        )
    })?;
    let query = state.service.query.clone();
    let cost = state.service.cost.clone();
    let observed = state
        .service
        .query
        .bounded(async move { observe(&query, &cost).await })
        .await
        .map_err(|e| match e {
            crate::query::QueryError::Execution(detail) => {
                ApiError::internal(&detail, "the workload could not be read")
            }
            other => ApiError::from(other),
        })?;
    Ok((what_if, observed))
}

/// Runs a model on a blocking thread; its errors (a target no staffing meets, a what-if out of
/// range) are 422, a failed thread 500.
async fn run_model<T: serde::Serialize + Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::staffing::StaffingError> + Send + 'static,
) -> Result<Response, ApiError> {
    use crate::staffing::StaffingError;
    let out = tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(&e, "the cost model failed"))?
        .map_err(|e| {
            let code = match e {
                StaffingError::WhatIf { .. } => "invalid_parameter",
                _ => "unmet_target",
            };
            ApiError::new(Kind::Unprocessable, code, e.to_string())
        })?;
    Ok(axum::Json(out).into_response())
}

/// This month in-house against outsourced, from the observed workload, with a what-if.
#[utoipa::path(get, path = "/v1/cost", tag = "read", security(("token" = [])),
    params(crate::staffing::model::WhatIfRequest),
    responses((status = 200, description = "Monthly in-house and outsourced cost, each input with its source (logged, estimated, default) and plausibility flags", body = serde_json::Value), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "The token lacks the role", body = ErrorBody), (status = 422, description = "A target no staffing meets (unmet_target)", body = ErrorBody), (status = 503, description = "Busy or not ready", body = ErrorBody), (status = 408, description = "Took longer than server.request-timeout-seconds", body = ErrorBody)))]
async fn get_cost(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<WhatIfRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (what_if, observed) = cost_inputs(&state, &headers, q).await?;
    let config = state.service.cost.clone();
    run_model(move || report(&observed, &config, what_if)).await
}

/// Agents per hour of the week and channel (Erlang C), with a what-if.
#[utoipa::path(get, path = "/v1/staffing", tag = "read", security(("token" = [])),
    params(crate::staffing::model::WhatIfRequest),
    responses((status = 200, description = "Required agents per channel and hour of the week (Erlang C), FTE", body = serde_json::Value), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "The token lacks the role", body = ErrorBody), (status = 422, description = "A target no staffing meets (unmet_target)", body = ErrorBody), (status = 503, description = "Busy or not ready", body = ErrorBody), (status = 408, description = "Took longer than server.request-timeout-seconds", body = ErrorBody)))]
async fn get_staffing(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<WhatIfRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (what_if, observed) = cost_inputs(&state, &headers, q).await?;
    let config = state.service.cost.clone();
    let now = chrono::Utc::now().timestamp_millis();
    run_model(move || staffing(&observed, &config, what_if, now)).await
}

/// `POST /v1/replay` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// The other configuration, TOML over the defaults.
    config: String,
    /// Only tickets created from this instant (RFC 3339).
    from: Option<String>,
    /// Only tickets created before this instant (RFC 3339); open clocks are valued there.
    to: Option<String>,
}

/// The stored history under another configuration, against the running one.
#[utoipa::path(post, path = "/v1/replay", tag = "read", security(("token" = [])),
    request_body = ReplayRequest,
    responses((status = 200, description = "SLA compliance, breaches and cost under the other configuration against the running one", body = serde_json::Value), (status = 400, description = "Invalid request", body = ErrorBody), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "The token lacks the role", body = ErrorBody), (status = 503, description = "Busy or not ready", body = ErrorBody), (status = 408, description = "Took longer than server.request-timeout-seconds", body = ErrorBody)))]
async fn post_replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Role::Read)?;
    let bad = |code: &'static str, m: String| ApiError::new(Kind::Invalid, code, m);
    let r: ReplayRequest = serde_json::from_slice(&body).map_err(|e| {
        bad(
            "invalid_request",
            format!("expected {{\"config\": \"<TOML>\", \"from\", \"to\"}}: {e}"),
        )
    })?;
    let other = crate::config::Config::from_toml(&r.config)
        .map_err(|e| bad("invalid_config", e.to_string()))?;
    let instant = |name: &str, t: &Option<String>| {
        t.as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|d| d.timestamp_millis())
                    .map_err(|e| {
                        bad(
                            "invalid_parameter",
                            format!("`{name}` is not RFC 3339: {e}"),
                        )
                    })
            })
            .transpose()
    };
    let range = crate::replay::Range {
        from: instant("from", &r.from)?,
        to: instant("to", &r.to)?,
    };
    if let (Some(f), Some(t)) = (range.from, range.to)
        && f >= t
    {
        return Err(bad(
            "invalid_parameter",
            "`from` must be before `to`".into(),
        ));
    }
    let Some(dir) = state.service.log_dir() else {
        return Err(ApiError::new(
            Kind::NotImplemented,
            "not_supported",
            "replay reads the embedded log; with Kafka, run `deskwatch replay` on a data directory",
        ));
    };
    let _permit = state.service.replays.try_acquire().map_err(|_| {
        ApiError::new(
            Kind::Unavailable,
            "busy",
            "a replay is running; retry when it is done",
        )
    })?;
    let report = crate::replay::replay(dir, state.service.config.clone(), Arc::new(other), range)
        .await
        .map_err(|e| ApiError::internal(&e, "the replay failed"))?;
    Ok(axum::Json(report).into_response())
}

/// The web page: three persona views and a ticket page, one self-contained file compiled into
/// the binary (no network needed to show it). It reads the `/v1` API like any client.
const INDEX_HTML: &str = include_str!("web/index.html");

#[utoipa::path(get, path = "/", tag = "operations",
    responses((status = 200, description = "The web page (HTML)", content_type = "text/html", body = String)))]
async fn index() -> Response {
    (
        [(header::CACHE_CONTROL, "no-cache")],
        axum::response::Html(INDEX_HTML),
    )
        .into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations", security(("token" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String), (status = 401, description = "No or bad token", body = ErrorBody)))]
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.service.config.server.metrics_auth
        && let Err(e) = authorize(&state, &headers, Role::Read)
    {
        return e.into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.service.metrics.render(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process answers", content_type = "text/plain", body = String)))]
async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "This description (OpenAPI 3.1)", body = serde_json::Value)))]
async fn get_openapi() -> Response {
    use utoipa::OpenApi;
    axum::Json(openapi::ApiDoc::openapi()).into_response()
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Caught up with the log; one line per live source", content_type = "text/plain", body = String), (status = 503, description = "Not caught up yet", content_type = "text/plain", body = String)))]
async fn readyz(State(state): State<AppState>) -> Response {
    // Live sources are listed but do not gate readiness: a desk that is down must not take
    // deskwatch out of its load balancer.
    let service = &state.service;
    let mut sources = String::new();
    for s in &service.config.sources {
        let name = s.name.as_str();
        if s.kind == crate::source::SourceKind::Webhook {
            let m = &service.metrics;
            let count = |k: &str| m.source_errors.with_label_values(&[name, k]).get();
            sources.push_str(&format!(
                "source {name}: webhook, {} events, {} refused payloads, {} bad signatures\n",
                m.source_events.with_label_values(&[name]).get(),
                count("refused"),
                count("signature"),
            ));
            continue;
        }
        let up = service.metrics.source_up.with_label_values(&[name]).get();
        let lag = service.metrics.source_lag.with_label_values(&[name]).get();
        let errors: u64 = ["unreachable", "auth", "http", "decode", "store", "state"]
            .iter()
            .map(|k| {
                service
                    .metrics
                    .source_errors
                    .with_label_values(&[name, k])
                    .get()
            })
            .sum();
        sources.push_str(&format!(
            "source {name}: {}, {lag} s behind, {errors} failed polls\n",
            if up == 1 {
                "up"
            } else {
                "down or not polled yet"
            }
        ));
    }
    if service.is_ready() {
        (StatusCode::OK, format!("ready\n{sources}")).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{sources}"),
        )
            .into_response()
    }
}

/// A desk's webhook: signed by the desk (when the source has a `secret`) or sent with an
/// ingest token; the payload becomes events through the source's mapping.
#[utoipa::path(post, path = "/v1/hooks/{source}", tag = "sources",
    security(("token" = []), ()),
    params(("source" = String, Path, description = "A `[[sources]]` entry of `kind = \"webhook\"`")),
    request_body(content = Object, description = "The desk's JSON payload, as it sends it", content_type = "application/json"),
    responses(
        (status = 200, description = "Derived and stored (or nothing new)", body = crate::source::hook::HookReply),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "Bad or missing signature or token; nothing was written", body = ErrorBody),
        (status = 404, description = "No webhook source by that name", body = ErrorBody),
        (status = 422, description = "The payload does not make events; the code is the import's reason (`missing_ticket_id`, `bad_time`, `unknown_status`, `after_close`, …)", body = ErrorBody),
        (status = 503, description = "Catching up with the log, busy, or not durable: retry", body = ErrorBody),
    ))]
async fn post_hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(source): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    use crate::source::hook::HookError;
    let Some(hook) = state.hooks.get(&source).cloned() else {
        return Err(ApiError::new(
            Kind::NotFound,
            "not_found",
            format!("no webhook source named {source}"),
        ));
    };
    let metrics = &state.service.metrics;
    let count = |kind: &str| {
        metrics
            .source_errors
            .with_label_values(&[hook.name(), kind])
            .inc()
    };
    let token = headers.contains_key(header::AUTHORIZATION);
    if hook.signed() && !(token && authorize(&state, &headers, Role::Ingest).is_ok()) {
        let read = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
        hook.verify(read, &body).map_err(|e| {
            count("signature");
            ApiError::new(Kind::Unauthenticated, "bad_signature", e.to_string())
        })?;
    } else if !hook.signed() {
        authorize(&state, &headers, Role::Ingest)?;
    }
    match hook.receive(&state.service, &body).await {
        Ok(reply) => {
            metrics
                .source_events
                .with_label_values(&[hook.name()])
                .inc_by(reply.event_ids.len() as u64);
            if reply.rejected > 0 {
                count("refused");
            }
            Ok(axum::Json(reply).into_response())
        }
        Err(HookError::Signature(m)) => {
            Err(ApiError::new(Kind::Unauthenticated, "bad_signature", m))
        }
        Err(HookError::Body(m)) => Err(ApiError::new(Kind::Invalid, "invalid_body", m)),
        Err(HookError::Refused(e)) => {
            count("refused");
            tracing::warn!(source = %hook.name(), reason = e.reason, message = %e.message, "a webhook payload was not turned into events");
            Err(ApiError::new(Kind::Unprocessable, e.reason, e.message))
        }
        Err(HookError::NotReady) => Err(ApiError::new(
            Kind::Unavailable,
            "not_ready",
            HookError::NotReady.to_string(),
        )),
        Err(HookError::Store(e)) => {
            count("store");
            Err(e.into())
        }
        Err(e @ HookError::Lookup(_)) => Err(ApiError::internal(
            &e,
            "the ticket could not be read from the projection; retry",
        )),
    }
}

pub mod openapi;

#[cfg(test)]
mod tests;
