//! Replays every committed fuzz input (crashes and tricky seeds) through the fuzz
//! harness: a parser that panics on one of them fails this test.

#[test]
fn committed_fuzz_inputs_do_not_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/parsers");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the regressions directory exists") {
        let path = entry.expect("readable entry").path();
        let data = std::fs::read(&path).expect("readable input");
        goticket_core::import::fuzz_parsers(&data);
        n += 1;
    }
    assert!(n >= 5, "expected the committed seeds in {}", dir.display());
}
