//! Logs and traces. Every request runs in a `request` span (its route template, method,
//! status and request id), and core adds a span for each reservation and each store
//! call beneath it. The log (stderr, filtered by `GOTICKET_LOG`) always gets them;
//! with `--otlp-endpoint` (feature `otlp`) they are also exported to an OpenTelemetry
//! collector over OTLP/HTTP (protobuf), sampled at `--trace-sample-ratio`, and a
//! caller's W3C `traceparent` makes a request part of the caller's trace.
//!
//! Export never slows a request down: spans queue (at most 2,048; past that they are
//! dropped and counted by the SDK) and a thread of their own sends them in batches,
//! so a slow or absent collector costs traces, not latency.

use std::time::Duration;

use axum::http::HeaderMap;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where and how much to export.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceExport {
    /// The collector's OTLP/HTTP traces URL (`.../v1/traces`).
    pub traces_url: String,
    /// The share of new traces kept, 0 to 1 (a caller's sampling decision is honoured).
    pub sample_ratio: f64,
}

impl TraceExport {
    /// Reads `--otlp-endpoint` (a collector's base URL, like `OTEL_EXPORTER_OTLP_ENDPOINT`:
    /// `http://collector:4318`; `/v1/traces` is added) and `--trace-sample-ratio`.
    pub fn from_flags(endpoint: &str, sample_ratio: &str) -> goticket_core::Result<Self> {
        let bad = |why: &str| goticket_core::Error::validation("--otlp-endpoint", format!("{endpoint:?} {why}"));
        let uri: axum::http::Uri = endpoint.trim().parse().map_err(|_| bad("is not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(
                    "is https, and this build sends OTLP over plain HTTP only: point it at a collector on this \
                     host or network (an agent or sidecar), which forwards over TLS",
                ));
            }
            _ => return Err(bad("must start with http://")),
        }
        if uri.authority().is_none_or(|a| a.host().is_empty()) {
            return Err(bad("has no host"));
        }
        if uri.query().is_some() || endpoint.contains('#') {
            return Err(bad("has a query string or fragment; give the collector's base URL"));
        }
        let authority = uri.authority().expect("checked above");
        if authority.as_str().contains('@') {
            return Err(goticket_core::Error::validation(
                "--otlp-endpoint",
                "carries a user name or password; the collector's base URL takes none (use OTEL_EXPORTER_OTLP_HEADERS)",
            ));
        }
        // The base URL, as OTEL_EXPORTER_OTLP_ENDPOINT means it; one that already names
        // the traces path is taken as it is.
        let path = uri.path().trim_end_matches('/');
        let path = path.strip_suffix("/v1/traces").unwrap_or(path);
        let base = format!("http://{authority}{path}");
        let ratio: f64 = sample_ratio.trim().parse().map_err(|_| {
            goticket_core::Error::validation("--trace-sample-ratio", format!("{sample_ratio:?} is not a number"))
        })?;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(goticket_core::Error::validation(
                "--trace-sample-ratio",
                format!("{sample_ratio} is not between 0 and 1"),
            ));
        }
        Ok(TraceExport { traces_url: format!("{base}/v1/traces"), sample_ratio: ratio })
    }
}

/// Installed logging and tracing; [`Telemetry::finish`] flushes what is queued.
pub(super) struct Telemetry {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

/// Installs the log (and, with `export`, the OTLP exporter) as the process's
/// subscriber. Call it before starting an async runtime: the exporter's HTTP client
/// runs its own. A subscriber installed already (a test's) is left in place.
pub(super) fn install(json_logs: bool, export: Option<&TraceExport>) -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GOTICKET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let logs: Boxed = if json_logs {
        Box::new(logs.json().flatten_event(true).with_filter(filter))
    } else {
        Box::new(logs.with_filter(filter))
    };
    #[cfg(feature = "otlp")]
    {
        let mut layers = vec![logs];
        let mut provider = None;
        if let Some(export) = export {
            let (traces, p) = otlp::layer(export)?;
            layers.push(traces);
            provider = Some(p);
        }
        let _ = tracing_subscriber::registry().with(layers).try_init();
        Ok(Telemetry { provider })
    }
    #[cfg(not(feature = "otlp"))]
    {
        if export.is_some() {
            anyhow::bail!(
                "--otlp-endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT): this goticket was built without the `otlp` \
                 feature; build it with `--features otlp`, or unset the endpoint"
            );
        }
        let _ = tracing_subscriber::registry().with(logs).try_init();
        Ok(Telemetry {})
    }
}

impl Telemetry {
    /// Sends the spans still queued, waiting at most `within`.
    pub(super) fn finish(self, within: Duration) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown_with_timeout(within) {
                eprintln!("goticket: warning: the last traces were not all exported: {e}");
            }
        }
        #[cfg(not(feature = "otlp"))]
        let _ = within;
    }
}

/// Makes `span` (a request's) a child of the caller's span named by the request's W3C
/// `traceparent` (and `tracestate`) header, if it names one. A malformed header is
/// ignored: the request starts a trace of its own.
pub(super) fn adopt_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
    #[cfg(feature = "otlp")]
    otlp::adopt_remote_parent(span, headers);
    #[cfg(not(feature = "otlp"))]
    let _ = (span, headers);
}

#[cfg(feature = "otlp")]
mod otlp {
    use axum::http::HeaderMap;
    use opentelemetry::propagation::{Extractor, TextMapPropagator};
    use opentelemetry::trace::TracerProvider;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::Layer;

    use super::{Boxed, TraceExport};

    pub(super) fn layer(export: &TraceExport) -> anyhow::Result<(Boxed, SdkTracerProvider)> {
        // Each export may take 10 s (OTEL_EXPORTER_OTLP_TIMEOUT) before it is given up.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(export.traces_url.clone())
            .build()
            .map_err(|e| anyhow::anyhow!("--otlp-endpoint {}: {e}", export.traces_url))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("goticket")
            .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(export.sample_ratio))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("goticket");
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_threads(false)
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
        Ok((Box::new(layer), provider))
    }

    struct Headers<'a>(&'a HeaderMap);

    /// The longest `tracestate` carried on; a longer one is dropped, so a caller
    /// cannot make every queued span hold kilobytes of its text.
    const MAX_TRACESTATE: usize = 512;

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            let value = self.0.get(key).and_then(|v| v.to_str().ok())?;
            (key != "tracestate" || value.len() <= MAX_TRACESTATE).then_some(value)
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(axum::http::HeaderName::as_str).collect()
        }
    }

    pub(super) fn adopt_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
        if headers.contains_key("traceparent") {
            let parent = TraceContextPropagator::new().extract(&Headers(headers));
            // Fails only when no exporter is installed: then there is no trace to join.
            let _ = span.set_parent(parent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_a_collector_base_url() {
        let ok = |e: &str| TraceExport::from_flags(e, "1").map(|t| t.traces_url).map_err(|e| e.to_string());
        assert_eq!(ok("http://127.0.0.1:4318").unwrap(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(ok("http://collector:4318/").unwrap(), "http://collector:4318/v1/traces");
        assert_eq!(ok(" http://c:4318/otel/ ").unwrap(), "http://c:4318/otel/v1/traces");
        assert_eq!(ok("http://c:4318/v1/traces").unwrap(), "http://c:4318/v1/traces", "not doubled");
        let secret = TraceExport::from_flags("http://user:hunter2@c:4318", "1").unwrap_err().to_string();
        assert!(secret.contains("user name or password") && !secret.contains("hunter2"), "{secret}");
        for (bad, why) in [
            ("collector:4318", "must start with http://"),
            ("https://c:4318", "plain HTTP only"),
            ("ftp://c", "must start with http://"),
            ("http://c:4318/?x=1", "query string"),
            ("http://c:4318/#x", "fragment"),
            ("http:// c", "is not a URL"),
            ("", "is not a URL"),
        ] {
            let err = ok(bad).unwrap_err();
            assert!(err.contains("--otlp-endpoint") && err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_sample_ratio_is_between_0_and_1() {
        let ratio = |r: &str| TraceExport::from_flags("http://c:4318", r).map(|t| t.sample_ratio);
        assert_eq!(ratio("0.25").unwrap(), 0.25);
        assert_eq!(ratio("0").unwrap(), 0.0);
        assert_eq!(ratio("1").unwrap(), 1.0);
        for bad in ["1.5", "-0.1", "NaN", "half", "inf"] {
            let err = ratio(bad).unwrap_err().to_string();
            assert!(err.contains("--trace-sample-ratio"), "{bad}: {err}");
        }
    }
}
