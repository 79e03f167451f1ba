//! `/metrics`: request, latency, booking and combiner figures in the Prometheus text
//! format, counted as requests go by.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::App;

/// Upper bounds (seconds) of the request-latency histogram's buckets.
const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// What `/metrics` reports, counted as requests go by.
#[derive(Default)]
pub(super) struct Metrics {
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    micros: AtomicU64,
    pub(super) bookings: AtomicU64,
    pub(super) refusals: AtomicU64,
    pub(super) holds_expired: AtomicU64,
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
        let _ = writeln!(out, "# HELP goticket_holds_expired_total Overdue holds the background sweeper expired.");
        let _ = writeln!(out, "# TYPE goticket_holds_expired_total counter");
        let _ = writeln!(out, "goticket_holds_expired_total {}", get(&self.holds_expired));
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
pub(super) async fn track(
    State(app): State<App>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    app.metrics.record(resp.status().as_u16(), started.elapsed());
    resp
}

/// The server's figures, for Prometheus.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((
        status = 200,
        description = "Requests by status class, a latency histogram, bookings, refusals and the combiner's batches.",
        body = String,
        content_type = "text/plain",
    )),
)]
pub(super) async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let body = app.metrics.render(app.service.combiner_stats());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
