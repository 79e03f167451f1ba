//! `/metrics`: what the server does, for Prometheus, through the Prometheus project's
//! own client (`prometheus-client`): counters, histograms in seconds, and labels drawn
//! only from small fixed sets (route templates, methods, status codes, outcome and
//! problem kinds), never from ids, slugs, emails or raw paths, so a client cannot grow
//! the series without bound.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{MatchedPath, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeMetric;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::App;
use super::problem::ProblemKind;

/// Upper bounds (seconds) of the request-latency histogram's buckets.
const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A request's labels: its method (one of the HTTP methods, else `other`), the route
/// template it matched (`/v1/events/{event}`, or `unmatched`) and its status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

/// How a reservation ended: `created`, `replayed`, or the problem kind that refused it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// A problem's kind (`sold-out`, `storage`, `busy`...): core's fixed set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// The figures core keeps, read from the service when Prometheus scrapes.
#[derive(Debug)]
struct CoreFigures {
    service: goticket_core::Service,
    /// The latest seat count ([`Metrics::refresh_seats`]).
    seats: Arc<SeatCache>,
    /// The latest relay status, read with it.
    relay: Arc<RelayCache>,
}

/// When the seats were last read, and the latest count read.
type SeatCache = Mutex<Option<(std::time::Instant, Option<goticket_core::SeatTotals>)>>;

/// The default relay's latest status, read with the seats.
type RelayCache = Mutex<Option<goticket_core::RelayStatus>>;

impl Collector for CoreFigures {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        encode_combiner(self.service.combiner_stats(), &mut encoder)?;
        encode_store(
            &self.service,
            self.seats.lock().unwrap_or_else(PoisonError::into_inner).and_then(|(_, s)| s),
            &mut encoder,
        )?;
        encode_relay(self.relay.lock().unwrap_or_else(PoisonError::into_inner).as_ref(), &mut encoder)
    }
}

/// The event relay's figures (the relay named `default`, whichever process runs it),
/// once read: what it has published, what it has still to publish and how old the
/// oldest of that is, whether its last batch failed, whether any relay holds the lease.
fn encode_relay(
    r: Option<&goticket_core::RelayStatus>,
    encoder: &mut DescriptorEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    let Some(r) = r else { return Ok(()) };
    let published = ConstCounter::new(r.state.published);
    let help = "Domain events the relay has published (confirmed by the broker)";
    published.encode(encoder.encode_descriptor("relay_published", help, None, published.metric_type())?)?;
    let held = r.state.lease_until.is_some_and(|u| u > goticket_core::Timestamp::now()) && r.state.owner.is_some();
    let gauges = [
        (
            "relay_backlog",
            "Committed domain events the relay has not published yet (read at most every 5 s)",
            r.backlog,
        ),
        ("relay_lag_seconds", "Age of the oldest unpublished domain event, 0 when caught up", r.lag_seconds),
        (
            "relay_failing",
            "1 while the relay's last batch failed (the broker refused or was unreachable)",
            u64::from(r.state.last_error.is_some()),
        ),
        ("relay_lease_held", "1 while some relay holds the lease", u64::from(held)),
    ];
    for (name, help, value) in gauges {
        let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
        gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
    }
    Ok(())
}

/// The combiner's figures (all zero before the first reservation starts it): its
/// counters only grow, so they are exported as they are, and the batch sizes, which
/// core counts in fixed buckets, as a histogram.
fn encode_combiner(
    s: Option<goticket_core::CombinerSnapshot>,
    encoder: &mut DescriptorEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    let s = s.unwrap_or_default();
    let counters = [
        ("combiner_batches", "Transactions the reservation combiner committed.", s.batches),
        ("combiner_requests", "Reservations the combiner answered.", s.requests),
    ];
    for (name, help, value) in counters {
        let counter = ConstCounter::new(value);
        counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
    }
    let largest = ConstGauge::new(i64::try_from(s.largest_batch).unwrap_or(i64::MAX));
    let help = "The largest batch the combiner has committed.";
    largest.encode(encoder.encode_descriptor("combiner_largest_batch", help, None, largest.metric_type())?)?;
    let bounds = goticket_core::BATCH_SIZE_BOUNDS;
    let mut buckets: Vec<(f64, u64)> = bounds.iter().zip(&s.batch_sizes).map(|(b, n)| (*b as f64, *n)).collect();
    buckets.push((f64::MAX, s.batch_sizes[bounds.len()]));
    // The count is the buckets' sum, so it always agrees with +Inf.
    let count = s.batch_sizes.iter().sum();
    let mut metric = encoder.encode_descriptor(
        "combiner_batch_size",
        "Reservations per transaction the combiner committed.",
        None,
        MetricType::Histogram,
    )?;
    metric.encode_histogram::<NoLabelSet>(s.requests as f64, count, &buckets, None)
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The store's figures: its errors by kind, every kind always listed so a rate can be
/// taken from zero; its connection waits, if it counts them; the seats held and sold
/// over every event, once they have been read.
fn encode_store(
    service: &goticket_core::Service,
    seats: Option<goticket_core::SeatTotals>,
    encoder: &mut DescriptorEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    let help = "Errors the store returned, by kind (busy, unavailable, schema, integrity, outcome-unknown, other)";
    let mut family = encoder.encode_descriptor("store_errors", help, None, MetricType::Counter)?;
    for (kind, n) in service.store_errors() {
        let labels = KindLabels { kind: kind.as_str() };
        ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
    }
    if let Some(w) = service.pool_waits() {
        let counters = [
            ("store_pool_checkouts", "Database connections handed out (SQLite: the writer connection)", w.checkouts),
            ("store_pool_timeouts", "Waits for a database connection that gave up", w.timeouts),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        let waited = ConstCounter::new(w.waited_micros as f64 / 1e6);
        let help = "Time spent waiting for database connections";
        waited.encode(encoder.encode_descriptor(
            "store_pool_wait",
            help,
            Some(&Unit::Seconds),
            waited.metric_type(),
        )?)?;
    }
    if let Some(seats) = seats {
        let gauges = [
            ("seats_held", "Seats in live holds over every event (read at most every 5 s)", seats.held),
            ("seats_sold", "Seats sold over every event (read at most every 5 s)", seats.sold),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
    }
    Ok(())
}

/// How long a seat count is reused: a flood of scrapes costs one aggregate query per
/// this long, whatever its rate.
const SEATS_FRESH_FOR: Duration = Duration::from_secs(5);

/// How long a scrape waits for the seat count before it answers with the last one.
const SEATS_READ_LIMIT: Duration = Duration::from_secs(2);

/// Every figure `/metrics` reports.
pub(super) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    problems: Family<KindLabels, Counter>,
    reservations: Family<OutcomeLabels, Counter>,
    holds_expired: Counter,
    /// The latest seat count, which [`CoreFigures`] reports.
    seats: Arc<SeatCache>,
    /// The latest relay status, likewise.
    relay: Arc<RelayCache>,
    /// Held by the one read in progress.
    reading: tokio::sync::Mutex<()>,
}

impl Metrics {
    /// The figures of a server on `service`.
    pub(super) fn new(service: goticket_core::Service) -> Self {
        let mut registry = Registry::with_prefix("goticket");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer a request, by method and route template",
            Unit::Seconds,
            latency.clone(),
        );
        let problems = Family::<KindLabels, Counter>::default();
        registry.register(
            "http_problems",
            "Problem responses by kind (storage and busy are the store's errors; the rest are refusals)",
            problems.clone(),
        );
        let reservations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "reservations",
            "Reservation requests over HTTP by outcome: created, replayed, or the kind of refusal",
            reservations.clone(),
        );
        let holds_expired = Counter::default();
        registry.register("holds_expired", "Overdue holds the background sweeper expired", holds_expired.clone());
        let seats = Arc::<SeatCache>::default();
        let relay = Arc::<RelayCache>::default();
        registry.register_collector(Box::new(CoreFigures { service, seats: seats.clone(), relay: relay.clone() }));
        Metrics {
            seats,
            relay,
            reading: tokio::sync::Mutex::default(),
            registry,
            requests,
            latency,
            problems,
            reservations,
            holds_expired,
        }
    }
}

/// The method as one of a fixed set of label values.
pub(super) fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

impl Metrics {
    fn record(&self, method: &'static str, route: String, status: u16, took: Duration, problem: Option<ProblemKind>) {
        self.requests.get_or_create(&RequestLabels { method, route: route.clone(), status }).inc();
        self.latency.get_or_create(&RouteLabels { method, route }).observe(took.as_secs_f64());
        if let Some(ProblemKind(kind)) = problem {
            self.problems.get_or_create(&KindLabels { kind }).inc();
        }
    }

    /// A reservation's outcome: `created`, `replayed`, or the kind of its refusal.
    pub(super) fn reservation(&self, outcome: &'static str) {
        self.reservations.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Holds the sweeper expired.
    pub(super) fn holds_expired(&self, n: u64) {
        self.holds_expired.inc_by(n);
    }

    /// Reads the seats held and sold from the store (as an internal admin) if the
    /// count is older than [`SEATS_FRESH_FOR`] (failed reads count), one read at a
    /// time, waiting at most [`SEATS_READ_LIMIT`]; when a read fails or another is under
    /// way, the last count stays. A slow store never makes a scrape wait.
    async fn refresh_seats(&self, service: &goticket_core::Service) {
        let cached = *self.seats.lock().unwrap_or_else(PoisonError::into_inner);
        let last = cached.and_then(|(_, seats)| seats);
        if cached.is_some_and(|(at, _)| at.elapsed() < SEATS_FRESH_FOR) {
            return;
        }
        let Ok(_reading) = self.reading.try_lock() else { return };
        let service = service.clone();
        let read = super::problem::blocking(move || {
            let admin = super::internal_admin("metrics");
            let seats = service.seat_totals(&admin)?;
            // A relay that never ran has nothing to report, and no row to read.
            let relay = service
                .relay_status(&admin, "default")
                .ok()
                .filter(|r| r.state.published > 0 || r.state.owner.is_some() || r.backlog > 0);
            Ok((seats, relay))
        });
        let seats = match tokio::time::timeout(SEATS_READ_LIMIT, read).await {
            Ok(Ok((seats, relay))) => {
                *self.relay.lock().unwrap_or_else(PoisonError::into_inner) = relay;
                Some(seats)
            }
            Ok(Err(e)) => {
                tracing::warn!("counting the seats for /metrics failed: {e:?}");
                last
            }
            Err(_) => {
                tracing::warn!("counting the seats for /metrics took over {SEATS_READ_LIMIT:?}; gave up waiting");
                last
            }
        };
        *self.seats.lock().unwrap_or_else(PoisonError::into_inner) = Some((std::time::Instant::now(), seats));
    }

    fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Counts every request for `/metrics`, labelled by the route template it matched.
pub(super) async fn track(
    State(app): State<App>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let resp = next.run(req).await;
    let problem = resp.extensions().get::<ProblemKind>().copied();
    app.metrics.record(method, route, resp.status().as_u16(), started.elapsed(), problem);
    resp
}

/// The server's figures, for Prometheus.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((
        status = 200,
        description = "Requests by method, route and status; latency histograms by route; problems by kind; \
            reservations by outcome; holds expired; the combiner's batches; store errors by kind; \
            connection waits; seats held and sold (OpenMetrics text).",
        body = String,
        content_type = "application/openmetrics-text",
    )),
)]
pub(super) async fn metrics(State(app): State<App>) -> impl IntoResponse {
    app.metrics.refresh_seats(&app.service).await;
    let body = app.metrics.render();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
}
