//! `goticket serve`: the HTTP API (feature `http`). A thin face like the CLI: it parses
//! requests, calls core's service (on blocking threads: the service is synchronous)
//! with the caller's principal, and renders JSON or RFC 9457 problems. Every rule,
//! authorization included, is core's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use goticket_core::{
    BookingCode, BookingFilter, BookingRequest, Email, Error, ErrorKind, EventFields, EventFilter, EventKey,
    PageRequest, PageStart, Principal, Role, Service, TicketSecret, parse_timestamp,
};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest request body accepted.
const BODY_LIMIT: usize = 64 * 1024;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen.
    pub addr: SocketAddr,
    /// HMAC key for tokens.
    pub jwt_secret: Vec<u8>,
    /// How long a token is valid.
    pub token_ttl: Duration,
}

#[derive(Clone)]
struct App {
    service: Service,
    enc: Arc<EncodingKey>,
    dec: Arc<DecodingKey>,
    ttl: Duration,
    metrics: Arc<Metrics>,
}

/// Upper bounds (seconds) of the request-latency histogram's buckets.
const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// What `/metrics` reports, counted as requests go by.
#[derive(Default)]
struct Metrics {
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    micros: AtomicU64,
    bookings: AtomicU64,
    refusals: AtomicU64,
}

impl Metrics {
    fn record(&self, status: u16, took: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn render(&self, combiner: Option<goticket_core::CombinerSnapshot>) -> String {
        use std::fmt::Write as _;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(out, "# HELP goticket_http_requests_total HTTP requests answered, by status class.");
        let _ = writeln!(out, "# TYPE goticket_http_requests_total counter");
        for (i, n) in self.by_class.iter().enumerate() {
            let _ = writeln!(out, "goticket_http_requests_total{{class=\"{}xx\"}} {}", i + 1, get(n));
        }
        let _ = writeln!(out, "# HELP goticket_http_request_duration_seconds Time to answer a request.");
        let _ = writeln!(out, "# TYPE goticket_http_request_duration_seconds histogram");
        let mut cumulative = 0;
        for (b, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += get(n);
            let _ = writeln!(out, "goticket_http_request_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "goticket_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}", get(&self.count));
        let _ = writeln!(out, "goticket_http_request_duration_seconds_sum {}", get(&self.micros) as f64 / 1e6);
        let _ = writeln!(out, "goticket_http_request_duration_seconds_count {}", get(&self.count));
        let _ = writeln!(out, "# HELP goticket_bookings_total Bookings made over HTTP.");
        let _ = writeln!(out, "# TYPE goticket_bookings_total counter");
        let _ = writeln!(out, "goticket_bookings_total {}", get(&self.bookings));
        let _ = writeln!(
            out,
            "# HELP goticket_booking_refusals_total Booking requests refused by a rule (sold out, limit, ...)."
        );
        let _ = writeln!(out, "# TYPE goticket_booking_refusals_total counter");
        let _ = writeln!(out, "goticket_booking_refusals_total {}", get(&self.refusals));
        let c = combiner.unwrap_or_default();
        let _ =
            writeln!(out, "# HELP goticket_combiner_batches_total Transactions the reservation combiner committed.");
        let _ = writeln!(out, "# TYPE goticket_combiner_batches_total counter");
        let _ = writeln!(out, "goticket_combiner_batches_total {}", c.batches);
        let _ = writeln!(out, "# HELP goticket_combiner_requests_total Reservations the combiner answered.");
        let _ = writeln!(out, "# TYPE goticket_combiner_requests_total counter");
        let _ = writeln!(out, "goticket_combiner_requests_total {}", c.requests);
        let _ = writeln!(out, "# HELP goticket_combiner_largest_batch The largest batch so far.");
        let _ = writeln!(out, "# TYPE goticket_combiner_largest_batch gauge");
        let _ = writeln!(out, "goticket_combiner_largest_batch {}", c.largest_batch);
        out
    }
}

/// Counts every request for `/metrics`.
async fn track(State(app): State<App>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    app.metrics.record(resp.status().as_u16(), started.elapsed());
    resp
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let body = app.metrics.render(app.service.combiner_stats());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// How long a request may wait for the store before it is answered 503.
const STORE_TIMEOUT: Duration = Duration::from_secs(30);

/// An error as an RFC 9457 problem: a stable `type` per error kind.
struct Problem(Error);

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        Problem(e)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let kind = self.0.kind();
        problem(kind.http_status(), kind.as_str(), &self.0.to_string())
    }
}

fn problem(status: u16, kind: &str, detail: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({
        "type": format!("https://goticket.dev/problems/{kind}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

type Reply<T> = Result<T, Problem>;

/// Runs a service call on a blocking thread, answering 503 (busy) if it takes longer
/// than [`STORE_TIMEOUT`].
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> goticket_core::Result<T> + Send + 'static) -> Reply<T> {
    let timeout = || {
        Problem(Error::Storage(goticket_core::StoreError::new(
            goticket_core::StoreErrorKind::Busy,
            format!("the store did not answer within {} s", STORE_TIMEOUT.as_secs()),
            None,
        )))
    };
    tokio::time::timeout(STORE_TIMEOUT, tokio::task::spawn_blocking(f))
        .await
        .map_err(|_| timeout())?
        .map_err(|_| {
            Problem(Error::Storage(goticket_core::StoreError::new(
                goticket_core::StoreErrorKind::Other,
                "the request handler panicked",
                None,
            )))
        })?
        .map_err(Problem)
}

/// A JSON body, with every way it can be wrong answered as a 4xx problem.
fn body<T: DeserializeOwned>(raw: Result<Bytes, BytesRejection>) -> Reply<T> {
    let bytes = raw.map_err(|r| {
        let status = r.status();
        Problem(if status == StatusCode::PAYLOAD_TOO_LARGE {
            Error::validation("body", format!("is larger than {BODY_LIMIT} bytes"))
        } else {
            Error::validation("body", r.body_text())
        })
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Problem(Error::validation("body", e.to_string())))
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iat: u64,
    exp: u64,
}

/// The caller, from a valid bearer token.
struct Caller(Principal);

impl FromRequestParts<App> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let unauth = |reason: &str| Problem(Error::Unauthenticated { reason: reason.into() });
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| unauth("a bearer token is required"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauth("the Authorization header is not \"Bearer <token>\""))?;
        // No leeway: a token is refused the second its `exp` passes.
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &app.dec, &validation)
            .map_err(|e| unauth(&format!("invalid token: {e}")))?;
        let email: Email = data.claims.sub.parse().map_err(|_| unauth("invalid token subject"))?;
        let role: Role = data.claims.role.parse().map_err(|_| unauth("invalid token role"))?;
        Ok(Caller(Principal::new(email, role)))
    }
}

fn parse<T: std::str::FromStr<Err = Error>>(field: &str, raw: &str) -> Reply<T> {
    raw.parse::<T>().map_err(|e| Problem(e.in_field(field)))
}

fn opt<T: std::str::FromStr<Err = Error>>(field: &str, raw: Option<&String>) -> Reply<Option<T>> {
    raw.map(|r| parse(field, r)).transpose()
}

fn time(field: &str, raw: Option<&String>) -> Reply<Option<goticket_core::Timestamp>> {
    raw.map(|r| parse_timestamp(field, r).map_err(Problem)).transpose()
}

fn page(q: &HashMap<String, String>) -> Reply<PageRequest> {
    let limit = match q.get("limit") {
        Some(l) => {
            l.parse().map_err(|_| Problem(Error::validation("limit", format!("{l:?} is not a whole number"))))?
        }
        None => PageRequest::DEFAULT_LIMIT,
    };
    let start = match (q.get("cursor"), q.get("offset")) {
        (Some(c), _) => PageStart::After(goticket_core::Cursor::decode(c)?),
        (None, Some(o)) => PageStart::Offset(
            o.parse().map_err(|_| Problem(Error::validation("offset", format!("{o:?} is not a whole number"))))?,
        ),
        (None, None) => PageStart::First,
    };
    Ok(PageRequest::new(limit, start)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

async fn register(State(app): State<App>, raw: Result<Bytes, BytesRejection>) -> Reply<impl IntoResponse> {
    let c: Credentials = body(raw)?;
    let email: Email = parse("email", &c.email)?;
    let password = parse("password", &c.password)?;
    let user = blocking(move || app.service.register(email, &password)).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

async fn login(State(app): State<App>, raw: Result<Bytes, BytesRejection>) -> Reply<impl IntoResponse> {
    let c: Credentials = body(raw)?;
    let email: Email = parse("email", &c.email)?;
    let service = app.service.clone();
    let p = blocking(move || service.authenticate(&email, &c.password)).await?;
    let now = jsonwebtoken::get_current_timestamp();
    let claims =
        Claims { sub: p.email().to_string(), role: p.role().to_string(), iat: now, exp: now + app.ttl.as_secs() };
    let token = jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::HS256), &claims, &app.enc).map_err(|e| {
        Problem(Error::Storage(goticket_core::StoreError::new(
            goticket_core::StoreErrorKind::Other,
            format!("cannot sign a token: {e}"),
            None,
        )))
    })?;
    Ok(Json(serde_json::json!({ "token": token, "expires_in": app.ttl.as_secs() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    name: Option<String>,
    slug: Option<String>,
    description: Option<String>,
    venue: Option<String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    capacity: Option<u32>,
    price: Option<goticket_core::Money>,
    max_per_customer: Option<u32>,
    sales_start: Option<String>,
    sales_end: Option<String>,
    organizer: Option<String>,
}

impl EventBody {
    /// The body as core's event fields (numbers and money back to text, so core parses
    /// every face's input the same way).
    fn fields(self) -> EventFields {
        EventFields {
            name: self.name,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            capacity: self.capacity.map(|c| c.to_string()),
            price: self.price.map(|m| m.to_string()),
            slug: self.slug,
            venue: self.venue,
            description: self.description,
            max_per_customer: self.max_per_customer.map(|m| m.to_string()),
            sales_start: self.sales_start,
            sales_end: self.sales_end,
            organizer: self.organizer,
            external_id: None,
        }
    }
}

/// The first of core's field errors, as a problem.
fn first(errors: Vec<Error>) -> Problem {
    Problem(errors.into_iter().next().unwrap_or_else(|| Error::validation("body", "is invalid")))
}

async fn create_event(
    State(app): State<App>,
    Caller(p): Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Reply<impl IntoResponse> {
    let new = body::<EventBody>(raw)?.fields().parse().map_err(first)?;
    let e = blocking(move || app.service.create_event(&p, new)).await?;
    Ok((StatusCode::CREATED, Json(e)))
}

async fn update_event(
    State(app): State<App>,
    Caller(p): Caller,
    Path(key): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply<impl IntoResponse> {
    let key: EventKey = parse("event", &key)?;
    let patch = body::<EventBody>(raw)?.fields().parse_patch().map_err(first)?;
    Ok(Json(blocking(move || app.service.update_event(&p, &key, &patch)).await?))
}

async fn list_events(
    State(app): State<App>,
    Caller(p): Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Reply<impl IntoResponse> {
    let filter = EventFilter {
        starts_from: time("from", q.get("from"))?,
        starts_before: time("to", q.get("to"))?,
        min_price: opt("min_price", q.get("min_price"))?,
        max_price: opt("max_price", q.get("max_price"))?,
        status: opt("status", q.get("status"))?,
        organizer: None,
    };
    let page = page(&q)?;
    Ok(Json(blocking(move || app.service.list_events(&p, &filter, page)).await?))
}

async fn show_event(State(app): State<App>, Caller(p): Caller, Path(key): Path<String>) -> Reply<impl IntoResponse> {
    let key: EventKey = parse("event", &key)?;
    Ok(Json(blocking(move || app.service.event(&p, &key)).await?))
}

async fn cancel_event(State(app): State<App>, Caller(p): Caller, Path(key): Path<String>) -> Reply<impl IntoResponse> {
    let key: EventKey = parse("event", &key)?;
    Ok(Json(blocking(move || app.service.cancel_event(&p, &key)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BookBody {
    quantity: u32,
    hold: Option<String>,
    customer: Option<String>,
}

async fn book(
    State(app): State<App>,
    Caller(p): Caller,
    Path(key): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Reply<impl IntoResponse> {
    let b: BookBody = body(raw)?;
    let key_header = headers.get("idempotency-key").map(|v| v.to_str().unwrap_or_default().to_owned());
    let req = BookingRequest {
        event: parse("event", &key)?,
        customer: opt("customer", b.customer.as_ref())?,
        quantity: b.quantity.try_into().map_err(Problem)?,
        hold: opt("hold", b.hold.as_ref())?,
        idempotency_key: opt("Idempotency-Key", key_header.as_ref())?,
    };
    let service = app.service.clone();
    let r = match blocking(move || service.reserve(&p, req)).await {
        Ok(r) => r,
        Err(e) => {
            if e.0.kind().http_status() == 409 {
                app.metrics.refusals.fetch_add(1, Ordering::Relaxed);
            }
            return Err(e);
        }
    };
    if !r.replayed {
        app.metrics.bookings.fetch_add(1, Ordering::Relaxed);
    }
    let status = if r.replayed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(r)))
}

async fn list_bookings(
    State(app): State<App>,
    Caller(p): Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Reply<impl IntoResponse> {
    let event: Option<EventKey> = opt("event", q.get("event"))?;
    let filter_customer = opt("customer", q.get("customer"))?;
    let status = opt("status", q.get("status"))?;
    let page = page(&q)?;
    Ok(Json(
        blocking(move || {
            let event = event.map(|key| app.service.event_id(&p, &key)).transpose()?;
            let filter = BookingFilter { event, customer: filter_customer, status, organizer: None };
            app.service.list_bookings(&p, filter, page)
        })
        .await?,
    ))
}

async fn show_booking(State(app): State<App>, Caller(p): Caller, Path(code): Path<String>) -> Reply<impl IntoResponse> {
    let code: BookingCode = parse("code", &code)?;
    Ok(Json(blocking(move || app.service.booking(&p, &code)).await?))
}

async fn confirm_booking(
    State(app): State<App>,
    Caller(p): Caller,
    Path(code): Path<String>,
) -> Reply<impl IntoResponse> {
    let code: BookingCode = parse("code", &code)?;
    Ok(Json(blocking(move || app.service.confirm(&p, &code)).await?))
}

async fn cancel_booking(
    State(app): State<App>,
    Caller(p): Caller,
    Path(code): Path<String>,
) -> Reply<impl IntoResponse> {
    let code: BookingCode = parse("code", &code)?;
    Ok(Json(blocking(move || app.service.cancel_booking(&p, &code)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckInBody {
    secret: String,
}

async fn check_in(
    State(app): State<App>,
    Caller(p): Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Reply<impl IntoResponse> {
    let b: CheckInBody = body(raw)?;
    let secret: TicketSecret = parse("secret", &b.secret)?;
    Ok(Json(blocking(move || app.service.check_in(&p, &secret)).await?))
}

async fn sales_report(
    State(app): State<App>,
    Caller(p): Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Reply<impl IntoResponse> {
    let event: Option<EventKey> = opt("event", q.get("event"))?;
    let rows = blocking(move || app.service.sales_report(&p, event.as_ref())).await?;
    Ok(Json(serde_json::json!({ "items": rows })))
}

async fn list_users(State(app): State<App>, Caller(p): Caller) -> Reply<impl IntoResponse> {
    let users = blocking(move || app.service.list_users(&p)).await?;
    Ok(Json(serde_json::json!({ "items": users })))
}

async fn ready(State(app): State<App>) -> Reply<impl IntoResponse> {
    blocking(move || app.service.ping()).await?;
    Ok("ready")
}

async fn not_found() -> Response {
    problem(404, ErrorKind::NotFound.as_str(), "no such route")
}

fn router(app: App) -> Router {
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/readyz", get(ready))
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/login", post(login))
        .route("/v1/events", get(list_events).post(create_event))
        .route("/v1/events/{event}", get(show_event).patch(update_event))
        .route("/v1/events/{event}/cancel", post(cancel_event))
        .route("/v1/events/{event}/bookings", post(book))
        .route("/v1/bookings", get(list_bookings))
        .route("/v1/bookings/{code}", get(show_booking))
        .route("/v1/bookings/{code}/confirm", post(confirm_booking))
        .route("/v1/bookings/{code}/cancel", post(cancel_booking))
        .route("/v1/checkin", post(check_in))
        .route("/v1/reports/sales", get(sales_report))
        .route("/v1/users", get(list_users))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            problem(500, ErrorKind::Storage.as_str(), "internal error")
        }))
        .layer(axum::middleware::from_fn_with_state(app.clone(), track))
        // Outermost last: a request gets an id (or keeps the caller's), the log span
        // carries it, and the response echoes it.
        .layer(tower_http::request_id::PropagateRequestIdLayer::new(request_id.clone()))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &axum::extract::Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
        }))
        .layer(tower_http::request_id::SetRequestIdLayer::new(request_id, tower_http::request_id::MakeRequestUuid))
        .with_state(app)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Runs the server until SIGINT or SIGTERM, then finishes in-flight requests.
pub fn serve(service: Service, settings: Settings) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("GOTICKET_LOG").unwrap_or_else(|_| "info".into()))
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(settings.addr).await?;
        let addr = listener.local_addr()?;
        let app = App {
            service: service.clone(),
            enc: Arc::new(EncodingKey::from_secret(&settings.jwt_secret)),
            dec: Arc::new(DecodingKey::from_secret(&settings.jwt_secret)),
            ttl: settings.token_ttl,
            metrics: Arc::default(),
        };
        // The sweeper only tidies: reads and reservations never count overdue holds.
        let sweeper = tokio::spawn(async move {
            let admin = Principal::new("sweeper@goticket.local".parse().expect("a valid constant email"), Role::Admin);
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                let (s, p) = (service.clone(), admin.clone());
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.expire_holds(&p)).await {
                    tracing::warn!("expiring holds failed: {e}");
                }
            }
        });
        eprintln!("goticket: listening on http://{addr}");
        axum::serve(listener, router(app)).with_graceful_shutdown(shutdown_signal()).await?;
        sweeper.abort();
        eprintln!("goticket: stopped");
        Ok(())
    })
}
