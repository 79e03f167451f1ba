//! Booking routes: reserve, list, show, confirm, cancel; check-in at the door; the
//! sales report.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use goticket_core::{
    Booking, BookingCode, BookingFilter, BookingRequest, BookingStatus, CheckIn, EventKey, Page, Reservation, SalesRow,
    TicketSecret,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::events::EventPath;
use super::problem::{
    BODY, FORBIDDEN, INVALID, NOT_FOUND, PathOf, Problem, Problems, QueryOf, REFUSED, Reply, UNAUTHENTICATED, blocking,
    body, opt, parse,
};
use super::users::Caller;
use super::{App, Items};

/// Seats to hold or buy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BookBody {
    #[schema(value_type = goticket_core::Quantity)]
    quantity: u32,
    /// Hold the seats this long (like `15m`, `1h30m` or `PT15M`) until confirmed;
    /// without it the seats are bought at once.
    hold: Option<String>,
    /// Book for this customer (the event's organizer or an admin); else the caller.
    #[schema(value_type = Option<goticket_core::Email>)]
    customer: Option<String>,
}

/// Holds or buys seats of an event.
///
/// Never oversells: when too few seats are left the answer is 409 sold-out. A retry
/// with the same `Idempotency-Key` answers the first booking (200, `replayed: true`)
/// instead of booking again.
#[utoipa::path(
    post,
    path = "/v1/events/{event}/bookings",
    tag = "bookings",
    security(("bearer" = [])),
    params(
        EventPath,
        ("Idempotency-Key" = Option<goticket_core::IdempotencyKey>, Header,
            description = "Makes the request safe to retry: 1 to 200 printable ASCII characters without spaces."),
    ),
    request_body = BookBody,
    responses(
        (status = 201, description = "The booking made.", body = Reservation),
        (status = 200, description = "A retry: the booking made the first time.", body = Reservation),
        Problems<{ UNAUTHENTICATED | FORBIDDEN | NOT_FOUND | REFUSED | INVALID | BODY }>,
    ),
)]
pub(super) async fn book(
    State(app): State<App>,
    Caller(p): Caller,
    PathOf(path): PathOf<EventPath>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Reply<impl IntoResponse> {
    let b: BookBody = body(raw)?;
    let key_header = headers.get("idempotency-key").map(|v| v.to_str().unwrap_or_default().to_owned());
    let req = BookingRequest {
        event: path.key()?,
        customer: opt("customer", b.customer.as_ref())?,
        quantity: b.quantity.try_into().map_err(Problem::from)?,
        hold: opt("hold", b.hold.as_ref())?,
        idempotency_key: opt("Idempotency-Key", key_header.as_ref())?,
    };
    let service = app.service.clone();
    let r = match blocking(move || service.reserve(&p, req)).await {
        Ok(r) => r,
        Err(e) => {
            app.metrics.reservation(e.kind());
            return Err(e);
        }
    };
    app.metrics.reservation(if r.replayed { "replayed" } else { "created" });
    let status = if r.replayed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(r)))
}

paged_query!(
    /// Which bookings to list, and which page.
    BookingQuery {
        /// Only bookings of this event (id or slug).
        #[param(value_type = Option<goticket_core::EventKey>)]
        event: Option<String>,
        /// Only bookings of this customer (customers see only their own anyway).
        #[param(value_type = Option<goticket_core::Email>)]
        customer: Option<String>,
        /// Only bookings in this state.
        #[param(value_type = Option<BookingStatus>)]
        status: Option<String>,
    }
);

/// Lists bookings.
///
/// A customer sees their own, an organizer those of their events, an admin all.
#[utoipa::path(
    get,
    path = "/v1/bookings",
    tag = "bookings",
    security(("bearer" = [])),
    params(BookingQuery),
    responses(
        (status = 200, description = "A page of bookings.", body = Page<Booking>),
        Problems<{ UNAUTHENTICATED | FORBIDDEN | NOT_FOUND | INVALID }>,
    ),
)]
pub(super) async fn list_bookings(
    State(app): State<App>,
    Caller(p): Caller,
    QueryOf(q): QueryOf<BookingQuery>,
) -> Reply<impl IntoResponse> {
    let event: Option<EventKey> = opt("event", q.event.as_ref())?;
    let customer = opt("customer", q.customer.as_ref())?;
    let status = opt("status", q.status.as_ref())?;
    let page = q.page()?;
    Ok(Json(
        blocking(move || {
            let event = event.map(|key| app.service.event_id(&p, &key)).transpose()?;
            let filter = BookingFilter { event, customer, status, organizer: None };
            app.service.list_bookings(&p, filter, page)
        })
        .await?,
    ))
}

/// The `{code}` path parameter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct CodePath {
    /// The booking's code.
    #[param(value_type = goticket_core::BookingCode)]
    code: String,
}

impl CodePath {
    fn code(&self) -> Reply<BookingCode> {
        parse("code", &self.code)
    }
}

/// One booking (its customer, the event's organizer, or an admin).
#[utoipa::path(
    get,
    path = "/v1/bookings/{code}",
    tag = "bookings",
    security(("bearer" = [])),
    params(CodePath),
    responses(
        (status = 200, description = "The booking, with its tickets.", body = Booking),
        Problems<{ UNAUTHENTICATED | FORBIDDEN | NOT_FOUND | INVALID }>,
    ),
)]
pub(super) async fn show_booking(
    State(app): State<App>,
    Caller(p): Caller,
    PathOf(path): PathOf<CodePath>,
) -> Reply<impl IntoResponse> {
    let code = path.code()?;
    Ok(Json(blocking(move || app.service.booking(&p, &code)).await?))
}

/// Confirms a hold before it expires.
///
/// Its customer, the event's organizer or an admin may.
#[utoipa::path(
    post,
    path = "/v1/bookings/{code}/confirm",
    tag = "bookings",
    security(("bearer" = [])),
    params(CodePath),
    responses(
        (status = 200, description = "The booking, confirmed.", body = Booking),
        Problems<{ UNAUTHENTICATED | FORBIDDEN | NOT_FOUND | REFUSED | INVALID }>,
    ),
)]
pub(super) async fn confirm_booking(
    State(app): State<App>,
    Caller(p): Caller,
    PathOf(path): PathOf<CodePath>,
) -> Reply<impl IntoResponse> {
    let code = path.code()?;
    Ok(Json(blocking(move || app.service.confirm(&p, &code)).await?))
}

/// Cancels a hold or a booking; its seats are on sale again.
///
/// Its customer, the event's organizer or an admin may.
#[utoipa::path(
    post,
    path = "/v1/bookings/{code}/cancel",
    tag = "bookings",
    security(("bearer" = [])),
    params(CodePath),
    responses(
        (status = 200, description = "The booking, cancelled.", body = Booking),
        Problems<{ UNAUTHENTICATED | FORBIDDEN | NOT_FOUND | REFUSED | INVALID }>,
    ),
)]
pub(super) async fn cancel_booking(
    State(app): State<App>,
    Caller(p): Caller,
    PathOf(path): PathOf<CodePath>,
) -> Reply<impl IntoResponse> {
    let code = path.code()?;
    Ok(Json(blocking(move || app.service.cancel_booking(&p, &code)).await?))
}

/// A ticket scanned at the door.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckInBody {
    #[schema(value_type = TicketSecret)]
    secret: String,
}

/// Admits a ticket at the door, once.
///
/// The event's organizer or an admin may.
#[utoipa::path(
    post,
    path = "/v1/checkin",
    tag = "bookings",
    security(("bearer" = [])),
    request_body = CheckInBody,
    responses(
        (status = 200, description = "Admitted.", body = CheckIn),
        Problems<{ UNAUTHENTICATED | FORBIDDEN | NOT_FOUND | REFUSED | INVALID | BODY }>,
    ),
)]
pub(super) async fn check_in(
    State(app): State<App>,
    Caller(p): Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Reply<impl IntoResponse> {
    let b: CheckInBody = body(raw)?;
    let secret: TicketSecret = parse("secret", &b.secret)?;
    Ok(Json(blocking(move || app.service.check_in(&p, &secret)).await?))
}

/// Which events to report on.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ReportQuery {
    /// Only this event (id or slug); else every event the caller manages.
    #[param(value_type = Option<goticket_core::EventKey>)]
    #[serde(default, deserialize_with = "super::problem::empty_as_none")]
    event: Option<String>,
}

/// The sales report: seats held, sold and left, check-ins and revenue, per event.
///
/// Organizers see their own events, admins all.
#[utoipa::path(
    get,
    path = "/v1/reports/sales",
    tag = "bookings",
    security(("bearer" = [])),
    params(ReportQuery),
    responses(
        (status = 200, description = "One row per event.", body = Items<SalesRow>),
        Problems<{ UNAUTHENTICATED | FORBIDDEN | NOT_FOUND | INVALID }>,
    ),
)]
pub(super) async fn sales_report(
    State(app): State<App>,
    Caller(p): Caller,
    QueryOf(q): QueryOf<ReportQuery>,
) -> Reply<impl IntoResponse> {
    let event: Option<EventKey> = opt("event", q.event.as_ref())?;
    let rows = blocking(move || app.service.sales_report(&p, event.as_ref())).await?;
    Ok(Json(Items { items: rows }))
}
