//! goticket-core: the ticketing domain, its rules, the [`Store`] trait and the
//! [`Service`] API that every face of goticket (library, CLI, HTTP) calls.
//!
//! Core does no I/O: storage is a [`Store`] implementation from another crate
//! (`goticket-store-sqlite`, `goticket-store-pg`), and time and randomness come in
//! through the [`Clock`] and [`Entropy`] traits.
//!
//! The whole flow, on the in-memory store (a program uses `goticket-store-sqlite` or
//! `goticket-store-pg` the same way):
//!
//! ```
//! use std::sync::Arc;
//! use goticket_core::{BookingRequest, BookingStatus, EventKey, MemoryStore, NewEvent, Principal, Role, Service};
//!
//! let service = Service::new(Arc::new(MemoryStore::new()));
//! let org = Principal::new("org@example.com".parse()?, Role::Organizer);
//! let ann = Principal::new("ann@example.com".parse()?, Role::Customer);
//!
//! // An organizer creates an event: 2 seats at 12.50 EUR.
//! let mut new = NewEvent::new(
//!     "Jazz night".parse()?,
//!     goticket_core::parse_timestamp("starts_at", "2090-03-01T19:30:00+01:00")?,
//!     goticket_core::parse_timestamp("ends_at", "2090-03-01T23:00:00+01:00")?,
//!     "2".parse()?,
//!     "12.50 EUR".parse()?,
//! );
//! new.slug = Some("jazz".parse()?);
//! service.create_event(&org, new)?;
//! let jazz: EventKey = "jazz".parse()?;
//!
//! // A customer holds both seats for 15 minutes, then confirms.
//! let mut hold = BookingRequest::buy(jazz.clone(), "2".parse()?);
//! hold.hold = Some("15m".parse()?);
//! let held = service.reserve(&ann, hold)?.booking;
//! assert_eq!(held.status, BookingStatus::Held);
//! let booking = service.confirm(&ann, &held.code)?;
//! assert_eq!(booking.total().to_string(), "25.00 EUR");
//!
//! // Nothing is oversold: the next buyer is refused.
//! let bob = Principal::new("bob@example.com".parse()?, Role::Customer);
//! let refused = service.reserve(&bob, BookingRequest::buy(jazz.clone(), "1".parse()?)).unwrap_err();
//! assert_eq!(refused.kind(), goticket_core::ErrorKind::SoldOut);
//!
//! // At the door, each ticket's secret admits once.
//! let secret = &booking.tickets[0].secret;
//! service.check_in(&org, secret)?;
//! assert!(service.check_in(&org, secret).is_err(), "a second scan is refused");
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
pub mod outbox;
mod query;
pub mod records;
mod service;
mod store;
mod traced;
mod types;
pub mod users;

pub use auth::{Principal, Role};
pub use booking::{
    Booking, BookingAction, BookingStatus, CheckIn, Reservation, ReserveRequest, Restored, Ticket, Transition,
};
pub use clock::{Clock, Entropy, HoldDuration, ManualClock, OsEntropy, SeededEntropy, SystemClock, parse_timestamp};
pub use combiner::{BATCH_SIZE_BOUNDS, CombinerSnapshot};
pub use error::{Error, ErrorKind, Result, StoreError, StoreErrorKind, shown};
pub use event::{Event, EventFields, EventPatch, EventStatus, NewEvent};
pub use fields::{BookingField, Columns, EventField, FieldValue, InFile, InTable};
pub use jiff::{SignedDuration, Timestamp};
pub use memory::MemoryStore;
pub use money::{Currency, Money};
#[cfg(feature = "openapi")]
pub use openapi::{MoneyText, TEXT_PATTERN, money_text_pattern};
pub use outbox::{
    AggregateType, AuditFilter, AuditQuery, DomainEvent, DomainEventType, RelayCursor, RelayLease, RelayState,
    RelayStatus, RelayStep, Retention,
};
pub use query::{BookingFilter, Cursor, EventFilter, Page, PageRequest, PageStart};
pub use service::{BookingRequest, Service};
pub use store::{
    Commit, CounterDelta, EventKey, Locked, PoolWaitCounter, PoolWaits, Retry, SalesRow, SeatTotals, Store, Tx, TxBody,
};
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
            ["engine", "import", "outbox", "records", "users"],
            "the public modules changed: update ARCHITECTURE.md"
        );
        for m in public {
            assert!(boundary.contains(&format!("`{m}`")), "ARCHITECTURE.md's API boundary does not name `{m}`");
        }
    }
}
