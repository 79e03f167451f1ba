//! `goticket events relay` (and `serve --relay`): the outbox's domain events to
//! RabbitMQ. The rules (the lease, the cursor, what is published next) are core's
//! `Service::relay_step`; this module is the broker's side ([`Publisher`], with
//! [`Amqp`] the one implementation) and the loop that paces the steps.
//!
//! Every event goes to a durable topic exchange with its type as the routing key
//! (`booking.confirmed`...), persistent, with its id as the message id, and the batch
//! counts as published only when the broker has confirmed every message in it. A
//! message no queue is bound for goes to the exchange's alternate exchange
//! (`NAME.unrouted`, into a durable queue of that name), never nowhere. At
//! least once: after a crash a batch may go out again, with the same message ids.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use goticket_core::{DomainEvent, Principal, RelayLease, RelayStep, Service};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

/// Where a relay publishes: one batch at a time, returning once every event of it is
/// confirmed (or failing, in which case none of it counts as published).
pub trait Publisher {
    /// Publishes `events` in order and waits for the broker's confirms.
    fn publish(&mut self, events: &[DomainEvent]) -> Result<(), String>;
}

/// RabbitMQ over AMQP 0-9-1, with publisher confirms. A failed publish drops the
/// connection, so the next one connects again.
pub struct Amqp {
    url: String,
    exchange: String,
    timeout: Duration,
    rt: tokio::runtime::Runtime,
    link: Option<(Connection, Channel)>,
}

impl Amqp {
    /// A publisher to `url` (amqp:// or amqps://), into the topic exchange `exchange`;
    /// each connect and each batch must finish within `timeout`.
    pub fn new(url: &str, exchange: &str, timeout: Duration) -> anyhow::Result<Self> {
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            return Err(goticket_core::Error::validation("--to", "must be an amqp:// or amqps:// URL").into());
        }
        if exchange.is_empty() || exchange.len() > 255 {
            return Err(goticket_core::Error::validation("--exchange", "must be 1 to 255 bytes").into());
        }
        // One worker thread: the connection's own tasks (heartbeats, confirms) run
        // between batches too.
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        Ok(Amqp { url: url.to_owned(), exchange: exchange.to_owned(), timeout, rt, link: None })
    }

    /// The URL with its password masked, for messages.
    fn shown(&self) -> String {
        crate::commands::redact(&self.url)
    }

    fn channel(&mut self) -> Result<Channel, String> {
        if let Some((conn, ch)) = &self.link
            && conn.status().connected()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        self.link = None;
        let (url, exchange, timeout) = (self.url.clone(), self.exchange.clone(), self.timeout);
        let shown = self.shown();
        let link = self.rt.block_on(async move {
            let connect = async {
                let props = ConnectionProperties::default().with_connection_name("goticket-relay".into());
                let conn = Connection::connect(&url, props).await?;
                let ch = conn.create_channel().await?;
                ch.confirm_select(ConfirmSelectOptions::default()).await?;
                // A message no queue is bound for would be confirmed and dropped: the
                // exchange's alternate exchange keeps it, in a durable queue.
                let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
                let unrouted = format!("{exchange}.unrouted");
                ch.exchange_declare(unrouted.as_str().into(), ExchangeKind::Fanout, durable, FieldTable::default())
                    .await?;
                let queue = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
                ch.queue_declare(unrouted.as_str().into(), queue, FieldTable::default()).await?;
                ch.queue_bind(
                    unrouted.as_str().into(),
                    unrouted.as_str().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
                ch.exchange_declare(
                    exchange.as_str().into(),
                    ExchangeKind::Topic,
                    durable,
                    exchange_arguments(&exchange),
                )
                .await?;
                Ok::<_, lapin::Error>((conn, ch))
            };
            match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(link)) => Ok(link),
                Ok(Err(e)) => Err(format!("cannot reach the broker at {shown}: {e}")),
                Err(_) => Err(format!("the broker at {shown} did not answer within {}s", timeout.as_secs())),
            }
        })?;
        let ch = link.1.clone();
        self.link = Some(link);
        Ok(ch)
    }
}

impl std::fmt::Debug for Amqp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Amqp").field("url", &self.shown()).field("exchange", &self.exchange).finish_non_exhaustive()
    }
}

/// The events exchange's arguments: its alternate exchange, `NAME.unrouted` (a consumer
/// declaring the exchange must give the same).
pub fn exchange_arguments(exchange: &str) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("alternate-exchange".into(), AMQPValue::LongString(format!("{exchange}.unrouted").as_str().into()));
    args
}

/// The message a domain event becomes: its JSON, and what a consumer routes, orders
/// and deduplicates by without parsing it.
fn message(e: &DomainEvent) -> Result<(Vec<u8>, BasicProperties), String> {
    let body = serde_json::to_vec(e).map_err(|err| format!("event {}: {err}", e.id))?;
    let mut headers = FieldTable::default();
    headers.insert("aggregate_type".into(), AMQPValue::LongString(e.aggregate_type.as_str().into()));
    headers.insert("aggregate_id".into(), AMQPValue::LongString(e.aggregate_id.as_str().into()));
    headers.insert("aggregate_seq".into(), AMQPValue::LongLongInt(i64::try_from(e.aggregate_seq).unwrap_or(i64::MAX)));
    headers.insert("schema_version".into(), AMQPValue::LongUInt(e.schema_version));
    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(e.id.to_string().into())
        .with_type(e.kind.as_str().into())
        .with_app_id("goticket".into())
        .with_timestamp(u64::try_from(e.occurred_at.as_second()).unwrap_or(0))
        .with_headers(headers);
    Ok((body, props))
}

impl Publisher for Amqp {
    fn publish(&mut self, events: &[DomainEvent]) -> Result<(), String> {
        let ch = self.channel()?;
        let messages = events.iter().map(message).collect::<Result<Vec<_>, _>>()?;
        let (exchange, timeout) = (self.exchange.clone(), self.timeout);
        let kinds: Vec<&'static str> = events.iter().map(|e| e.kind.as_str()).collect();
        let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
        let outcome = self.rt.block_on(async move {
            let run = async {
                let mut confirms = Vec::with_capacity(messages.len());
                for ((body, props), kind) in messages.into_iter().zip(&kinds) {
                    let confirm = ch
                        .basic_publish(
                            exchange.as_str().into(),
                            (*kind).into(),
                            BasicPublishOptions::default(),
                            &body,
                            props,
                        )
                        .await
                        .map_err(|e| format!("publishing: {e}"))?;
                    confirms.push(confirm);
                }
                for (confirm, id) in confirms.into_iter().zip(&ids) {
                    let c = confirm.await.map_err(|e| format!("waiting for the broker's confirm: {e}"))?;
                    if !c.is_ack() {
                        return Err(format!("the broker refused event {id} (nack)"));
                    }
                }
                Ok(())
            };
            match tokio::time::timeout(timeout, run).await {
                Ok(r) => r,
                Err(_) => Err(format!("the broker did not confirm within {}s", timeout.as_secs())),
            }
        });
        if outcome.is_err() {
            self.link = None;
        }
        outcome
    }
}

/// How a relay loop runs.
#[derive(Debug, Clone)]
pub struct Pace {
    /// Events per batch.
    pub batch: u32,
    /// How long to wait when there is nothing to publish, or another relay holds the
    /// lease.
    pub poll: Duration,
    /// Stop once caught up (or on the first failure, or when another relay holds the
    /// lease) instead of running until stopped.
    pub once: bool,
}

/// This process's name as a lease owner: host, process id and a random part (two
/// relays in one process, or a restarted process with a reused pid, differ).
pub fn owner_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let mut r = [0u8; 4];
    goticket_core::Entropy::fill(&goticket_core::OsEntropy, &mut r);
    let tag: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}:{}:{tag}", if host.is_empty() { "host" } else { &host }, std::process::id())
}

/// Runs relay steps until `stop` is set (or, with `pace.once`, until caught up), then
/// gives the lease up. Failures are retried with a growing pause (up to 30 s); a store
/// error counts as one. Progress goes to stderr, one line per change of state.
pub fn run(
    service: &Service,
    p: &Principal,
    lease: &RelayLease,
    publisher: &mut dyn Publisher,
    pace: &Pace,
    stop: &AtomicBool,
) -> anyhow::Result<u64> {
    let mut published = 0u64;
    let mut pause = pace.poll;
    let mut said = String::new();
    let mut say = |line: String| {
        if line != said {
            eprintln!("goticket: relay: {line}");
            said = line;
        }
    };
    let outcome = loop {
        if stop.load(Ordering::SeqCst) {
            break Ok(published);
        }
        let step = service.relay_step(p, lease, pace.batch, &mut |events| publisher.publish(events));
        let wait = match step {
            Ok(RelayStep::Published { count }) => {
                published += count as u64;
                pause = pace.poll;
                say("publishing".to_owned());
                continue;
            }
            Ok(RelayStep::Idle) => {
                // Caught up only when nothing committed is left: on PostgreSQL a batch
                // stops below the oldest running transaction, so a step can find nothing
                // yet while events wait.
                let left = service.relay_status(p, &lease.name).map(|s| s.backlog).unwrap_or(0);
                if left == 0 {
                    say(format!("caught up ({published} published)"));
                    if pace.once {
                        break Ok(published);
                    }
                } else {
                    say(format!("{left} events wait for older transactions to end"));
                }
                if left > 0 { pace.poll.min(Duration::from_millis(200)) } else { pace.poll }
            }
            Ok(RelayStep::Standby { holder, until }) => {
                if pace.once {
                    break Err(anyhow::anyhow!("another relay ({holder}) holds the lease until {until}"));
                }
                say(format!("standing by: {holder} holds the lease until {until}"));
                pace.poll
            }
            Ok(RelayStep::LostLease) => {
                say("the lease ran out while publishing and another relay took it; standing by".to_owned());
                pace.poll
            }
            Ok(RelayStep::Failed { error }) => {
                if pace.once {
                    break Err(anyhow::anyhow!("{error}"));
                }
                say(format!("{error}; retrying"));
                pause = (pause * 2).clamp(pace.poll, Duration::from_secs(30));
                pause
            }
            Err(e) => {
                if pace.once {
                    break Err(e.into());
                }
                say(format!("{e}; retrying"));
                pause = (pause * 2).clamp(pace.poll, Duration::from_secs(30));
                pause
            }
        };
        sleep_unless(stop, wait);
    };
    if let Err(e) = service.relay_release(p, lease) {
        eprintln!("goticket: relay: could not give the lease up ({e}); it runs out by itself");
    }
    outcome
}

/// Sleeps `d`, waking early when `stop` is set.
fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = std::time::Instant::now() + d;
    while !stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// A flag set by SIGTERM or SIGINT, for a relay running in the foreground.
pub fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new().name("relay-signals".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        });
        flag.store(true, Ordering::SeqCst);
    })?;
    Ok(stop)
}
