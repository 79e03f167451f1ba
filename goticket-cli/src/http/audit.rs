//! The audit log: `GET /v1/audit`, the retained domain events, scoped by role in core.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use goticket_core::{AuditQuery, DomainEvent, Page};
use serde::Deserialize;
use utoipa::IntoParams;

use super::App;
use super::problem::{FORBIDDEN, INVALID, NOT_FOUND, Problems, QueryOf, Reply, UNAUTHENTICATED, blocking, opt, time};
use super::users::Caller;

/// Which entries of the audit log, and which page (by cursor only: the log only grows).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditParams {
    /// Only what concerns this event (id or slug): its own changes and its bookings'.
    #[param(value_type = Option<goticket_core::EventKey>)]
    #[serde(default, deserialize_with = "crate::http::problem::empty_as_none")]
    event: Option<String>,
    /// Only what happened to this booking (its code).
    #[param(value_type = Option<goticket_core::BookingCode>)]
    #[serde(default, deserialize_with = "crate::http::problem::empty_as_none")]
    booking: Option<String>,
    /// Only what this account did.
    #[param(value_type = Option<goticket_core::Email>)]
    #[serde(default, deserialize_with = "crate::http::problem::empty_as_none")]
    actor: Option<String>,
    /// Only from this time on (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "crate::http::problem::empty_as_none")]
    since: Option<String>,
    /// Items per page, 1 to 1000; 50 if absent.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "crate::http::problem::empty_as_none")]
    limit: Option<String>,
    /// The `next_cursor` of the page before.
    #[param(pattern = "^[0-9a-fA-F]{48}$")]
    #[serde(default, deserialize_with = "crate::http::problem::empty_as_none")]
    cursor: Option<String>,
}

/// Reads the audit log: who did what, when.
///
/// Every committed change's domain events, oldest first. Admins read all of it;
/// organizers what concerns their own events (never accounts); customers none. The
/// payloads carry no ticket secrets and no password hashes.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    security(("bearer" = [])),
    params(AuditParams),
    responses(
        (status = 200, description = "A page of the audit log.", body = Page<DomainEvent>),
        Problems<{ UNAUTHENTICATED | FORBIDDEN | NOT_FOUND | INVALID }>,
    ),
)]
pub(super) async fn audit(
    State(app): State<App>,
    Caller(p): Caller,
    QueryOf(q): QueryOf<AuditParams>,
) -> Reply<impl IntoResponse> {
    let query = AuditQuery {
        event: opt("event", q.event.as_ref())?,
        booking: opt("booking", q.booking.as_ref())?,
        actor: opt("actor", q.actor.as_ref())?,
        since: time("since", q.since.as_ref())?,
    };
    let page = goticket_core::PageRequest::parse(q.limit.as_deref(), q.cursor.as_deref(), None)?;
    Ok(Json(blocking(move || app.service.audit(&p, &query, page)).await?))
}
