//! The server under attack: floods of logins, connections that never finish their
//! headers, a shutdown while a slow client hangs on, and the small defects the probe
//! found (issue "Hardening"). Each of these failed before its fix.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::*;

/// The server's resident memory now and at its peak, in MiB (`/proc`).
fn memory_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts `goticket serve` through `sh`, so the test can set the file limit first.
fn start_in_shell(db: &str, prefix: &str, extra: &[&str]) -> Server {
    let mut script = format!("{prefix} exec \"$0\" --db \"$1\" serve --addr 127.0.0.1:0");
    for e in extra {
        script.push_str(&format!(" '{e}'"));
    }
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script, BIN, db]);
    Server::spawn(cmd)
}

fn host_of(srv: &Server) -> String {
    srv.base.trim_start_matches("http://").to_owned()
}

/// A raw request on a fresh connection, with a deadline; the status, or why none.
fn raw_get(host: &str, path: &str, within: Duration) -> Result<u16, String> {
    let mut c = TcpStream::connect(host).map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Some(within)).map_err(|e| e.to_string())?;
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = String::new();
    c.read_to_string(&mut answer).map_err(|e| format!("read: {e}"))?;
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status line in {answer:?}"))
}

/// 300 logins at once for unknown emails (each an argon2id run of 19 MiB) keep the
/// server's memory bounded: hashing runs two at a time, a short queue waits, the rest
/// are told 503 with Retry-After, and a real user still logs in afterwards.
#[test]
fn a_login_flood_keeps_memory_bounded() {
    let db = Db::new();
    let path = db.path.display().to_string();
    add_user(&path, "ann@example.com", "customer");
    let srv = Server::start_with(&path, &["--hash-concurrency", "2"]);
    let pid = srv.child.id();
    let (before, _) = memory_mib(pid);
    let url = format!("{}/v1/auth/login", srv.base);
    let start = std::sync::Arc::new(std::sync::Barrier::new(300));
    let threads: Vec<_> = (0..300)
        .map(|i| {
            let (url, start) = (url.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let body = format!(r#"{{"email":"nobody{i}@example.com","password":"not a real password"}}"#);
                match ureq::post(&url).set("Content-Type", "application/json").send_string(&body) {
                    Err(ureq::Error::Status(status, r)) => (status, r.header("retry-after").map(str::to_owned)),
                    Ok(r) => (r.status(), None),
                    Err(e) => panic!("login {i}: {e}"),
                }
            })
        })
        .collect();
    let answers: Vec<(u16, Option<String>)> = threads.into_iter().map(|t| t.join().expect("client")).collect();
    let (after, peak) = memory_mib(pid);
    let busy = answers.iter().filter(|(s, _)| *s == 503).count();
    let denied = answers.iter().filter(|(s, _)| *s == 401).count();
    assert_eq!(busy + denied, 300, "every login is refused as unknown or busy: {answers:?}");
    assert!(busy > 0, "a flood is told to come back");
    assert!(answers.iter().filter(|(s, _)| *s == 503).all(|(_, r)| r.as_deref() == Some("1")), "Retry-After: 1");
    eprintln!(
        "login flood: {denied} checked, {busy} busy; memory {before} MiB before, peak {peak} MiB, {after} MiB after"
    );
    // Unbounded, 300 concurrent hashes took 5.6 GB; bounded to 2, each working in one
    // of two reused 19 MiB blocks, the peak is the server's own size plus those.
    assert!(peak < before + 100, "peak {peak} MiB (started at {before} MiB)");
    srv.token("ann@example.com", "long enough password");
    assert_eq!(srv.call("GET", "/healthz", None, None, &[]).0, 200);
}

/// With a file limit of 256, 300 connections that never finish their headers do not
/// stop the server: they are closed after the header timeout, connections past the cap
/// are closed at once, and a normal client is answered.
#[test]
fn slow_headers_are_cut_and_connections_are_capped() {
    let db = Db::new();
    let path = db.path.display().to_string();
    let srv = start_in_shell(&path, "ulimit -n 256 &&", &["--header-timeout", "2s"]);
    let host = host_of(&srv);
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = Vec::new();
    for _ in 0..300 {
        match TcpStream::connect(&host) {
            Ok(mut c) => {
                let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
                slow.push(c);
            }
            Err(e) => panic!("the listener stopped accepting: {e}"),
        }
    }
    // A normal client gets through within the header timeout (plus slack for a busy
    // machine), however many slow ones hold on.
    let mut answered = None;
    while started.elapsed() < Duration::from_secs(8) {
        if let Ok(200) = raw_get(&host, "/healthz", Duration::from_secs(2)) {
            answered = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let answered = answered.unwrap_or_else(|| panic!("/healthz did not answer within 8 s: {:?}", srv.log()));
    // Every slow connection was closed by the server: reading gives EOF (or a reset).
    for c in &mut slow {
        c.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut buf = [0u8; 512];
        match c.read(&mut buf) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("a slow connection was still open after the header timeout: {e}"),
        }
    }
    eprintln!("healthz answered after {answered:?} with 300 slow connections under a limit of 256 files");
    assert!(!srv.log().iter().any(|l| l.contains("panicked")), "{:?}", srv.log());
}

/// SIGTERM while a client is in the middle of its headers (with a header timeout far
/// longer than the grace): the process exits within the grace period.
#[test]
fn sigterm_exits_within_the_grace_period_while_a_slow_client_hangs_on() {
    let db = Db::new();
    let mut srv =
        Server::start_with(&db.path.display().to_string(), &["--header-timeout", "60s", "--shutdown-grace", "2s"]);
    let host = host_of(&srv);
    let mut slow = TcpStream::connect(&host).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").expect("half a request");
    assert_eq!(raw_get(&host, "/healthz", Duration::from_secs(5)), Ok(200));
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &srv.child.id().to_string()]).status().expect("kill").success());
    let deadline = Duration::from_secs(2) + Duration::from_millis(2500);
    let status = loop {
        if let Some(status) = srv.child.try_wait().expect("wait") {
            break status;
        }
        assert!(sent.elapsed() < deadline, "still running {:?} after SIGTERM", sent.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("exited {:?} after SIGTERM", sent.elapsed());
    assert!(status.success(), "{status:?}");
    drop(slow);
}

/// The defects the probe found in the API's edges, each answered properly now.
#[test]
fn the_edges_the_probe_found() {
    let db = Db::new();
    let path = db.path.display().to_string();
    add_user(&path, "boss@example.com", "admin");
    let srv = Server::start(&path);
    let boss = srv.token("boss@example.com", "long enough password");

    // A lowercase scheme is a bearer token too.
    let lower = [("Authorization", format!("bearer {boss}"))];
    let resp = ureq::get(&format!("{}/v1/users", srv.base)).set(lower[0].0, &lower[0].1).call();
    assert_eq!(resp.map(|r| r.status()).unwrap_or_else(|e| panic!("{e}")), 200);

    // Money is the same text here as everywhere else ("20 EUR"), or the structured
    // form; what a bad body is told names no Rust type.
    let event = |price: &str| {
        format!(
            r#"{{"name":"Priced","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":5,"price":{price}}}"#
        )
    };
    for (price, minor) in [(r#""20 EUR""#, 2000), (r#""12.50 EUR""#, 1250), (r#"{"amount_minor":700,"currency":"EUR"}"#, 700)] {
        let (status, body, _) = srv.call("POST", "/v1/events", Some(&boss), Some(&event(price)), &[]);
        assert_eq!(status, 201, "{price}: {body}");
        assert_eq!(body["price"]["amount_minor"], minor, "{price}");
    }
    for (bad, says) in [
        (event(r#""20 ZZZ""#), "ZZZ"),
        (event("20"), "20.00 EUR"),
        (event(r#""twenty""#), "price"),
        (r#"{"name":"x","capacity":"many"}"#.to_owned(), "a whole number"),
    ] {
        let (status, body, _) = srv.call("POST", "/v1/events", Some(&boss), Some(&bad), &[]);
        let detail = body["detail"].as_str().unwrap_or_default().to_owned();
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(detail.contains(says), "{bad}: {detail}");
        for rust in ["u32", "i64", "struct", "Money", "Repr", "Option"] {
            assert!(!detail.contains(rust), "{bad}: the answer names {rust}: {detail}");
        }
    }

    // A customer who may not create events is told so, whatever the body says.
    srv.call("POST", "/v1/auth/register", None, Some(r#"{"email":"cu@example.com","password":"long enough password"}"#), &[]);
    let customer = srv.token("cu@example.com", "long enough password");
    let (status, body, _) = srv.call("POST", "/v1/events", Some(&customer), Some(r#"{"name":5}"#), &[]);
    assert_eq!(status, 403, "forbidden before invalid: {body}");

    // A refused token and a misspelt query parameter are explained in words.
    let (status, body, _) = srv.call("GET", "/v1/events", Some("abc.def.ghi"), None, &[]);
    assert_eq!(status, 401);
    assert!(s(&body["detail"]).contains("not a token this server issued"), "{body}");
    let (status, body, _) = srv.call("GET", "/v1/events?limt=5", Some(&boss), None, &[]);
    assert_eq!(status, 422, "{body}");
    let detail = s(&body["detail"]).to_owned();
    assert!(detail.starts_with("invalid limt: is not a query parameter"), "{detail}");
    assert!(!detail.contains("Failed to deserialize") && !detail.contains("InvalidToken"), "{detail}");

    // A body past the limit is 413, not 422.
    let huge = format!(r#"{{"name":"{}"}}"#, "x".repeat(100_000));
    assert_problem(srv.call("POST", "/v1/events", Some(&boss), Some(&huge), &[]), 413, "payload-too-large");

    // A request id too long or with odd characters is replaced, not logged.
    let long = "a".repeat(5000);
    let resp = ureq::get(&format!("{}/healthz", srv.base)).set("x-request-id", &long).call().expect("ok");
    let echoed = resp.header("x-request-id").expect("an id").to_owned();
    assert!(echoed.len() <= 64 && echoed != long, "{echoed}");
    let odd = "abc def\"<script>";
    let resp = ureq::get(&format!("{}/healthz", srv.base)).set("x-request-id", odd).call().expect("ok");
    assert_ne!(resp.header("x-request-id"), Some(odd), "characters a log line should not carry");
    let resp = ureq::get(&format!("{}/healthz", srv.base)).set("x-request-id", "trace-42.a:b_c").call().expect("ok");
    assert_eq!(resp.header("x-request-id"), Some("trace-42.a:b_c"), "a sane one is kept");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!srv.log().iter().any(|l| l.contains(&long[..100])), "the long id never reached the log");

    // The password rule is 12 characters, in the server and in the document.
    assert_problem(
        srv.call("POST", "/v1/auth/register", None, Some(r#"{"email":"x@example.com","password":"elevenchars"}"#), &[]),
        422,
        "validation",
    );
    let doc = srv.openapi();
    assert_eq!(
        doc["components"]["schemas"]["Password"]["minLength"], 12,
        "{}",
        doc["components"]["schemas"]["Password"]
    );

    // Look-alike and invisible emails: the same account, or refused.
    let pw = "correct horse battery";
    let reg = |email: &str| format!(r#"{{"email":"{email}","password":"{pw}"}}"#);
    assert_eq!(srv.call("POST", "/v1/auth/register", None, Some(&reg("cust1@example.com")), &[]).0, 201);
    assert_problem(
        srv.call("POST", "/v1/auth/register", None, Some(&reg("ｃｕｓｔ１@example.com")), &[]),
        409,
        "conflict",
    );
    assert_problem(
        srv.call("POST", "/v1/auth/register", None, Some(&reg("cust1@example.com\\u200b")), &[]),
        422,
        "validation",
    );

    // The last admin cannot demote themself.
    assert_problem(
        srv.call("PATCH", "/v1/users/boss@example.com", Some(&boss), Some(r#"{"role":"customer"}"#), &[]),
        409,
        "conflict",
    );

    // PATCH: null clears, empty text is refused, absent leaves alone.
    let event = r#"{"name":"E","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":2,"price":{"amount_minor":100,"currency":"EUR"},"slug":"e","venue":"Hall","max_per_customer":2,"sales_start":"2029-01-01T00:00:00Z","sales_end":"2090-01-01T18:00:00Z"}"#;
    assert_eq!(srv.call("POST", "/v1/events", Some(&boss), Some(event), &[]).0, 201);
    let (status, e, _) = srv.call("GET", "/v1/events/e", Some(&boss), None, &[]);
    assert_eq!(status, 200);
    let id = s(&e["id"]).to_owned();
    for (field, empty) in
        [("slug", r#""""#), ("max_per_customer", r#""""#), ("sales_start", r#""""#), ("venue", r#"" ""#)]
    {
        let body = format!(r#"{{"{field}":{empty}}}"#);
        let got = srv.call("PATCH", &format!("/v1/events/{id}"), Some(&boss), Some(&body), &[]);
        if field == "max_per_customer" {
            assert_problem(got, 422, "validation"); // a number field given text
        } else {
            assert_eq!(s(&got.1["errors"][0]["field"]), field, "{}", got.1);
            assert_problem(got, 422, "validation");
        }
    }
    let clear = r#"{"slug":null,"max_per_customer":null,"sales_start":null,"sales_end":null,"venue":null}"#;
    let (status, e, _) = srv.call("PATCH", &format!("/v1/events/{id}"), Some(&boss), Some(clear), &[]);
    assert_eq!(status, 200, "{e}");
    for field in ["slug", "max_per_customer", "sales_start", "sales_end", "venue"] {
        assert!(e[field].is_null(), "{field} cleared: {e}");
    }
    assert_eq!(s(&e["name"]), "E", "absent fields stay");
    // A JSON array is no body: serde would take it field by field (`["x"]` renaming it).
    for array in [r#"["admin"]"#, r#" ["x",1]"#, "[]", "\"E\"", "7"] {
        assert_problem(srv.call("PATCH", &format!("/v1/events/{id}"), Some(&boss), Some(array), &[]), 422, "validation");
    }
    assert_problem(srv.call("POST", "/v1/auth/login", None, Some(r#"["boss@example.com","x"]"#), &[]), 422, "validation");
    assert_problem(
        srv.call("PATCH", &format!("/v1/events/{id}"), Some(&boss), Some(r#"{"name":null}"#), &[]),
        422,
        "validation",
    );
    // A sales window that opens after the event ends is refused.
    let late = r#"{"sales_start":"2090-01-02T00:00:00Z"}"#;
    assert_problem(srv.call("PATCH", &format!("/v1/events/{id}"), Some(&boss), Some(late), &[]), 422, "validation");
    // A price past the bound is refused, so reports keep adding up.
    let dear = r#"{"price":{"amount_minor":9223372036854775807,"currency":"EUR"}}"#;
    assert_problem(srv.call("PATCH", &format!("/v1/events/{id}"), Some(&boss), Some(dear), &[]), 422, "validation");

    // A scanned booking cannot be cancelled.
    let (status, b, _) = srv.call(
        "POST",
        &format!("/v1/events/{id}/bookings"),
        Some(&boss),
        Some(r#"{"quantity":1,"customer":"ann@example.com"}"#),
        &[],
    );
    assert_eq!(status, 201, "{b}");
    let checkin = format!(r#"{{"secret":"{}"}}"#, s(&b["tickets"][0]["secret"]));
    assert_eq!(srv.call("POST", "/v1/checkin", Some(&boss), Some(&checkin), &[]).0, 200);
    let code = s(&b["code"]).to_owned();
    assert_problem(
        srv.call("POST", &format!("/v1/bookings/{code}/cancel"), Some(&boss), None, &[]),
        409,
        "invalid-transition",
    );

    // A storage failure is a 500 that names no SQL and no internal detail.
    let raw = rusqlite::Connection::open(&db.path).expect("open");
    raw.execute("UPDATE events SET currency = 'ZZZ'", []).expect("corrupt a row behind the server's back");
    let got = srv.call("GET", &format!("/v1/events/{id}"), Some(&boss), None, &[]);
    let detail = s(&got.1["detail"]).to_owned();
    assert_problem(got, 500, "storage");
    for leak in ["ZZZ", "stored", "sqlite", "SELECT", "currency"] {
        assert!(!detail.contains(leak), "the 500 says {leak:?}: {detail}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(srv.log().iter().any(|l| l.contains("stored price is invalid")), "the log has the real error");
}

impl Server {
    /// What the server has written to stderr so far.
    fn log(&self) -> Vec<String> {
        self.log.lock().expect("not poisoned").clone()
    }
}

/// A port another program holds is named in one line, with the address.
#[test]
fn a_busy_port_is_named() {
    let db = Db::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = Command::new(BIN)
        .args(["--db", &db.path.display().to_string(), "serve", "--addr", &addr])
        .env("GOTICKET_JWT_SECRET", SECRET)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains(&format!("cannot listen on {addr}: another program is using that port")), "{err}");
    drop(taken);
}
