//! PostgreSQL rows: what diesel reads and writes, and their mapping to core's
//! records (which core re-validates into domain values).

use diesel::prelude::*;
use diesel::sql_types::{Int4, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use goticket_core::records::{BookingRecord, EventRecord, TicketRecord, UserRecord};
use goticket_core::{Booking, Event, Ticket, Timestamp};
use goticket_core::{Error, Result, StoreError, StoreErrorKind};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::schema::{bookings, events, tickets, users};

/// A domain timestamp as PostgreSQL's `timestamptz` (both keep microseconds).
pub(crate) fn to_pg(t: Timestamp) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_microsecond()) * 1000)
        .map_err(|e| Error::validation("time", format!("{t} cannot be stored: {e}")))
}

fn from_pg(t: OffsetDateTime) -> Result<Timestamp> {
    let micros = i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX);
    Timestamp::from_microsecond(micros).map_err(|e| {
        Error::Storage(StoreError::new(StoreErrorKind::Integrity, format!("stored time is invalid: {e}"), None))
    })
}

fn from_pg_opt(t: Option<OffsetDateTime>) -> Result<Option<Timestamp>> {
    t.map(from_pg).transpose()
}

fn to_pg_opt(t: Option<Timestamp>) -> Result<Option<OffsetDateTime>> {
    t.map(to_pg).transpose()
}

/// The event columns, with `eff_held` as of `$1` (overdue holds not counted).
pub(crate) const EVENT_COLS: &str = "e.id, e.slug, e.name, e.description, e.venue, e.starts_at, e.ends_at, e.capacity, \
     e.price_minor, e.currency, e.max_per_customer, e.sales_start, e.sales_end, e.status, e.organizer, e.sold, \
     e.created_at, e.updated_at, e.held AS raw_held, e.external_id, \
     (e.held - COALESCE((SELECT SUM(o.quantity) FROM bookings o \
                         WHERE o.event_id = e.id AND o.status = 'held' AND o.expires_at <= $1), 0))::int4 AS eff_held";

#[derive(QueryableByName)]
pub(crate) struct EventRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Nullable<Text>)]
    slug: Option<String>,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Text>)]
    description: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    venue: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    starts_at: OffsetDateTime,
    #[diesel(sql_type = Timestamptz)]
    ends_at: OffsetDateTime,
    #[diesel(sql_type = Int4)]
    capacity: i32,
    #[diesel(sql_type = Int8)]
    price_minor: i64,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Nullable<Int4>)]
    max_per_customer: Option<i32>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    sales_start: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    sales_end: Option<OffsetDateTime>,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    organizer: String,
    #[diesel(sql_type = Int4)]
    eff_held: i32,
    #[diesel(sql_type = Int4)]
    raw_held: i32,
    #[diesel(sql_type = Nullable<Text>)]
    external_id: Option<String>,
    #[diesel(sql_type = Int4)]
    sold: i32,
    #[diesel(sql_type = Timestamptz)]
    created_at: OffsetDateTime,
    #[diesel(sql_type = Timestamptz)]
    updated_at: OffsetDateTime,
}

impl EventRow {
    /// The event's id.
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }

    /// Whether some of the stored `held` belongs to holds past their expiry.
    pub(crate) fn has_overdue_holds(&self) -> bool {
        self.raw_held != self.eff_held
    }

    pub(crate) fn record(self) -> Result<EventRecord> {
        Ok(EventRecord {
            id: self.id,
            external_id: self.external_id,
            slug: self.slug,
            name: self.name,
            description: self.description,
            venue: self.venue,
            starts_at: from_pg(self.starts_at)?,
            ends_at: from_pg(self.ends_at)?,
            capacity: i64::from(self.capacity),
            price_minor: self.price_minor,
            currency: self.currency,
            max_per_customer: self.max_per_customer.map(i64::from),
            sales_start: from_pg_opt(self.sales_start)?,
            sales_end: from_pg_opt(self.sales_end)?,
            status: self.status,
            organizer: self.organizer,
            held: i64::from(self.eff_held),
            sold: i64::from(self.sold),
            created_at: from_pg(self.created_at)?,
            updated_at: from_pg(self.updated_at)?,
        })
    }
}

#[derive(QueryableByName)]
pub(crate) struct SalesRowSql {
    #[diesel(embed)]
    pub(crate) event: EventRow,
    #[diesel(sql_type = Int8)]
    pub(crate) confirmed: i64,
    #[diesel(sql_type = Int8)]
    pub(crate) checked_in: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = bookings, check_for_backend(diesel::pg::Pg))]
pub(crate) struct BookingRow {
    pub(crate) id: Uuid,
    code: String,
    event_id: Uuid,
    customer: String,
    quantity: i32,
    status: String,
    unit_price_minor: i64,
    currency: String,
    expires_at: Option<OffsetDateTime>,
    idempotency_key: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    external_id: Option<String>,
}

impl BookingRow {
    pub(crate) fn record(self) -> Result<BookingRecord> {
        Ok(BookingRecord {
            id: self.id,
            code: self.code,
            event_id: self.event_id,
            customer: self.customer,
            quantity: i64::from(self.quantity),
            status: self.status,
            unit_price_minor: self.unit_price_minor,
            currency: self.currency,
            expires_at: from_pg_opt(self.expires_at)?,
            idempotency_key: self.idempotency_key,
            external_id: self.external_id,
            created_at: from_pg(self.created_at)?,
            updated_at: from_pg(self.updated_at)?,
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = tickets, check_for_backend(diesel::pg::Pg))]
pub(crate) struct TicketRow {
    pub(crate) booking_id: Uuid,
    seq: i32,
    secret: String,
    checked_in_at: Option<OffsetDateTime>,
}

impl TicketRow {
    pub(crate) fn record(self) -> Result<TicketRecord> {
        Ok(TicketRecord {
            seq: i64::from(self.seq),
            secret: self.secret,
            checked_in_at: from_pg_opt(self.checked_in_at)?,
        })
    }
}

fn int(v: u32) -> i32 {
    // Every counted domain value (capacity, quantity, limit) is at most 10,000,000.
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// A new event's row. It repeats the columns of [`EventChanges`] instead of embedding
/// it (`#[diesel(embed)]`) because binary COPY (`from_insertable`) takes only a flat
/// values clause.
#[derive(Insertable)]
#[diesel(table_name = events, treat_none_as_default_value = false)]
pub(crate) struct NewEventRow<'a> {
    id: Uuid,
    slug: Option<&'a str>,
    name: &'a str,
    description: Option<&'a str>,
    venue: Option<&'a str>,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
    capacity: i32,
    price_minor: i64,
    currency: &'a str,
    max_per_customer: Option<i32>,
    sales_start: Option<OffsetDateTime>,
    sales_end: Option<OffsetDateTime>,
    status: &'a str,
    organizer: &'a str,
    held: i32,
    sold: i32,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    external_id: Option<&'a str>,
}

impl<'a> NewEventRow<'a> {
    pub(crate) fn from_event(e: &'a Event) -> Result<Self> {
        Ok(NewEventRow {
            id: e.id.as_uuid(),
            slug: e.slug.as_ref().map(|s| s.as_str()),
            name: e.name.as_str(),
            description: e.description.as_deref(),
            venue: e.venue.as_deref(),
            starts_at: to_pg(e.starts_at)?,
            ends_at: to_pg(e.ends_at)?,
            capacity: int(e.capacity.get()),
            price_minor: e.price.amount_minor(),
            currency: e.price.currency().code(),
            max_per_customer: e.max_per_customer.map(|m| int(m.get())),
            sales_start: to_pg_opt(e.sales_start)?,
            sales_end: to_pg_opt(e.sales_end)?,
            status: e.status.as_str(),
            organizer: e.organizer.as_str(),
            held: 0,
            sold: 0,
            created_at: to_pg(e.created_at)?,
            updated_at: to_pg(e.updated_at)?,
            external_id: e.external_id.as_ref().map(|x| x.as_str()),
        })
    }
}

/// The fields an update or a cancellation writes (never the counters or the owner).
#[derive(AsChangeset)]
#[diesel(table_name = events, treat_none_as_null = true)]
pub(crate) struct EventChanges<'a> {
    slug: Option<&'a str>,
    name: &'a str,
    description: Option<&'a str>,
    venue: Option<&'a str>,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
    capacity: i32,
    price_minor: i64,
    currency: &'a str,
    max_per_customer: Option<i32>,
    sales_start: Option<OffsetDateTime>,
    sales_end: Option<OffsetDateTime>,
    status: &'a str,
    updated_at: OffsetDateTime,
}

impl<'a> EventChanges<'a> {
    pub(crate) fn from_event(e: &'a Event) -> Result<Self> {
        Ok(EventChanges {
            slug: e.slug.as_ref().map(|s| s.as_str()),
            name: e.name.as_str(),
            description: e.description.as_deref(),
            venue: e.venue.as_deref(),
            starts_at: to_pg(e.starts_at)?,
            ends_at: to_pg(e.ends_at)?,
            capacity: int(e.capacity.get()),
            price_minor: e.price.amount_minor(),
            currency: e.price.currency().code(),
            max_per_customer: e.max_per_customer.map(|m| int(m.get())),
            sales_start: to_pg_opt(e.sales_start)?,
            sales_end: to_pg_opt(e.sales_end)?,
            status: e.status.as_str(),
            updated_at: to_pg(e.updated_at)?,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = bookings, treat_none_as_default_value = false)]
pub(crate) struct NewBookingRow<'a> {
    id: Uuid,
    code: &'a str,
    event_id: Uuid,
    customer: &'a str,
    quantity: i32,
    status: &'a str,
    unit_price_minor: i64,
    currency: &'a str,
    expires_at: Option<OffsetDateTime>,
    idempotency_key: Option<&'a str>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    external_id: Option<&'a str>,
}

impl<'a> NewBookingRow<'a> {
    pub(crate) fn from_booking(b: &'a Booking) -> Result<Self> {
        Ok(NewBookingRow {
            id: b.id.as_uuid(),
            code: b.code.as_str(),
            event_id: b.event_id.as_uuid(),
            customer: b.customer.as_str(),
            quantity: int(b.quantity.get()),
            status: b.status.as_str(),
            unit_price_minor: b.unit_price.amount_minor(),
            currency: b.unit_price.currency().code(),
            expires_at: to_pg_opt(b.expires_at)?,
            idempotency_key: b.idempotency_key.as_ref().map(|k| k.as_str()),
            created_at: to_pg(b.created_at)?,
            updated_at: to_pg(b.updated_at)?,
            external_id: b.external_id.as_ref().map(|x| x.as_str()),
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = tickets, treat_none_as_default_value = false)]
pub(crate) struct NewTicketRow<'a> {
    booking_id: Uuid,
    seq: i32,
    secret: &'a str,
    checked_in_at: Option<OffsetDateTime>,
}

impl<'a> NewTicketRow<'a> {
    /// The row of a ticket; a moved booking's tickets keep their check-ins.
    pub(crate) fn new(booking_id: Uuid, t: &'a Ticket) -> Result<Self> {
        let checked_in_at = t.checked_in_at.map(to_pg).transpose()?;
        Ok(NewTicketRow { booking_id, seq: int(t.seq), secret: t.secret.as_str(), checked_in_at })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub(crate) struct UserRow {
    email: String,
    role: String,
    password_hash: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl UserRow {
    pub(crate) fn record(self) -> Result<UserRecord> {
        Ok(UserRecord {
            email: self.email,
            role: self.role,
            password_hash: self.password_hash,
            created_at: from_pg(self.created_at)?,
            updated_at: from_pg(self.updated_at)?,
        })
    }
}

/// A booking a bulk status change touched.
#[derive(QueryableByName)]
pub(crate) struct ChangeRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) id: Uuid,
    #[diesel(sql_type = Text)]
    pub(crate) code: String,
    #[diesel(sql_type = SqlUuid)]
    pub(crate) event_id: Uuid,
    #[diesel(sql_type = Text)]
    pub(crate) customer: String,
    #[diesel(sql_type = Int4)]
    pub(crate) quantity: i32,
}

impl ChangeRow {
    pub(crate) fn change(self, from: goticket_core::BookingStatus) -> Result<goticket_core::outbox::BookingChange> {
        let bad = |column: &str, why: String| {
            Error::Storage(StoreError::new(
                StoreErrorKind::Integrity,
                format!("stored {column} is invalid: {why}"),
                None,
            ))
        };
        Ok(goticket_core::outbox::BookingChange {
            id: goticket_core::BookingId::from_uuid(self.id),
            code: self.code.parse().map_err(|e: Error| bad("bookings.code", e.to_string()))?,
            event_id: goticket_core::EventId::from_uuid(self.event_id),
            customer: self.customer.parse().map_err(|e: Error| bad("bookings.customer", e.to_string()))?,
            quantity: u32::try_from(self.quantity).map_err(|e| bad("bookings.quantity", e.to_string()))?,
            from,
        })
    }
}

/// The outbox's columns, as [`OutboxRow`] reads them.
pub(crate) const OUTBOX_COLS: &str = "position, id, type, aggregate_type, aggregate_id, aggregate_seq, event_id, \
     occurred_at, actor, schema_version, payload";

/// An outbox row.
#[derive(QueryableByName)]
pub(crate) struct OutboxRow {
    #[diesel(sql_type = Int8)]
    pub(crate) position: i64,
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text, column_name = "type")]
    kind: String,
    #[diesel(sql_type = Text)]
    aggregate_type: String,
    #[diesel(sql_type = Text)]
    aggregate_id: String,
    #[diesel(sql_type = Int8)]
    aggregate_seq: i64,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    event_id: Option<Uuid>,
    #[diesel(sql_type = Timestamptz)]
    occurred_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<Text>)]
    actor: Option<String>,
    #[diesel(sql_type = Int4)]
    schema_version: i32,
    #[diesel(sql_type = Text)]
    payload: String,
}

impl OutboxRow {
    pub(crate) fn into_domain_event(self) -> Result<goticket_core::outbox::DomainEvent> {
        goticket_core::records::DomainEventRecord {
            position: self.position,
            id: self.id,
            kind: self.kind,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            aggregate_seq: self.aggregate_seq,
            event_id: self.event_id,
            occurred_at: from_pg(self.occurred_at)?,
            actor: self.actor,
            schema_version: i64::from(self.schema_version),
            payload: self.payload,
        }
        .into_domain_event()
    }
}

/// An aggregate's last sequence number.
#[derive(QueryableByName)]
pub(crate) struct HeadRow {
    #[diesel(sql_type = Text)]
    pub(crate) aggregate_type: String,
    #[diesel(sql_type = Text)]
    pub(crate) aggregate_id: String,
    #[diesel(sql_type = Int8)]
    pub(crate) last: i64,
}

/// A relay's row.
#[derive(QueryableByName)]
pub(crate) struct RelayRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Int8)]
    txid: i64,
    #[diesel(sql_type = Int8)]
    position: i64,
    #[diesel(sql_type = Nullable<Text>)]
    owner: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    lease_until: Option<OffsetDateTime>,
    #[diesel(sql_type = Int8)]
    published: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_published_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
}

pub(crate) const RELAY_COLS: &str =
    "name, txid, position, owner, lease_until, published, last_published_at, last_error";

impl RelayRow {
    pub(crate) fn state(self) -> Result<goticket_core::RelayState> {
        Ok(goticket_core::RelayState {
            name: self.name,
            cursor: goticket_core::RelayCursor { tx: self.txid, position: self.position },
            owner: self.owner,
            lease_until: from_pg_opt(self.lease_until)?,
            published: u64::try_from(self.published).unwrap_or(0),
            last_published_at: from_pg_opt(self.last_published_at)?,
            last_error: self.last_error,
        })
    }
}

/// An outbox row as the relay reads it: its transaction id first.
#[derive(QueryableByName)]
pub(crate) struct RelayEventRow {
    #[diesel(sql_type = Int8)]
    pub(crate) tx: i64,
    #[diesel(embed)]
    pub(crate) event: OutboxRow,
}

/// A relay's backlog.
#[derive(QueryableByName)]
pub(crate) struct BacklogRow {
    #[diesel(sql_type = Int8)]
    pub(crate) n: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub(crate) oldest: Option<OffsetDateTime>,
}

impl BacklogRow {
    pub(crate) fn figures(self) -> Result<(u64, Option<Timestamp>)> {
        Ok((u64::try_from(self.n).unwrap_or(0), from_pg_opt(self.oldest)?))
    }
}
