//! The README's Rust code, compiled and run as doc tests (`cargo test -p
//! goticket-examples --doc`), so the snippet a newcomer copies works.
#![doc = include_str!("../README.md")]
