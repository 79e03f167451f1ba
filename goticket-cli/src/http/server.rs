//! The accept loop: every resource a client can hold is bounded. A connection must
//! send its headers (and, kept alive, its next request) within the header timeout; a
//! write that makes no progress times out; at most `max_connections` are open, and
//! past that new ones are closed at once (the limit sits below the process's file
//! descriptors, so the listener never runs out of them); on shutdown in-flight
//! requests get a grace period, then the process goes anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The bounds of [`run`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// For the headers of a request, and for an idle kept-alive connection.
    pub(super) header_timeout: Duration,
    /// For a write to make progress.
    pub(super) write_timeout: Duration,
    /// Connections open at once.
    pub(super) max_connections: usize,
    /// For in-flight requests to finish after a shutdown signal.
    pub(super) shutdown_grace: Duration,
}

/// File descriptors kept free of connections: the database's connections, the log,
/// files an import opens, and the one `accept` needs to refuse a connection.
const RESERVED_FDS: u64 = 64;

/// The most connections the process's file-descriptor limit leaves room for, at most
/// 10,000 (and at least 1).
pub(super) fn default_max_connections() -> usize {
    #[cfg(unix)]
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    #[cfg(not(unix))]
    let soft: Option<u64> = None;
    let room = soft.map_or(10_000, |n| n.saturating_sub(RESERVED_FDS));
    usize::try_from(room.clamp(1, 10_000)).unwrap_or(10_000)
}

/// Counts what the loop turned away, for `/metrics`.
#[derive(Debug, Default)]
pub(super) struct Turned {
    /// Connections closed at once because `max_connections` were open.
    pub(super) over_limit: AtomicU64,
    /// Failed `accept` calls (out of file descriptors, say).
    pub(super) accept_errors: AtomicU64,
}

/// Serves `app` on `listener` until `shutdown` completes, then drains for at most the
/// grace period. Returns how many connections were still open when it gave up on them.
pub(super) async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    turned: Arc<Turned>,
    shutdown: impl Future<Output = ()>,
) -> usize {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut last_warning: Option<std::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of descriptors or memory: say so (at most once a second) and
                // give the connections that are open a moment to finish.
                turned.accept_errors.fetch_add(1, Ordering::Relaxed);
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                    tracing::warn!("accept failed: {e}");
                    last_warning = Some(std::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            turned.over_limit.fetch_add(1, Ordering::Relaxed);
            if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                tracing::warn!("{} connections are open, the most allowed; closing new ones", limits.max_connections);
                last_warning = Some(std::time::Instant::now());
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut io = tokio_io_timeout::TimeoutStream::new(stream);
        io.set_write_timeout(Some(limits.write_timeout));
        let conn = http.serve_connection(TokioIo::new(Box::pin(io)), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A timed-out or reset connection is the client's business, not an error.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    let open_at_signal = graceful.count();
    tokio::select! {
        () = graceful.shutdown() => 0,
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(
                "{open_at_signal} connections were open at shutdown; some still are after {} s, closing them",
                limits.shutdown_grace.as_secs_f64()
            );
            open_at_signal
        }
    }
}
