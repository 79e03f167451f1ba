//! The CLI through the real binary: every command, the JSON shapes scripts rely on,
//! the exit codes, bad input, and many OS processes booking one event.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_goticket");

struct Db {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Db {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cli.db");
        Db { _dir: dir, path }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--db").arg(&self.path).args(args).env_remove("GOTICKET_DB");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("the binary runs")
    }

    /// Runs with `--format json`, expects success, parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{args:?} printed no single JSON document ({e}): {}", String::from_utf8_lossy(&out.stdout))
        })
    }

    /// Expects the exit code; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: stdout {} stderr {err}",
            String::from_utf8_lossy(&out.stdout)
        );
        err
    }

    /// Creates an event from defaults overridden by `extra` flag/value pairs.
    fn event(&self, extra: &[&str]) -> Value {
        let mut fields = vec![
            ("--name", "Jazz night"),
            ("--starts-at", "2090-03-01T19:30:00+01:00"),
            ("--ends-at", "2090-03-01T23:00:00Z"),
            ("--capacity", "10"),
            ("--price", "12.50 EUR"),
        ];
        for pair in extra.chunks(2) {
            fields.retain(|(flag, _)| *flag != pair[0]);
            fields.push((pair[0], pair[1]));
        }
        let mut args = vec!["event", "create"];
        args.extend(fields.iter().flat_map(|(f, v)| [*f, *v]));
        self.json(&args)
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[test]
fn event_create_show_and_json_shape() {
    let db = Db::new();
    let e = db.event(&["--slug", "jazz", "--venue", "Blue Room", "--max-per-customer", "4"]);
    for field in
        ["id", "slug", "name", "starts_at", "ends_at", "capacity", "held", "sold", "available", "price", "status"]
    {
        assert!(e.get(field).is_some(), "event JSON lacks {field}: {e}");
    }
    assert_eq!(e["price"], serde_json::json!({"amount_minor": 1250, "currency": "EUR"}));
    assert_eq!(e["starts_at"], "2090-03-01T18:30:00Z", "stored in UTC");
    assert_eq!(
        (e["capacity"].as_u64(), e["available"].as_u64(), e["status"].as_str()),
        (Some(10), Some(10), Some("scheduled"))
    );
    let by_slug = db.json(&["event", "show", "jazz"]);
    let by_id = db.json(&["event", "show", s(&e["id"])]);
    assert_eq!(by_slug, e);
    assert_eq!(by_id, e);
    let table = db.run(&["event", "show", "jazz"]);
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains("Blue Room"));
}

#[test]
fn event_list_filters_and_pages() {
    let db = Db::new();
    for (i, price) in ["5 EUR", "10 EUR", "15 EUR", "20 EUR", "25 EUR"].iter().enumerate() {
        let day = format!("2090-04-0{}T19:00:00Z", i + 1);
        let end = format!("2090-04-0{}T22:00:00Z", i + 1);
        db.json(&[
            "event",
            "create",
            "--name",
            &format!("E{i}"),
            "--starts-at",
            &day,
            "--ends-at",
            &end,
            "--capacity",
            "5",
            "--price",
            price,
        ]);
    }
    let names =
        |v: &Value| v["items"].as_array().expect("items").iter().map(|e| s(&e["name"]).to_owned()).collect::<Vec<_>>();
    let page1 = db.json(&["event", "list", "--limit", "2"]);
    assert_eq!(names(&page1), ["E0", "E1"]);
    let cursor = s(&page1["next_cursor"]).to_owned();
    let page2 = db.json(&["event", "list", "--limit", "2", "--cursor", &cursor]);
    assert_eq!(names(&page2), ["E2", "E3"]);
    let last = db.json(&["event", "list", "--limit", "2", "--offset", "4"]);
    assert_eq!(names(&last), ["E4"]);
    assert!(last["next_cursor"].is_null());
    let ranged = db.json(&["event", "list", "--from", "2090-04-02T00:00:00Z", "--to", "2090-04-04T00:00:00Z"]);
    assert_eq!(names(&ranged), ["E1", "E2"]);
    let priced = db.json(&["event", "list", "--min-price", "10 EUR", "--max-price", "20.00 EUR"]);
    assert_eq!(names(&priced), ["E1", "E2", "E3"]);
    db.json(&["event", "cancel", s(&page1["items"][0]["id"])]);
    assert_eq!(names(&db.json(&["event", "list", "--status", "cancelled"])), ["E0"]);
    assert_eq!(db.json(&["event", "list", "--status", "scheduled"])["items"].as_array().map(Vec::len), Some(4));
    db.fails(&["event", "list", "--cursor", "garbage"], 5);
    db.fails(&["event", "list", "--limit", "0"], 5);
    db.fails(&["event", "list", "--status", "done"], 5);
    db.fails(&["event", "list", "--offset", "1", "--cursor", &cursor], 2);
}

/// Tables fit the terminal (80 columns, or 80 when it reports 0) without breaking an
/// id or a timestamp; piped output is tab-separated, one line per record.
#[test]
fn tables_fit_the_terminal_and_pipes_get_tsv() {
    let db = Db::new();
    let long = db.event(&["--name", "A rather long name for a late jazz night with guests", "--slug", "jazz"]);
    db.event(&["--description", "tab\there\nand a new line"]);
    let id = s(&long["id"]).to_owned();
    for columns in ["80", "0"] {
        let out = db.cmd(&["--format", "table", "event", "list"]).env("COLUMNS", columns).output().expect("runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "COLUMNS={columns}: {} wide: {line}", line.chars().count());
        }
        assert!(text.contains(&id), "the id is never broken: {text}");
        assert!(text.contains("2090-03-01 18:30Z"), "timestamps to the minute: {text}");
    }
    let wide = db.cmd(&["--format", "table", "event", "list"]).env("COLUMNS", "200").output().expect("runs");
    assert!(String::from_utf8_lossy(&wide.stdout).contains("available"), "a wide terminal keeps the counters");
    // Piped, with no --format: a header and one tab-separated line per event.
    let out = db.run(&["event", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("id\texternal_id\tslug\tname\t"), "{text}");
    assert!(!text.contains('│') && !text.contains("shown"), "no box drawing, no prose: {text}");
    let description = lines[0].split('\t').position(|h| h == "description").expect("a description column");
    assert!(lines.iter().any(|l| l.split('\t').nth(description) == Some("tab\\there\\nand a new line")), "{text}");
    let refused = db.run(&["--format", "tsv", "export", "events"]);
    assert_eq!(refused.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--output-format"));
    let specific = db.run(&["--format", "tsv", "export", "events", "--output-format", "csv"]);
    assert!(specific.status.success(), "the specific flag wins: {}", String::from_utf8_lossy(&specific.stderr));
    let bare = db.run(&["event"]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bare.stderr).starts_with("Create, list"), "help as clap shows it");
}

/// Completions for three shells and a man page, generated from the command itself.
#[test]
fn completions_and_man_page_are_generated() {
    let db = Db::new();
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef goticket"), ("fish", "complete -c goticket")] {
        let out = db.run(&["completions", shell]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}");
        assert!(text.contains(marker) && text.contains("import"), "{shell}: {}", &text[..text.len().min(300)]);
    }
    let bad = db.run(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
    let man = db.run(&["man"]);
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(man.status.success() && text.contains(".TH goticket 1") && text.contains("export"), "{text}");
    assert!(!db.path.exists(), "neither opens a database");
}

/// A start in the past is a typo until said otherwise: refused on create and on a
/// change of the start (naming the flag that allows it), taken with --allow-past, and
/// imports of history are not asked.
#[test]
fn a_start_in_the_past_needs_allow_past() {
    let db = Db::new();
    let past = ["--starts-at", "2020-01-01T19:00:00Z", "--ends-at", "2020-01-01T22:00:00Z"];
    let mut args = vec!["event", "create", "--name", "Old", "--capacity", "5", "--price", "1 EUR"];
    args.extend(past);
    let out = db.run(&args);
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--starts-at") && err.contains("in the past") && err.contains("--allow-past"), "{err}");
    args.push("--allow-past");
    let old = db.json(&args);
    assert_eq!(s(&old["starts_at"]), "2020-01-01T19:00:00Z");
    let e = db.event(&[]);
    let id = s(&e["id"]).to_owned();
    let back =
        db.run(&["event", "update", &id, "--starts-at", "2020-01-01T18:00:00Z", "--ends-at", "2090-03-01T23:00:00Z"]);
    assert_eq!(back.status.code(), Some(5), "{}", String::from_utf8_lossy(&back.stderr));
    db.json(&["event", "update", &id, "--capacity", "20"]);
    let history = db.path.with_file_name("history.csv");
    let rows = "external_id,name,starts_at,ends_at,capacity,price\nh1,Then,2019-05-01T19:00:00Z,2019-05-01T22:00:00Z,9,3 EUR\n";
    std::fs::write(&history, rows).expect("write");
    db.json(&["import", "events", &history.display().to_string()]);
}

/// One voice for errors: a usage error (clap's) and a refused command (ours) both
/// start `goticket: error:`; usage is exit 2, and no colour codes reach a pipe.
#[test]
fn usage_and_command_errors_share_one_prefix() {
    let db = Db::new();
    let usage = db.run(&["event", "lst"]);
    let text = String::from_utf8_lossy(&usage.stderr);
    assert_eq!(usage.status.code(), Some(2));
    assert!(text.starts_with("goticket: error: unrecognized subcommand 'lst'"), "{text}");
    assert!(!text.contains('\u{1b}'), "no escape codes in a pipe: {text:?}");
    let refused = db.run(&["event", "show", "nope"]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&refused.stderr).starts_with("goticket: error: "));
    let help = db.run(&["event", "--help"]);
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("Usage: goticket event"));
}

#[test]
fn csv_output_has_a_header_and_one_row_per_item() {
    let db = Db::new();
    db.event(&["--slug", "a"]);
    db.event(&["--slug", "b", "--name", "Comma, in name"]);
    let out = db.run(&["--format", "csv", "event", "list"]);
    assert!(out.status.success());
    let mut r = csv::Reader::from_reader(&out.stdout[..]);
    let headers = r.headers().expect("header").clone();
    assert_eq!(&headers[0], "id");
    assert!(headers.iter().any(|h| h == "available"));
    let rows: Vec<csv::StringRecord> = r.records().collect::<Result<_, _>>().expect("valid CSV");
    assert_eq!(rows.len(), 2);
    let name = headers.iter().position(|h| h == "name").expect("a name column");
    assert!(rows.iter().any(|row| &row[name] == "Comma, in name"));
}

#[test]
fn event_update_and_cancel() {
    let db = Db::new();
    db.event(&["--slug", "gig"]);
    let up = db.json(&["event", "update", "gig", "--capacity", "20", "--venue", "Hall", "--name", "Bigger gig"]);
    assert_eq!((up["capacity"].as_u64(), s(&up["venue"]), s(&up["name"])), (Some(20), "Hall", "Bigger gig"));
    let cleared = db.json(&["event", "update", "gig", "--clear", "venue"]);
    assert!(cleared["venue"].is_null());
    db.json(&["book", "gig", "--customer", "ann@example.com", "--qty", "5"]);
    let err = db.fails(&["event", "update", "gig", "--capacity", "4"], 4);
    assert!(err.contains("capacity cannot go below the 5 seats"), "{err}");
    db.fails(&["event", "update", "gig"], 5);
    db.fails(&["event", "update", "gig", "--ends-at", "2000-01-01T00:00:00Z"], 5);
    let c = db.json(&["event", "cancel", "gig"]);
    assert_eq!((s(&c["status"]), c["sold"].as_u64()), ("cancelled", Some(0)));
    db.fails(&["event", "cancel", "gig"], 4);
    db.fails(&["event", "update", "gig", "--name", "x"], 4);
    db.fails(&["book", "gig", "--customer", "bob@example.com"], 4);
}

#[test]
fn book_hold_confirm_cancel_and_booking_json_shape() {
    let db = Db::new();
    db.event(&["--slug", "gig"]);
    let sale = db.json(&["book", "gig", "--customer", "Ann@Example.com", "--qty", "2"]);
    for field in ["id", "code", "event_id", "customer", "quantity", "status", "expires_at", "tickets"] {
        assert!(sale.get(field).is_some(), "booking JSON lacks {field}: {sale}");
    }
    assert_eq!((s(&sale["status"]), s(&sale["customer"])), ("confirmed", "ann@example.com"));
    assert!(sale["expires_at"].is_null());
    let tickets = sale["tickets"].as_array().expect("tickets");
    assert_eq!(tickets.len(), 2);
    assert!(tickets.iter().all(|t| s(&t["secret"]).len() == 26));
    let hold = db.json(&["book", "gig", "--customer", "bob@example.com", "--hold", "15m"]);
    assert_eq!(s(&hold["status"]), "held");
    assert!(hold["expires_at"].is_string());
    let code = s(&hold["code"]);
    assert_eq!(db.json(&["booking", "show", code])["status"], "held");
    assert_eq!(
        db.json(&["booking", "show", &code.to_lowercase().replace('-', "")])["code"],
        code,
        "codes are forgiving"
    );
    assert_eq!(db.json(&["event", "show", "gig"])["held"], 1);
    assert_eq!(db.json(&["booking", "confirm", code])["status"], "confirmed");
    db.fails(&["booking", "confirm", code], 4);
    assert_eq!(db.json(&["booking", "cancel", code])["status"], "cancelled");
    let e = db.json(&["event", "show", "gig"]);
    assert_eq!((e["held"].as_u64(), e["sold"].as_u64(), e["available"].as_u64()), (Some(0), Some(2), Some(8)));
}

#[test]
fn idempotency_key_replays_instead_of_booking_twice() {
    let db = Db::new();
    db.event(&["--slug", "gig"]);
    let args = ["book", "gig", "--customer", "ann@example.com", "--qty", "2", "--idempotency-key", "order-7"];
    let first = db.json(&args);
    let again = db.json(&args);
    assert_eq!(first["code"], again["code"]);
    assert_eq!((first["replayed"].as_bool(), again["replayed"].as_bool()), (Some(false), Some(true)));
    assert_eq!(db.json(&["event", "show", "gig"])["sold"], 2);
    let err =
        db.fails(&["book", "gig", "--customer", "ann@example.com", "--qty", "3", "--idempotency-key", "order-7"], 4);
    assert!(err.contains("idempotency key"), "{err}");
}

#[test]
fn booking_list_filters() {
    let db = Db::new();
    db.event(&["--slug", "a"]);
    db.event(&["--slug", "b"]);
    db.json(&["book", "a", "--customer", "ann@example.com"]);
    db.json(&["book", "a", "--customer", "bob@example.com", "--hold", "10m"]);
    db.json(&["book", "b", "--customer", "ann@example.com", "--qty", "3"]);
    let count = |args: &[&str]| {
        let mut all = vec!["booking", "list"];
        all.extend_from_slice(args);
        db.json(&all)["items"].as_array().expect("items").len()
    };
    assert_eq!(count(&[]), 3);
    assert_eq!(count(&["--event", "a"]), 2);
    assert_eq!(count(&["--customer", "ann@example.com"]), 2);
    assert_eq!(count(&["--status", "held"]), 1);
    assert_eq!(count(&["--event", "b", "--status", "confirmed"]), 1);
    let page = db.json(&["booking", "list", "--limit", "2"]);
    let next = db.json(&["booking", "list", "--limit", "2", "--cursor", s(&page["next_cursor"])]);
    assert_eq!(next["items"].as_array().map(Vec::len), Some(1));
    // --as: a customer sees only their own bookings.
    let mine = db.json(&["--as", "bob@example.com", "booking", "list"]);
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1));
    db.fails(&["--as", "bob@example.com", "booking", "list", "--customer", "ann@example.com"], 6);
}

#[test]
fn an_expired_hold_cannot_be_confirmed_and_the_sweeper_tidies() {
    let db = Db::new();
    db.event(&["--slug", "gig", "--capacity", "2"]);
    let hold = db.json(&["book", "gig", "--customer", "ann@example.com", "--qty", "2", "--hold", "1s"]);
    db.fails(&["book", "gig", "--customer", "bob@example.com"], 4);
    std::thread::sleep(std::time::Duration::from_millis(1300));
    assert_eq!(db.json(&["booking", "show", s(&hold["code"])])["status"], "expired");
    assert_eq!(db.json(&["event", "show", "gig"])["held"], 0, "reads never count an overdue hold");
    let err = db.fails(&["booking", "confirm", s(&hold["code"])], 4);
    assert!(err.contains("cannot confirm a booking that is expired"), "{err}");
    assert_eq!(db.json(&["holds", "expire"])["expired"], 1);
    assert_eq!(db.json(&["holds", "expire"])["expired"], 0);
    db.json(&["book", "gig", "--customer", "bob@example.com", "--qty", "2"]);
}

#[test]
fn checkin_once_then_refused_with_the_time() {
    let db = Db::new();
    db.event(&["--slug", "gig"]);
    let b = db.json(&["book", "gig", "--customer", "ann@example.com"]);
    let secret = s(&b["tickets"][0]["secret"]).to_owned();
    let c = db.json(&["checkin", &secret]);
    assert_eq!(c["booking_code"], b["code"]);
    let err = db.fails(&["checkin", &secret], 4);
    assert!(err.contains(&format!("already checked in at {}", s(&c["checked_in_at"]))), "{err}");
    db.fails(&["checkin", "not-a-secret"], 5);
    db.fails(&["checkin", "00000000000000000000000000"], 3);
    let shown = db.json(&["booking", "show", s(&b["code"])]);
    assert!(shown["tickets"][0]["checked_in_at"].is_string());
}

#[test]
fn report_sales() {
    let db = Db::new();
    db.event(&["--slug", "gig"]);
    let b = db.json(&["book", "gig", "--customer", "ann@example.com", "--qty", "3"]);
    db.json(&["book", "gig", "--customer", "bob@example.com", "--hold", "10m"]);
    db.json(&["checkin", s(&b["tickets"][0]["secret"])]);
    let r = db.json(&["report", "sales", "--event", "gig"]);
    let row = &r["items"][0];
    assert_eq!((row["sold"].as_u64(), row["held"].as_u64(), row["checked_in"].as_u64()), (Some(3), Some(1), Some(1)));
    assert_eq!(row["revenue"], serde_json::json!({"amount_minor": 3750, "currency": "EUR"}));
    assert_eq!(db.json(&["report", "sales"])["items"].as_array().map(Vec::len), Some(1));
    db.fails(&["--as", "ann@example.com", "report", "sales"], 6);
}

#[test]
fn bad_input_exit_codes_and_one_line_errors() {
    let db = Db::new();
    let create = |over: &[(&str, &str)]| {
        let mut args: Vec<String> = vec!["event".into(), "create".into()];
        let mut fields = vec![
            ("--name", "Gig"),
            ("--starts-at", "2090-01-01T19:00:00Z"),
            ("--ends-at", "2090-01-01T22:00:00Z"),
            ("--capacity", "5"),
            ("--price", "10 EUR"),
        ];
        for (k, v) in over {
            fields.retain(|(f, _)| f != k);
            fields.push((k, v));
        }
        for (k, v) in fields {
            args.push(k.into());
            args.push(v.into());
        }
        args
    };
    let fails = |over: &[(&str, &str)], code: i32| {
        let args = create(over);
        db.fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), code)
    };
    let err = fails(&[("--starts-at", "next tuesday")], 5);
    assert!(err.starts_with("goticket: error: invalid --starts-at:"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(fails(&[("--price", "-5.00 EUR")], 5).contains("negative"));
    assert!(fails(&[("--price", "5.001 EUR")], 5).contains("decimal places"));
    assert!(fails(&[("--capacity", "0")], 5).contains("--capacity"));
    assert!(fails(&[("--capacity", "lots")], 5).contains("--capacity"));
    assert!(fails(&[("--ends-at", "2090-01-01T18:00:00Z")], 5).contains("invalid --ends-at: must be after starts_at"));
    assert!(fails(&[("--name", "   ")], 5).contains("--name"));
    // Nothing half-written: no event exists after all those refusals.
    assert_eq!(db.json(&["event", "list"])["items"].as_array().map(Vec::len), Some(0));

    db.fails(&["event", "create", "--name", "x"], 2);
    db.fails(&["frobnicate"], 2);
    db.fails(&["--format", "yaml", "event", "list"], 2);
    assert!(db.fails(&["event", "show", "no-such-event"], 3).contains("event not found"));
    db.fails(&["book", "no-such-event", "--customer", "a@example.com"], 3);
    db.fails(&["booking", "show", "AAAA-BBBB-CCCC"], 3);
    db.fails(&["booking", "show", "nope"], 5);
    db.fails(&["book", "gig", "--customer", "not-an-email"], 5);
    let args = create(&[("--slug", "gig")]);
    assert!(db.run(&args.iter().map(String::as_str).collect::<Vec<_>>()).status.success());
    db.fails(&["book", "gig", "--customer", "a@example.com", "--qty", "101"], 5);
    db.fails(&["book", "gig", "--customer", "a@example.com", "--hold", "forever"], 5);
    let err = db.fails(&["book", "gig", "--customer", "a@example.com", "--qty", "6"], 4);
    assert!(err.contains("sold out: requested 6, 5 left"), "{err}");
    db.fails(&["--as", "a@example.com", "book", "gig", "--customer", "b@example.com"], 6);
    db.fails(&["--as", "a@example.com", "event", "cancel", "gig"], 6);
    db.fails(&["--as", "a@example.com", "holds", "expire"], 6);
    db.fails(&["--as", "nobody", "event", "list"], 5);
}

#[test]
fn customer_as_flag_books_for_self() {
    let db = Db::new();
    db.event(&["--slug", "gig"]);
    let b = db.json(&["--as", "Cat@Example.com", "book", "gig", "--qty", "2"]);
    assert_eq!(b["customer"], "cat@example.com");
    db.json(&["--as", "cat@example.com", "booking", "cancel", s(&b["code"])]);
    db.fails(&["--as", "dan@example.com", "booking", "show", s(&b["code"])], 6);
}

#[test]
fn gotticket_db_env_selects_the_database() {
    let db = Db::new();
    let url = format!("sqlite:{}", db.path.display());
    let out = Command::new(BIN)
        .args(["--format", "json", "event", "create", "--name", "Env", "--starts-at", "2090-01-01T19:00:00Z"])
        .args(["--ends-at", "2090-01-01T22:00:00Z", "--capacity", "5", "--price", "1 EUR", "--slug", "env"])
        .env("GOTICKET_DB", &url)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(db.json(&["event", "show", "env"])["name"], "Env");
}

/// `--db-file` (and `GOTICKET_DB_FILE`): the URL from a mounted secret. Bad files are
/// refused naming the flag and the path, and no message ever quotes the file, which
/// holds a password.
#[test]
fn the_database_url_can_come_from_a_file() {
    let db = Db::new();
    let dir = tempfile::tempdir().expect("dir");
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let url = file("url", &format!("sqlite:{}\n", db.path.display()));
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(BIN);
        c.args(args).env_remove("GOTICKET_DB").env_remove("GOTICKET_DB_FILE").current_dir(dir.path());
        c.envs(env.iter().copied());
        c.output().expect("runs")
    };
    let create = ["event", "create", "--name", "File", "--starts-at", "2090-01-01T19:00:00Z"];
    let rest = ["--ends-at", "2090-01-01T22:00:00Z", "--capacity", "5", "--price", "1 EUR", "--slug", "file"];
    let out = run(&[&["--db-file", &url][..], &create, &rest].concat(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(db.json(&["event", "show", "file"])["name"], "File", "written where the file says");
    let out = run(&["--format", "json", "event", "show", "file"], &[("GOTICKET_DB_FILE", &url)]);
    assert!(out.status.success(), "GOTICKET_DB_FILE: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.path().join("goticket.db").exists(), "the default database was never opened");

    let out = run(&["--db-file", &url, "--db", "other.db", "event", "list"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "--db and --db-file together: {err}");
    assert!(err.contains("not both"), "{err}");
    // An image's GOTICKET_DB default gives way to the secret.
    let out =
        run(&["--format", "json", "event", "show", "file"], &[("GOTICKET_DB", "other.db"), ("GOTICKET_DB_FILE", &url)]);
    assert!(out.status.success(), "GOTICKET_DB_FILE over GOTICKET_DB: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.path().join("other.db").exists(), "GOTICKET_DB's database was never opened");

    let secret = "postgres://goticket:s3kr1t-passw0rd@127.0.0.1:1/goticket";
    for (name, bytes, want) in [
        ("empty", b"\n".to_vec(), "is empty"),
        ("two", format!("{secret}\n{secret}\n").into_bytes(), "more than one line"),
        ("big", format!("{secret}{}", " ".repeat(70 * 1024)).into_bytes(), "larger than 64 KiB"),
        ("binary", [secret.as_bytes(), &[0xff, 0xfe]].concat(), "not a UTF-8 text file"),
        // Not a URL goticket knows: it would be taken for a SQLite path, and quoted.
        ("scheme", secret.replacen("postgres", "POSTGRES", 1).into_bytes(), "does not hold a postgres://"),
        (
            "typo",
            format!("{secret}?sslmode=require").replacen("postgres:", "postgress:", 1).into_bytes(),
            "does not hold",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        let path = path.display().to_string();
        let out = run(&["--db-file", &path, "event", "list"], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{name}: {err}");
        assert!(err.contains("--db-file") && err.contains(&path), "{name}: names the flag and the file: {err}");
        assert!(err.contains(want), "{name}: says what is wrong: {err}");
        assert!(!err.contains("s3kr1t"), "{name}: never quotes the file: {err}");
    }
    let out = run(&["--db-file", &file("pg", secret), "event", "list"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "an unreachable server: {err}");
    assert!(err.contains("goticket:***@") && !err.contains("s3kr1t"), "the password is masked: {err}");
    let out = run(&["--db-file", "missing", "event", "list"], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--db-file: opening missing"));
    // A FIFO would block the read forever: refused before it is opened.
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let out = run(&["--db-file", &fifo.display().to_string(), "event", "list"], &[]);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
}

/// `events status` and `events prune` without a broker: the backlog counts what was
/// written; a prune keeps what no relay published; bad ages name the flag.
#[test]
fn events_status_and_prune_from_the_cli() {
    let db = Db::new();
    db.event(&["--slug", "pr"]);
    db.json(&["book", "pr", "--customer", "ann@example.com", "--qty", "1"]);
    let status = db.json(&["events", "status"]);
    assert_eq!((status["backlog"].as_u64(), status["published"].as_u64()), (Some(2), Some(0)), "{status}");
    assert!(status["oldest_unpublished"].is_string(), "{status}");
    assert_eq!(db.json(&["events", "prune", "--older-than", "1h"])["pruned"], 0, "nothing published yet");
    assert_eq!(db.json(&["events", "prune", "--older-than", "1h", "--unpublished-too"])["pruned"], 0, "too new");
    for bad in ["30m", "soon"] {
        let err = db.fails(&["events", "prune", "--older-than", bad], 5);
        assert!(err.contains("--older-than"), "{err}");
    }
    let err = db.fails(&["--as", "ann@example.com", "events", "prune", "--older-than", "1d"], 6);
    assert!(err.contains("admin"), "{err}");
}

#[test]
fn migrate_reports_success_and_is_repeatable() {
    let db = Db::new();
    assert_eq!(db.json(&["migrate"])["migrated"], true);
    assert_eq!(db.json(&["migrate"])["migrated"], true);
}

#[test]
fn demo_sells_out_without_overselling() {
    let db = Db::new();
    let out = db.json(&["demo", "--capacity", "150", "--buyers", "6"]);
    let e = &out["event"];
    assert_eq!((e["sold"].as_u64(), e["held"].as_u64(), e["available"].as_u64()), (Some(150), Some(0), Some(0)));
    assert!(out["bookings"]["items"].as_array().is_some_and(|b| !b.is_empty()));
    assert_eq!(out["report"]["items"][0]["sold"], 150);
    assert!(s(&out["summary"]).ends_with("oversold: false"));
    let table = db.run(&["--format", "table", "demo", "--capacity", "20", "--buyers", "2"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success() && text.contains("Sales report") && text.contains("oversold: false"), "{text}");
    assert!(text.starts_with("The event\n"), "no blank line first: {text:?}");
}

/// `--format json` is honoured by export (as JSON Lines), never ignored for CSV;
/// `--output-format` and the output file's extension still say more.
#[test]
fn export_honours_the_global_format() {
    let db = Db::new();
    db.event(&[]);
    let out = db.run(&["--format", "json", "export", "events"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!((rows.len(), s(&rows[0]["name"])), (1, "Jazz night"), "{text}");
    let csv = db.run(&["--format", "json", "export", "events", "--output-format", "csv"]);
    assert!(String::from_utf8_lossy(&csv.stdout).starts_with("external_id,slug,name,"), "the specific flag wins");
    let plain = db.run(&["export", "events"]);
    assert!(String::from_utf8_lossy(&plain.stdout).starts_with("external_id,slug,name,"), "CSV by default");
}

/// `GOTICKET_FORMAT` and `GOTICKET_AS` stand for `--format` and `--as`; a flag wins.
#[test]
fn the_format_and_the_acting_user_come_from_the_environment_too() {
    let db = Db::new();
    db.event(&[]);
    let out = db.cmd(&["event", "list"]).env("GOTICKET_FORMAT", "json").output().expect("runs");
    let listed: Value = serde_json::from_slice(&out.stdout).expect("JSON from GOTICKET_FORMAT");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let out = db.cmd(&["--format", "csv", "event", "list"]).env("GOTICKET_FORMAT", "json").output().expect("runs");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("id,"), "the flag wins");
    let out = db.cmd(&["holds", "expire"]).env("GOTICKET_AS", "nobody@example.com").output().expect("runs");
    assert_eq!(out.status.code(), Some(6), "acting as a customer: {}", String::from_utf8_lossy(&out.stderr));
}

/// After a command the database file alone holds everything: the write-ahead log was
/// merged into it, so copying `goticket.db` (and nothing else) copies the data.
#[test]
fn the_database_file_alone_holds_everything_after_a_command() {
    let db = Db::new();
    db.json(&["demo", "--capacity", "30", "--buyers", "2"]);
    let wal = PathBuf::from(format!("{}-wal", db.path.display()));
    assert!(std::fs::metadata(&wal).map_or(true, |m| m.len() == 0), "the log was merged and emptied");
    let copy = Db::new();
    std::fs::copy(&db.path, &copy.path).expect("copy the database file alone");
    let listed = copy.json(&["event", "list"]);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["items"][0]["sold"], 30);
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let db = Db::new();
    db.json(&["demo", "--capacity", "1500", "--buyers", "2"]);
    let mut child = db
        .cmd(&["booking", "list", "--limit", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

/// 8 OS processes, each running the real `goticket book` over and over on one hot
/// event (at `db_url`) until it is refused: exactly the capacity is sold, every
/// refusal is "sold out" (exit 4), and the counters equal the bookings.
fn eight_processes_sell_exactly(db_url: &str, capacity: u32) {
    let run = |args: &[&str]| {
        Command::new(BIN).args(["--db", db_url]).args(args).env_remove("GOTICKET_DB").output().expect("runs")
    };
    let json = |args: &[&str]| -> Value {
        let out = run(&[&["--format", "json"], args].concat());
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("one JSON document")
    };
    json(&[
        "event",
        "create",
        "--name",
        "Hot",
        "--starts-at",
        "2090-01-01T19:00:00Z",
        "--ends-at",
        "2090-01-01T22:00:00Z",
        "--capacity",
        &capacity.to_string(),
        "--price",
        "1 EUR",
        "--slug",
        "hot",
    ]);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let db_url = db_url.to_owned();
            std::thread::spawn(move || {
                let mut booked = 0u32;
                loop {
                    let out = Command::new(BIN)
                        .args(["--db", &db_url, "book", "hot", "--customer", &format!("p{w}@example.com")])
                        .env_remove("GOTICKET_DB")
                        .output()
                        .expect("runs");
                    match out.status.code() {
                        Some(0) => booked += 1,
                        Some(4) => {
                            let err = String::from_utf8_lossy(&out.stderr);
                            assert!(err.contains("sold out"), "worker {w}: refused for another reason: {err}");
                            return booked;
                        }
                        other => panic!("worker {w}: exit {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
                    }
                }
            })
        })
        .collect();
    let booked: u32 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    assert_eq!(booked, capacity, "successful `goticket book` runs");
    let e = json(&["event", "show", "hot"]);
    assert_eq!((e["sold"].as_u64(), e["available"].as_u64()), (Some(u64::from(capacity)), Some(0)));
    let listed = json(&["booking", "list", "--event", "hot", "--limit", "1000"]);
    let total: u64 =
        listed["items"].as_array().expect("items").iter().map(|b| b["quantity"].as_u64().unwrap_or(0)).sum();
    assert_eq!(total, u64::from(capacity), "bookings add up to the sold counter");
}

#[test]
fn eight_processes_never_oversell() {
    let db = Db::new();
    eight_processes_sell_exactly(&db.path.display().to_string(), 1000);
}

/// The same commands against PostgreSQL (each test in its own schema).
/// A database for one test, on either store, with a directory for its files.
struct TestDb {
    url: String,
    dir: tempfile::TempDir,
    _schema: Option<goticket_store_pg::testing::TestSchema>,
}

impl TestDb {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        TestDb { url: dir.path().join("t.db").display().to_string(), dir, _schema: None }
    }
    fn postgres() -> Option<Self> {
        let schema = goticket_store_pg::testing::TestSchema::create(&goticket_store_pg::testing::test_url()?);
        Some(TestDb { url: schema.url().to_owned(), dir: tempfile::tempdir().expect("dir"), _schema: Some(schema) })
    }
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN).args(["--db", &self.url]).args(args).env_remove("GOTICKET_DB").output().expect("runs")
    }
    fn ok(&self, args: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }
    /// Runs an import expected to reject rows: exit 5, its summary on stdout.
    fn rejected(&self, args: &[&str]) -> (Value, String) {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(5), "{args:?}: {err}");
        (serde_json::from_slice(&out.stdout).expect("the summary"), err)
    }
    fn count(&self) -> usize {
        self.ok(&["event", "list", "--limit", "1000"])["items"].as_array().map_or(0, Vec::len)
    }
    fn export_kind(&self, kind: &str) -> String {
        let out = self.run(&["export", kind]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }
    fn export(&self, format: &str) -> String {
        let out = self.run(&["export", "events", "--output-format", format]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

/// Test modules running `$test(&db)` on a fresh SQLite database and in a fresh
/// PostgreSQL schema.
macro_rules! on_both_stores {
    ($test:ident) => {
        mod $test {
            #[test]
            fn sqlite() {
                super::$test(&crate::TestDb::sqlite());
            }

            #[test]
            #[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]
            fn postgres() {
                if let Some(db) = crate::TestDb::postgres() {
                    super::$test(&db);
                }
            }
        }
    };
}

mod postgres {
    use super::*;
    use goticket_store_pg::testing::{TestSchema, test_url};

    fn run(url: &str, args: &[&str]) -> Output {
        Command::new(BIN).args(["--db", url]).args(args).env_remove("GOTICKET_DB").output().expect("runs")
    }

    fn json(url: &str, args: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let out = run(url, &all);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("one JSON document")
    }

    #[test]
    #[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]
    fn the_whole_flow_on_postgres() {
        let Some(admin) = test_url() else { return };
        let schema = TestSchema::create(&admin);
        let url = schema.url();
        assert_eq!(json(url, &["migrate"])["migrated"], true);
        json(
            url,
            &[
                "event",
                "create",
                "--name",
                "PG gig",
                "--starts-at",
                "2090-01-01T19:00:00Z",
                "--ends-at",
                "2090-01-01T22:00:00Z",
                "--capacity",
                "3",
                "--price",
                "9.99 EUR",
                "--slug",
                "pg",
            ],
        );
        let hold = json(url, &["book", "pg", "--customer", "ann@example.com", "--qty", "2", "--hold", "10m"]);
        assert_eq!(hold["status"], "held");
        assert_eq!(json(url, &["booking", "confirm", s(&hold["code"])])["status"], "confirmed");
        let out = run(url, &["book", "pg", "--customer", "bob@example.com", "--qty", "2"]);
        assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
        json(url, &["checkin", s(&hold["tickets"][0]["secret"])]);
        let report = json(url, &["report", "sales", "--event", "pg"]);
        assert_eq!(report["items"][0]["revenue"], serde_json::json!({"amount_minor": 1998, "currency": "EUR"}));
        assert_eq!(run(url, &["event", "show", "nope"]).status.code(), Some(3));
    }

    #[test]
    fn an_unreachable_server_fails_cleanly() {
        let out = run("postgres://postgres@127.0.0.1:1/none", &["event", "list"]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("goticket: error:") && err.contains("PostgreSQL"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }

    #[test]
    #[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]
    fn eight_processes_never_oversell_on_postgres() {
        let Some(admin) = test_url() else { return };
        let schema = TestSchema::create(&admin);
        eight_processes_sell_exactly(schema.url(), 300);
    }
}

#[test]
fn bench_flash_sale_reports_its_figures_combined_and_not() {
    let db = Db::new();
    for extra in [&[][..], &["--no-combine"][..]] {
        let mut args =
            vec!["bench", "flash-sale", "--capacity", "50", "--buyers", "80", "--concurrency", "8", "--qty", "2"];
        args.extend_from_slice(extra);
        let r = db.json(&args);
        for field in [
            "bookings_per_sec",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "max_ms",
            "sold",
            "capacity",
            "refused",
            "oversold",
            "combined",
        ] {
            assert!(r.get(field).is_some(), "bench JSON lacks {field}: {r}");
        }
        assert_eq!(r["combined"], extra.is_empty());
        assert_eq!(
            (r["sold"].as_u64(), r["capacity"].as_u64(), r["oversold"].as_bool()),
            (Some(50), Some(50), Some(false))
        );
        assert_eq!(r["bookings"], 25, "2 seats each: 25 bookings fill 50 seats");
        assert_eq!(r["refused"], 55);
    }
    let floor = db.json(&["bench", "batched", "--capacity", "300", "--batch", "100"]);
    assert_eq!(
        (floor["sold"].as_u64(), floor["oversold"].as_bool(), floor["batches"].as_u64()),
        (Some(300), Some(false), Some(3))
    );
    db.fails(&["bench", "flash-sale", "--concurrency", "0"], 5);
}

/// Two processes, each with its own combiner and 16 buyer threads, sell one event:
/// exactly the capacity, whatever each process's share.
fn two_combining_processes_share_one_event(db_url: &str, capacity: u32) {
    let run = |args: &[&str]| Command::new(BIN).args(["--db", db_url]).args(args).output().expect("runs");
    let created = run(&[
        "--format",
        "json",
        "event",
        "create",
        "--name",
        "Shared",
        "--starts-at",
        "2090-01-01T19:00:00Z",
        "--ends-at",
        "2090-01-01T22:00:00Z",
        "--capacity",
        &capacity.to_string(),
        "--price",
        "1 EUR",
        "--slug",
        "shared",
    ]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let buyers = (capacity * 2).to_string();
    let procs: Vec<_> = (0..2)
        .map(|_| {
            Command::new(BIN)
                .args(["--db", db_url, "--format", "json", "bench", "flash-sale", "--event", "shared"])
                .args(["--buyers", &buyers, "--concurrency", "16"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut total = 0;
    for p in procs {
        let out = p.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!((r["combined"].as_bool(), r["oversold"].as_bool()), (Some(true), Some(false)), "{r}");
        total += r["bookings"].as_u64().expect("bookings");
    }
    assert_eq!(total, u64::from(capacity), "the two processes together sold exactly the capacity");
    let e = run(&["--format", "json", "event", "show", "shared"]);
    let e: Value = serde_json::from_slice(&e.stdout).expect("json");
    assert_eq!((e["sold"].as_u64(), e["available"].as_u64()), (Some(u64::from(capacity)), Some(0)));
}

#[test]
fn two_combining_processes_on_one_sqlite_event() {
    let db = Db::new();
    two_combining_processes_share_one_event(&db.path.display().to_string(), 1500);
}

#[test]
#[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]
fn two_combining_processes_on_one_postgres_event() {
    let Some(admin) = goticket_store_pg::testing::test_url() else { return };
    let schema = goticket_store_pg::testing::TestSchema::create(&admin);
    two_combining_processes_share_one_event(schema.url(), 1500);
}

/// Batch import and export through the real binary, on one store (a `--db` URL).
#[path = "cli/hardening.rs"]
mod hardening;

#[path = "cli/moves.rs"]
mod moves;

#[cfg(feature = "amqp")]
#[path = "cli/relay.rs"]
mod relay;

mod import_export {
    use super::*;

    const GOOD_CSV: &str = "external_id,name,starts_at,ends_at,capacity,price,slug,venue,max_per_customer
ev-1,Spring concert,2090-04-01T19:00:00Z,2090-04-01T22:00:00Z,500,25.00 EUR,spring,Main hall,4
ev-2,\"Jazz, late\",2090-04-02T21:00:00+02:00,2090-04-02T23:30:00+02:00,120,18.5 EUR,,Cellar,
";

    fn counts(v: &Value) -> (u64, u64, u64, u64) {
        let n = |k: &str| v[k].as_u64().unwrap_or(u64::MAX);
        (n("created"), n("updated"), n("unchanged"), n("rejected"))
    }

    fn happy_path_rerun_and_round_trip(s: &TestDb) {
        let csv = s.file("events.csv", GOOD_CSV);
        assert_eq!(counts(&s.ok(&["import", "events", &csv])), (2, 0, 0, 0));
        assert_eq!(counts(&s.ok(&["import", "events", &csv])), (0, 0, 2, 0), "re-running an import is a no-op");
        let e = s.ok(&["event", "show", "spring"]);
        assert_eq!((e["capacity"].as_u64(), e["max_per_customer"].as_u64()), (Some(500), Some(4)));
        assert_eq!(e["external_id"], "ev-1");
        // Round trip, both formats, into fresh stores of the same kind.
        for format in ["csv", "jsonl"] {
            let exported = s.export(format);
            let other = TestDb::sqlite();
            let path = other.file(&format!("x.{format}"), &exported);
            assert_eq!(counts(&other.ok(&["import", "events", &path])), (2, 0, 0, 0));
            assert_eq!(other.export(format), exported, "import(export(x)) gives back the same data ({format})");
        }
        // Standard input.
        let mut child = Command::new(BIN)
            .args(["--db", &s.url, "--format", "json", "import", "events", "-", "--input-format", "csv"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        child.stdin.take().expect("stdin").write_all(GOOD_CSV.as_bytes()).expect("write");
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success());
        assert_eq!(counts(&serde_json::from_slice(&out.stdout).expect("json")), (0, 0, 2, 0));
    }

    fn bad_rows_all_or_nothing_and_skip_mode(s: &TestDb) {
        let bad = s.file(
            "bad.csv",
            "external_id,name,starts_at,ends_at,capacity,price
ev-3,Fine,2090-05-01T19:00:00Z,2090-05-01T22:00:00Z,10,5 EUR
ev-4,,tomorrow,2090-05-01T22:00:00Z,0,-5 EUR
ev-5,Backwards,2090-05-01T19:00:00Z,2090-05-01T18:00:00Z,10,5 EUR
",
        );
        let out = s.run(&["import", "events", &bad]);
        assert_eq!(out.status.code(), Some(5));
        let err = String::from_utf8_lossy(&out.stderr);
        for expected in [
            "line 3, column name: is required",
            "line 3, column starts_at:",
            "line 3, column capacity:",
            "line 3, column price:",
            "line 4, column ends_at: must be after starts_at",
            "2 of 3 rows are invalid; nothing was written",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in {err}");
        }
        assert_eq!(s.count(), 0, "all-or-nothing: the good row was not written either");
        let rejects = s.dir.path().join("rejects.csv");
        let (r, err) =
            s.rejected(&["import", "events", &bad, "--skip-invalid", "--rejects", &rejects.display().to_string()]);
        assert_eq!(counts(&r), (1, 0, 0, 2), "the summary still says what was written");
        assert!(err.contains("2 of 3 rows were rejected, written to"), "{err}");
        let text = std::fs::read_to_string(&rejects).expect("rejects file");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "external_id,name,starts_at,ends_at,capacity,price,error", "the input's header: {text}");
        assert!(lines[1].starts_with("ev-4,,tomorrow,2090-05-01T22:00:00Z,0,-5 EUR,\"name: is required; starts_at:"));
        assert!(lines[1].contains("capacity:") && lines[1].contains("price:"), "every error of a row: {text}");
        assert!(lines[2].starts_with("ev-5,Backwards,") && lines[2].contains("ends_at: must be after starts_at"));
        assert_eq!(lines.len(), 3, "only the rejected rows: {text}");
        assert_eq!(s.count(), 1);
        // Half fixed, the rejects file imports as it is (its error column is ignored),
        // and what is still wrong goes to a new rejects file with one error column.
        let half = text.replace(
            "ev-4,,tomorrow,2090-05-01T22:00:00Z,0,-5 EUR",
            "ev-4,Mended,2090-05-01T19:00:00Z,2090-05-01T22:00:00Z,10,5 EUR",
        );
        let half = s.file("half.csv", &half);
        let again = s.dir.path().join("again.csv").display().to_string();
        let (r, _) = s.rejected(&["import", "events", &half, "--skip-invalid", "--rejects", &again]);
        assert_eq!(counts(&r), (1, 0, 0, 1));
        let text = std::fs::read_to_string(&again).expect("second rejects file");
        assert!(text.starts_with("external_id,name,starts_at,ends_at,capacity,price,error\n"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
        let fixed = s.file("fixed.csv", &text.replace("2090-05-01T18:00:00Z", "2090-05-01T23:00:00Z"));
        assert_eq!(counts(&s.ok(&["import", "events", &fixed, "--skip-invalid"])), (1, 0, 0, 0));
        assert_eq!(s.count(), 3);
        // The rejects file may not be the input, and is refused before anything is written.
        let same = s.run(&["import", "events", &fixed, "--skip-invalid", "--rejects", &fixed]);
        assert_eq!(same.status.code(), Some(5), "{}", String::from_utf8_lossy(&same.stderr));
        assert!(String::from_utf8_lossy(&same.stderr).contains("is the input file"));
        let fresh = s.file(
            "fresh.csv",
            "external_id,name,starts_at,ends_at,capacity,price\nev-9,New,2090-05-01T19:00:00Z,2090-05-01T22:00:00Z,10,5 EUR\n",
        );
        let nowhere = s.run(&["import", "events", &fresh, "--skip-invalid", "--rejects", "/nonexistent-dir/r.csv"]);
        assert_eq!(nowhere.status.code(), Some(1));
        assert_eq!(s.count(), 3, "an unwritable rejects file stops the import before it writes");
        let into_dir =
            s.run(&["import", "events", &fresh, "--skip-invalid", "--rejects", &s.dir.path().display().to_string()]);
        assert_eq!(into_dir.status.code(), Some(5), "{}", String::from_utf8_lossy(&into_dir.stderr));
        assert_eq!(s.count(), 3, "a directory as the rejects file is refused before anything is written");
        // Line numbers are physical lines, with CRLF line ends too.
        let crlf = s.file(
            "crlf.csv",
            "external_id,name,starts_at,ends_at,capacity,price\r\nev-c,C,2090-05-01T19:00:00Z,2090-05-01T22:00:00Z,10,5 EUR\r\n\
             ev-d,D,2090-05-01T19:00:00Z,2090-05-01T22:00:00Z,-3,5 EUR\r\n",
        );
        let out = s.run(&["import", "events", &crlf]);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("line 3, column capacity"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A rejected row with more cells than the header is kept whole.
        let wide = s.file(
            "wide.csv",
            "external_id,name,starts_at,ends_at,capacity,price\nev-w,W,2090-05-01T19:00:00Z,2090-05-01T22:00:00Z,10,5 EUR,x,y\n",
        );
        let wide_rejects = s.dir.path().join("wide-rejects.csv").display().to_string();
        let (r, _) = s.rejected(&["import", "events", &wide, "--skip-invalid", "--rejects", &wide_rejects]);
        assert_eq!(counts(&r), (0, 0, 0, 1));
        let text = std::fs::read_to_string(&wide_rejects).expect("written");
        assert!(text.lines().nth(1).is_some_and(|l| l.starts_with("ev-w,W,") && l.contains(",y")), "{text}");
        // The same in JSON Lines: the rejected objects with an "error" key.
        let jl = s.file(
            "bad.jsonl",
            "{\"external_id\":\"ev-6\",\"name\":\"Ok\",\"starts_at\":\"2090-05-01T19:00:00Z\",\"ends_at\":\"2090-05-01T22:00:00Z\",\"capacity\":3,\"price\":\"1 EUR\"}\n\
             {\"external_id\":\"ev-7\",\"name\":\"No\",\"starts_at\":\"2090-05-01T19:00:00Z\",\"ends_at\":\"2090-05-01T22:00:00Z\",\"capacity\":0,\"price\":\"1 EUR\"}\n",
        );
        let jrejects = s.dir.path().join("rejects.jsonl").display().to_string();
        let (r, _) = s.rejected(&["import", "events", &jl, "--skip-invalid", "--rejects", &jrejects]);
        assert_eq!(counts(&r), (1, 0, 0, 1));
        let row: Value =
            serde_json::from_str(std::fs::read_to_string(&jrejects).expect("rejects").trim()).expect("json");
        assert_eq!((super::s(&row["external_id"]), row["capacity"].as_u64()), ("ev-7", Some(0)));
        assert!(super::s(&row["error"]).starts_with("capacity: must be between 1 and"), "{row}");
        let header = s.file("header.csv", "external_id,name,colour\n");
        let err = s.run(&["import", "events", &header]);
        assert_eq!(err.status.code(), Some(5));
        assert!(String::from_utf8_lossy(&err.stderr).contains("column colour: is not a known column"));
        let junk = s.file("junk.jsonl", "{\"external_id\": \"j\", \"capacity\": true}\nnot json\n");
        let err = s.run(&["import", "events", &junk]);
        assert_eq!(err.status.code(), Some(5));
        let text = String::from_utf8_lossy(&err.stderr);
        assert!(
            text.contains("line 1, column capacity: must be text or a number")
                && text.contains("line 2: not a JSON object"),
            "{text}"
        );
    }

    fn updates_where_the_domain_allows(s: &TestDb) {
        let csv = s.file("events.csv", GOOD_CSV);
        s.ok(&["import", "events", &csv]);
        s.ok(&["book", "spring", "--customer", "a@example.com", "--qty", "3"]);
        let shrink = s.file("shrink.csv", &GOOD_CSV.replace(",500,", ",2,"));
        let out = s.run(&["import", "events", &shrink]);
        assert_eq!(out.status.code(), Some(4), "a row refused by a rule: the import exits as that refusal");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("line 2: conflict: capacity cannot go below the 3 seats")
        );
        assert_eq!(s.ok(&["event", "show", "spring"])["capacity"], 500, "nothing written");
        let grow = s.file("grow.csv", &GOOD_CSV.replace(",500,", ",900,").replace("Spring concert", "Spring gala"));
        let dry = s.ok(&["import", "events", &grow, "--dry-run"]);
        assert_eq!((counts(&dry), dry["dry_run"].as_bool()), ((0, 1, 1, 0), Some(true)));
        assert_eq!(s.ok(&["event", "show", "spring"])["capacity"], 500, "a dry run writes nothing");
        assert_eq!(counts(&s.ok(&["import", "events", &grow])), (0, 1, 1, 0));
        let e = s.ok(&["event", "show", "spring"]);
        assert_eq!(
            (e["capacity"].as_u64(), e["name"].as_str(), e["sold"].as_u64()),
            (Some(900), Some("Spring gala"), Some(3))
        );
    }

    /// A kill -9 in the middle: all-or-nothing leaves nothing; batch mode leaves whole
    /// batches, and a re-run completes the import exactly.
    fn killed_import_resumes(s: &TestDb) {
        let rows = 60_000;
        let mut text = String::from("external_id,name,starts_at,ends_at,capacity,price\n");
        for i in 0..rows {
            text.push_str(&format!("k-{i},Event {i},2090-06-01T19:00:00Z,2090-06-01T22:00:00Z,100,10 EUR\n"));
        }
        let big = s.file("big.csv", &text);
        let kill_after = |args: &[&str], ms: u64| {
            let mut child = Command::new(BIN)
                .args(["--db", &s.url])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn");
            std::thread::sleep(std::time::Duration::from_millis(ms));
            let _ = child.kill();
            child.wait().expect("wait");
        };
        kill_after(&["import", "events", &big], 2000);
        let after_kill = s.count();
        assert!(after_kill == 0 || after_kill == rows, "all-or-nothing left {after_kill} events");
        if after_kill == 0 {
            kill_after(&["import", "events", &big, "--skip-invalid", "--batch-size", "1000"], 900);
            let partial = s.ok(&["report", "sales"])["items"].as_array().map_or(0, Vec::len);
            assert_eq!(partial % 1000, 0, "only whole batches are committed ({partial})");
        }
        let done = s.ok(&["import", "events", &big, "--skip-invalid", "--batch-size", "1000"]);
        assert_eq!(counts(&done).3, 0);
        let total = s.ok(&["report", "sales"])["items"].as_array().map_or(0, Vec::len);
        assert_eq!(total, rows, "the re-run completed the import exactly");
        assert_eq!(counts(&s.ok(&["import", "events", &big])), (0, 0, rows as u64, 0));
    }

    const BOOKINGS_CSV: &str = "external_id,event,customer,quantity,status,hold_until
b-1,ev-1,ann@example.com,2,confirmed,
b-2,spring,bob@example.com,1,held,2090-03-01T00:00:00Z
b-3,ev-2,cat@example.com,3,confirmed,
";

    /// Imported bookings obey the booking rules, name the rows they refuse, and
    /// round-trip with their events into a fresh store.
    fn bookings_import_obeys_the_rules_and_round_trips(s: &TestDb) {
        s.ok(&["import", "events", &s.file("events.csv", GOOD_CSV)]);
        let bookings = s.file("bookings.csv", BOOKINGS_CSV);
        assert_eq!(counts(&s.ok(&["import", "bookings", &bookings])), (3, 0, 0, 0));
        assert_eq!(counts(&s.ok(&["import", "bookings", &bookings])), (0, 0, 3, 0), "re-running is a no-op");
        let over = s.file(
            "over.csv",
            "external_id,event,customer,quantity,status
b-9,ev-2,dan@example.com,100,confirmed
b-12,ev-2,eve@example.com,30,confirmed
b-10,ev-1,ann@example.com,3,confirmed
b-11,nope,x@example.com,1,confirmed
b-1,ev-1,ann@example.com,5,confirmed
",
        );
        let out = s.run(&["import", "bookings", &over]);
        assert_eq!(out.status.code(), Some(4), "the first refusal (sold out) decides the exit code");
        let err = String::from_utf8_lossy(&out.stderr);
        for expected in [
            "line 3: sold out: requested 30, 17 left",
            "line 4: per-customer limit exceeded: limit 4, already booked 2, requested 3",
            "line 5: event not found: nope",
            "line 6: conflict: booking b-1 already exists with other data",
            "4 rows were refused, nothing was written; the first, line 3: sold out",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in {err}");
        }
        let sold = |slug: &str| {
            s.ok(&["report", "sales"])["items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|r| r["name"] == slug)
                .map(|r| r["sold"].as_u64().unwrap_or(0))
                .unwrap_or(0)
        };
        assert_eq!(sold("Jazz, late"), 3, "an import that would oversell wrote nothing");
        let rejects = s.dir.path().join("brejects.csv").display().to_string();
        assert_eq!(
            counts(&s.rejected(&["import", "bookings", &over, "--skip-invalid", "--rejects", &rejects]).0),
            (1, 0, 0, 4)
        );
        assert_eq!(sold("Jazz, late"), 103);
        // Round trip: events then bookings into a fresh store give the same exports.
        let other = TestDb::sqlite();
        for kind in ["events", "bookings"] {
            let exported = s.export_kind(kind);
            other.ok(&["import", kind, &other.file(&format!("{kind}.csv"), &exported)]);
            // The same rows: bookings export in id order, and ids minted in one
            // millisecond are not ordered by arrival, so compare the rows as a set.
            let rows = |t: &str| {
                let mut l: Vec<String> = t.lines().map(str::to_owned).collect();
                l[1..].sort();
                l
            };
            assert_eq!(
                rows(&other.export_kind(kind)),
                rows(&exported),
                "import(export({kind})) gives back the same data"
            );
        }
    }

    on_both_stores!(bookings_import_obeys_the_rules_and_round_trips);
    on_both_stores!(happy_path_rerun_and_round_trip);
    on_both_stores!(bad_rows_all_or_nothing_and_skip_mode);
    on_both_stores!(updates_where_the_domain_allows);
    on_both_stores!(killed_import_resumes);
}

#[test]
fn the_readme_sample_files_import_and_agree() {
    let db = Db::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let csv = root.join("events.csv").display().to_string();
    let jsonl = root.join("events.jsonl").display().to_string();
    let first = db.json(&["import", "events", &csv]);
    assert_eq!(first["created"], 3);
    let second = db.json(&["import", "events", &jsonl]);
    assert_eq!(
        (second["created"].as_u64(), second["unchanged"].as_u64()),
        (Some(0), Some(3)),
        "the two samples are the same data"
    );
    assert_eq!(db.json(&["event", "show", "spring-concert"])["starts_at"], "2090-04-01T17:00:00Z");
    let bookings = db.json(&["import", "bookings", &root.join("bookings.csv").display().to_string()]);
    assert_eq!(bookings["created"], 3);
    assert_eq!(db.json(&["event", "show", "spring-concert"])["sold"], 2);
}

/// Runs the binary with `input` on standard input.
fn with_stdin(db: &Db, args: &[&str], input: &str) -> Output {
    let mut child =
        db.cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    child.wait_with_output().expect("wait")
}

#[test]
fn users_roles_passwords_and_as() {
    let db = Db::new();
    let secret = "very secret password 1";
    let out = with_stdin(
        &db,
        &["--format", "json", "user", "add", "--email", "Org@Example.com", "--role", "organizer", "--password-stdin"],
        &format!("{secret}\n"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let u: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((s(&u["email"]), s(&u["role"])), ("org@example.com", "organizer"));
    assert!(u.get("password_hash").is_none() && !String::from_utf8_lossy(&out.stdout).contains(secret));
    let dup = with_stdin(
        &db,
        &["user", "add", "--email", "org@example.com", "--role", "customer", "--password-stdin"],
        &format!("{secret}\n"),
    );
    assert_eq!(dup.status.code(), Some(4));
    let short = with_stdin(
        &db,
        &["user", "add", "--email", "x@example.com", "--role", "customer", "--password-stdin"],
        "short\n",
    );
    assert_eq!(short.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&short.stderr).contains("password"));
    let bad_role = with_stdin(
        &db,
        &["user", "add", "--email", "x@example.com", "--role", "boss", "--password-stdin"],
        &format!("{secret}\n"),
    );
    assert_eq!(bad_role.status.code(), Some(5));
    // No terminal and no --password-stdin: refused, not hung.
    let no_tty = db
        .cmd(&["user", "add", "--email", "y@example.com", "--role", "customer"])
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(no_tty.status.code(), Some(5));
    // A password is never an argument.
    db.fails(&["user", "add", "--email", "z@example.com", "--role", "customer", "--password", secret], 2);

    let listed = db.json(&["user", "list"]);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    assert!(!listed.to_string().contains("argon2"), "hashes are never printed");

    // --as takes the stored role: the organizer creates an event and owns it.
    let e = db.json(&[
        "--as",
        "org@example.com",
        "event",
        "create",
        "--name",
        "Org gig",
        "--starts-at",
        "2090-01-01T19:00:00Z",
        "--ends-at",
        "2090-01-01T22:00:00Z",
        "--capacity",
        "5",
        "--price",
        "1 EUR",
        "--slug",
        "org-gig",
    ]);
    assert_eq!(e["organizer"], "org@example.com");
    db.fails(&["--as", "someone@example.com", "event", "cancel", "org-gig"], 6);
    db.fails(&["--as", "org@example.com", "user", "list"], 6);
    assert_eq!(db.json(&["user", "set-role", "--email", "org@example.com", "--role", "customer"])["role"], "customer");
    db.fails(&["--as", "org@example.com", "event", "cancel", "org-gig"], 6);
    db.fails(&["user", "set-role", "--email", "ghost@example.com", "--role", "customer"], 3);
    let pw = with_stdin(
        &db,
        &["user", "passwd", "--email", "org@example.com", "--password-stdin"],
        "a brand new password\n",
    );
    assert!(pw.status.success(), "{}", String::from_utf8_lossy(&pw.stderr));
}

/// kill -9 in the middle of a combined sale, then reopen: the counters still equal
/// the confirmed bookings exactly, within capacity (no half-applied batch), and
/// selling resumes.
fn killed_sale_leaves_consistent_state(db_url: &str) {
    let run =
        |args: &[&str]| Command::new(BIN).args(["--db", db_url, "--format", "json"]).args(args).output().expect("runs");
    let created = run(&[
        "event",
        "create",
        "--name",
        "Killed",
        "--starts-at",
        "2090-01-01T19:00:00Z",
        "--ends-at",
        "2090-01-01T22:00:00Z",
        "--capacity",
        "1000000",
        "--price",
        "1 EUR",
        "--slug",
        "killed",
    ]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let mut sale = Command::new(BIN)
        .args([
            "--db",
            db_url,
            "bench",
            "flash-sale",
            "--event",
            "killed",
            "--buyers",
            "1000000",
            "--concurrency",
            "16",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    sale.kill().expect("kill -9");
    sale.wait().expect("reaped");
    let report: Value = serde_json::from_slice(&run(&["report", "sales", "--event", "killed"]).stdout).expect("json");
    let r = &report["items"][0];
    let (sold, confirmed, held) = (
        r["sold"].as_u64().expect("sold"),
        r["confirmed_bookings"].as_u64().expect("n"),
        r["held"].as_u64().expect("held"),
    );
    assert!(sold > 0, "the sale was running when it was killed");
    assert_eq!((sold, held), (confirmed, 0), "every seat sold belongs to exactly one committed booking");
    let after = run(&["book", "killed", "--customer", "after@example.com"]);
    assert!(after.status.success(), "selling resumes: {}", String::from_utf8_lossy(&after.stderr));
    let e: Value = serde_json::from_slice(&run(&["event", "show", "killed"]).stdout).expect("json");
    assert_eq!(e["sold"].as_u64(), Some(sold + 1));
}

#[test]
fn killed_sale_on_sqlite_leaves_consistent_state() {
    let db = Db::new();
    killed_sale_leaves_consistent_state(&db.path.display().to_string());
}

#[test]
#[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]
fn killed_sale_on_postgres_leaves_consistent_state() {
    let Some(admin) = goticket_store_pg::testing::test_url() else { return };
    let schema = goticket_store_pg::testing::TestSchema::create(&admin);
    killed_sale_leaves_consistent_state(schema.url());
}

/// `goticket serve` end to end: a real server on 127.0.0.1:0, real HTTP.
mod http {
    use super::*;

    #[path = "../http/deploy.rs"]
    mod deploy;
    mod hardening;
    #[cfg(feature = "otlp")]
    #[path = "../http/traces.rs"]
    mod traces;

    use std::io::{BufRead, BufReader};

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    struct Server {
        child: std::process::Child,
        base: String,
        /// Every answer `call` got, checked against `/openapi.json` when the server is
        /// dropped.
        seen: std::sync::Mutex<Vec<Seen>>,
        /// What the server wrote to stderr after its address line.
        log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }

    /// One answer of the server.
    struct Seen {
        method: String,
        path: String,
        /// The query's parameter names.
        query: Vec<String>,
        /// The JSON body sent, if any.
        request: Option<Value>,
        status: u16,
        content_type: String,
        body: Value,
    }

    impl Server {
        fn start(db: &str) -> Self {
            Self::start_with(db, &[])
        }

        fn call(
            &self,
            method: &str,
            path: &str,
            token: Option<&str>,
            body: Option<&str>,
            headers: &[(&str, &str)],
        ) -> (u16, Value, String) {
            let request = body.and_then(|b| serde_json::from_str(b).ok());
            let mut req = ureq::request(method, &format!("{}{path}", self.base));
            if let Some(t) = token {
                req = req.set("Authorization", &format!("Bearer {t}"));
            }
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let result = match body {
                Some(b) => req.set("Content-Type", "application/json").send_string(b),
                None => req.call(),
            };
            let resp = match result {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(e) => panic!("{method} {path}: {e}"),
            };
            let (status, ct) = (resp.status(), resp.content_type().to_owned());
            let text = resp.into_string().expect("body");
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            self.seen.lock().expect("not poisoned").push(Seen {
                method: method.to_owned(),
                path: path.split('?').next().unwrap_or(path).to_owned(),
                query: path
                    .split_once('?')
                    .map(|(_, q)| {
                        q.split('&')
                            .filter(|kv| !kv.is_empty())
                            .map(|kv| kv.split('=').next().unwrap_or(kv).to_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
                request,
                status,
                content_type: ct.clone(),
                body: body.clone(),
            });
            (status, body, ct)
        }

        fn openapi(&self) -> Value {
            let resp = ureq::get(&format!("{}/openapi.json", self.base)).call().expect("/openapi.json answers");
            assert_eq!(resp.content_type(), "application/json");
            resp.into_json().expect("a JSON document")
        }

        fn token(&self, email: &str, password: &str) -> String {
            let (status, v, _) = self.call(
                "POST",
                "/v1/auth/login",
                None,
                Some(&format!(r#"{{"email":"{email}","password":"{password}"}}"#)),
                &[],
            );
            assert_eq!(status, 200, "{v}");
            s(&v["token"]).to_owned()
        }
    }

    impl Drop for Server {
        /// Checks every answer the test got against the server's own document, then
        /// stops the server. (Not when the test already failed: its own message is the
        /// one to read.)
        fn drop(&mut self) {
            let wrong = if std::thread::panicking() || self.child.try_wait().ok().flatten().is_some() {
                Vec::new()
            } else {
                let doc = self.openapi();
                let seen = std::mem::take(&mut *self.seen.lock().expect("not poisoned"));
                seen.iter().filter_map(|answer| undocumented(&doc, answer)).collect()
            };
            let _ = self.child.kill();
            let _ = self.child.wait();
            assert!(wrong.is_empty(), "answers /openapi.json does not describe:\n{}", wrong.join("\n"));
        }
    }

    /// The document's path template that `path` matches (`{name}` is one segment).
    fn template<'d>(doc: &'d Value, path: &str) -> Option<&'d str> {
        let segments: Vec<&str> = path.split('/').collect();
        doc["paths"].as_object()?.keys().map(String::as_str).find(|t| {
            let parts: Vec<&str> = t.split('/').collect();
            parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()))
        })
    }

    /// Why `answer` is not what the document says that route answers, if it is not.
    fn undocumented(doc: &Value, answer: &Seen) -> Option<String> {
        let Seen { method, path, query, request, status, content_type, body } = answer;
        let what = format!("{method} {path} -> {status} {content_type} {body}");
        let Some(t) = template(doc, path) else {
            let fallback = *status == 404 && body["detail"] == "no such route";
            return (!fallback).then(|| format!("{what}: served, but no such path in the document"));
        };
        let Some(op) = doc["paths"][t].get(method.to_lowercase()) else {
            let refused = *status == 405 && body["type"] == "https://goticket.dev/problems/method-not-allowed";
            return (!refused).then(|| format!("{what}: served, but {t} has no {method} in the document"));
        };
        // What the server took must be documented too: every query parameter, and the
        // body against its schema.
        if (200..300).contains(status) {
            let params = op["parameters"].as_array().map(Vec::as_slice).unwrap_or_default();
            for name in query {
                if !params.iter().any(|p| p["in"] == "query" && p["name"] == name.as_str()) {
                    return Some(format!("{what}: query parameter {name} is taken but not documented"));
                }
            }
            if let Some(sent) = request {
                let Some(schema) = op["requestBody"]["content"].get("application/json").map(|c| &c["schema"]) else {
                    return Some(format!("{what}: a JSON body is taken but not documented"));
                };
                if let Some(why) = mismatch(doc, schema, sent) {
                    return Some(format!("{what}: the request {sent} does not match its schema: {why}"));
                }
            }
        }
        let Some(mut response) = op["responses"].get(status.to_string()) else {
            return Some(format!("{what}: {method} {t} does not list status {status}"));
        };
        if let Some(name) = response["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/responses/")) {
            response = &doc["components"]["responses"][name];
        }
        let Some(schema) = response["content"].get(content_type.as_str()).map(|c| &c["schema"]) else {
            return Some(format!("{what}: {status} of {method} {t} has no {content_type} content"));
        };
        mismatch(doc, schema, body).map(|why| format!("{what}: does not match its schema: {why}"))
    }

    /// Why `value` does not match `schema` (closed, formats checked), if it does not.
    fn mismatch(doc: &Value, schema: &Value, value: &Value) -> Option<String> {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&strict_root(doc, schema))
            .unwrap_or_else(|e| panic!("{schema} is not valid JSON Schema: {e}"));
        let errors: Vec<String> =
            validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    }
    /// `schema` as a document of its own (with the components its references need), in
    /// which no object may carry a property the document does not name.
    fn strict_root(doc: &Value, schema: &Value) -> Value {
        let pristine = &doc["components"]["schemas"];
        let mut schemas = pristine.clone();
        if let Some(all) = schemas.as_object_mut() {
            for s in all.values_mut() {
                strict(s, false, pristine);
            }
        }
        let mut root = schema.clone();
        strict(&mut root, false, pristine);
        if let Some(o) = root.as_object_mut() {
            o.insert("components".into(), serde_json::json!({ "schemas": schemas }));
        }
        root
    }

    /// Marks every object schema under `s` closed (`unevaluatedProperties: false`). The
    /// parts of an `allOf` are closed only as a whole, so a referenced part is inlined
    /// as it is in `pristine`.
    fn strict(s: &mut Value, in_all_of: bool, pristine: &Value) {
        let Some(o) = s.as_object_mut() else { return };
        if let Some(Value::Array(parts)) = o.get_mut("allOf") {
            for part in parts.iter_mut() {
                if let Some(name) = part["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
                    *part = pristine[name].clone();
                }
                strict(part, true, pristine);
            }
            o.insert("unevaluatedProperties".into(), Value::Bool(false));
        } else if o.contains_key("properties") && !in_all_of {
            o.insert("unevaluatedProperties".into(), Value::Bool(false));
        }
        for key in ["properties"] {
            if let Some(Value::Object(props)) = o.get_mut(key) {
                for p in props.values_mut() {
                    strict(p, false, pristine);
                }
            }
        }
        if let Some(items) = o.get_mut("items") {
            strict(items, false, pristine);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(parts)) = o.get_mut(key) {
                for part in parts.iter_mut() {
                    strict(part, false, pristine);
                }
            }
        }
    }

    fn assert_problem(got: (u16, Value, String), status: u16, kind: &str) {
        assert_eq!(got.0, status, "{}", got.1);
        assert_eq!(got.2, "application/problem+json");
        assert_eq!(got.1["type"], format!("https://goticket.dev/problems/{kind}"), "{}", got.1);
        assert_eq!(got.1["status"], status);
        assert!(got.1["detail"].is_string());
    }

    fn add_user(db: &str, email: &str, role: &str) {
        let mut child = Command::new(BIN)
            .args(["--db", db, "user", "add", "--email", email, "--role", role, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        child.stdin.take().expect("stdin").write_all(b"long enough password\n").expect("write");
        assert!(child.wait().expect("wait").success());
    }

    fn the_whole_flow(store: &TestDb) {
        let db = store.url.as_str();
        add_user(db, "boss@example.com", "admin");
        add_user(db, "org@example.com", "organizer");
        let srv = Server::start_with(db, &["--sweep-every", "1s"]);
        assert_eq!(srv.call("GET", "/healthz", None, None, &[]).0, 200);
        assert_eq!(srv.call("GET", "/readyz", None, None, &[]).0, 200);

        // Sign-up and login; 401 vs 403.
        let reg = srv.call(
            "POST",
            "/v1/auth/register",
            None,
            Some(r#"{"email":"ann@example.com","password":"long enough password"}"#),
            &[],
        );
        assert_eq!((reg.0, s(&reg.1["role"])), (201, "customer"));
        assert_problem(
            srv.call(
                "POST",
                "/v1/auth/register",
                None,
                Some(r#"{"email":"ann@example.com","password":"long enough password"}"#),
                &[],
            ),
            409,
            "conflict",
        );
        assert_problem(
            srv.call(
                "POST",
                "/v1/auth/login",
                None,
                Some(r#"{"email":"ann@example.com","password":"wrong password!!"}"#),
                &[],
            ),
            401,
            "unauthenticated",
        );
        let (org, ann) = (
            srv.token("org@example.com", "long enough password"),
            srv.token("ann@example.com", "long enough password"),
        );
        assert_problem(srv.call("GET", "/v1/events", None, None, &[]), 401, "unauthenticated");
        assert_problem(srv.call("GET", "/v1/events", Some("not.a.token"), None, &[]), 401, "unauthenticated");
        let forged = {
            let mut parts: Vec<String> = ann.split('.').map(str::to_owned).collect();
            parts[2] = "AAAA".repeat(10);
            parts.join(".")
        };
        assert_problem(srv.call("GET", "/v1/events", Some(&forged), None, &[]), 401, "unauthenticated");

        // The organizer creates; a customer may not.
        let event = r#"{"name":"Web gig","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":3,"price":{"amount_minor":1250,"currency":"EUR"},"slug":"web","max_per_customer":3}"#;
        assert_problem(srv.call("POST", "/v1/events", Some(&ann), Some(event), &[]), 403, "forbidden");
        let (status, e, _) = srv.call("POST", "/v1/events", Some(&org), Some(event), &[]);
        assert_eq!((status, s(&e["organizer"])), (201, "org@example.com"), "{e}");
        for (field, body) in [
            ("invalid name:", r#"{"name": 5"#),
            (
                "invalid capacity: invalid type: string \"many\", expected a whole number",
                r#"{"name":"x","capacity":"many"}"#,
            ),
            ("colour", r#"{"colour":"red"}"#),
        ] {
            let got = srv.call("POST", "/v1/events", Some(&org), Some(body), &[]);
            assert_problem(got.clone(), 422, "validation");
            assert!(s(&got.1["detail"]).contains(field), "{body}: {}", got.1["detail"]);
        }
        let huge = format!(r#"{{"name":"{}"}}"#, "x".repeat(70_000));
        let got = srv.call("POST", "/v1/events", Some(&org), Some(&huge), &[]);
        assert!(
            (400..500).contains(&got.0) && got.2 == "application/problem+json",
            "an oversize body is a 4xx problem: {}",
            got.0
        );

        // A customer holds, retries with the same key, confirms; others may not look.
        let hold = r#"{"quantity":2,"hold":"15m"}"#;
        let (status, b, _) =
            srv.call("POST", "/v1/events/web/bookings", Some(&ann), Some(hold), &[("Idempotency-Key", "k-1")]);
        assert_eq!((status, s(&b["status"]), b["replayed"].as_bool()), (201, "held", Some(false)), "{b}");
        let (status, again, _) =
            srv.call("POST", "/v1/events/web/bookings", Some(&ann), Some(hold), &[("Idempotency-Key", "k-1")]);
        assert_eq!((status, &again["code"], again["replayed"].as_bool()), (200, &b["code"], Some(true)));
        let code = s(&b["code"]).to_owned();
        let (status, c, _) = srv.call("POST", &format!("/v1/bookings/{code}/confirm"), Some(&ann), None, &[]);
        assert_eq!((status, s(&c["status"])), (200, "confirmed"));
        srv.call(
            "POST",
            "/v1/auth/register",
            None,
            Some(r#"{"email":"bob@example.com","password":"long enough password"}"#),
            &[],
        );
        let bob = srv.token("bob@example.com", "long enough password");
        assert_problem(srv.call("GET", &format!("/v1/bookings/{code}"), Some(&bob), None, &[]), 403, "forbidden");
        assert_problem(
            srv.call("POST", "/v1/events/web/bookings", Some(&bob), Some(r#"{"quantity":2}"#), &[]),
            409,
            "sold-out",
        );
        assert_eq!(srv.call("POST", "/v1/events/web/bookings", Some(&bob), Some(r#"{"quantity":1}"#), &[]).0, 201);
        assert_problem(
            srv.call("POST", "/v1/events/web/bookings", Some(&bob), Some(r#"{"quantity":1}"#), &[]),
            409,
            "sold-out",
        );
        let mine = srv.call("GET", "/v1/bookings", Some(&bob), None, &[]);
        assert_eq!(mine.1["items"].as_array().map(Vec::len), Some(1), "a customer lists only their own bookings");

        // A hold that runs out frees its seat: the next buyer gets it, the late confirm
        // is refused, and the background sweeper records the expiry. Then a
        // cancellation frees the seat again.
        let flash = r#"{"name":"Flash","starts_at":"2090-02-01T19:00:00Z","ends_at":"2090-02-01T22:00:00Z","capacity":1,"price":{"amount_minor":500,"currency":"EUR"},"slug":"flash"}"#;
        assert_eq!(srv.call("POST", "/v1/events", Some(&org), Some(flash), &[]).0, 201);
        let (status, short, _) =
            srv.call("POST", "/v1/events/flash/bookings", Some(&ann), Some(r#"{"quantity":1,"hold":"1s"}"#), &[]);
        assert_eq!((status, s(&short["status"])), (201, "held"), "{short}");
        let late = s(&short["code"]).to_owned();
        assert_problem(
            srv.call("POST", "/v1/events/flash/bookings", Some(&bob), Some(r#"{"quantity":1}"#), &[]),
            409,
            "sold-out",
        );
        let swept = |srv: &Server| {
            let (_, text, _) = srv.call("GET", "/metrics", None, None, &[]);
            let text = text.as_str().expect("text").to_owned();
            text.lines().find_map(|l| l.strip_prefix("goticket_holds_expired_total ")).map(str::to_owned)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while swept(&srv).as_deref() != Some("1") {
            assert!(std::time::Instant::now() < deadline, "the sweeper never expired the hold: {:?}", swept(&srv));
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let (_, gone, _) = srv.call("GET", &format!("/v1/bookings/{late}"), Some(&ann), None, &[]);
        assert_eq!(s(&gone["status"]), "expired");
        assert_problem(
            srv.call("POST", &format!("/v1/bookings/{late}/confirm"), Some(&ann), None, &[]),
            409,
            "invalid-transition",
        );
        let (status, bought, _) =
            srv.call("POST", "/v1/events/flash/bookings", Some(&bob), Some(r#"{"quantity":1}"#), &[]);
        assert_eq!((status, s(&bought["status"])), (201, "confirmed"), "{bought}");
        let bought = s(&bought["code"]).to_owned();
        assert_problem(
            srv.call("POST", &format!("/v1/bookings/{bought}/cancel"), Some(&ann), None, &[]),
            403,
            "forbidden",
        );
        let (status, cancelled, _) = srv.call("POST", &format!("/v1/bookings/{bought}/cancel"), Some(&bob), None, &[]);
        assert_eq!((status, s(&cancelled["status"])), (200, "cancelled"));
        let (_, e, _) = srv.call("GET", "/v1/events/flash", Some(&bob), None, &[]);
        assert_eq!((e["available"].as_u64(), e["held"].as_u64(), e["sold"].as_u64()), (Some(1), Some(0), Some(0)));
        assert_problem(
            srv.call("POST", &format!("/v1/bookings/{bought}/cancel"), Some(&bob), None, &[]),
            409,
            "invalid-transition",
        );

        // Check-in at the door: once.
        let secret = s(&b["tickets"][0]["secret"]).to_owned();
        let body = format!(r#"{{"secret":"{secret}"}}"#);
        assert_problem(srv.call("POST", "/v1/checkin", Some(&ann), Some(&body), &[]), 403, "forbidden");
        assert_eq!(srv.call("POST", "/v1/checkin", Some(&org), Some(&body), &[]).0, 200);
        assert_problem(srv.call("POST", "/v1/checkin", Some(&org), Some(&body), &[]), 409, "already-checked-in");

        // Report, pagination, users, not found.
        assert_problem(srv.call("GET", "/v1/reports/sales", Some(&ann), None, &[]), 403, "forbidden");
        let (status, r, _) = srv.call("GET", "/v1/reports/sales", Some(&org), None, &[]);
        assert_eq!((status, r["items"][0]["sold"].as_u64()), (200, Some(3)));
        assert_eq!((s(&r["items"][1]["name"]), r["items"][1]["sold"].as_u64()), ("Flash", Some(0)));
        assert_eq!(r["items"][0]["revenue"], serde_json::json!({"amount_minor": 3750, "currency": "EUR"}));
        assert_eq!(r["items"][0]["checked_in"], 1);
        srv.call("POST", "/v1/events", Some(&org), Some(&event.replace("\"web\"", "\"web-2\"")), &[]);
        // One event a page, cursor to cursor: each of the three once, then no cursor.
        let (mut seen, mut query) = (Vec::new(), "limit=1".to_owned());
        loop {
            let (_, page, _) = srv.call("GET", &format!("/v1/events?{query}"), Some(&ann), None, &[]);
            assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
            seen.push(s(&page["items"][0]["slug"]).to_owned());
            match page["next_cursor"].as_str() {
                Some(c) => query = format!("limit=1&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(seen, ["web", "web-2", "flash"]);
        assert_problem(srv.call("GET", "/v1/users", Some(&org), None, &[]), 403, "forbidden");
        let boss = srv.token("boss@example.com", "long enough password");
        assert_eq!(srv.call("GET", "/v1/users", Some(&boss), None, &[]).1["items"].as_array().map(Vec::len), Some(4));
        assert_problem(srv.call("GET", "/v1/events/nope", Some(&ann), None, &[]), 404, "not-found");
        assert_problem(srv.call("GET", "/v2/anything", None, None, &[]), 404, "not-found");
    }

    on_both_stores!(the_whole_flow);

    /// The audit log over HTTP and through the CLI: the same entries, in order, paged by
    /// cursor, filtered by event, booking, actor and time, scoped by role, with no
    /// ticket secret in any payload; bad filters name the parameter.
    fn the_audit_log_over_http_and_the_cli(store: &TestDb) {
        let db = store.url.as_str();
        add_user(db, "boss@example.com", "admin");
        add_user(db, "org@example.com", "organizer");
        add_user(db, "ann@example.com", "customer");
        let srv = Server::start(db);
        let (boss, org, ann) = (
            srv.token("boss@example.com", "long enough password"),
            srv.token("org@example.com", "long enough password"),
            srv.token("ann@example.com", "long enough password"),
        );
        let event = r#"{"name":"Audit gig","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":5,"price":{"amount_minor":900,"currency":"EUR"},"slug":"audit"}"#;
        assert_eq!(srv.call("POST", "/v1/events", Some(&org), Some(event), &[]).0, 201);
        let (status, held, _) =
            srv.call("POST", "/v1/events/audit/bookings", Some(&ann), Some(r#"{"quantity":2,"hold":"10m"}"#), &[]);
        assert_eq!(status, 201, "{held}");
        let code = s(&held["code"]).to_owned();
        assert_eq!(srv.call("POST", &format!("/v1/bookings/{code}/confirm"), Some(&ann), None, &[]).0, 200);
        assert_eq!(srv.call("POST", &format!("/v1/bookings/{code}/cancel"), Some(&org), None, &[]).0, 200);

        // Page by page, two at a time, until no cursor: everything once, in order.
        let mut seen: Vec<Value> = Vec::new();
        let mut path = "/v1/audit?event=audit&limit=2".to_owned();
        loop {
            let (status, page, _) = srv.call("GET", &path, Some(&org), None, &[]);
            assert_eq!(status, 200, "{page}");
            seen.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/v1/audit?event=audit&limit=2&cursor={c}"),
                None => break,
            }
        }
        let kinds: Vec<&str> = seen.iter().map(|e| s(&e["type"])).collect();
        assert_eq!(kinds, ["event.created", "booking.held", "booking.confirmed", "booking.cancelled"]);
        let actors: Vec<&str> = seen.iter().map(|e| s(&e["actor"])).collect();
        assert_eq!(actors, ["org@example.com", "ann@example.com", "ann@example.com", "org@example.com"]);
        let secret = s(&held["tickets"][0]["secret"]);
        assert!(!Value::Array(seen.clone()).to_string().contains(secret), "no ticket secret in the log");

        let (_, by_booking, _) = srv.call("GET", &format!("/v1/audit?booking={code}"), Some(&boss), None, &[]);
        assert_eq!(by_booking["items"].as_array().map(Vec::len), Some(3), "{by_booking}");
        let (_, by_actor, _) = srv.call("GET", "/v1/audit?actor=ann@example.com", Some(&boss), None, &[]);
        assert_eq!(by_actor["items"].as_array().map(Vec::len), Some(2), "{by_actor}");
        let (_, later, _) = srv.call("GET", "/v1/audit?since=2999-01-01T00:00:00Z", Some(&boss), None, &[]);
        assert_eq!(later["items"], serde_json::json!([]));
        let (_, all, _) = srv.call("GET", "/v1/audit", Some(&boss), None, &[]);
        assert!(
            all["items"].as_array().expect("items").iter().any(|e| e["type"] == "user.created"),
            "an admin reads account events too: {all}"
        );
        let (_, own, _) = srv.call("GET", "/v1/audit", Some(&org), None, &[]);
        assert!(own["items"].as_array().expect("items").iter().all(|e| e["event_id"].is_string()), "{own}");
        assert_eq!(srv.call("GET", "/v1/audit", Some(&ann), None, &[]).0, 403);
        for (query, field) in [
            ("since=yesterday", "since"),
            ("booking=nope", "booking"),
            ("actor=not-an-email", "actor"),
            ("limit=0", "limit"),
        ] {
            let (status, problem, _) = srv.call("GET", &format!("/v1/audit?{query}"), Some(&boss), None, &[]);
            assert_eq!(status, 422, "{query}: {problem}");
            assert!(problem.to_string().contains(field), "{query}: names {field}: {problem}");
        }
        let (status, problem, _) = srv.call("GET", "/v1/audit?offset=2", Some(&boss), None, &[]);
        assert_eq!(status, 422, "no offset: the log pages by cursor: {problem}");
        assert!(problem.to_string().contains("offset"), "{problem}");

        // The CLI reads the same log.
        let out = Command::new(BIN)
            .args(["--db", db, "--format", "json", "--as", "org@example.com", "audit", "--event", "audit"])
            .env_remove("GOTICKET_DB")
            .output()
            .expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let cli: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
        assert_eq!(cli["items"], Value::Array(seen), "the CLI and the API agree");
        for (flag, value) in [("--since", "yesterday"), ("--booking", "nope"), ("--actor", "x"), ("--limit", "0")] {
            let out = Command::new(BIN)
                .args(["--db", db, "audit", flag, value])
                .env_remove("GOTICKET_DB")
                .output()
                .expect("runs");
            assert_eq!(out.status.code(), Some(5), "{flag} {value}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(flag),
                "{flag}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = Command::new(BIN)
            .args(["--db", db, "--as", "ann@example.com", "audit"])
            .env_remove("GOTICKET_DB")
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(6), "a customer may not read it: {}", String::from_utf8_lossy(&out.stderr));
    }
    on_both_stores!(the_audit_log_over_http_and_the_cli);

    /// A server on a fresh SQLite database, and an admin's token.
    fn admin_server() -> (Db, Server, String) {
        let db = Db::new();
        let path = db.path.display().to_string();
        add_user(&path, "boss@example.com", "admin");
        let srv = Server::start(&path);
        let boss = srv.token("boss@example.com", "long enough password");
        (db, srv, boss)
    }

    #[test]
    fn requests_the_document_calls_valid_are_not_refused_for_their_shape() {
        let (_db, srv, boss) = admin_server();
        let event = r#"{"name":"M","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":2,"price":"20 EUR","slug":"m"}"#;
        assert_eq!(srv.call("POST", "/v1/events", Some(&boss), Some(event), &[]).0, 201);
        // Empty optional query parameters are the same as absent ones.
        for q in [
            "/v1/events?min_price=&max_price=&cursor=&from=&status=",
            "/v1/bookings?event=&cursor=&customer=",
            "/v1/reports/sales?event=",
        ] {
            let (status, body, _) = srv.call("GET", q, Some(&boss), None, &[]);
            assert_eq!(status, 200, "{q}: {body}");
        }
        let (status, body, _) = srv.call("GET", "/v1/events?staus=", Some(&boss), None, &[]);
        assert_eq!(status, 422, "an unknown parameter is refused even when empty: {body}");
        let (status, body, _) = srv.call("GET", "/v1/events?cursor=&limit=1", Some(&boss), None, &[]);
        assert_eq!((status, body["items"].as_array().map(Vec::len)), (200, Some(1)), "{body}");
        // A slug in any case, as the EventKey pattern allows.
        assert_eq!(srv.call("GET", "/v1/events/M", Some(&boss), None, &[]).0, 200);
        // A required field sent as null is refused, as the document (no null) says.
        let null_name = event.replace(r#""name":"M""#, r#""name":null"#);
        assert_eq!(srv.call("POST", "/v1/events", Some(&boss), Some(&null_name), &[]).0, 422);
        let doc = srv.openapi();
        let create = &doc["components"]["schemas"]["NewEventBody"]["properties"];
        assert_eq!(create["name"]["$ref"], "#/components/schemas/EventName", "required, so not nullable: {create}");
        assert!(doc["components"]["schemas"]["EventKey"]["pattern"].is_string());
        let update = &doc["components"]["schemas"]["UpdateEventBody"]["properties"];
        assert_eq!(update["capacity"]["$ref"], "#/components/schemas/Capacity", "not clearable, so not null: {update}");
        assert!(update["venue"]["type"].as_array().is_some_and(|t| t.contains(&Value::from("null"))), "{update}");
        assert!(update["venue"]["pattern"].is_string() && update.get("organizer").is_none(), "{update}");
        let (status, body, _) = srv.call("PATCH", "/v1/events/m", Some(&boss), Some(r#"{"capacity":null}"#), &[]);
        assert_eq!(status, 422, "what the document refuses, the server refuses: {body}");
    }

    #[test]
    fn request_ids_and_metrics() {
        let db = Db::new();
        let path = db.path.display().to_string();
        add_user(&path, "boss@example.com", "admin");
        let srv = Server::start(&path);
        let fresh = ureq::get(&format!("{}/healthz", srv.base)).call().expect("ok");
        let id = fresh.header("x-request-id").expect("a request id is assigned").to_owned();
        assert_eq!(id.len(), 36, "a UUID: {id}");
        let echoed = ureq::get(&format!("{}/healthz", srv.base)).set("x-request-id", "trace-me-42").call().expect("ok");
        assert_eq!(echoed.header("x-request-id"), Some("trace-me-42"), "the caller's id is kept");

        let boss = srv.token("boss@example.com", "long enough password");
        let event = r#"{"name":"M","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":2,"price":{"amount_minor":100,"currency":"EUR"},"slug":"m"}"#;
        srv.call("POST", "/v1/events", Some(&boss), Some(event), &[]);
        let book = r#"{"quantity":1,"customer":"a@example.com"}"#;
        for _ in 0..3 {
            srv.call("POST", "/v1/events/m/bookings", Some(&boss), Some(book), &[]);
        }
        srv.call("GET", "/v1/events", None, None, &[]);
        srv.call("GET", "/v1/nope/at/all", None, None, &[]);
        srv.call("BREW", "/v1/events", None, None, &[]);
        let (status, text, ct) = srv.call("GET", "/metrics", None, None, &[]);
        assert_eq!((status, ct.as_str()), (200, "application/openmetrics-text"));
        let text = text.as_str().expect("text").to_owned();
        // The sum of every series of `name` whose labels contain each of `having`.
        let total = |name: &str, having: &[&str]| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
                .filter(|l| having.iter().all(|h| l.contains(h)))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        assert_eq!(total("goticket_reservations_total", &["outcome=\"created\""]), 2.0, "{text}");
        assert_eq!(total("goticket_reservations_total", &["outcome=\"sold-out\""]), 1.0, "the third was sold out");
        assert_eq!(total("goticket_http_problems_total", &["kind=\"sold-out\""]), 1.0, "{text}");
        assert_eq!(total("goticket_seats_sold", &[]), 2.0, "both seats sold: {text}");
        assert!(text.contains("\ngoticket_seats_held 0\n"), "{text}");
        let kinds = text.lines().filter(|l| l.starts_with("goticket_store_errors_total{kind=")).count();
        assert_eq!(kinds, 6, "every kind of store error is listed, from zero: {text}");
        assert_eq!(total("goticket_store_errors_total", &[]), 0.0, "{text}");
        // SQLite counts its writer connection's waits: every write took it once.
        assert!(total("goticket_store_pool_checkouts_total", &[]) >= 4.0, "{text}");
        assert!(text.contains("\ngoticket_store_pool_wait_seconds_total "), "{text}");
        assert_eq!(total("goticket_store_pool_timeouts_total", &[]), 0.0, "{text}");
        let booked = ["route=\"/v1/events/{event}/bookings\"", "method=\"POST\""];
        assert_eq!(total("goticket_http_requests_total", &[&booked[..], &["status=\"201\""]].concat()), 2.0, "{text}");
        assert_eq!(total("goticket_http_requests_total", &[&booked[..], &["status=\"409\""]].concat()), 1.0);
        assert!(!text.contains("/v1/events/m") && !text.contains("/v1/nope"), "routes are templates, never raw paths");
        assert!(total("goticket_http_requests_total", &["route=\"unmatched\""]) >= 1.0, "{text}");
        assert!(!text.contains("BREW") && text.contains("method=\"other\""), "methods come from a fixed set");
        assert!(total("goticket_http_problems_total", &["kind=\"not-found\""]) >= 1.0, "the fallback counts: {text}");
        assert!(total("goticket_http_request_duration_seconds_count", &["route=\"/v1/events\""]) >= 1.0, "{text}");
        assert!(
            text.contains(
                "goticket_http_request_duration_seconds_bucket{le=\"+Inf\",method=\"GET\",route=\"/v1/events\"}"
            ) || text.contains(
                "goticket_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/events\",le=\"+Inf\"}"
            ),
            "{text}"
        );
        assert!(total("goticket_combiner_batches_total", &[]) >= 1.0, "reservations go through the combiner");
        let batches = total("goticket_combiner_batch_size_count", &[]);
        assert!(batches >= 1.0, "{text}");
        assert_eq!(total("goticket_combiner_batch_size_bucket", &["le=\"+Inf\""]), batches, "{text}");
        assert_eq!(total("goticket_combiner_batch_size_sum", &[]), total("goticket_combiner_requests_total", &[]));
        assert!(text.ends_with("# EOF\n"), "OpenMetrics text");
    }

    /// A real Prometheus scrapes a running server, and a booking counter is read back
    /// through Prometheus's own query API.
    #[test]
    #[cfg_attr(
        prometheus_tests_skipped,
        ignore = "needs prometheus and promtool on the PATH (apt-get install prometheus)"
    )]
    fn a_real_prometheus_scrapes_the_server() {
        let (_db, srv, boss) = admin_server();
        let event = r#"{"name":"P","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":5,"price":"1 EUR","slug":"p"}"#;
        srv.call("POST", "/v1/events", Some(&boss), Some(event), &[]);
        for _ in 0..3 {
            let (status, _, _) = srv.call(
                "POST",
                "/v1/events/p/bookings",
                Some(&boss),
                Some(r#"{"quantity":1,"customer":"a@example.com"}"#),
                &[],
            );
            assert_eq!(status, 201);
        }
        let dir = tempfile::tempdir().expect("dir");
        let target = srv.base.trim_start_matches("http://").to_owned();
        let config = dir.path().join("prometheus.yml");
        let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/alerts.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: goticket\n    \
                 static_configs:\n      - targets: ['{target}']\n",
                rules.display()
            ),
        )
        .expect("config");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let mut prometheus = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus runs");
        let query = format!(
            "http://127.0.0.1:{port}/api/v1/query?query=sum(goticket_reservations_total%7Boutcome%3D%22created%22%7D)"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let seen = loop {
            let answer = ureq::get(&query).call().ok().and_then(|r| r.into_json::<Value>().ok());
            let value = answer.as_ref().and_then(|a| a["data"]["result"][0]["value"][1].as_str().map(str::to_owned));
            if value.as_deref() == Some("3") || std::time::Instant::now() > deadline {
                break value;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        };
        let rules_loaded = ureq::get(&format!("http://127.0.0.1:{port}/api/v1/rules"))
            .call()
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .map(|v| v["data"]["groups"][0]["rules"].as_array().map_or(0, Vec::len));
        let _ = prometheus.kill();
        let _ = prometheus.wait();
        assert_eq!(seen.as_deref(), Some("3"), "Prometheus read the three bookings from /metrics");
        let rules = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/alerts.yml"),
        )
        .expect("the rules");
        let written = rules.lines().filter(|l| l.trim_start().starts_with("- alert:")).count();
        assert_eq!(rules_loaded, Some(written), "Prometheus loaded every alerting rule");
    }

    /// The alerting rules pass `promtool check rules`, and every metric they and the
    /// dashboard query is one the server exports.
    #[test]
    #[cfg_attr(
        prometheus_tests_skipped,
        ignore = "needs prometheus and promtool on the PATH (apt-get install prometheus)"
    )]
    fn alerts_and_dashboard_query_metrics_that_exist() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let rules = root.join("deploy/prometheus/alerts.yml");
        let check = Command::new("promtool").arg("check").arg("rules").arg(&rules).output().expect("promtool runs");
        assert!(
            check.status.success(),
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let (_db, srv, boss) = admin_server();
        let event = r#"{"name":"D","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":1,"price":"1 EUR","slug":"d"}"#;
        srv.call("POST", "/v1/events", Some(&boss), Some(event), &[]);
        for _ in 0..2 {
            srv.call(
                "POST",
                "/v1/events/d/bookings",
                Some(&boss),
                Some(r#"{"quantity":1,"customer":"a@example.com"}"#),
                &[],
            );
        }
        let (_, text, _) = srv.call("GET", "/metrics", None, None, &[]);
        // The names of the samples themselves (`x_total`, `x_bucket`...), which is what a
        // query must name.
        let exported: std::collections::BTreeSet<String> = text
            .as_str()
            .expect("text")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
            .collect();
        let dashboard = std::fs::read_to_string(root.join("deploy/grafana/goticket.json")).expect("dashboard");
        let _: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
        let queried = std::fs::read_to_string(&rules).expect("rules") + &dashboard;
        let mut names: Vec<&str> = queried
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("goticket_"))
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() >= 6, "{names:?}");
        for name in names {
            assert!(exported.contains(name), "{name} is queried but not exported: {exported:?}");
        }
    }

    /// The load test, from a separate process: 16 connections sell a 300-seat event
    /// out; exactly 300 sold and nothing but 201 and 409 answered.
    #[test]
    fn bench_http_sells_out_exactly() {
        let (_db, srv, boss) = admin_server();
        let event = r#"{"name":"Hot","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":300,"price":{"amount_minor":100,"currency":"EUR"},"slug":"hot"}"#;
        assert_eq!(srv.call("POST", "/v1/events", Some(&boss), Some(event), &[]).0, 201);
        // From an empty directory and without --db: the load test opens no database.
        let elsewhere = tempfile::tempdir().expect("dir");
        let out = Command::new(BIN)
            .args(["--format", "json", "bench", "http", "--url", &srv.base, "--token", &boss])
            .args(["--event", "hot", "--concurrency", "16"])
            .current_dir(elsewhere.path())
            .env_remove("GOTICKET_DB")
            .output()
            .expect("runs");
        assert!(!elsewhere.path().join("goticket.db").exists(), "bench http created a database");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            (r["sold"].as_u64(), r["bookings"].as_u64(), r["oversold"].as_bool()),
            (Some(300), Some(300), Some(false)),
            "{r}"
        );
        assert!(r["refused"].as_u64().unwrap_or(0) >= 1);
    }

    impl Server {
        fn start_with(db: &str, extra: &[&str]) -> Self {
            let mut cmd = Command::new(BIN);
            cmd.args(["--db", db, "serve", "--addr", "127.0.0.1:0"]).args(extra);
            Self::spawn(cmd)
        }

        /// Runs `cmd` (which starts a server, perhaps through a shell) and waits for
        /// the address it prints.
        fn spawn(mut cmd: Command) -> Self {
            let mut child = cmd
                .env("GOTICKET_JWT_SECRET", SECRET)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
            let base = loop {
                let line = lines.next().expect("the server printed its address").expect("readable");
                if let Some(addr) = line.strip_prefix("goticket: listening on ") {
                    break addr.to_owned();
                }
            };
            let log = std::sync::Arc::<std::sync::Mutex<Vec<String>>>::default();
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    sink.lock().expect("not poisoned").push(line);
                }
            });
            Server { child, base, seen: std::sync::Mutex::default(), log }
        }
    }

    /// Every route against every kind of caller: 401 without a valid token (missing,
    /// forged, expired), 403 where the role may not act, and the right answer where it
    /// may (a 409 from a state rule also proves access was granted).
    fn the_role_matrix(db: &TestDb) {
        let path = db.url.as_str();
        for (email, role) in [
            ("boss@example.com", "admin"),
            ("org@example.com", "organizer"),
            ("rival@example.com", "organizer"),
            ("ann@example.com", "customer"),
        ] {
            add_user(path, email, role);
        }
        let srv = Server::start_with(path, &["--token-ttl", "1s"]);
        let expired = srv.token("ann@example.com", "long enough password");
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let srv2 = Server::start(path);
        let t = |email: &str| srv2.token(email, "long enough password");
        let (boss, org, rival, ann) =
            (t("boss@example.com"), t("org@example.com"), t("rival@example.com"), t("ann@example.com"));
        let callers: [(&str, Option<&str>); 7] = [
            ("none", None),
            ("forged", Some("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib3NzQGV4YW1wbGUuY29tIn0.AAAA")),
            ("expired", Some(&expired)),
            ("customer", Some(&ann)),
            ("owner", Some(&org)),
            ("rival", Some(&rival)),
            ("admin", Some(&boss)),
        ];
        let event = |slug: &str| {
            format!(
                r#"{{"name":"E","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":50,"price":{{"amount_minor":100,"currency":"EUR"}},"slug":"{slug}"}}"#
            )
        };
        assert_eq!(srv2.call("POST", "/v1/events", Some(&org), Some(&event("web")), &[]).0, 201);
        let (_, hold, _) =
            srv2.call("POST", "/v1/events/web/bookings", Some(&ann), Some(r#"{"quantity":1,"hold":"1h"}"#), &[]);
        let code = s(&hold["code"]).to_owned();
        let secret = s(&hold["tickets"][0]["secret"]).to_owned();
        let checkin = format!(r#"{{"secret":"{secret}"}}"#);
        // Expected status per caller, in the order of `callers`, route by route. The
        // rows run in order: state changes (confirm, check in, cancel) come last.
        let matrix: Vec<(&str, String, Option<String>, [u16; 7])> = vec![
            ("GET", "/v1/events".into(), None, [401, 401, 401, 200, 200, 200, 200]),
            ("GET", "/v1/events/web".into(), None, [401, 401, 401, 200, 200, 200, 200]),
            ("PATCH", "/v1/events/web".into(), Some(r#"{"venue":"Hall"}"#.into()), [401, 401, 401, 403, 200, 403, 200]),
            (
                "POST",
                "/v1/events/web/bookings".into(),
                Some(r#"{"quantity":1}"#.into()),
                [401, 401, 401, 201, 201, 201, 201],
            ),
            (
                "POST",
                "/v1/events/web/bookings".into(),
                Some(r#"{"quantity":1,"customer":"zed@example.com"}"#.into()),
                [401, 401, 401, 403, 201, 403, 201],
            ),
            ("GET", "/v1/bookings".into(), None, [401, 401, 401, 200, 200, 200, 200]),
            ("GET", format!("/v1/bookings/{code}"), None, [401, 401, 401, 200, 200, 403, 200]),
            ("GET", "/v1/reports/sales".into(), None, [401, 401, 401, 403, 200, 200, 200]),
            ("GET", "/v1/audit".into(), None, [401, 401, 401, 403, 200, 200, 200]),
            ("GET", "/v1/audit?event=web".into(), None, [401, 401, 401, 403, 200, 403, 200]),
            ("GET", "/v1/users".into(), None, [401, 401, 401, 403, 403, 403, 200]),
            (
                "POST",
                "/v1/users".into(),
                Some(r#"{"email":"new@example.com","role":"organizer","password":"long enough password"}"#.into()),
                [401, 401, 401, 403, 403, 403, 201],
            ),
            (
                "PATCH",
                "/v1/users/ann@example.com".into(),
                Some(r#"{"password":"long enough password","current_password":"long enough password"}"#.into()),
                [401, 401, 401, 200, 403, 403, 200],
            ),
            (
                "PATCH",
                "/v1/users/rival@example.com".into(),
                Some(r#"{"role":"organizer"}"#.into()),
                [401, 401, 401, 403, 403, 403, 200],
            ),
            ("POST", format!("/v1/bookings/{code}/confirm"), None, [401, 401, 401, 200, 409, 403, 409]),
            ("POST", "/v1/checkin".into(), Some(checkin), [401, 401, 401, 403, 200, 403, 409]),
            ("POST", "/v1/events/web/cancel".into(), None, [401, 401, 401, 403, 200, 403, 409]),
        ];
        for (method, route, body, expected) in &matrix {
            for ((who, token), want) in callers.iter().zip(expected) {
                let (got, v, ct) = srv2.call(method, route, *token, body.as_deref(), &[]);
                assert_eq!(got, *want, "{method} {route} as {who}: {v}");
                if got >= 400 {
                    assert_eq!(ct, "application/problem+json", "{method} {route} as {who}");
                }
            }
        }
        // Creating events: customers may not; organizers and admins may.
        for ((who, token), want) in callers.iter().zip([401, 401, 401, 403, 201, 201, 201]) {
            let got = srv2.call("POST", "/v1/events", *token, Some(&event(&format!("new-{who}"))), &[]).0;
            assert_eq!(got, want, "POST /v1/events as {who}");
        }
        for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
            assert_eq!(srv2.call("GET", open, None, None, &[]).0, 200, "{open} needs no token");
        }
        drop(srv);
    }

    on_both_stores!(the_role_matrix);

    /// The document is the contract: exactly these routes, each served (no fallback 404,
    /// no 405), each refusing a missing token exactly when it says it needs one, and
    /// every reference in it resolving. What each route answered here is checked
    /// against it when the server is dropped.
    #[test]
    fn openapi_describes_every_route_served() {
        let (_db, srv, boss) = admin_server();
        let doc = srv.openapi();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut routes: Vec<(String, String)> = Vec::new();
        for (t, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("a path item").keys() {
                routes.push((method.to_uppercase(), t.clone()));
            }
        }
        routes.sort();
        let mut expected: Vec<(String, String)> = [
            "GET /healthz",
            "GET /readyz",
            "GET /metrics",
            "GET /openapi.json",
            "GET /.well-known/jwks.json",
            "POST /v1/auth/register",
            "POST /v1/auth/login",
            "GET /v1/users",
            "POST /v1/users",
            "PATCH /v1/users/{email}",
            "GET /v1/events",
            "POST /v1/events",
            "GET /v1/events/{event}",
            "PATCH /v1/events/{event}",
            "POST /v1/events/{event}/cancel",
            "POST /v1/events/{event}/bookings",
            "GET /v1/bookings",
            "GET /v1/bookings/{code}",
            "POST /v1/bookings/{code}/confirm",
            "POST /v1/bookings/{code}/cancel",
            "POST /v1/checkin",
            "GET /v1/reports/sales",
            "GET /v1/audit",
        ]
        .iter()
        .map(|r| {
            let (m, t) = r.split_once(' ').expect("METHOD /path");
            (m.to_owned(), t.to_owned())
        })
        .collect();
        expected.sort();
        assert_eq!(routes, expected);

        let mut operation_ids = std::collections::HashSet::new();
        for (method, t) in &routes {
            let op = &doc["paths"][t][method.to_lowercase()];
            assert!(operation_ids.insert(op["operationId"].as_str().expect("an operationId")), "{method} {t}");
            let statuses: Vec<&String> = op["responses"].as_object().expect("responses").keys().collect();
            assert!(statuses.iter().any(|s| s.starts_with('2')), "{method} {t} lists no success");
            let secured = op.get("security").is_some();
            if secured {
                assert!(statuses.contains(&&"401".to_owned()), "{method} {t} needs a token but lists no 401");
            }
            if op.get("requestBody").is_some() {
                assert!(statuses.contains(&&"422".to_owned()), "{method} {t} takes a body but lists no 422");
            }
            let concrete = t
                .replace("{event}", "no-such-event")
                .replace("{code}", "AAAA-AAAA-AAAA")
                .replace("{email}", "x@example.com");
            let body = (method != "GET").then_some("{}");
            let anonymous = srv.call(method, &concrete, None, body, &[]);
            assert_eq!(anonymous.0 == 401, secured, "{method} {t} without a token: {}", anonymous.1);
            if t.contains('{') {
                // A parameter that is not even UTF-8 is a problem too, not a bare 400.
                let garbled = t.replace("{event}", "%FF").replace("{code}", "%FF").replace("{email}", "%FF");
                let got = srv.call(method, &garbled, Some(&boss), body, &[]);
                assert_problem(got, 422, "validation");
            }
            let admin = srv.call(method, &concrete, Some(&boss), body, &[]);
            assert!(
                admin.1["detail"] != "no such route" && admin.0 != 405,
                "{method} {t} is documented but not served: {} {}",
                admin.0,
                admin.1
            );
        }

        // Every reference resolves.
        fn refs<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(r)) = o.get("$ref") {
                        out.push(r);
                    }
                    o.values().for_each(|x| refs(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 20);
        for r in all {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is not local"));
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }

        // Methods no route takes, and paths no route has, are problems too.
        let got = srv.call("DELETE", "/v1/events", Some(&boss), None, &[]);
        assert_problem(got, 405, "method-not-allowed");
        assert_problem(srv.call("GET", "/v1/nothing/here", None, None, &[]), 404, "not-found");
    }

    /// The committed document (`goticket-cli/openapi.json`) is what the code makes and
    /// what the server answers, so an API change shows up in review as its diff.
    /// `GOTICKET_BLESS=1 cargo test` rewrites it.
    #[test]
    fn committed_openapi_is_current() {
        let out = Command::new(BIN).arg("openapi").env_remove("GOTICKET_DB").output().expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let made: Value = serde_json::from_slice(&out.stdout).expect("goticket openapi prints JSON");
        let db = Db::new();
        let srv = Server::start(&db.path.display().to_string());
        assert_eq!(srv.openapi(), made, "the server answers the document the code makes");
        let text = String::from_utf8_lossy(&out.stdout);
        let defined = made["components"]["schemas"].as_object().expect("schemas");
        for r in text.split("\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').expect("a closing quote")];
            assert!(defined.contains_key(name), "the document refers to {name}, which it does not define");
        }
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        if std::env::var_os("GOTICKET_BLESS").is_some() {
            std::fs::write(&file, &out.stdout).expect("write openapi.json");
        }
        let committed: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap_or_default()).unwrap_or(Value::Null);
        assert!(
            committed == made,
            "{} is not the document the code makes: run `GOTICKET_BLESS=1 cargo test -p goticket-cli \
             committed_openapi` and review the diff",
            file.display()
        );
    }

    /// A request that waits past its deadline (here on a write lock another connection
    /// holds) is answered 503 busy at the deadline; reads do not wait; once the lock is
    /// gone, a retry with the same Idempotency-Key gives one booking, never two.
    #[test]
    fn requests_past_their_deadline_are_busy() {
        let db = Db::new();
        let path = db.path.display().to_string();
        add_user(&path, "boss@example.com", "admin");
        let srv = Server::start_with(&path, &["--request-timeout", "1s"]);
        let boss = srv.token("boss@example.com", "long enough password");
        let event = r#"{"name":"Slow","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":5,"price":{"amount_minor":100,"currency":"EUR"},"slug":"slow"}"#;
        assert_eq!(srv.call("POST", "/v1/events", Some(&boss), Some(event), &[]).0, 201);
        let lock = rusqlite::Connection::open(&db.path).expect("open");
        lock.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");
        let book = r#"{"quantity":1,"customer":"c@example.com"}"#;
        let key = [("Idempotency-Key", "slow-1")];
        let started = std::time::Instant::now();
        let got = srv.call("POST", "/v1/events/slow/bookings", Some(&boss), Some(book), &key);
        let waited = started.elapsed();
        assert!(s(&got.1["detail"]).contains("Idempotency-Key"), "{}", got.1);
        assert_problem(got, 503, "busy");
        assert!(waited >= std::time::Duration::from_millis(900), "answered before the deadline: {waited:?}");
        assert!(waited < std::time::Duration::from_secs(10), "answered long after the deadline: {waited:?}");
        assert_eq!(srv.call("GET", "/v1/events/slow", Some(&boss), None, &[]).0, 200, "reads do not wait");
        lock.execute_batch("ROLLBACK").expect("release");
        drop(lock);
        let retry = srv.call("POST", "/v1/events/slow/bookings", Some(&boss), Some(book), &key);
        assert!(matches!(retry.0, 200 | 201), "{}", retry.1);
        let (_, e, _) = srv.call("GET", "/v1/events/slow", Some(&boss), None, &[]);
        assert_eq!((e["sold"].as_u64(), e["available"].as_u64()), (Some(1), Some(4)), "{e}");
    }

    /// Random bodies (JSON built from the API's own field names, and text that is not
    /// JSON) on every route that takes one: never a 5xx, every 4xx a problem, and every
    /// answer as documented (checked when the server is dropped).
    #[test]
    fn random_bodies_never_break_the_server() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let (_db, srv, boss) = admin_server();
        let event = r#"{"name":"E","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":1000,"price":{"amount_minor":100,"currency":"EUR"},"slug":"e"}"#;
        assert_eq!(srv.call("POST", "/v1/events", Some(&boss), Some(event), &[]).0, 201);
        let fields = [
            "name",
            "slug",
            "description",
            "venue",
            "starts_at",
            "ends_at",
            "capacity",
            "price",
            "amount_minor",
            "currency",
            "max_per_customer",
            "sales_start",
            "sales_end",
            "organizer",
            "quantity",
            "hold",
            "customer",
            "secret",
            "email",
            "password",
            "role",
            "extra",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            "[ -~]{0,24}".prop_map(Value::from),
            prop::sample::select(vec!["2090-01-01T19:00:00Z", "10.00 EUR", "EUR", "15m", "a@example.com", "admin"])
                .prop_map(Value::from),
        ];
        let json = leaf.prop_recursive(3, 32, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(prop::sample::select(fields.to_vec()), inner, 0..7)
                    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            ]
        });
        let body = prop_oneof![4 => json.prop_map(|v| v.to_string()), 1 => "\\PC{0,40}"];
        let routes = vec![
            ("POST", "/v1/events"),
            ("PATCH", "/v1/events/e"),
            ("POST", "/v1/events/e/bookings"),
            ("POST", "/v1/checkin"),
            ("POST", "/v1/users"),
            ("PATCH", "/v1/users/nobody@example.com"),
            ("POST", "/v1/auth/login"),
            ("POST", "/v1/auth/register"),
        ];
        let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(200);
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        runner
            .run(&(prop::sample::select(routes), body), |((method, route), body)| {
                let (status, answer, ct) = srv.call(method, route, Some(&boss), Some(&body), &[]);
                prop_assert!(status < 500, "{method} {route} {body} -> {status} {answer}");
                if status >= 400 {
                    prop_assert_eq!(ct, "application/problem+json", "{} {} {}", method, route, body);
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// A request with several bad fields is told about all of them at once.
    fn validation_problems_list_every_field(db: &TestDb) {
        let path = db.url.as_str();
        add_user(path, "org@example.com", "organizer");
        let srv = Server::start(path);
        let org = srv.token("org@example.com", "long enough password");
        let bad =
            r#"{"slug":"Bad Slug!","starts_at":"2090-01-02T00:00:00Z","ends_at":"2090-01-01T00:00:00Z","capacity":0}"#;
        let got = srv.call("POST", "/v1/events", Some(&org), Some(bad), &[]);
        let errors = got.1["errors"].as_array().cloned().unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| s(&e["field"])).collect();
        assert_eq!(fields, ["name", "capacity", "price", "slug", "ends_at"], "{}", got.1);
        assert!(errors.iter().all(|e| !s(&e["reason"]).is_empty()));
        assert!(s(&got.1["detail"]).contains("name"), "detail is the first error: {}", got.1);
        assert_problem(got, 422, "validation");
        // One bad value: one entry, naming it.
        let got = srv.call("GET", "/v1/events?limit=0", Some(&org), None, &[]);
        assert_eq!(got.1["errors"][0]["field"], "limit", "{}", got.1);
        assert_eq!(got.1["errors"].as_array().map(Vec::len), Some(1));
        // Other problems carry no field list.
        let got = srv.call("GET", "/v1/events/nope", Some(&org), None, &[]);
        assert!(got.1.get("errors").is_none(), "{}", got.1);
    }

    on_both_stores!(validation_problems_list_every_field);

    /// Filters and pages of both lists, and their bad values: each a 422 naming the
    /// parameter.
    fn lists_filter_and_page(db: &TestDb) {
        let path = db.url.as_str();
        add_user(path, "org@example.com", "organizer");
        let srv = Server::start(path);
        let org = srv.token("org@example.com", "long enough password");
        for (slug, month, euros) in [("a", 1, 10), ("b", 2, 20), ("c", 3, 30), ("d", 4, 40)] {
            let body = format!(
                r#"{{"name":"{slug}","slug":"{slug}","starts_at":"2090-{month:02}-01T19:00:00Z","ends_at":"2090-{month:02}-01T22:00:00Z","capacity":10,"price":{{"amount_minor":{},"currency":"EUR"}}}}"#,
                euros * 100
            );
            assert_eq!(srv.call("POST", "/v1/events", Some(&org), Some(&body), &[]).0, 201);
        }
        assert_eq!(srv.call("POST", "/v1/events/c/cancel", Some(&org), None, &[]).0, 200);
        let slugs = |query: &str| -> (Vec<String>, Value) {
            let (status, page, _) = srv.call("GET", &format!("/v1/events?{query}"), Some(&org), None, &[]);
            assert_eq!(status, 200, "{query}: {page}");
            let items = page["items"].as_array().expect("items").iter().map(|e| s(&e["slug"]).to_owned()).collect();
            (items, page["next_cursor"].clone())
        };
        assert_eq!(slugs("from=2090-01-15T00:00:00Z&to=2090-03-15T00:00:00Z").0, ["b", "c"]);
        assert_eq!(slugs("min_price=15%20EUR&max_price=35.00%20EUR").0, ["b", "c"]);
        assert_eq!(slugs("status=cancelled").0, ["c"]);
        assert_eq!(slugs("status=scheduled&min_price=20%20EUR").0, ["b", "d"]);
        assert_eq!(slugs("offset=3").0, ["d"]);
        let (first, cursor) = slugs("limit=3");
        assert_eq!(first, ["a", "b", "c"]);
        let (rest, end) = slugs(&format!("limit=3&cursor={}", s(&cursor)));
        assert_eq!((rest, end), (vec!["d".to_owned()], Value::Null));
        let both = srv.call("GET", &format!("/v1/events?cursor={}&offset=1", s(&cursor)), Some(&org), None, &[]);
        assert!(s(&both.1["detail"]).contains("offset"), "{}", both.1);
        assert_problem(both, 422, "validation");
        for (query, names) in [
            ("limit=0", "limit"),
            ("limit=lots", "limit"),
            ("offset=-1", "offset"),
            ("cursor=zzz", "cursor"),
            ("status=done", "status"),
            ("from=yesterday", "from"),
            ("from=2090-03-01T00:00:00Z&to=2090-01-01T00:00:00Z", "to"),
            ("min_price=ten", "min_price"),
            ("min_price=10%20EUR&max_price=20%20USD", "max_price"),
            ("colour=red", "colour"),
        ] {
            let got = srv.call("GET", &format!("/v1/events?{query}"), Some(&org), None, &[]);
            let detail = s(&got.1["detail"]).to_owned();
            assert_problem(got, 422, "validation");
            assert!(detail.contains(names), "{query}: {detail}");
        }

        // Bookings: by event, status and customer; customers see only their own.
        for who in ["ann@example.com", "bob@example.com"] {
            let body = format!(r#"{{"email":"{who}","password":"long enough password"}}"#);
            assert_eq!(srv.call("POST", "/v1/auth/register", None, Some(&body), &[]).0, 201);
        }
        let ann = srv.token("ann@example.com", "long enough password");
        let bob = srv.token("bob@example.com", "long enough password");
        srv.call("POST", "/v1/events/a/bookings", Some(&ann), Some(r#"{"quantity":1,"hold":"10m"}"#), &[]);
        srv.call("POST", "/v1/events/b/bookings", Some(&ann), Some(r#"{"quantity":2}"#), &[]);
        srv.call("POST", "/v1/events/b/bookings", Some(&bob), Some(r#"{"quantity":1}"#), &[]);
        let count = |token: &str, query: &str| -> usize {
            let (status, page, _) = srv.call("GET", &format!("/v1/bookings?{query}"), Some(token), None, &[]);
            assert_eq!(status, 200, "{query}: {page}");
            page["items"].as_array().map_or(0, Vec::len)
        };
        assert_eq!(count(&org, "event=a"), 1);
        assert_eq!(count(&org, "event=b"), 2);
        assert_eq!(count(&org, "status=held"), 1);
        assert_eq!(count(&org, "status=confirmed&customer=ann@example.com"), 1);
        assert_eq!(count(&org, "limit=2"), 2);
        assert_eq!(count(&org, "offset=2"), 1);
        assert_eq!(count(&ann, ""), 2, "ann sees her own");
        assert_eq!(count(&bob, "event=b"), 1, "bob sees his own");
        assert_problem(
            srv.call("GET", "/v1/bookings?customer=bob@example.com", Some(&ann), None, &[]),
            403,
            "forbidden",
        );
        assert_problem(srv.call("GET", "/v1/bookings?event=nope", Some(&org), None, &[]), 404, "not-found");
        assert_problem(srv.call("GET", "/v1/bookings?status=lost", Some(&org), None, &[]), 422, "validation");
    }

    on_both_stores!(lists_filter_and_page);

    /// Admins add accounts and change roles; users change their own password; a change
    /// that is refused changes nothing.
    fn accounts_over_http(db: &TestDb) {
        let path = db.url.as_str();
        add_user(path, "boss@example.com", "admin");
        let srv = Server::start(path);
        let boss = srv.token("boss@example.com", "long enough password");
        let new_org = r#"{"email":"Neo@Example.com","role":"organizer","password":"another long password"}"#;
        let (status, user, _) = srv.call("POST", "/v1/users", Some(&boss), Some(new_org), &[]);
        assert_eq!((status, s(&user["email"]), s(&user["role"])), (201, "neo@example.com", "organizer"), "{user}");
        assert!(user.get("password_hash").is_none() && !user.to_string().contains("argon2"));
        assert_problem(srv.call("POST", "/v1/users", Some(&boss), Some(new_org), &[]), 409, "conflict");
        for (body, field) in [
            (r#"{"email":"x@example.com","role":"boss","password":"another long password"}"#, "role"),
            (r#"{"email":"x@example.com","role":"admin","password":"short"}"#, "password"),
            (r#"{"email":"not-an-email","role":"admin","password":"another long password"}"#, "email"),
            (r#"{"email":"x@example.com","role":"admin"}"#, "password"),
        ] {
            let got = srv.call("POST", "/v1/users", Some(&boss), Some(body), &[]);
            let detail = s(&got.1["detail"]).to_owned();
            assert_problem(got, 422, "validation");
            assert!(detail.contains(field), "{body}: {detail}");
        }
        let neo = srv.token("neo@example.com", "another long password");
        assert_problem(srv.call("POST", "/v1/users", Some(&neo), Some(new_org), &[]), 403, "forbidden");

        // An admin demotes; the next login carries the new role.
        let (status, user, _) =
            srv.call("PATCH", "/v1/users/neo@example.com", Some(&boss), Some(r#"{"role":"customer"}"#), &[]);
        assert_eq!((status, s(&user["role"])), (200, "customer"));
        let neo = srv.token("neo@example.com", "another long password");
        assert_problem(srv.call("GET", "/v1/reports/sales", Some(&neo), None, &[]), 403, "forbidden");

        // A user changes their own password, and nobody else's; a refused change
        // (role and password together, by a customer) changes neither.
        let pw = r#"{"password":"a brand new password"}"#;
        let (status, v, _) = srv.call("PATCH", "/v1/users/neo@example.com", Some(&neo), Some(pw), &[]);
        assert_eq!((status, s(&v["errors"][0]["field"])), (422, "current_password"), "one's own needs the current");
        let wrong = r#"{"password":"a brand new password","current_password":"not the password"}"#;
        assert_problem(srv.call("PATCH", "/v1/users/neo@example.com", Some(&neo), Some(wrong), &[]), 422, "validation");
        let own = r#"{"password":"a brand new password","current_password":"another long password"}"#;
        assert_eq!(srv.call("PATCH", "/v1/users/neo@example.com", Some(&neo), Some(own), &[]).0, 200);
        srv.token("neo@example.com", "a brand new password");
        assert_problem(srv.call("PATCH", "/v1/users/boss@example.com", Some(&neo), Some(pw), &[]), 403, "forbidden");
        let both = r#"{"role":"admin","password":"yet another password"}"#;
        assert_problem(srv.call("PATCH", "/v1/users/neo@example.com", Some(&neo), Some(both), &[]), 403, "forbidden");
        srv.token("neo@example.com", "a brand new password");
        assert_problem(srv.call("PATCH", "/v1/users/ghost@example.com", Some(&boss), Some(pw), &[]), 404, "not-found");
        assert_problem(srv.call("PATCH", "/v1/users/neo@example.com", Some(&boss), Some("{}"), &[]), 422, "validation");
        let (_, all, _) = srv.call("GET", "/v1/users", Some(&boss), None, &[]);
        assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
    }

    on_both_stores!(accounts_over_http);

    /// One JSON log line per request at the default level, carrying the request id,
    /// method, path, status and latency.
    #[test]
    fn request_logs_are_json_lines() {
        let db = Db::new();
        let srv = Server::start_with(&db.path.display().to_string(), &["--json-logs"]);
        srv.call("GET", "/v1/events/nope", None, None, &[("x-request-id", "trace-me-7")]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let line = loop {
            let found = srv.log.lock().expect("not poisoned").iter().find(|l| l.contains("trace-me-7")).cloned();
            if let Some(line) = found {
                break line;
            }
            assert!(std::time::Instant::now() < deadline, "no log line: {:?}", srv.log.lock().expect("not poisoned"));
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let entry: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(entry["level"], "INFO", "{entry}");
        assert_eq!(entry["status"], 401, "{entry}");
        assert!(entry["latency_us"].is_u64(), "latency is a number of microseconds: {entry}");
        assert_eq!(entry["message"], "answered", "{entry}");
        assert_eq!(entry["span"]["request_id"], "trace-me-7", "{entry}");
        assert_eq!(entry["span"]["method"], "GET", "{entry}");
        assert_eq!(entry["span"]["uri"], "/v1/events/nope", "{entry}");
    }

    /// EdDSA tokens from `goticket keygen`'s key: another service verifies them with
    /// the key the server publishes; a token in another algorithm (HS256 with the old
    /// secret, or with the public key as the secret) is refused; the same key file
    /// keeps tokens valid across a restart, a new key does not.
    #[test]
    fn eddsa_tokens_verify_with_the_published_key() {
        use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
        let db = Db::new();
        let path = db.path.display().to_string();
        add_user(&path, "boss@example.com", "admin");
        let keygen = |name: &str| {
            let out = Command::new(BIN).arg("keygen").env_remove("GOTICKET_DB").output().expect("runs");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let file = db.path.with_file_name(name);
            std::fs::write(&file, &out.stdout).expect("write the key");
            file.display().to_string()
        };
        let (key, other_key) = (keygen("a.pem"), keygen("b.pem"));
        let srv = Server::start_with(&path, &["--jwt-key-file", &key]);
        let token = srv.token("boss@example.com", "long enough password");
        let header = jsonwebtoken::decode_header(&token).expect("a JWT");
        assert_eq!(header.alg, Algorithm::EdDSA);
        let (status, jwks, _) = srv.call("GET", "/.well-known/jwks.json", None, None, &[]);
        assert_eq!(status, 200);
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
        assert_eq!(header.kid.as_deref(), jwks["keys"][0]["kid"].as_str());
        let published = DecodingKey::from_ed_components(s(&jwks["keys"][0]["x"])).expect("an Ed25519 key");
        let claims = jsonwebtoken::decode::<Value>(&token, &published, &Validation::new(Algorithm::EdDSA))
            .expect("verifies with the published key");
        assert_eq!(claims.claims["sub"], "boss@example.com");
        assert_eq!(srv.call("GET", "/v1/events", Some(&token), None, &[]).0, 200);

        // Tokens in another algorithm are refused, whatever they were signed with.
        let exp = jsonwebtoken::get_current_timestamp() + 600;
        let forged = serde_json::json!({ "sub": "boss@example.com", "role": "admin", "iat": 0, "exp": exp });
        let public = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s(&jwks["keys"][0]["x"])).expect("base64url")
        };
        for secret in [SECRET.as_bytes(), &public] {
            let hs = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &forged, &EncodingKey::from_secret(secret))
                .expect("signs");
            assert_problem(srv.call("GET", "/v1/events", Some(&hs), None, &[]), 401, "unauthenticated");
        }
        drop(srv);

        let again = Server::start_with(&path, &["--jwt-key-file", &key]);
        assert_eq!(again.call("GET", "/v1/events", Some(&token), None, &[]).0, 200, "the same key survives a restart");
        drop(again);
        let rotated = Server::start_with(&path, &["--jwt-key-file", &other_key]);
        assert_problem(rotated.call("GET", "/v1/events", Some(&token), None, &[]), 401, "unauthenticated");
        drop(rotated);

        // A shared secret publishes nothing; a bad key file is refused with its name.
        let hmac = Server::start(&path);
        assert_eq!(hmac.call("GET", "/.well-known/jwks.json", None, None, &[]).1, serde_json::json!({ "keys": [] }));
        drop(hmac);
        std::fs::write(&other_key, "not a key").expect("write");
        let out =
            Command::new(BIN).args(["--db", &path, "serve", "--jwt-key-file", &other_key]).output().expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{err}");
        assert!(err.contains("--jwt-key-file") && err.contains("b.pem") && err.contains("PEM"), "{err}");
    }

    /// A web shop on another origin may call the API from a browser when its origin is
    /// allowed: preflights are answered, answers carry the CORS headers; other origins
    /// get none, and without --cors-origin nothing changes. (CORS is protocol, not API:
    /// these requests bypass the document check.)
    #[test]
    fn browsers_may_call_from_allowed_origins() {
        let db = Db::new();
        let path = db.path.display().to_string();
        let srv = Server::start_with(&path, &["--cors-origin", "https://shop.example.com"]);
        let preflight = |srv: &Server, origin: &str| {
            let resp = ureq::request("OPTIONS", &format!("{}/v1/events/x/bookings", srv.base))
                .set("Origin", origin)
                .set("Access-Control-Request-Method", "POST")
                .set("Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
                .call();
            match resp {
                Ok(r) | Err(ureq::Error::Status(_, r)) => r,
                Err(e) => panic!("{e}"),
            }
        };
        let ok = preflight(&srv, "https://shop.example.com");
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.header("access-control-allow-origin"), Some("https://shop.example.com"));
        assert!(ok.header("access-control-allow-methods").is_some_and(|m| m.contains("POST")));
        let headers = ok.header("access-control-allow-headers").unwrap_or_default().to_lowercase();
        assert!(headers.contains("authorization") && headers.contains("idempotency-key"), "{headers}");
        assert!(preflight(&srv, "https://evil.example.com").header("access-control-allow-origin").is_none());
        let get = ureq::get(&format!("{}/healthz", srv.base)).set("Origin", "https://shop.example.com").call();
        let get = get.expect("ok");
        assert_eq!(get.header("access-control-allow-origin"), Some("https://shop.example.com"));
        assert!(get.header("access-control-expose-headers").is_some_and(|h| h.contains("x-request-id")));
        drop(srv);

        let plain = Server::start(&path);
        let resp = preflight(&plain, "https://shop.example.com");
        assert_eq!(resp.status(), 405, "no CORS without --cors-origin");
        assert!(resp.header("access-control-allow-origin").is_none());
        drop(plain);

        let out = Command::new(BIN)
            .args(["--db", &path, "serve", "--cors-origin", "shop.example.com/path"])
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{err}");
        assert!(err.contains("--cors-origin") && err.contains("shop.example.com/path"), "{err}");
    }

    #[test]
    fn sigterm_shuts_down_gracefully() {
        let db = Db::new();
        let mut srv = Server::start(&db.path.display().to_string());
        assert_eq!(srv.call("GET", "/healthz", None, None, &[]).0, 200);
        let pid = srv.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        let status = srv.child.wait().expect("wait");
        assert!(status.success(), "exit after SIGTERM: {status:?}");
    }
}
