//! Plain rows as a store reads them back, and their conversion into domain values.
//! Every store fills these from its driver's types and calls `into_*`; values are
//! re-validated through the domain constructors, and a row that fails is reported as
//! an integrity error naming the column, never turned into a panic.

use std::fmt::Display;
use std::str::FromStr;

use jiff::Timestamp;
use uuid::Uuid;

use crate::booking::{Booking, Ticket};
use crate::error::{Error, Result, StoreError, StoreErrorKind};
use crate::event::Event;
use crate::money::{Currency, Money};
use crate::store::SalesRow;
use crate::types::{BookingId, EventId};

fn corrupt(column: &str, why: impl Display) -> Error {
    Error::Storage(StoreError::new(StoreErrorKind::Integrity, format!("stored {column} is invalid: {why}"), None))
}

fn parse<T: FromStr>(column: &str, v: &str) -> Result<T>
where
    T::Err: Display,
{
    v.parse().map_err(|e| corrupt(column, e))
}

fn num<T: TryFrom<i64>>(column: &str, v: i64) -> Result<T>
where
    T::Error: Display,
{
    T::try_from(v).map_err(|e| corrupt(column, e))
}

fn money(column: &str, amount: i64, currency: &str) -> Result<Money> {
    let c: Currency = parse(column, currency)?;
    Money::new(amount, c).map_err(|e| corrupt(column, e))
}

/// An event row. `held` must already exclude overdue holds.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct EventRecord {
    pub id: Uuid,
    pub external_id: Option<String>,
    pub slug: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub venue: Option<String>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub capacity: i64,
    pub price_minor: i64,
    pub currency: String,
    pub max_per_customer: Option<i64>,
    pub sales_start: Option<Timestamp>,
    pub sales_end: Option<Timestamp>,
    pub status: String,
    pub organizer: String,
    pub held: i64,
    pub sold: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl EventRecord {
    /// The domain event.
    pub fn into_event(self) -> Result<Event> {
        let event = Event {
            id: EventId::from_uuid(self.id),
            external_id: self.external_id.as_deref().map(|s| parse("external_id", s)).transpose()?,
            slug: self.slug.as_deref().map(|s| parse("slug", s)).transpose()?,
            name: parse("name", &self.name)?,
            description: self.description,
            venue: self.venue,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            capacity: num("capacity", self.capacity)?,
            held: 0,
            sold: 0,
            available: 0,
            price: money("price", self.price_minor, &self.currency)?,
            max_per_customer: self.max_per_customer.map(|m| num("max_per_customer", m)).transpose()?,
            sales_start: self.sales_start,
            sales_end: self.sales_end,
            status: parse("status", &self.status)?,
            organizer: parse("organizer", &self.organizer)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        Ok(event.with_counters(num("held", self.held)?, num("sold", self.sold)?))
    }

    /// The event's line of a sales report, with the figures the store counted. The
    /// revenue comes as the seats sold at each unit price (`(price, seats)` pairs), and
    /// is summed here with checked arithmetic: prices are bounded so it always fits,
    /// but data written before that bound is reported as an error naming the event,
    /// never as a wrapped number.
    pub fn into_sales_row(
        self,
        confirmed_bookings: i64,
        checked_in: i64,
        seats_by_price: &[(i64, i64)],
    ) -> Result<SalesRow> {
        let e = self.into_event()?;
        SalesRow::of(e, num("confirmed bookings", confirmed_bookings)?, num("checked in", checked_in)?, seats_by_price)
    }
}

/// A booking row (tickets are read separately).
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct BookingRecord {
    pub id: Uuid,
    pub code: String,
    pub event_id: Uuid,
    pub customer: String,
    pub quantity: i64,
    pub status: String,
    pub unit_price_minor: i64,
    pub currency: String,
    pub expires_at: Option<Timestamp>,
    pub idempotency_key: Option<String>,
    pub external_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl BookingRecord {
    /// The domain booking with the given tickets.
    pub fn into_booking(self, tickets: Vec<TicketRecord>) -> Result<Booking> {
        Ok(Booking {
            id: BookingId::from_uuid(self.id),
            code: parse("code", &self.code)?,
            event_id: EventId::from_uuid(self.event_id),
            customer: parse("customer", &self.customer)?,
            quantity: num("quantity", self.quantity)?,
            status: parse("status", &self.status)?,
            unit_price: money("unit price", self.unit_price_minor, &self.currency)?,
            expires_at: self.expires_at,
            idempotency_key: self.idempotency_key.as_deref().map(|k| parse("idempotency key", k)).transpose()?,
            external_id: self.external_id.as_deref().map(|k| parse("external_id", k)).transpose()?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            tickets: tickets.into_iter().map(TicketRecord::into_ticket).collect::<Result<_>>()?,
        })
    }
}

/// A ticket row.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct TicketRecord {
    pub seq: i64,
    pub secret: String,
    pub checked_in_at: Option<Timestamp>,
}

impl TicketRecord {
    /// The domain ticket.
    pub fn into_ticket(self) -> Result<Ticket> {
        Ok(Ticket {
            seq: num("ticket seq", self.seq)?,
            secret: parse("ticket secret", &self.secret)?,
            checked_in_at: self.checked_in_at,
        })
    }
}

/// A domain event row of the outbox.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct DomainEventRecord {
    pub position: i64,
    pub id: Uuid,
    pub kind: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub aggregate_seq: i64,
    pub event_id: Option<Uuid>,
    pub occurred_at: Timestamp,
    pub actor: Option<String>,
    pub schema_version: i64,
    /// The payload as JSON text.
    pub payload: String,
}

impl DomainEventRecord {
    /// Validates and converts.
    pub fn into_domain_event(self) -> Result<crate::outbox::DomainEvent> {
        Ok(crate::outbox::DomainEvent {
            position: self.position,
            id: self.id,
            kind: parse("outbox.type", &self.kind)?,
            aggregate_type: parse("outbox.aggregate_type", &self.aggregate_type)?,
            aggregate_id: self.aggregate_id,
            aggregate_seq: num("outbox.aggregate_seq", self.aggregate_seq)?,
            event_id: self.event_id.map(EventId::from_uuid),
            occurred_at: self.occurred_at,
            actor: self.actor.as_deref().map(|a| parse("outbox.actor", a)).transpose()?,
            schema_version: num("outbox.schema_version", self.schema_version)?,
            payload: serde_json::from_str(&self.payload).map_err(|e| corrupt("outbox.payload", e))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> EventRecord {
        let t: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        EventRecord {
            id: Uuid::nil(),
            external_id: None,
            slug: None,
            name: "Gig".into(),
            description: None,
            venue: None,
            starts_at: t,
            ends_at: t,
            capacity: 10,
            price_minor: 100,
            currency: "EUR".into(),
            max_per_customer: None,
            sales_start: None,
            sales_end: None,
            status: "scheduled".into(),
            organizer: "o@example.com".into(),
            held: 2,
            sold: 3,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn revenue_is_summed_exactly_or_refused() {
        let row = record().into_sales_row(2, 0, &[(1250, 3), (1000, 2)]).unwrap();
        assert_eq!(row.revenue.amount_minor(), 5750);
        let err = record().into_sales_row(2, 0, &[(i64::MAX / 2, 3)]).unwrap_err().to_string();
        assert!(err.contains("exceed the largest amount"), "{err}");
        assert!(!err.contains("out of range integral"), "{err}");
    }

    #[test]
    fn valid_rows_convert_and_derive_available() {
        let e = record().into_event().unwrap();
        assert_eq!((e.held, e.sold, e.available), (2, 3, 5));
    }

    #[test]
    fn corrupt_rows_are_integrity_errors_naming_the_column() {
        let mut r = record();
        r.capacity = 0;
        let err = r.into_event().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Storage);
        assert!(err.to_string().contains("stored capacity is invalid"), "{err}");
        let mut r = record();
        r.status = "maybe".into();
        assert!(r.into_event().unwrap_err().to_string().contains("status"));
        let mut r = record();
        r.held = -1;
        assert!(r.into_event().is_err());
    }
}

/// A user row.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct UserRecord {
    pub email: String,
    pub role: String,
    pub password_hash: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl UserRecord {
    /// The domain account.
    pub fn into_account(self) -> Result<crate::users::Account> {
        Ok(crate::users::Account {
            user: crate::users::User {
                email: parse("email", &self.email)?,
                role: parse("role", &self.role)?,
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
            password_hash: crate::users::PasswordHash::from_stored(self.password_hash)?,
        })
    }
}
