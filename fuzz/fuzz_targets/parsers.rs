//! Every parser that reads outside input: import rows, money, dates, durations,
//! codes, secrets, emails, slugs, cursors. Run with `cargo +nightly fuzz run parsers`
//! from `fuzz/`; copy any crash into `fuzz/regressions/parsers/`, where
//! `goticket-core/tests/fuzz_regressions.rs` replays it on every test run.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    goticket_core::import::fuzz_parsers(data);
});
