//! Traces over OTLP (feature `otlp`): `serve --otlp-endpoint` sends its spans to a
//! receiver on loopback, which decodes them with the OpenTelemetry project's own
//! protobuf messages (`opentelemetry-proto`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

use super::*;

/// One request a collector was sent: its path, content type and body.
type Export = (String, String, Vec<u8>);

/// A collector on 127.0.0.1: keeps every OTLP/HTTP traces request it is sent.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Export>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let got = Arc::<Mutex<Vec<Export>>>::default();
        let sink = got.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let app = axum::Router::new().fallback(
                    move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                        let sink = sink.clone();
                        async move {
                            let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                            sink.lock().expect("not poisoned").push((uri.path().to_owned(), ct, body.to_vec()));
                            // An empty ExportTraceServiceResponse: everything accepted.
                            ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
                        }
                    },
                );
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                axum::serve(listener, app).await.expect("the receiver serves");
            });
        });
        Receiver { url, got }
    }

    /// Every span received, decoded, with the resource's `service.name`.
    fn spans(&self) -> Vec<(String, Span)> {
        let got = self.got.lock().expect("not poisoned");
        let mut spans = Vec::new();
        for (path, ct, body) in got.iter() {
            assert_eq!(path, "/v1/traces", "OTLP/HTTP traces go to /v1/traces");
            assert_eq!(ct, "application/x-protobuf");
            let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("a valid OTLP protobuf");
            for resource in request.resource_spans {
                let service = resource
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
                    .unwrap_or_default();
                for scope in resource.scope_spans {
                    spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
                }
            }
        }
        spans
    }
}

fn text(v: &any_value::Value) -> Option<String> {
    match v {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Stops the server the way an orchestrator does (SIGTERM) and waits for it, so what
/// it had queued is flushed; how long the exit took.
fn stop(srv: &mut Server) -> Duration {
    let started = Instant::now();
    let status = Command::new("kill").args(["-TERM", &srv.child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let exit = srv.child.wait().expect("the server exits");
    assert!(exit.success(), "serve exits cleanly on SIGTERM: {exit:?}");
    started.elapsed()
}

fn book(srv: &Server, boss: &str, headers: &[(&str, &str)]) {
    let body = r#"{"quantity":1,"customer":"a@example.com"}"#;
    let (status, v, _) = srv.call("POST", "/v1/events/t/bookings", Some(boss), Some(body), headers);
    assert_eq!(status, 201, "{v}");
}

fn traced_server(receiver_url: &str, extra: &[&str]) -> (Db, Server, String) {
    let db = Db::new();
    let path = db.path.display().to_string();
    add_user(&path, "boss@example.com", "admin");
    let mut cmd = Command::new(BIN);
    cmd.args(["--db", &path, "serve", "--addr", "127.0.0.1:0", "--otlp-endpoint", receiver_url]).args(extra);
    // Batches leave every 100 ms instead of every 5 s.
    cmd.env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let srv = Server::spawn(cmd);
    let boss = srv.token("boss@example.com", "long enough password");
    let event = r#"{"name":"T","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":50,"price":"1 EUR","slug":"t"}"#;
    assert_eq!(srv.call("POST", "/v1/events", Some(&boss), Some(event), &[]).0, 201);
    (db, srv, boss)
}

/// A booking request is a server span named by its route template, joined to the
/// caller's trace by its `traceparent`, with the reservation and its store call as
/// descendants; with `--trace-sample-ratio 0`, only the requests whose caller asked
/// for sampling are exported.
#[test]
fn a_booking_is_traced_into_the_callers_trace() {
    let receiver = Receiver::start();
    let (_db, mut srv, boss) = traced_server(&receiver.url, &["--trace-sample-ratio", "0"]);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    book(&srv, &boss, &[("traceparent", &format!("00-{trace_id}-{caller_span}-01"))]);
    // Not sampled by the caller, and not picked by a ratio of 0: not exported.
    book(&srv, &boss, &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")]);
    book(&srv, &boss, &[]);
    // A malformed traceparent is no parent: the request is a root, so (ratio 0) not kept.
    book(&srv, &boss, &[("traceparent", "00-zz-yy-01")]);
    stop(&mut srv);

    let spans = receiver.spans();
    assert!(spans.iter().all(|(service, _)| service == "goticket"), "the resource names the service");
    let in_trace: Vec<&Span> = spans.iter().map(|(_, s)| s).filter(|s| hex(&s.trace_id) == trace_id).collect();
    assert_eq!(in_trace.len(), spans.len(), "only the sampled caller's trace is exported: {spans:#?}");
    let server = in_trace
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap_or_else(|| panic!("a server span in the caller's trace: {in_trace:#?}"));
    assert_eq!(server.name, "POST /v1/events/{event}/bookings", "named by the route template, not the path");
    assert_eq!(hex(&server.parent_span_id), caller_span, "the caller's span is the parent");
    assert_eq!(attribute(server, "http.route").as_deref(), Some("/v1/events/{event}/bookings"));
    assert_eq!(attribute(server, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(attribute(server, "http.response.status_code").as_deref(), Some("201"));
    assert!(attribute(server, "uri").is_some_and(|u| u.ends_with("/v1/events/t/bookings")));

    let child_of = |parent: &Span, name: &str| -> Span {
        let found = in_trace.iter().find(|s| s.parent_span_id == parent.span_id && s.name == name);
        (*found.unwrap_or_else(|| panic!("a {name} span under {}: {in_trace:#?}", parent.name))).clone()
    };
    let reserve = child_of(server, "reserve");
    assert_eq!(attribute(&reserve, "batch_size").as_deref(), Some("1"), "the reservation's batch size");
    let batch = child_of(&reserve, "reserve_batch");
    let write = child_of(&batch, "store.write");
    assert!(write.end_time_unix_nano >= write.start_time_unix_nano && write.start_time_unix_nano > 0);
    assert!(
        write.start_time_unix_nano >= server.start_time_unix_nano
            && write.end_time_unix_nano <= server.end_time_unix_nano,
        "the store call happened inside the request"
    );
    assert_eq!(write.status.as_ref().map_or(0, |s| s.code), 0, "a write that went through is no error");
}

/// With the default ratio every request is a trace of its own; a failing request's
/// server span is marked so only when the server failed (5xx), not for a refusal.
#[test]
fn every_request_is_traced_by_default_and_a_refusal_is_not_an_error() {
    let receiver = Receiver::start();
    let (_db, mut srv, boss) = traced_server(&receiver.url, &[]);
    book(&srv, &boss, &[]);
    let (status, _, _) = srv.call("GET", "/v1/events/nope", Some(&boss), None, &[]);
    assert_eq!(status, 404);
    let (status, _, _) = srv.call("GET", "/v1/bookings?customer=secret%40example.com", Some(&boss), None, &[]);
    assert_eq!(status, 200);
    let long = format!("/v1/events/{}", "x".repeat(2000));
    srv.call("GET", &long, Some(&boss), None, &[]);
    stop(&mut srv);
    let spans: Vec<Span> = receiver.spans().into_iter().map(|(_, s)| s).collect();
    let servers: Vec<&Span> = spans.iter().filter(|s| s.kind == SpanKind::Server as i32).collect();
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    for expected in
        ["POST /v1/auth/login", "POST /v1/events", "POST /v1/events/{event}/bookings", "GET /v1/events/{event}"]
    {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(servers.iter().all(|s| s.parent_span_id.is_empty()), "no traceparent: each request is a root");
    let mut ids: Vec<&Vec<u8>> = servers.iter().map(|s| &s.trace_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), servers.len(), "one trace per request");
    let missing = servers.iter().find(|s| s.name == "GET /v1/events/{event}").expect("the 404");
    assert_eq!(attribute(missing, "http.response.status_code").as_deref(), Some("404"));
    assert_eq!(missing.status.as_ref().map_or(0, |s| s.code), 0, "a 404 is the client's error: status unset");
    let exported = format!("{spans:?}");
    assert!(!exported.contains("secret"), "no query string is exported: {exported}");
    let paths: Vec<String> = servers.iter().filter_map(|s| attribute(s, "uri")).collect();
    assert!(paths.iter().all(|p| p.len() <= 256 + 3), "paths are clipped: {paths:?}");
    assert!(paths.iter().any(|p| p.starts_with("/v1/events/xxx") && p.ends_with("...")), "{paths:?}");
    let read = spans.iter().find(|s| s.parent_span_id == missing.span_id).expect("the 404's store read");
    assert_eq!(read.name, "store.event");
}

/// A collector that accepts connections and never answers costs traces, not
/// requests: bookings are answered as fast as ever, and the server still exits
/// within its bound on SIGTERM.
#[test]
fn a_hung_collector_slows_nothing_down() {
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let url = format!("http://{}", hung.local_addr().expect("addr"));
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        hung.set_nonblocking(true).expect("nonblocking");
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            match hung.accept() {
                Ok((conn, _)) => open.push(conn),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    let (_db, mut srv, boss) = traced_server(&url, &["--shutdown-grace", "1s"]);
    let started = Instant::now();
    for _ in 0..20 {
        book(&srv, &boss, &[]);
    }
    let booking = started.elapsed();
    assert!(booking < Duration::from_secs(30), "20 bookings took {booking:?} with the collector hung");
    let exit = stop(&mut srv);
    assert!(exit < Duration::from_secs(20), "serve took {exit:?} to exit with the collector hung");
    drop(held);
}

/// Concurrent bookings share combined batches: each batch's span is the child of one
/// request's `reserve` span and links to every other request it served, and each
/// `reserve` span records the size of the batch it was in.
#[test]
fn combined_bookings_link_their_batch() {
    let receiver = Receiver::start();
    let (_db, mut srv, boss) = traced_server(&receiver.url, &[]);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..3 {
                    book(&srv, &boss, &[]);
                }
            });
        }
    });
    stop(&mut srv);
    let spans: Vec<Span> = receiver.spans().into_iter().map(|(_, s)| s).collect();
    let reserves: Vec<&Span> = spans.iter().filter(|s| s.name == "reserve").collect();
    assert_eq!(reserves.len(), 24, "one reserve span per booking");
    let batches: Vec<&Span> = spans.iter().filter(|s| s.name == "reserve_batch").collect();
    let mut served = 0;
    for batch in &batches {
        let size: usize = attribute(batch, "batch_size").and_then(|n| n.parse().ok()).expect("a batch size");
        served += size;
        let parent = reserves.iter().find(|r| r.span_id == batch.parent_span_id).expect("a reserve span is the parent");
        assert_eq!(attribute(parent, "batch_size"), Some(size.to_string()), "the parent knows its batch's size");
        assert_eq!(batch.links.len(), size - 1, "a link to every other request served");
        for link in &batch.links {
            let other = reserves.iter().find(|r| r.span_id == link.span_id).expect("a link names a reserve span");
            assert_eq!(other.trace_id, link.trace_id);
            assert_eq!(attribute(other, "batch_size"), Some(size.to_string()));
        }
        assert!(spans.iter().any(|s| s.parent_span_id == batch.span_id && s.name == "store.write"), "its write");
    }
    assert_eq!(served, 24, "every booking was in exactly one batch");
}
