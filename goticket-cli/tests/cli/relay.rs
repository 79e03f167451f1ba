//! `goticket events relay` against the real RabbitMQ on this machine
//! (`GOTICKET_TEST_AMQP_URL`): a consumer bound to the test's own exchange receives
//! every event of a scripted flow, in order per aggregate; a relay killed with SIGKILL
//! and restarted loses nothing; a broker cut off mid-stream (a proxy between the
//! relay and the broker drops every connection) loses nothing; two relays on one
//! PostgreSQL publish each event once.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};

use super::*;

/// `on_both_stores!`, ignored without a broker as well.
macro_rules! with_broker_on_both_stores {
    ($test:ident) => {
        mod $test {
            #[test]
            #[cfg_attr(amqp_tests_skipped, ignore = "needs RabbitMQ: set GOTICKET_TEST_AMQP_URL")]
            fn sqlite() {
                super::$test(&crate::TestDb::sqlite());
            }

            #[test]
            #[cfg_attr(
                any(pg_tests_skipped, amqp_tests_skipped),
                ignore = "needs PostgreSQL and RabbitMQ: set GOTICKET_TEST_PG_URL and GOTICKET_TEST_AMQP_URL"
            )]
            fn postgres() {
                if let Some(db) = crate::TestDb::postgres() {
                    super::$test(&db);
                }
            }
        }
    };
}

/// The broker's URL, or `None` where the tests are skipped (they are then marked
/// ignored at build time; under `CI=true` a missing broker fails them).
fn broker() -> Option<String> {
    match std::env::var("GOTICKET_TEST_AMQP_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => Some("amqp://guest:guest@127.0.0.1:5672/%2f".to_owned()),
        _ => None,
    }
}

/// One received message: what a consumer orders and deduplicates by.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    id: String,
    kind: String,
    aggregate: String,
    seq: i64,
    body: Value,
}

/// A consumer of everything published to one exchange (its own queue, bound with `#`).
struct Consumer {
    rt: tokio::runtime::Runtime,
    _conn: Connection,
    stream: lapin::Consumer,
    got: Vec<Got>,
}

impl Consumer {
    fn new(url: &str, exchange: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let (conn, stream) = rt.block_on(async {
            let conn = Connection::connect(url, ConnectionProperties::default()).await.expect("the broker answers");
            let ch = conn.create_channel().await.expect("channel");
            let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
            // As the relay declares it (the same arguments, or the broker refuses one of us).
            let unrouted = format!("{exchange}.unrouted");
            ch.exchange_declare(unrouted.as_str().into(), ExchangeKind::Fanout, durable, FieldTable::default())
                .await
                .expect("alternate exchange");
            let mut args = FieldTable::default();
            args.insert("alternate-exchange".into(), AMQPValue::LongString(unrouted.as_str().into()));
            ch.exchange_declare(exchange.into(), ExchangeKind::Topic, durable, args).await.expect("exchange");
            let q = ch
                .queue_declare(
                    "".into(),
                    QueueDeclareOptions { exclusive: true, ..Default::default() },
                    FieldTable::default(),
                )
                .await
                .expect("queue");
            ch.queue_bind(
                q.name().clone(),
                exchange.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
            let stream = ch
                .basic_consume(q.name().clone(), "test".into(), BasicConsumeOptions::default(), FieldTable::default())
                .await
                .expect("consume");
            (conn, stream)
        });
        Consumer { rt, _conn: conn, stream, got: Vec::new() }
    }

    /// Receives until `done` says so or `within` runs out; returns everything so far.
    fn until(&mut self, within: Duration, done: impl Fn(&[Got]) -> bool) -> &[Got] {
        let deadline = Instant::now() + within;
        while !done(&self.got) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out after {} messages", self.got.len());
            let next = self.rt.block_on(async { tokio::time::timeout(left, self.stream.next()).await });
            let Ok(Some(Ok(d))) = next else { continue };
            let p = &d.properties;
            let header = |k: &str| p.headers().as_ref().and_then(|h| h.inner().get(k).cloned());
            let aggregate = match header("aggregate_id") {
                Some(AMQPValue::LongString(s)) => s.to_string(),
                other => panic!("aggregate_id header: {other:?}"),
            };
            let seq = match header("aggregate_seq") {
                Some(AMQPValue::LongLongInt(n)) => n,
                other => panic!("aggregate_seq header: {other:?}"),
            };
            assert_eq!(p.delivery_mode(), &Some(2), "persistent");
            assert_eq!(p.content_type().as_ref().map(|c| c.as_str()), Some("application/json"));
            let got = Got {
                id: p.message_id().as_ref().expect("a message id").to_string(),
                kind: d.routing_key.to_string(),
                aggregate,
                seq,
                body: serde_json::from_slice(&d.data).expect("JSON"),
            };
            assert_eq!(got.body["id"], got.id.as_str(), "the message id is the event's id");
            assert_eq!(got.body["type"], got.kind.as_str(), "the routing key is the event's type");
            self.got.push(got);
            self.rt.block_on(d.ack(BasicAckOptions::default())).expect("ack");
        }
        &self.got
    }
}

/// The ids of every event in the database's log, in position order.
fn all_ids(db: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = vec!["--db", db, "--format", "json", "audit", "--limit", "1000"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let out = Command::new(BIN).args(&args).env_remove("GOTICKET_DB").output().expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let page: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        ids.extend(page["items"].as_array().expect("items").iter().map(|e| s(&e["id"]).to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
}

/// Every event received at least once; each aggregate's first deliveries in sequence
/// order (a redelivery after a crash may repeat earlier ones, never skip).
fn check_delivery(got: &[Got], ids: &[String]) {
    let seen: HashSet<&str> = got.iter().map(|g| g.id.as_str()).collect();
    let missing: Vec<&String> = ids.iter().filter(|id| !seen.contains(id.as_str())).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events never arrived: {:?}",
        missing.len(),
        ids.len(),
        &missing[..missing.len().min(5)]
    );
    let mut next: HashMap<&str, i64> = HashMap::new();
    let mut first = HashSet::new();
    for g in got {
        if !first.insert(g.id.as_str()) {
            continue;
        }
        let want = next.entry(g.aggregate.as_str()).or_insert(1);
        assert_eq!(g.seq, *want, "{}: event {} arrived before its predecessors", g.aggregate, g.id);
        *want += 1;
    }
}

fn relay(db: &str, url: &str, exchange: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["--db", db, "events", "relay", "--to", url, "--exchange", exchange]).args(extra).env_remove("GOTICKET_DB");
    c
}

/// An exchange of the test's own: the SQLite and PostgreSQL runs of a test run side by
/// side in one process.
fn exchange_name(test: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("goticket.test.{test}.{}.{n}", std::process::id())
}

/// Imports `n` events (one event.created each), in one transaction.
fn import_events(db: &str, dir: &std::path::Path, tag: &str, n: usize) {
    let path = dir.join(format!("{tag}.csv"));
    let mut csv = String::from("external_id,name,starts_at,ends_at,capacity,price\n");
    for i in 0..n {
        csv.push_str(&format!("{tag}-{i},Event {i},2090-01-01T19:00:00Z,2090-01-01T22:00:00Z,10,5 EUR\n"));
    }
    std::fs::write(&path, csv).expect("write");
    let out = Command::new(BIN)
        .args(["--db", db, "import", "events"])
        .arg(&path)
        .env_remove("GOTICKET_DB")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn the_relay_publishes_a_whole_flow_in_order(db: &TestDb) {
    let Some(url) = broker() else { return };
    let exchange = exchange_name("flow");
    let mut consumer = Consumer::new(&url, &exchange);
    let run = |args: &[&str]| {
        let out =
            Command::new(BIN).args(["--db", &db.url, "--format", "json"]).args(args).env_remove("GOTICKET_DB").output();
        let out = out.expect("runs");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
    };
    run(&[
        "event",
        "create",
        "--name",
        "Relayed",
        "--starts-at",
        "2090-01-01T19:00:00Z",
        "--ends-at",
        "2090-01-01T22:00:00Z",
        "--capacity",
        "9",
        "--price",
        "5 EUR",
        "--slug",
        "relayed",
    ]);
    let a = run(&["book", "relayed", "--customer", "ann@example.com", "--qty", "2", "--hold", "10m"]);
    run(&["booking", "confirm", s(&a["code"])]);
    run(&["checkin", s(&a["tickets"][0]["secret"])]);
    let b = run(&["book", "relayed", "--customer", "bob@example.com", "--qty", "1"]);
    run(&["booking", "cancel", s(&b["code"])]);
    run(&["event", "update", "relayed", "--capacity", "12"]);
    run(&["event", "cancel", "relayed"]);

    // The URL from a secret file, as a deployment gives it.
    let secret = db.dir.path().join("relay_url");
    std::fs::write(&secret, format!("{url}\n")).expect("write");
    let out = Command::new(BIN)
        .args(["--db", &db.url, "events", "relay", "--exchange", &exchange, "--once", "--batch", "3", "--to-file"])
        .arg(&secret)
        .env_remove("GOTICKET_DB")
        .env_remove("GOTICKET_RELAY_URL")
        .output()
        .expect("runs");
    assert!(out.status.success(), "relay: {}", String::from_utf8_lossy(&out.stderr));
    let ids = all_ids(&db.url);
    assert_eq!(ids.len(), 9, "the flow's events");
    let got = consumer.until(Duration::from_secs(20), |g| g.len() >= ids.len()).to_vec();
    check_delivery(&got, &ids);
    assert_eq!(got.iter().map(|g| g.id.clone()).collect::<Vec<_>>(), ids, "each once, in the log's order");
    assert!(
        !Value::Array(got.iter().map(|g| g.body.clone()).collect()).to_string().contains(s(&a["tickets"][0]["secret"]))
    );

    // Nothing new: a second run publishes nothing, and the status says caught up.
    let out = relay(&db.url, &url, &exchange, &["--once", "--format", "json"]).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).expect("JSON")["published"], 0);
    let status = run(&["events", "status"]);
    assert_eq!(
        (status["published"].as_u64(), status["backlog"].as_u64(), status["owner"].clone()),
        (Some(9), Some(0), Value::Null)
    );

    // Bad settings are refused, naming the flag (and never quoting a secret file).
    let bad = db.dir.path().join("bad_url");
    std::fs::write(&bad, "http://user:s3kr1t@x\n").expect("write");
    let (secret, bad) = (secret.display().to_string(), bad.display().to_string());
    for (args, flag) in [
        (&["--to-file", bad.as_str(), "--once"][..], "--to-file"),
        (&["--to", url.as_str(), "--to-file", secret.as_str(), "--once"], "--to"),
        (&["--once"], "--to"),
        (&["--to", "http://x", "--once"], "--to"),
        (&["--to", url.as_str(), "--lease", "2s", "--timeout", "5s"], "--timeout"),
        (&["--to", url.as_str(), "--batch", "0"], "--batch"),
    ] {
        let out = Command::new(BIN)
            .args(["--db", &db.url, "events", "relay"])
            .args(args)
            .env_remove("GOTICKET_RELAY_URL")
            .env_remove("GOTICKET_RELAY_URL_FILE")
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {err}");
        assert!(err.contains(flag) && !err.contains("s3kr1t"), "{args:?}: {err}");
    }
}
with_broker_on_both_stores!(the_relay_publishes_a_whole_flow_in_order);

fn a_killed_relay_resumes_and_loses_nothing(db: &TestDb) {
    let Some(url) = broker() else { return };
    let exchange = exchange_name("kill");
    let mut consumer = Consumer::new(&url, &exchange);
    import_events(&db.url, db.dir.path(), "k", 2000);
    let mut first = relay(&db.url, &url, &exchange, &["--batch", "20", "--lease", "5s", "--timeout", "2s"])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    consumer.until(Duration::from_secs(30), |g| g.len() >= 200);
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let status =
        Command::new(BIN).args(["--db", &db.url, "--format", "json", "events", "status"]).output().expect("runs");
    let status: Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert!(status["backlog"].as_u64().unwrap_or(0) > 0, "killed mid-stream: {status}");
    // The dead relay's lease runs out by itself; the next relay then takes over.
    let mut second = relay(&db.url, &url, &exchange, &["--batch", "20", "--lease", "5s", "--timeout", "2s"])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let ids = all_ids(&db.url);
    let got = consumer
        .until(Duration::from_secs(60), |g| g.iter().map(|x| x.id.as_str()).collect::<HashSet<_>>().len() >= ids.len())
        .to_vec();
    let _ = second.kill();
    let _ = second.wait();
    check_delivery(&got, &ids);
    let dupes = got.len() - ids.len();
    assert!(dupes <= 20, "at most the batch in flight goes out twice, got {dupes} duplicates");
}
with_broker_on_both_stores!(a_killed_relay_resumes_and_loses_nothing);

/// A TCP proxy to the broker that can cut every connection and refuse new ones.
struct Proxy {
    addr: std::net::SocketAddr,
    down: Arc<AtomicBool>,
    live: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn to(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let down = Arc::new(AtomicBool::new(false));
        let live = Arc::new(std::sync::Mutex::new(Vec::<TcpStream>::new()));
        let (d, l, target) = (down.clone(), live.clone(), target.to_owned());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                let mut live = l.lock().expect("not poisoned");
                live.push(client.try_clone().expect("clone"));
                live.push(server.try_clone().expect("clone"));
                for (mut from, mut to) in
                    [(client.try_clone().expect("clone"), server.try_clone().expect("clone")), (server, client)]
                {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, down, live }
    }

    /// Every connection through the proxy is closed, and new ones are refused.
    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for s in self.live.lock().expect("not poisoned").drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

fn a_broker_outage_loses_nothing(db: &TestDb) {
    let Some(url) = broker() else { return };
    let exchange = exchange_name("outage");
    let mut consumer = Consumer::new(&url, &exchange);
    let target = url.split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap_or("127.0.0.1:5672").to_owned();
    let proxy = Proxy::to(&target);
    let via = url.replace(&target, &proxy.addr.to_string());
    import_events(&db.url, db.dir.path(), "o1", 300);
    let mut r = relay(&db.url, &via, &exchange, &["--batch", "20", "--lease", "5s", "--timeout", "2s", "--poll", "1s"])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    consumer.until(Duration::from_secs(30), |g| g.len() >= 100);
    // The broker goes away, and events keep coming while it is.
    proxy.cut();
    import_events(&db.url, db.dir.path(), "o2", 1200);
    std::thread::sleep(Duration::from_secs(3));
    let status =
        Command::new(BIN).args(["--db", &db.url, "--format", "json", "events", "status"]).output().expect("runs");
    let status: Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert!(status["last_error"].is_string(), "the outage shows in the status: {status}");
    assert!(status["backlog"].as_u64().unwrap_or(0) > 0, "{status}");
    proxy.restore();
    let ids = all_ids(&db.url);
    let got = consumer
        .until(Duration::from_secs(90), |g| g.iter().map(|x| x.id.as_str()).collect::<HashSet<_>>().len() >= ids.len())
        .to_vec();
    let _ = r.kill();
    let _ = r.wait();
    check_delivery(&got, &ids);
}
with_broker_on_both_stores!(a_broker_outage_loses_nothing);

/// Two relays on one PostgreSQL: one holds the lease and publishes, the other stands
/// by; every event goes out once. When the first stops (SIGTERM gives the lease up),
/// the second takes over at the cursor.
#[test]
#[cfg_attr(
    any(pg_tests_skipped, amqp_tests_skipped),
    ignore = "needs PostgreSQL and RabbitMQ: set GOTICKET_TEST_PG_URL and GOTICKET_TEST_AMQP_URL"
)]
fn two_relays_on_one_postgres_publish_each_event_once() {
    let Some(db) = TestDb::postgres() else { return };
    let Some(url) = broker() else { return };
    let exchange = exchange_name("two");
    let mut consumer = Consumer::new(&url, &exchange);
    let args = ["--batch", "25", "--lease", "15s", "--timeout", "2s", "--poll", "1s"];
    let mut a = relay(&db.url, &url, &exchange, &args).stderr(Stdio::null()).spawn().expect("spawn");
    let mut b = relay(&db.url, &url, &exchange, &args).stderr(Stdio::null()).spawn().expect("spawn");
    import_events(&db.url, db.dir.path(), "t1", 600);
    consumer.until(Duration::from_secs(60), |g| g.len() >= 600);
    std::thread::sleep(Duration::from_secs(2));
    let first = consumer.got.clone();
    let unique: HashSet<&str> = first.iter().map(|g| g.id.as_str()).collect();
    assert_eq!((first.len(), unique.len()), (600, 600), "each event once");

    // Stop whichever holds the lease; the other takes over.
    let status =
        Command::new(BIN).args(["--db", &db.url, "--format", "json", "events", "status"]).output().expect("runs");
    let owner =
        serde_json::from_slice::<Value>(&status.stdout).expect("JSON")["owner"].as_str().unwrap_or_default().to_owned();
    let pid_of = |c: &std::process::Child| format!(":{}:", c.id());
    let (holder, other) = if owner.contains(&pid_of(&a)) { (&mut a, &mut b) } else { (&mut b, &mut a) };
    assert!(owner.contains(&pid_of(holder)), "one of the two holds the lease: {owner}");
    let term = Command::new("kill").args(["-TERM", &holder.id().to_string()]).status().expect("kill");
    assert!(term.success());
    holder.wait().expect("stopped");
    import_events(&db.url, db.dir.path(), "t2", 300);
    let ids = all_ids(&db.url);
    let got = consumer.until(Duration::from_secs(60), |g| g.len() >= 900).to_vec();
    let _ = other.kill();
    let _ = other.wait();
    check_delivery(&got, &ids);
    assert_eq!(got.len(), 900, "nothing twice: the lease was given up, not lost");
}

/// `serve --relay`: the server's own relay publishes what its requests change, and a
/// clean stop (SIGTERM) gives the lease up.
fn serve_runs_the_relay_in_process(db: &TestDb) {
    use std::io::BufRead;
    let Some(url) = broker() else { return };
    let exchange = exchange_name("serve");
    let mut consumer = Consumer::new(&url, &exchange);
    let mut child = Command::new(BIN)
        .args(["--db", &db.url, "serve", "--addr", "127.0.0.1:0", "--relay", &url, "--relay-exchange", &exchange])
        .env("GOTICKET_JWT_SECRET", "0123456789abcdef0123456789abcdef-relay")
        .env_remove("GOTICKET_DB")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let base = loop {
        let line = lines.next().expect("the server printed its address").expect("readable");
        if let Some(addr) = line.strip_prefix("goticket: listening on ") {
            break addr.to_owned();
        }
    };
    // The server's log, for the message if it does not stop cleanly.
    let log = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().expect("not poisoned").push(line);
        }
    });
    let out = Command::new(BIN)
        .args(["--db", &db.url, "event", "create", "--name", "Served", "--starts-at", "2090-01-01T19:00:00Z"])
        .args(["--ends-at", "2090-01-01T22:00:00Z", "--capacity", "3", "--price", "1 EUR", "--slug", "served"])
        .env_remove("GOTICKET_DB")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = consumer.until(Duration::from_secs(20), |g| !g.is_empty()).to_vec();
    assert_eq!(got[0].kind, "event.created");
    assert_eq!(ureq::get(&format!("{base}/healthz")).call().map(|r| r.status()).ok(), Some(200));
    // /metrics says so too (its store figures are read at most every 5 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = ureq::get(&format!("{base}/metrics")).call().expect("/metrics").into_string().expect("text");
        if text.lines().any(|l| l == "goticket_relay_published_total 1") {
            assert!(text.lines().any(|l| l == "goticket_relay_backlog 0"), "{text}");
            assert!(text.lines().any(|l| l == "goticket_relay_lease_held 1"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "the relay's figures never showed: {text}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(term.success());
    let exit = child.wait().expect("exits");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        exit.success(),
        "a clean stop, not {exit:?}; the server said:\n{}",
        log.lock().expect("not poisoned").join("\n")
    );
    let status = Command::new(BIN)
        .args(["--db", &db.url, "--format", "json", "events", "status"])
        .env_remove("GOTICKET_DB")
        .output()
        .expect("runs");
    let status: Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!((status["owner"].clone(), status["published"].as_u64()), (Value::Null, Some(1)), "{status}");
}
with_broker_on_both_stores!(serve_runs_the_relay_in_process);
