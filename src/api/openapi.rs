//! The API described as OpenAPI 3.1 (`GET /v1/openapi.json`), generated from the handlers'
//! `#[utoipa::path]` annotations and the request types' derives, so the description follows
//! the code. `tests/openapi.rs` validates it with a real validator and checks that every route
//! of the router is in it.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// What went wrong.
    error: ErrorDetail,
}

/// The error of [`ErrorBody`].
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Stable, machine-readable code: `invalid_request`, `invalid_query`, `unauthenticated`,
    /// `forbidden`, `not_found`, `payload_too_large`, `resources_exhausted`, `unmet_target`,
    /// `busy`, `timeout`, `not_implemented`, `internal`, `bad_signature`, `not_ready`, the
    /// import's refusal reasons for webhooks, …
    code: String,
    /// For a person.
    message: String,
}

/// The bearer token scheme (`[[auth.tokens]]`; none configured: no token needed).
struct Tokens;

impl Modify for Tokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token of `[[auth.tokens]]` with the route's role (ingest, query, \
                         replay; admin may do everything). Without configured tokens the API \
                         needs none (loopback only, or --insecure-no-auth).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The description of the API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "deskwatch",
        description = "Help-desk analytics and SLA monitoring over an event log. Events in, SQL, SLA listings, recurring issues, cost and staffing out."
    ),
    paths(
        super::post_events,
        super::post_query,
        super::get_ticket,
        super::get_at_risk,
        super::get_breaches,
        super::get_recurring,
        super::get_top_calls,
        super::get_cost,
        super::get_staffing,
        super::post_replay,
        super::post_hook,
        super::index,
        super::metrics,
        super::healthz,
        super::readyz,
        super::get_openapi,
    ),
    components(schemas(ErrorBody, ErrorDetail, super::QueryRequest, super::ReplayRequest)),
    modifiers(&Tokens),
    tags(
        (name = "events", description = "Ingest"),
        (name = "sources", description = "Webhooks of help desks that push"),
        (name = "read", description = "Queries, listings and models"),
        (name = "operations", description = "Health, readiness, metrics, the web page")
    )
)]
pub struct ApiDoc;
