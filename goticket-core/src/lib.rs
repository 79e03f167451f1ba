//! goticket-core: the ticketing domain, its rules, the [`Store`] trait and the
//! [`Service`] API that every face of goticket (library, CLI, HTTP) calls.
//!
//! Core does no I/O: storage is a [`Store`] implementation from another crate
//! (`goticket-store-sqlite`, `goticket-store-pg`), and time and randomness come in
//! through the [`Clock`] and [`Entropy`] traits.
//!
//! ```
//! use goticket_core::{Capacity, Email, Money, NewEvent, Principal, Role};
//!
//! let price: Money = "12.50 EUR".parse()?;
//! assert_eq!(price.amount_minor(), 1250);
//! let event = NewEvent::new(
//!     "Jazz night".parse()?,
//!     goticket_core::parse_timestamp("starts_at", "2027-03-01T19:30:00Z")?,
//!     goticket_core::parse_timestamp("ends_at", "2027-03-01T23:00:00+01:00")?,
//!     "200".parse::<Capacity>()?,
//!     price,
//! );
//! let admin = Principal::new("admin@example.com".parse::<Email>()?, Role::Admin);
//! // With a store: `Service::new(store).create_event(&admin, event)?`.
//! # let _ = (event, admin);
//! # Ok::<(), goticket_core::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod booking;
mod clock;
mod combiner;
pub mod engine;
mod error;
mod event;
mod fields;
pub mod import;
mod memory;
mod money;
#[cfg(feature = "openapi")]
mod openapi;
mod query;
pub mod records;
mod service;
mod store;
mod types;
pub mod users;

pub use auth::{Principal, Role};
pub use booking::{
    Booking, BookingAction, BookingStatus, CheckIn, Reservation, ReserveRequest, Restored, Ticket, Transition,
};
pub use clock::{Clock, Entropy, HoldDuration, ManualClock, OsEntropy, SeededEntropy, SystemClock, parse_timestamp};
pub use combiner::CombinerSnapshot;
pub use error::{Error, ErrorKind, Result, StoreError, StoreErrorKind, shown};
pub use event::{Event, EventFields, EventPatch, EventStatus, NewEvent};
pub use fields::{BookingField, Columns, EventField, FieldValue, InFile, InTable};
pub use jiff::{SignedDuration, Timestamp};
pub use memory::MemoryStore;
pub use money::{Currency, Money};
pub use query::{BookingFilter, Cursor, EventFilter, Page, PageRequest, PageStart};
pub use service::{BookingRequest, Service};
pub use store::{Commit, CounterDelta, EventKey, Retry, SalesRow, Store, Tx, TxBody};
pub use types::{
    BookingCode, BookingId, Capacity, Email, EventId, EventName, ExternalId, IdempotencyKey, PerCustomerLimit,
    Quantity, Slug, TicketSecret,
};

#[cfg(test)]
mod tests {
    /// The public modules are the ones ARCHITECTURE.md names as the API.
    #[test]
    fn every_public_module_is_named_in_architecture_md() {
        let lib = include_str!("lib.rs");
        let doc = include_str!("../../ARCHITECTURE.md");
        let boundary = doc.split("## API boundary").nth(1).expect("ARCHITECTURE.md has an API boundary section");
        let public: Vec<&str> =
            lib.lines().filter_map(|l| l.trim().strip_prefix("pub mod ")?.strip_suffix(';')).collect();
        assert_eq!(
            public,
            ["engine", "import", "records", "users"],
            "the public modules changed: update ARCHITECTURE.md"
        );
        for m in public {
            assert!(boundary.contains(&format!("`{m}`")), "ARCHITECTURE.md's API boundary does not name `{m}`");
        }
    }
}
