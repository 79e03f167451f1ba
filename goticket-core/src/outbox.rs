//! Domain events: what every committed change tells the world, written by the use case
//! in its own transaction (a transactional outbox), and read back as the audit log.
//!
//! A use case in [`crate::engine`] collects its events in an [`Outbox`] while it runs and
//! hands them to the store (one bulk insert) just before its transaction commits, so a
//! rolled-back change leaves no event and a committed one always has its events. Each
//! event names its aggregate (the event, booking or user it is about) and carries that
//! aggregate's next sequence number, so consumers can put one aggregate's events in
//! order and see gaps; the store's unique index on (aggregate, sequence) refuses two
//! writers that both thought they were next.
//!
//! Payloads are JSON with a schema version ([`SCHEMA_VERSION`]). They never carry a
//! ticket's secret or a password hash: a consumer that needs tickets reads them
//! through the library.

use std::fmt;
use std::hash::{Hash, Hasher};

use jiff::Timestamp;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::auth::Role;
use crate::booking::{Booking, BookingStatus};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::store::Tx;
use crate::types::{BookingCode, BookingId, Email, EventId};
use crate::users::User;

/// The version of every payload's shape; a consumer checks it before reading one.
pub const SCHEMA_VERSION: u32 = 1;

/// The kinds of domain event, with their names on the wire (`booking.held`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DomainEventType {
    /// An event was created (by hand or by an import).
    #[serde(rename = "event.created")]
    EventCreated,
    /// An event's fields changed (by hand or by an import).
    #[serde(rename = "event.changed")]
    EventChanged,
    /// An event was cancelled, and with it its live bookings.
    #[serde(rename = "event.cancelled")]
    EventCancelled,
    /// Seats are held until the booking's expiry.
    #[serde(rename = "booking.held")]
    BookingHeld,
    /// Seats are sold: a hold confirmed, or a sale outright.
    #[serde(rename = "booking.confirmed")]
    BookingConfirmed,
    /// A live booking was cancelled (by a person, or by its event's cancellation).
    #[serde(rename = "booking.cancelled")]
    BookingCancelled,
    /// A hold ran out and its seats went back on sale.
    #[serde(rename = "booking.expired")]
    BookingExpired,
    /// A ticket was scanned at the door.
    #[serde(rename = "ticket.checked_in")]
    TicketCheckedIn,
    /// An account was created.
    #[serde(rename = "user.created")]
    UserCreated,
    /// An account's role changed.
    #[serde(rename = "user.role_changed")]
    UserRoleChanged,
    /// An account's password was changed (the payload never carries it).
    #[serde(rename = "user.password_changed")]
    UserPasswordChanged,
}

impl DomainEventType {
    /// Every type, in a fixed order.
    pub const ALL: [DomainEventType; 11] = [
        DomainEventType::EventCreated,
        DomainEventType::EventChanged,
        DomainEventType::EventCancelled,
        DomainEventType::BookingHeld,
        DomainEventType::BookingConfirmed,
        DomainEventType::BookingCancelled,
        DomainEventType::BookingExpired,
        DomainEventType::TicketCheckedIn,
        DomainEventType::UserCreated,
        DomainEventType::UserRoleChanged,
        DomainEventType::UserPasswordChanged,
    ];

    /// The name on the wire, which is also the routing key a broker gets.
    pub fn as_str(self) -> &'static str {
        match self {
            DomainEventType::EventCreated => "event.created",
            DomainEventType::EventChanged => "event.changed",
            DomainEventType::EventCancelled => "event.cancelled",
            DomainEventType::BookingHeld => "booking.held",
            DomainEventType::BookingConfirmed => "booking.confirmed",
            DomainEventType::BookingCancelled => "booking.cancelled",
            DomainEventType::BookingExpired => "booking.expired",
            DomainEventType::TicketCheckedIn => "ticket.checked_in",
            DomainEventType::UserCreated => "user.created",
            DomainEventType::UserRoleChanged => "user.role_changed",
            DomainEventType::UserPasswordChanged => "user.password_changed",
        }
    }

    /// The kind of aggregate events of this type are about.
    pub fn aggregate(self) -> AggregateType {
        match self {
            DomainEventType::EventCreated | DomainEventType::EventChanged | DomainEventType::EventCancelled => {
                AggregateType::Event
            }
            DomainEventType::BookingHeld
            | DomainEventType::BookingConfirmed
            | DomainEventType::BookingCancelled
            | DomainEventType::BookingExpired
            | DomainEventType::TicketCheckedIn => AggregateType::Booking,
            DomainEventType::UserCreated | DomainEventType::UserRoleChanged | DomainEventType::UserPasswordChanged => {
                AggregateType::User
            }
        }
    }
}

impl fmt::Display for DomainEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DomainEventType {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        DomainEventType::ALL.into_iter().find(|t| t.as_str() == raw).ok_or_else(|| {
            Error::validation("type", format!("{} is not a domain event type", crate::error::shown(raw)))
        })
    }
}

/// What a domain event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AggregateType {
    /// An event (its id).
    Event,
    /// A booking (its id); its tickets' check-ins too.
    Booking,
    /// A user account (its email).
    User,
}

impl AggregateType {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateType::Event => "event",
            AggregateType::Booking => "booking",
            AggregateType::User => "user",
        }
    }
}

impl std::str::FromStr for AggregateType {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        [AggregateType::Event, AggregateType::Booking, AggregateType::User]
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| {
                Error::validation("aggregate_type", format!("{} is not an aggregate", crate::error::shown(raw)))
            })
    }
}

/// One aggregate: its kind and its id (a UUID, or a user's email).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregateRef {
    /// The kind.
    pub kind: AggregateType,
    /// The id, as text.
    pub id: String,
}

/// One domain event, as stored and as published.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DomainEvent {
    /// Its place in the store's log, increasing in commit order per aggregate (0 until
    /// the store has written it).
    pub position: i64,
    /// Unique id (a UUIDv7 made from the time and the aggregate's sequence, so it sorts
    /// by time); a consumer drops a second delivery with an id it has seen.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "uuid"))]
    pub id: uuid::Uuid,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: DomainEventType,
    /// What it happened to.
    pub aggregate_type: AggregateType,
    /// The aggregate's id (a UUID, or a user's email).
    pub aggregate_id: String,
    /// The aggregate's own count of events, from 1, without gaps.
    pub aggregate_seq: u64,
    /// The ticketing event it concerns, if any (an event's own events, its bookings').
    pub event_id: Option<EventId>,
    /// When it was committed (the use case's time).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub occurred_at: Timestamp,
    /// Who did it: an account's email, or `None` for the system itself (the sweeper
    /// that expires holds).
    pub actor: Option<Email>,
    /// The payload's shape version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// What a consumer needs to know, never a ticket secret or a password hash: a
    /// JSON object, kept as the text written (it is never parsed on the way out).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Box<RawValue>,
}

impl DomainEvent {
    /// The payload as a JSON value (for a reader that wants its fields).
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_str(self.payload.get()).unwrap_or(serde_json::Value::Null)
    }
}

/// A booking as a payload names it: enough for a mailer or a CRM, no secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingChange {
    /// The booking.
    pub id: BookingId,
    /// Its code.
    pub code: BookingCode,
    /// Its event.
    pub event_id: EventId,
    /// Its customer.
    pub customer: Email,
    /// Its seats.
    pub quantity: u32,
    /// Its status before the change.
    pub from: BookingStatus,
}

impl BookingChange {
    /// The change a booking is about to go through.
    pub fn of(b: &Booking) -> Self {
        BookingChange {
            id: b.id,
            code: b.code.clone(),
            event_id: b.event_id,
            customer: b.customer.clone(),
            quantity: b.quantity.get(),
            from: b.status,
        }
    }
}

/// One event waiting in a use case's outbox for its aggregate's sequence number.
#[derive(Debug)]
struct Pending {
    kind: DomainEventType,
    aggregate: AggregateRef,
    /// Created in this transaction: its sequence starts at 1 without asking the store.
    new: bool,
    event_id: Option<EventId>,
    actor: Option<Email>,
    payload: Box<RawValue>,
}

/// The events one use case collects while it runs, written by [`Outbox::write`] in its
/// transaction.
#[derive(Debug)]
pub struct Outbox {
    now: Timestamp,
    pending: Vec<Pending>,
}

impl Outbox {
    /// An empty outbox for a use case running at `now`.
    pub fn new(now: Timestamp) -> Self {
        Outbox { now, pending: Vec::new() }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn push(
        &mut self,
        kind: DomainEventType,
        id: String,
        new: bool,
        event_id: Option<EventId>,
        actor: Option<&Email>,
        payload: &impl Serialize,
    ) {
        let aggregate = AggregateRef { kind: kind.aggregate(), id };
        // The payloads are plain structs of strings and numbers: serializing cannot fail.
        let payload = serde_json::value::to_raw_value(payload).unwrap_or_else(|_| empty_object());
        self.pending.push(Pending { kind, aggregate, new, event_id, actor: actor.cloned(), payload });
    }

    /// `event.created` (or, for an import's existing row, `event.changed`).
    pub fn event(&mut self, kind: DomainEventType, e: &Event, actor: Option<&Email>) {
        let payload = EventPayload { event: EventView::of(e), bookings_cancelled: None };
        self.push(kind, e.id.to_string(), kind == DomainEventType::EventCreated, Some(e.id), actor, &payload);
    }

    /// `event.cancelled`, with how many live bookings went with it.
    pub fn event_cancelled(&mut self, e: &Event, bookings: usize, actor: Option<&Email>) {
        let payload = EventPayload { event: EventView::of(e), bookings_cancelled: Some(bookings) };
        self.push(DomainEventType::EventCancelled, e.id.to_string(), false, Some(e.id), actor, &payload);
    }

    /// `booking.held` or `booking.confirmed` for a booking this transaction creates.
    pub fn booking_created(&mut self, b: &Booking, actor: Option<&Email>) {
        let kind = match b.status {
            BookingStatus::Held => DomainEventType::BookingHeld,
            BookingStatus::Confirmed => DomainEventType::BookingConfirmed,
            // An import may restore a booking that was already cancelled or expired:
            // it is announced as what it is.
            BookingStatus::Cancelled => DomainEventType::BookingCancelled,
            BookingStatus::Expired => DomainEventType::BookingExpired,
        };
        let mut payload = BookingPayload::of(&b.code, &b.customer, b.quantity.get(), b.status);
        payload.unit_price = Some(&b.unit_price);
        payload.expires_at = b.expires_at;
        self.push(kind, b.id.to_string(), true, Some(b.event_id), actor, &payload);
    }

    /// A change of an existing booking's status (confirmed, cancelled, expired);
    /// `reason` says why when it was not the booking's own request (`event_cancelled`).
    pub fn booking_changed(
        &mut self,
        c: &BookingChange,
        to: BookingStatus,
        reason: Option<&str>,
        actor: Option<&Email>,
    ) {
        let kind = match to {
            BookingStatus::Held => DomainEventType::BookingHeld,
            BookingStatus::Confirmed => DomainEventType::BookingConfirmed,
            BookingStatus::Cancelled => DomainEventType::BookingCancelled,
            BookingStatus::Expired => DomainEventType::BookingExpired,
        };
        let mut payload = BookingPayload::of(&c.code, &c.customer, c.quantity, to);
        payload.from = Some(c.from);
        payload.reason = reason;
        self.push(kind, c.id.to_string(), false, Some(c.event_id), actor, &payload);
    }

    /// Holds the sweeper or a lock found overdue and expired (no actor: time did it).
    pub fn expired(&mut self, expired: &[BookingChange]) {
        for c in expired {
            self.booking_changed(c, BookingStatus::Expired, None, None);
        }
    }

    /// `ticket.checked_in`: the booking, the seat and the time, never the secret.
    pub fn checked_in(&mut self, b: &Booking, seq: u32, at: Timestamp, actor: Option<&Email>) {
        let mut payload = BookingPayload::of(&b.code, &b.customer, b.quantity.get(), b.status);
        payload.seat = Some(seq);
        payload.checked_in_at = Some(at);
        self.push(DomainEventType::TicketCheckedIn, b.id.to_string(), false, Some(b.event_id), actor, &payload);
    }

    /// `user.created`.
    pub fn user_created(&mut self, u: &User, actor: Option<&Email>) {
        let payload = UserPayload { email: &u.email, role: Some(u.role), from: None };
        self.push(DomainEventType::UserCreated, u.email.to_string(), true, None, actor, &payload);
    }

    /// `user.role_changed` and, if the password changed, `user.password_changed`.
    pub fn user_changed(&mut self, u: &User, from: Role, password: bool, actor: Option<&Email>) {
        if u.role != from {
            let payload = UserPayload { email: &u.email, role: Some(u.role), from: Some(from) };
            self.push(DomainEventType::UserRoleChanged, u.email.to_string(), false, None, actor, &payload);
        }
        if password {
            let payload = UserPayload { email: &u.email, role: None, from: None };
            self.push(DomainEventType::UserPasswordChanged, u.email.to_string(), false, None, actor, &payload);
        }
    }

    /// Numbers the events per aggregate (asking the store for the last number of each
    /// aggregate that existed before this transaction) and writes them in one insert.
    pub fn write(self, tx: &mut dyn Tx) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut old: Vec<AggregateRef> = self.pending.iter().filter(|p| !p.new).map(|p| p.aggregate.clone()).collect();
        old.sort();
        old.dedup();
        let mut next: std::collections::HashMap<AggregateRef, u64> = old.iter().cloned().map(|a| (a, 0)).collect();
        if !old.is_empty() {
            for (a, last) in tx.aggregate_heads(&old)? {
                next.insert(a, last);
            }
        }
        let events: Vec<DomainEvent> = self
            .pending
            .into_iter()
            .map(|p| {
                let seq = next.entry(p.aggregate.clone()).or_insert(0);
                *seq += 1;
                DomainEvent {
                    position: 0,
                    id: event_uuid(self.now, &p.aggregate, *seq),
                    kind: p.kind,
                    aggregate_type: p.aggregate.kind,
                    aggregate_id: p.aggregate.id,
                    aggregate_seq: *seq,
                    event_id: p.event_id,
                    occurred_at: self.now,
                    actor: p.actor,
                    schema_version: SCHEMA_VERSION,
                    payload: p.payload,
                }
            })
            .collect();
        tx.append_events(&events)
    }
}

/// A UUIDv7 whose time is the event's and whose other 74 bits come from a hash of its
/// aggregate and sequence number: unique wherever (aggregate, sequence) is (the store
/// keeps those unique), without drawing randomness inside a transaction. Not a secret.
fn event_uuid(now: Timestamp, aggregate: &AggregateRef, seq: u64) -> uuid::Uuid {
    let half = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        (salt, aggregate.kind.as_str(), &aggregate.id, seq).hash(&mut h);
        h.finish().to_le_bytes()
    };
    let (a, b) = (half(1), half(2));
    let mut bits = [0u8; 10];
    bits[..8].copy_from_slice(&a);
    bits[8..].copy_from_slice(&b[..2]);
    let millis = u64::try_from(now.as_millisecond()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &bits).into_uuid()
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("valid JSON")
}

/// An event's payload: its public fields (absent ones left out; its counters are not
/// part of what changed) and, for a cancel, how many live bookings went with it.
#[derive(Serialize)]
struct EventPayload<'a> {
    event: EventView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bookings_cancelled: Option<usize>,
}

/// (The event's id is the domain event's `aggregate_id`, not repeated here.)
#[derive(Serialize)]
struct EventView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a crate::types::ExternalId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slug: Option<&'a crate::types::Slug>,
    name: &'a crate::types::EventName,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    venue: Option<&'a str>,
    starts_at: Timestamp,
    ends_at: Timestamp,
    capacity: crate::types::Capacity,
    price: &'a crate::money::Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_per_customer: Option<crate::types::PerCustomerLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sales_start: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sales_end: Option<Timestamp>,
    status: crate::event::EventStatus,
    organizer: &'a Email,
}

impl<'a> EventView<'a> {
    fn of(e: &'a Event) -> Self {
        EventView {
            external_id: e.external_id.as_ref(),
            slug: e.slug.as_ref(),
            name: &e.name,
            description: e.description.as_deref(),
            venue: e.venue.as_deref(),
            starts_at: e.starts_at,
            ends_at: e.ends_at,
            capacity: e.capacity,
            price: &e.price,
            max_per_customer: e.max_per_customer,
            sales_start: e.sales_start,
            sales_end: e.sales_end,
            status: e.status,
            organizer: &e.organizer,
        }
    }
}

/// A booking's payload: who, what, how many, the status it is in now and the one it
/// came from; the price and expiry when it is made; the seat and time of a scan.
///
/// The booking's id and its event's are the domain event's `aggregate_id` and
/// `event_id`, not repeated here: the payload is most of what the outbox stores.
#[derive(Serialize)]
struct BookingPayload<'a> {
    code: &'a BookingCode,
    customer: &'a Email,
    quantity: u32,
    status: BookingStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<BookingStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit_price: Option<&'a crate::money::Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seat: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checked_in_at: Option<Timestamp>,
}

impl<'a> BookingPayload<'a> {
    fn of(code: &'a BookingCode, customer: &'a Email, quantity: u32, status: BookingStatus) -> Self {
        BookingPayload {
            code,
            customer,
            quantity,
            status,
            from: None,
            reason: None,
            unit_price: None,
            expires_at: None,
            seat: None,
            checked_in_at: None,
        }
    }
}

/// An account's payload: never its password or hash.
#[derive(Serialize)]
struct UserPayload<'a> {
    email: &'a Email,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<Role>,
}

/// What a face asks the audit log for, as a person names things (an event by id or
/// slug, a booking by its code); the service resolves it into an [`AuditFilter`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Events about this ticketing event (its own, and its bookings').
    pub event: Option<crate::store::EventKey>,
    /// Events about this booking.
    pub booking: Option<BookingCode>,
    /// Done by this account.
    pub actor: Option<Email>,
    /// At or after this time.
    pub since: Option<Timestamp>,
}

/// What the audit log is asked for; every part narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Events about this ticketing event (its own, and its bookings').
    pub event: Option<EventId>,
    /// Events about this booking.
    pub booking: Option<BookingId>,
    /// Done by this account.
    pub actor: Option<Email>,
    /// At or after this time.
    pub since: Option<Timestamp>,
    /// Only events about ticketing events this organizer owns (set by the service for
    /// an organizer; such a caller never sees user events).
    pub organizer: Option<Email>,
}

impl AuditFilter {
    /// Whether `e` passes every part of the filter (the in-memory store's query; the
    /// SQL stores say the same in SQL). `organizer_of` names an event's owner.
    pub fn matches<'a>(&self, e: &DomainEvent, organizer_of: impl Fn(EventId) -> Option<&'a Email>) -> bool {
        let about_booking =
            |id: &BookingId| e.aggregate_type == AggregateType::Booking && e.aggregate_id == id.to_string();
        self.event.is_none_or(|id| e.event_id == Some(id))
            && self.booking.as_ref().is_none_or(about_booking)
            && self.actor.as_ref().is_none_or(|a| e.actor.as_ref() == Some(a))
            && self.since.is_none_or(|t| e.occurred_at >= t)
            && self.organizer.as_ref().is_none_or(|o| e.event_id.and_then(&organizer_of) == Some(o))
    }
}

/// Where a relay is in the log: the last event it published. On SQLite (one writer at
/// a time) events commit in position order, so the position alone says it (`tx` is
/// 0); on PostgreSQL positions are drawn before commit, so a later position can commit
/// first, and the relay reads in (transaction id, position) order up to the oldest
/// transaction still running, which never skips an event that commits late.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RelayCursor {
    /// The writing transaction's id (PostgreSQL's xid8; 0 on SQLite).
    pub tx: i64,
    /// The event's position.
    pub position: i64,
}

/// A relay's row: its cursor, its lease, what it has done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RelayState {
    /// The relay's name (one lease and one cursor per name and database).
    pub name: String,
    /// The last event published.
    pub cursor: RelayCursor,
    /// Who holds the lease (a process's id), if anyone.
    pub owner: Option<String>,
    /// Until when; a lease not renewed by then may be taken by another relay.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub lease_until: Option<Timestamp>,
    /// Events published so far.
    pub published: u64,
    /// When the last batch was confirmed by the broker.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_published_at: Option<Timestamp>,
    /// The last publishing failure, until a batch succeeds.
    pub last_error: Option<String>,
}

impl RelayState {
    /// A relay that has published nothing.
    pub fn new(name: &str) -> Self {
        RelayState {
            name: name.to_owned(),
            cursor: RelayCursor::default(),
            owner: None,
            lease_until: None,
            published: 0,
            last_published_at: None,
            last_error: None,
        }
    }

    /// Takes or renews the lease for `owner` until `now + ttl`, unless another owner
    /// holds one that has not run out; then says who and until when.
    pub fn take(
        &mut self,
        owner: &str,
        now: Timestamp,
        ttl: jiff::SignedDuration,
    ) -> std::result::Result<(), (String, Timestamp)> {
        if let (Some(holder), Some(until)) = (&self.owner, self.lease_until)
            && holder != owner
            && until > now
        {
            return Err((holder.clone(), until));
        }
        self.owner = Some(owner.to_owned());
        self.lease_until = Some(now.saturating_add(ttl).unwrap_or(now));
        Ok(())
    }
}

/// A relay's lease request: which relay, who asks, for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLease {
    /// The relay's name.
    pub name: String,
    /// This process (unique per running relay).
    pub owner: String,
    /// How long the lease lasts unless renewed; a relay renews it with every batch and
    /// every idle poll, so it must exceed the longest publish.
    pub ttl: jiff::SignedDuration,
}

/// What one relay step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayStep {
    /// Another relay holds the lease.
    Standby {
        /// Its owner.
        holder: String,
        /// Until when.
        until: Timestamp,
    },
    /// Nothing to publish.
    Idle,
    /// A batch was published and the cursor moved past it.
    Published {
        /// How many events.
        count: usize,
    },
    /// The broker refused or could not be reached; the cursor stays, the error is
    /// recorded, and the same events are tried again.
    Failed {
        /// Why.
        error: String,
    },
    /// The lease ran out while publishing and another relay took it: the batch may go
    /// out twice (same ids), and this relay stands by.
    LostLease,
}

/// A relay's state with what it has still to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RelayStatus {
    /// Its row (a relay that never ran: the empty state).
    #[serde(flatten)]
    pub state: RelayState,
    /// Committed events not yet published (counted up to 1,000,000).
    pub backlog: u64,
    /// When the oldest of them happened: the relay's lag.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub oldest_unpublished: Option<Timestamp>,
    /// Seconds between the oldest unpublished event and now (0 when caught up).
    pub lag_seconds: u64,
}

/// How long domain events are kept: `90d`, `36h`, `2w`, or any duration jiff reads
/// (`1h30m`, ISO 8601 `PT36H`); at least one hour (a typo must not empty the log), at
/// most 100 years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(jiff::SignedDuration);

impl Retention {
    /// The shortest retention.
    pub const MIN: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);
    /// The longest.
    pub const MAX: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 36_525);

    /// The duration.
    pub fn get(self) -> jiff::SignedDuration {
        self.0
    }
}

impl std::str::FromStr for Retention {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        let t = raw.trim();
        let bad = || {
            Error::validation("retention", format!("{} is not an age like 90d, 2w or 36h", crate::error::shown(raw)))
        };
        let in_units = |suffix: char, hours: i64| -> Option<Result<jiff::SignedDuration>> {
            let n = t.strip_suffix(suffix)?.trim();
            Some(
                n.parse::<i64>()
                    .ok()
                    .and_then(|n| n.checked_mul(hours))
                    .map(jiff::SignedDuration::from_hours)
                    .ok_or_else(bad),
            )
        };
        let d = match in_units('d', 24).or_else(|| in_units('w', 24 * 7)) {
            Some(d) => d?,
            None => t.parse::<jiff::SignedDuration>().map_err(|_| bad())?,
        };
        if d < Self::MIN || d > Self::MAX {
            return Err(Error::validation("retention", format!("must be between 1 hour and 100 years, got {raw}")));
        }
        Ok(Retention(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> Timestamp {
        t.parse().expect("a valid time")
    }

    /// The lease rule at its edges: free when nobody holds it, renewable by its holder,
    /// refused to another until the very instant it ends, free from then on.
    #[test]
    fn a_lease_is_held_until_its_end_and_free_from_it() {
        let ttl = jiff::SignedDuration::from_secs(10);
        let mut r = RelayState::new("default");
        r.take("a", at("2027-01-01T00:00:00Z"), ttl).expect("free");
        assert_eq!((r.owner.as_deref(), r.lease_until), (Some("a"), Some(at("2027-01-01T00:00:10Z"))));
        r.take("a", at("2027-01-01T00:00:05Z"), ttl).expect("the holder renews");
        assert_eq!(r.lease_until, Some(at("2027-01-01T00:00:15Z")));
        let refused = r.take("b", at("2027-01-01T00:00:14.999999Z"), ttl);
        assert_eq!(refused, Err(("a".to_owned(), at("2027-01-01T00:00:15Z"))), "held until its end");
        assert_eq!(r.owner.as_deref(), Some("a"), "a refusal changes nothing");
        r.take("b", at("2027-01-01T00:00:15Z"), ttl).expect("free at its end");
        assert_eq!(r.owner.as_deref(), Some("b"));
        let mut given_up = RelayState { owner: None, ..r.clone() };
        given_up.take("c", at("2027-01-01T00:00:16Z"), ttl).expect("free once given up, whatever the time");
    }
}
