//! The in-memory store runs the whole conformance suite, like every database store.

use std::sync::Arc;

use goticket_conformance::Fixture;
use goticket_core::MemoryStore;

fn fixture() -> Option<Fixture> {
    Some(Fixture { store: Arc::new(MemoryStore::new()), guard: Box::new(()) })
}

goticket_conformance::conformance_tests!(fixture);
