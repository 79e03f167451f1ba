//! `goticket serve`: the HTTP API (feature `http`). A thin face like the CLI: it parses
//! requests, calls core's service (on blocking threads: the service is synchronous)
//! with the caller's principal, and renders JSON or RFC 9457 problems. Every rule,
//! authorization included, is core's.
//!
//! Each handler carries its OpenAPI description (`#[utoipa::path]`) and is registered
//! with it (`utoipa_axum::routes!`), so `/openapi.json` lists exactly the routes served.

/// A paged list's query string: its own filters, then `limit`, `cursor` and `offset`,
/// documented once here. Unknown parameters are refused.
macro_rules! paged_query {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(serde::Deserialize, utoipa::IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        pub(super) struct $name {
            $($(#[$fmeta])* #[serde(default, deserialize_with = "crate::http::problem::empty_as_none")] $field: $ty,)*
            /// Items per page, 1 to 1000; 50 if absent.
            #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
            #[serde(default, deserialize_with = "crate::http::problem::empty_as_none")]
            limit: Option<String>,
            /// The `next_cursor` of the page before.
            #[param(pattern = "^[0-9a-fA-F]{48}$")]
            #[serde(default, deserialize_with = "crate::http::problem::empty_as_none")]
            cursor: Option<String>,
            /// Items to skip, where no cursor is given.
            #[param(value_type = Option<u64>, minimum = 0)]
            #[serde(default, deserialize_with = "crate::http::problem::empty_as_none")]
            offset: Option<String>,
        }

        impl $name {
            /// The page asked for.
            fn page(&self) -> goticket_core::Result<goticket_core::PageRequest> {
                goticket_core::PageRequest::parse(self.limit.as_deref(), self.cursor.as_deref(), self.offset.as_deref())
            }
        }
    };
}

mod audit;
mod bookings;
mod cors;
mod events;
pub mod keys;
mod metrics;
mod problem;
mod server;
mod telemetry;
mod users;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use goticket_core::{ErrorKind, Principal, Role, Service};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use self::cors::Cors;
use self::problem::{BODY_LIMIT, PROBLEM_STATUSES, Problems, Reply, blocking, problem, problem_response};
pub use self::telemetry::TraceExport;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen.
    pub addr: SocketAddr,
    /// How tokens are signed.
    pub signer: keys::Signer,
    /// How long a token is valid.
    pub token_ttl: Duration,
    /// How often the background task expires overdue holds.
    pub sweep_every: Duration,
    /// How long a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// Request logs as JSON lines (else human-readable text).
    pub json_logs: bool,
    /// Which web origins browsers may call the API from.
    pub cors: Cors,
    /// How long a client may take to send its headers (or idle between requests).
    pub header_timeout: Duration,
    /// Most connections open at once; `None`: what the file-descriptor limit allows.
    pub max_connections: Option<usize>,
    /// How long in-flight requests may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Prune domain events older than this (published ones), hourly.
    pub event_retention: Option<goticket_core::Retention>,
    /// Where to export traces over OTLP, if anywhere.
    pub trace_export: Option<TraceExport>,
}

#[derive(Clone)]
struct App {
    service: Service,
    signer: Arc<keys::Signer>,
    ttl: Duration,
    request_timeout: Duration,
    metrics: Arc<metrics::Metrics>,
    /// What the accept loop turned away.
    turned: Arc<server::Turned>,
}

/// A list that is not paged.
#[derive(Serialize, ToSchema)]
struct Items<T> {
    /// Every item.
    items: Vec<T>,
}

/// The parts of the document no route carries: what the API is, its bearer scheme and
/// its problem responses.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "goticket",
        description = "Event ticketing: events with a capacity and a price, holds that expire unless \
            confirmed, bookings, check-in at the door. Nothing is ever oversold. Errors are RFC 9457 \
            problems (`application/problem+json`) whose `type` names the error kind."
    ),
    modifiers(&Components),
    tags(
        (name = "events", description = "Create, list, change and cancel events."),
        (name = "bookings", description = "Hold, buy, confirm and cancel seats; check in; sales."),
        (name = "users", description = "Sign-up, login and accounts."),
        (name = "audit", description = "The audit log: every committed change, who made it and when."),
        (name = "operations", description = "Health, readiness, metrics and this document."),
    )
)]
struct ApiDoc;

struct Components;

impl utoipa::Modify for Components {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A token from POST /v1/auth/login."))
                    .build(),
            ),
        );
        // Parameters refer to value schemas by name; the ones no body carries are added
        // here (a test fails on a reference the document does not define).
        components.schemas.insert("EventKey".into(), <goticket_core::EventKey as utoipa::PartialSchema>::schema());
        for status in PROBLEM_STATUSES {
            let (name, response) = problem_response(status);
            components.responses.insert(name.to_owned(), response.into());
        }
    }
}

/// Every route, with its document.
fn api() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(ready))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(jwks))
        .routes(routes!(users::register))
        .routes(routes!(users::login))
        .routes(routes!(users::list_users, users::add_user))
        .routes(routes!(users::change_user))
        .routes(routes!(events::list_events, events::create_event))
        .routes(routes!(events::show_event, events::update_event))
        .routes(routes!(events::cancel_event))
        .routes(routes!(bookings::book))
        .routes(routes!(bookings::list_bookings))
        .routes(routes!(bookings::show_booking))
        .routes(routes!(bookings::confirm_booking))
        .routes(routes!(bookings::cancel_booking))
        .routes(routes!(bookings::check_in))
        .routes(routes!(bookings::sales_report))
        .routes(routes!(audit::audit))
}

/// The OpenAPI document of [`api`], as JSON.
pub fn openapi_document() -> String {
    api().into_openapi().to_pretty_json().expect("the OpenAPI document is plain data and serializes")
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive.", body = String, content_type = "text/plain", example = "ok")),
)]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The store answered.", body = String, content_type = "text/plain", example = "ready"),
        Problems<0>,
    ),
)]
async fn ready(axum::extract::State(app): axum::extract::State<App>) -> Reply<&'static str> {
    blocking(move || app.service.ping()).await?;
    Ok("ready")
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", body = Object)),
)]
async fn openapi_json() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let body = DOCUMENT.get_or_init(openapi_document).clone();
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// Answers 503 when a request takes longer than its deadline (a store waiting on a
/// lock, a client sending its body slowly). The work on a blocking thread is not
/// stopped, only no longer awaited.
async fn deadline(
    axum::extract::State(app): axum::extract::State<App>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(app.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => problem::timed_out(app.request_timeout).into_response(),
    }
}

/// The public keys that verify this server's tokens.
///
/// With EdDSA tokens (`--jwt-key-file`), the Ed25519 key, so other services can check a
/// token without being able to make one; with a shared secret (HS256), no key.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "users",
    responses((status = 200, description = "A JSON Web Key Set (RFC 7517).", body = keys::Jwks)),
)]
async fn jwks(axum::extract::State(app): axum::extract::State<App>) -> axum::Json<keys::Jwks> {
    axum::Json(app.signer.jwks().clone())
}

async fn not_found() -> Response {
    problem(404, ErrorKind::NotFound.as_str(), "no such route")
}

async fn method_not_allowed(method: Method) -> Response {
    problem(405, "method-not-allowed", &format!("this route does not take {method}"))
}

fn router(app: App, cors: &Cors) -> Router {
    let (routes, _) = api().split_for_parts();
    layered(routes, app, cors)
}

/// `routes` with everything every request goes through: fallbacks, body limit,
/// deadline, panic recovery, metrics, CORS, request id and request log.
fn layered(routes: Router<App>, app: App, cors: &Cors) -> Router {
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    let routes = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(app.clone(), deadline))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            problem(500, ErrorKind::Internal.as_str(), "internal error")
        }))
        .layer(axum::middleware::from_fn_with_state(app.clone(), metrics::track));
    // Preflights are answered here, before a token or a method is checked.
    let routes = match cors.layer() {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    routes
        // Outermost last: a request gets an id (or keeps the caller's, if it is a sane
        // one), the log span carries it, and the response echoes it.
        .layer(tower_http::request_id::PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(request_span)
                // One line per request at the default level: its status and latency,
                // in the request's span (method, uri, request id).
                .on_response(|response: &Response, latency: Duration, span: &tracing::Span| {
                    let status = response.status().as_u16();
                    span.record("http.response.status_code", status);
                    if status >= 500 {
                        span.record("otel.status_code", "ERROR");
                    }
                    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                    tracing::info!(status, latency_us, "answered");
                }),
        )
        .layer(tower_http::request_id::SetRequestIdLayer::new(request_id, tower_http::request_id::MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unsafe_request_id))
        .with_state(app)
}

/// A request's span: in the log, its method, path and request id; in a trace, a server
/// span named by its method and route template (never the raw path, which carries
/// ids), with its status, joined to the caller's trace if it sent a `traceparent`.
fn request_span(req: &axum::extract::Request) -> tracing::Span {
    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |p| p.as_str());
    let method = metrics::method_label(req.method());
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        uri = %Clipped(req.uri().path()),
        request_id = %id,
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    telemetry::adopt_remote_parent(&span, req.headers());
    span
}

/// A request's path as a span records it: no query string (it can carry emails), and
/// at most [`MAX_LOGGED_PATH`] bytes of it.
struct Clipped<'a>(&'a str);

/// The longest path a span records.
const MAX_LOGGED_PATH: usize = 256;

impl std::fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A URI's path is ASCII, so any byte is a boundary; `get` makes sure.
        match self.0.get(..MAX_LOGGED_PATH) {
            Some(head) if head.len() < self.0.len() => write!(f, "{head}..."),
            _ => f.write_str(self.0),
        }
    }
}

/// Longest caller-given request id kept.
const MAX_REQUEST_ID: usize = 64;

/// A caller's `x-request-id` goes into every log line of the request, so it must be
/// short and plain: one longer than 64 characters, or with anything but letters,
/// digits and `-_.:`, is replaced by a fresh one.
async fn drop_unsafe_request_id(mut req: axum::extract::Request) -> axum::extract::Request {
    let sane = |v: &HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= MAX_REQUEST_ID && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
    };
    let all_sane = req.headers().get_all("x-request-id").iter().count() == 1
        && req.headers().get("x-request-id").is_some_and(sane);
    if !all_sane {
        req.headers_mut().remove("x-request-id");
    }
    req
}

/// Runs `job` as the internal admin `who` every `period` on a blocking thread (store
/// calls block), logging a failure or a panic and carrying on.
fn every(
    period: Duration,
    who: &'static str,
    service: goticket_core::Service,
    job: impl Fn(&goticket_core::Service, &Principal) -> goticket_core::Result<()> + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let job = Arc::new(job);
    tokio::spawn(async move {
        let admin = internal_admin(who);
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let (s, p, job) = (service.clone(), admin.clone(), job.clone());
            match tokio::task::spawn_blocking(move || job(&s, &p)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("the {who} task failed: {e}"),
                Err(e) => tracing::warn!("the {who} task panicked: {e}"),
            }
        }
    })
}

/// The admin the server acts as for its own work (`sweeper`, `metrics`), named
/// `{who}@goticket.local` in logs.
pub(crate) fn internal_admin(who: &str) -> Principal {
    Principal::new(format!("{who}@goticket.local").parse().expect("a valid internal email"), Role::Admin)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed here, when it is called
/// (before the server says it is listening), not when the future is first polled: a
/// signal that arrives before the accept loop polls it would otherwise take the
/// default action and kill the process mid-request.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

/// Runs the server until SIGINT or SIGTERM, then finishes in-flight requests.
pub fn serve(service: Service, settings: Settings) -> anyhow::Result<()> {
    let telemetry = telemetry::install(settings.json_logs, settings.trace_export.as_ref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async move {
        let at = settings.addr;
        let listener = tokio::net::TcpListener::bind(at).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                anyhow::anyhow!("cannot listen on {at}: another program is using that port")
            }
            _ => anyhow::anyhow!("cannot listen on {at}: {e}"),
        })?;
        let addr = listener.local_addr()?;
        let app = App {
            service: service.clone(),
            signer: Arc::new(settings.signer.clone()),
            ttl: settings.token_ttl,
            request_timeout: settings.request_timeout,
            metrics: Arc::new(metrics::Metrics::new(service.clone())),
            turned: Arc::default(),
        };
        let turned = app.turned.clone();
        // The sweeper only tidies: reads and reservations never count overdue holds.
        let figures = app.metrics.clone();
        let sweeper = every(settings.sweep_every, "sweeper", service.clone(), move |s, p| {
            s.expire_holds(p).map(|n| figures.holds_expired(n))
        });
        // The retention setting: once an hour, published events past it are pruned.
        let pruner = settings.event_retention.map(|keep| {
            every(Duration::from_secs(3600), "retention", service.clone(), move |s, p| {
                let n = s.prune_events(p, keep, "default", false)?;
                if n > 0 {
                    tracing::info!("pruned {n} domain events past the retention");
                }
                Ok(())
            })
        });
        let limits = server::Limits {
            header_timeout: settings.header_timeout,
            write_timeout: settings.header_timeout.max(Duration::from_secs(1)),
            max_connections: settings.max_connections.unwrap_or_else(server::default_max_connections).max(1),
            shutdown_grace: settings.shutdown_grace,
        };
        let stop = shutdown_signal()?;
        eprintln!("goticket: listening on http://{addr}");
        server::run(listener, router(app, &settings.cors), limits, turned, stop).await;
        sweeper.abort();
        if let Some(p) = pruner {
            p.abort();
        }
        Ok(())
    });
    // Work still running on blocking threads (a store call past its request's
    // deadline) gets a moment, not a veto over the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    telemetry.finish(Duration::from_secs(5));
    eprintln!("goticket: stopped");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handler that panics, on the request's task or on a blocking thread, is a 500
    /// problem with a request id, and the server keeps serving.
    #[test]
    fn panics_become_500_problems() {
        let dir = tempfile::tempdir().expect("dir");
        let store = goticket_store_sqlite::SqliteStore::open(dir.path().join("p.db")).expect("store");
        let service = Service::new(Arc::new(store));
        let app = App {
            service: service.clone(),
            signer: Arc::new(keys::Signer::hmac(vec![7; 32]).expect("a secret")),
            ttl: Duration::from_secs(60),
            request_timeout: Duration::from_secs(5),
            metrics: Arc::new(metrics::Metrics::new(service.clone())),
            turned: Arc::default(),
        };
        async fn boom() -> &'static str {
            panic!("a planted bug")
        }
        let boom = Router::new()
            .route("/boom", axum::routing::get(boom))
            .route(
                "/boom-blocking",
                axum::routing::get(|| async {
                    blocking(|| -> goticket_core::Result<()> { panic!("a planted bug on a blocking thread") }).await
                }),
            )
            .route("/fine", axum::routing::get(|| async { "fine" }));
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let base = format!("http://{}", listener.local_addr().expect("addr"));
            tokio::spawn(async move { axum::serve(listener, layered(boom, app, &Cors::Off)).await });
            tokio::task::spawn_blocking(move || {
                for path in ["/boom", "/boom-blocking"] {
                    let resp = match ureq::get(&format!("{base}{path}")).call() {
                        Err(ureq::Error::Status(_, r)) => r,
                        other => panic!("{path}: expected a 500, got {other:?}"),
                    };
                    assert_eq!(resp.status(), 500, "{path}");
                    assert_eq!(resp.content_type(), "application/problem+json", "{path}");
                    assert!(resp.header("x-request-id").is_some(), "{path}");
                    let body: serde_json::Value = resp.into_json().expect("json");
                    assert_eq!(body["type"], "https://goticket.dev/problems/internal", "{path}: a panic is a bug");
                    assert!(!body.to_string().contains("planted"), "{path}: the panic message stays inside: {body}");
                }
                assert_eq!(ureq::get(&format!("{base}/fine")).call().expect("still serving").status(), 200);
            })
            .await
            .expect("the client");
        });
    }
}
