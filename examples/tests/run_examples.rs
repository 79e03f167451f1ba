//! Every example is built (cargo builds examples for `cargo test`) and run here, its
//! output checked, so the code a library user copies keeps working.

#[path = "../quickstart.rs"]
mod quickstart;

#[test]
fn quickstart_books_and_confirms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("q.db");
    let mut out = Vec::new();
    quickstart::run(&db, &mut out).expect("the example runs");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("Rust meetup"), "{text}");
    assert!(text.contains(": 2 sold, 78 available"), "{text}");
    assert!(text.contains("2 x 12.50 EUR = 25.00 EUR [confirmed]"), "{text}");
    assert_eq!(text.lines().filter(|l| l.trim_start().starts_with("ticket ")).count(), 2, "{text}");
    assert!(db.exists(), "the example wrote the database it was given");
}
