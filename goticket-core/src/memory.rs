//! An in-memory [`Store`]: a real backend that keeps everything in the process, for
//! library users' unit tests and core's own fast tests of the use cases and the
//! combiner. It passes the same conformance suite as the database stores.
//!
//! One lock over the whole state makes every write transaction serializable; a
//! transaction keeps an undo log and rolls back on an error, on [`Commit::No`] and on
//! a panic, so nothing half-written is ever seen. Nothing survives the process.
//!
//! ```
//! use std::sync::Arc;
//! use goticket_core::{MemoryStore, Service};
//!
//! let service = Service::new(Arc::new(MemoryStore::new()));
//! # let _ = service;
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use jiff::Timestamp;

use crate::auth::Role;
use crate::booking::{Booking, BookingStatus};
use crate::error::{Error, Result, StoreError, StoreErrorKind};
use crate::event::Event;
use crate::outbox::{AggregateRef, AuditFilter, BookingChange, DomainEvent, RelayCursor, RelayState};
use crate::query::{BookingFilter, EventFilter, PageStart};
use crate::store::{Commit, CounterDelta, EventKey, Locked, Retry, SalesRow, Store, Tx, TxBody};
use crate::types::{BookingCode, BookingId, Email, EventId, ExternalId, IdempotencyKey, Slug, TicketSecret};
use crate::users::{Account, PasswordHash, User};

/// The in-memory store. Share it behind an `Arc`; all methods are thread-safe.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store (nothing to migrate).
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking writer rolled back before the lock was released (see MemTx's
        // Drop), so the state behind a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Everything stored, with the indexes the unique rules and lookups need.
#[derive(Debug, Default)]
struct State {
    events: BTreeMap<EventId, Event>,
    slugs: HashMap<Slug, EventId>,
    event_externals: HashMap<ExternalId, EventId>,
    bookings: BTreeMap<BookingId, Booking>,
    codes: HashMap<BookingCode, BookingId>,
    keys: HashMap<(Email, IdempotencyKey), BookingId>,
    booking_externals: HashMap<ExternalId, BookingId>,
    secrets: HashMap<TicketSecret, BookingId>,
    /// Held bookings per event, as stored (overdue ones until they are expired).
    holds: HashMap<EventId, BTreeSet<BookingId>>,
    users: BTreeMap<Email, Account>,
    /// The outbox, in position order.
    outbox: Vec<DomainEvent>,
    /// The last position given out (pruning never reuses one).
    last_position: i64,
    /// Each aggregate's last sequence number.
    heads: HashMap<AggregateRef, u64>,
    relays: HashMap<String, RelayState>,
}

/// What a change replaced, to put back on rollback.
enum Undo {
    Event(EventId, Option<Event>),
    Booking(BookingId, Option<Booking>),
    User(Email, Option<Account>),
    /// Domain events appended: remove the last one.
    Appended,
    /// Domain events pruned: put them back.
    Pruned(Vec<DomainEvent>),
    Relay(String, Option<RelayState>),
}

impl State {
    /// Sets or removes an event, keeping its indexes; gives the old value.
    fn put_event(&mut self, id: EventId, new: Option<Event>) -> Option<Event> {
        let old = self.events.remove(&id);
        if let Some(o) = &old {
            if let Some(s) = &o.slug {
                self.slugs.remove(s);
            }
            if let Some(x) = &o.external_id {
                self.event_externals.remove(x);
            }
        }
        if let Some(n) = new {
            if let Some(s) = &n.slug {
                self.slugs.insert(s.clone(), id);
            }
            if let Some(x) = &n.external_id {
                self.event_externals.insert(x.clone(), id);
            }
            self.events.insert(id, n);
        }
        old
    }

    /// Sets or removes a booking, keeping its indexes; gives the old value.
    fn put_booking(&mut self, id: BookingId, new: Option<Booking>) -> Option<Booking> {
        let old = self.bookings.remove(&id);
        if let Some(o) = &old {
            self.codes.remove(&o.code);
            if let Some(k) = &o.idempotency_key {
                self.keys.remove(&(o.customer.clone(), k.clone()));
            }
            if let Some(x) = &o.external_id {
                self.booking_externals.remove(x);
            }
            for t in &o.tickets {
                self.secrets.remove(&t.secret);
            }
            if let Some(h) = self.holds.get_mut(&o.event_id) {
                h.remove(&id);
            }
        }
        if let Some(n) = new {
            self.codes.insert(n.code.clone(), id);
            if let Some(k) = &n.idempotency_key {
                self.keys.insert((n.customer.clone(), k.clone()), id);
            }
            if let Some(x) = &n.external_id {
                self.booking_externals.insert(x.clone(), id);
            }
            for t in &n.tickets {
                self.secrets.insert(t.secret.clone(), id);
            }
            if n.status == BookingStatus::Held {
                self.holds.entry(n.event_id).or_default().insert(id);
            }
            self.bookings.insert(id, n);
        }
        old
    }

    fn put_user(&mut self, email: Email, new: Option<Account>) -> Option<Account> {
        match new {
            Some(a) => self.users.insert(email, a),
            None => self.users.remove(&email),
        }
    }

    /// Seats in holds of `event` whose expiry has passed at `now`, not yet expired.
    fn overdue(&self, event: EventId, now: Timestamp) -> u32 {
        self.holds.get(&event).map_or(0, |ids| {
            ids.iter()
                .filter_map(|id| self.bookings.get(id))
                .filter(|b| b.is_overdue(now))
                .map(|b| b.quantity.get())
                .sum()
        })
    }

    /// The event as of `now`: overdue holds are not counted as held.
    fn event_at(&self, e: &Event, now: Timestamp) -> Event {
        let held = e.held.saturating_sub(self.overdue(e.id, now));
        e.clone().with_counters(held, e.sold)
    }

    fn find(&self, key: &EventKey) -> Option<&Event> {
        match key {
            EventKey::Id(id) => self.events.get(id),
            EventKey::Slug(s) => self.slugs.get(s).and_then(|id| self.events.get(id)),
        }
    }
}

/// A write transaction: the locked state and what to undo.
struct MemTx<'a> {
    state: &'a mut State,
    undo: Vec<Undo>,
}

impl MemTx<'_> {
    fn event(&mut self, id: EventId, new: Option<Event>) {
        let old = self.state.put_event(id, new);
        self.undo.push(Undo::Event(id, old));
    }

    fn booking(&mut self, id: BookingId, new: Option<Booking>) {
        let old = self.state.put_booking(id, new);
        self.undo.push(Undo::Booking(id, old));
    }

    fn rollback(&mut self) {
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Event(id, old) => {
                    self.state.put_event(id, old);
                }
                Undo::Booking(id, old) => {
                    self.state.put_booking(id, old);
                }
                Undo::User(email, old) => {
                    self.state.put_user(email, old);
                }
                Undo::Relay(name, old) => {
                    match old {
                        Some(r) => self.state.relays.insert(name, r),
                        None => self.state.relays.remove(&name),
                    };
                }
                Undo::Pruned(events) => {
                    self.state.outbox.extend(events);
                    self.state.outbox.sort_by_key(|e| e.position);
                }
                Undo::Appended => {
                    self.state.last_position -= 1;
                    if let Some(e) = self.state.outbox.pop() {
                        let head = AggregateRef { kind: e.aggregate_type, id: e.aggregate_id };
                        match e.aggregate_seq {
                            1 => self.state.heads.remove(&head),
                            n => self.state.heads.insert(head, n - 1),
                        };
                    }
                }
            }
        }
    }

    fn bookings_where(&self, ids: impl Iterator<Item = BookingId>) -> Vec<Booking> {
        ids.filter_map(|id| self.state.bookings.get(&id).cloned()).collect()
    }

    /// Expires the overdue holds of one event and releases their seats.
    fn expire_event(&mut self, event: EventId, now: Timestamp) -> Vec<BookingChange> {
        let overdue: Vec<Booking> = self
            .state
            .holds
            .get(&event)
            .into_iter()
            .flatten()
            .filter_map(|id| self.state.bookings.get(id))
            .filter(|b| b.is_overdue(now))
            .cloned()
            .collect();
        let seats: u32 = overdue.iter().map(|b| b.quantity.get()).sum();
        let changes = overdue.iter().map(BookingChange::of).collect();
        for mut b in overdue.iter().cloned() {
            b.status = BookingStatus::Expired;
            b.updated_at = now;
            self.booking(b.id, Some(b));
        }
        if seats > 0
            && let Some(e) = self.state.events.get(&event).cloned()
        {
            let held = e.held.saturating_sub(seats);
            let sold = e.sold;
            self.event(event, Some(e.with_counters(held, sold)));
        }
        changes
    }
}

impl Drop for MemTx<'_> {
    /// Whatever was not committed is undone, a panic included.
    fn drop(&mut self) {
        self.rollback();
    }
}

fn integrity(message: String) -> Error {
    Error::Storage(StoreError::new(StoreErrorKind::Integrity, message, None))
}

impl Tx for MemTx<'_> {
    fn lock_events(&mut self, ids: &[EventId], now: Timestamp) -> Result<Locked> {
        let ids: BTreeSet<EventId> = ids.iter().copied().collect();
        let mut out = Locked::default();
        for id in ids {
            if self.state.events.contains_key(&id) {
                out.expired.extend(self.expire_event(id, now));
                out.events.extend(self.state.events.get(&id).cloned());
            }
        }
        Ok(out)
    }

    fn find_events(&mut self, keys: &[String], now: Timestamp) -> Result<Vec<Event>> {
        let mut ids = BTreeSet::new();
        for k in keys {
            if let Ok(x) = k.parse::<ExternalId>()
                && let Some(id) = self.state.event_externals.get(&x)
            {
                ids.insert(*id);
            }
            if let Ok(id) = k.parse::<EventId>()
                && self.state.events.contains_key(&id)
            {
                ids.insert(id);
            }
        }
        Ok(ids.iter().filter_map(|id| self.state.events.get(id)).map(|e| self.state.event_at(e, now)).collect())
    }

    fn event_by_slug(&mut self, slug: &Slug, now: Timestamp) -> Result<Option<Event>> {
        Ok(self.state.find(&EventKey::Slug(slug.clone())).map(|e| self.state.event_at(e, now)))
    }

    fn slug_owners(&mut self, slugs: &[Slug]) -> Result<Vec<(Slug, EventId)>> {
        Ok(slugs.iter().filter_map(|s| self.state.slugs.get(s).map(|id| (s.clone(), *id))).collect())
    }

    fn insert_events(&mut self, events: &[Event]) -> Result<()> {
        for e in events {
            if let Some(s) = &e.slug
                && self.state.slugs.contains_key(s)
            {
                return Err(Error::conflict(format!("slug {:?} is already used by another event", s.as_str())));
            }
            if let Some(x) = &e.external_id
                && self.state.event_externals.contains_key(x)
            {
                return Err(Error::collision(format!("external id {x} of a new event")));
            }
            if self.state.events.contains_key(&e.id) {
                return Err(Error::collision(format!("event id {}", e.id)));
            }
            self.event(e.id, Some(e.clone().with_counters(0, 0)));
        }
        Ok(())
    }

    fn update_event(&mut self, e: &Event) -> Result<()> {
        let current = self.state.events.get(&e.id).cloned().ok_or_else(|| Error::not_found("event", e.id))?;
        if let Some(s) = &e.slug
            && self.state.slugs.get(s).is_some_and(|owner| *owner != e.id)
        {
            return Err(Error::conflict(format!("slug {:?} is already used by another event", s.as_str())));
        }
        // The SQL stores' CHECK: the seats taken always fit the capacity.
        if u64::from(current.held) + u64::from(current.sold) > u64::from(e.capacity.get()) {
            return Err(integrity(format!("capacity {} is below the seats taken on event {}", e.capacity, e.id)));
        }
        let written = e.clone().with_counters(current.held, current.sold);
        self.event(
            e.id,
            Some(Event {
                external_id: current.external_id,
                organizer: current.organizer,
                created_at: current.created_at,
                ..written
            }),
        );
        Ok(())
    }

    fn add_to_counters(&mut self, deltas: &[CounterDelta]) -> Result<()> {
        for d in deltas {
            let e = self
                .state
                .events
                .get(&d.event)
                .cloned()
                .ok_or_else(|| integrity(format!("counter guard refused: no event {}", d.event)))?;
            let held = i64::from(e.held) + d.held;
            let sold = i64::from(e.sold) + d.sold;
            if held < 0 || sold < 0 || held + sold > i64::from(e.capacity.get()) {
                return Err(integrity(format!(
                    "counter guard refused held{:+} sold{:+} on event {}",
                    d.held, d.sold, d.event
                )));
            }
            let (held, sold) = (u32::try_from(held).unwrap_or(0), u32::try_from(sold).unwrap_or(0));
            self.event(d.event, Some(e.with_counters(held, sold)));
        }
        Ok(())
    }

    fn expire_all_holds(&mut self, now: Timestamp) -> Result<Vec<BookingChange>> {
        let events: Vec<EventId> = self.state.holds.keys().copied().collect::<BTreeSet<_>>().into_iter().collect();
        Ok(events.into_iter().flat_map(|id| self.expire_event(id, now)).collect())
    }

    fn cancel_live_bookings(&mut self, event: EventId, now: Timestamp) -> Result<Vec<BookingChange>> {
        let live: Vec<Booking> =
            self.state.bookings.values().filter(|b| b.event_id == event && b.status.is_live()).cloned().collect();
        let changes = live.iter().map(BookingChange::of).collect();
        for mut b in live.iter().cloned() {
            b.status = BookingStatus::Cancelled;
            b.updated_at = now;
            self.booking(b.id, Some(b));
        }
        Ok(changes)
    }

    fn prune_events(&mut self, before: Timestamp, upto: Option<&RelayCursor>, limit: u32) -> Result<u64> {
        let heads = &self.state.heads;
        let doomed: Vec<i64> = self
            .state
            .outbox
            .iter()
            .filter(|e| e.occurred_at < before && upto.is_none_or(|c| e.position <= c.position))
            .filter(|e| {
                heads.get(&AggregateRef { kind: e.aggregate_type, id: e.aggregate_id.clone() })
                    != Some(&e.aggregate_seq)
            })
            .take(limit as usize)
            .map(|e| e.position)
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        let gone: std::collections::HashSet<i64> = doomed.iter().copied().collect();
        let (removed, kept): (Vec<DomainEvent>, Vec<DomainEvent>) =
            std::mem::take(&mut self.state.outbox).into_iter().partition(|e| gone.contains(&e.position));
        self.state.outbox = kept;
        self.undo.push(Undo::Pruned(removed));
        Ok(doomed.len() as u64)
    }

    fn lock_relay(&mut self, name: &str) -> Result<RelayState> {
        Ok(self.state.relays.get(name).cloned().unwrap_or_else(|| RelayState::new(name)))
    }

    fn put_relay(&mut self, state: &RelayState) -> Result<()> {
        let old = self.state.relays.insert(state.name.clone(), state.clone());
        self.undo.push(Undo::Relay(state.name.clone(), old));
        Ok(())
    }

    fn aggregate_heads(&mut self, aggregates: &[AggregateRef]) -> Result<Vec<(AggregateRef, u64)>> {
        Ok(aggregates.iter().filter_map(|a| Some((a.clone(), *self.state.heads.get(a)?))).collect())
    }

    fn append_events(&mut self, events: &[DomainEvent]) -> Result<()> {
        let mut heads = HashMap::new();
        for e in events {
            let a = AggregateRef { kind: e.aggregate_type, id: e.aggregate_id.clone() };
            let last = heads.get(&a).or_else(|| self.state.heads.get(&a)).copied().unwrap_or(0);
            if e.aggregate_seq != last + 1 {
                return Err(Error::collision(format!(
                    "event {} of {} {} follows {last}",
                    e.aggregate_seq,
                    a.kind.as_str(),
                    a.id
                )));
            }
            heads.insert(a, e.aggregate_seq);
        }
        for e in events {
            let mut e = e.clone();
            self.state.last_position += 1;
            e.position = self.state.last_position;
            self.state
                .heads
                .insert(AggregateRef { kind: e.aggregate_type, id: e.aggregate_id.clone() }, e.aggregate_seq);
            self.state.outbox.push(e);
            self.undo.push(Undo::Appended);
        }
        Ok(())
    }

    fn bookings_by_id(&mut self, ids: &[BookingId]) -> Result<Vec<Booking>> {
        Ok(self.bookings_where(ids.iter().copied()))
    }

    fn bookings_by_key(&mut self, keys: &[(Email, IdempotencyKey)]) -> Result<Vec<Booking>> {
        let ids: Vec<BookingId> = keys.iter().filter_map(|k| self.state.keys.get(k).copied()).collect();
        Ok(self.bookings_where(ids.into_iter()))
    }

    fn bookings_by_external_id(&mut self, ids: &[ExternalId]) -> Result<Vec<Booking>> {
        let ids: Vec<BookingId> = ids.iter().filter_map(|x| self.state.booking_externals.get(x).copied()).collect();
        Ok(self.bookings_where(ids.into_iter()))
    }

    fn booking_by_code(&mut self, code: &BookingCode) -> Result<Option<Booking>> {
        Ok(self.state.codes.get(code).and_then(|id| self.state.bookings.get(id)).cloned())
    }

    fn booking_by_secret(&mut self, secret: &TicketSecret) -> Result<Option<Booking>> {
        Ok(self.state.secrets.get(secret).and_then(|id| self.state.bookings.get(id)).cloned())
    }

    fn live_seats(&mut self, of: &[(EventId, Email)]) -> Result<Vec<(EventId, Email, u32)>> {
        let wanted: BTreeSet<&(EventId, Email)> = of.iter().collect();
        let mut seats: BTreeMap<(EventId, Email), u32> = BTreeMap::new();
        for b in self.state.bookings.values().filter(|b| b.status.is_live()) {
            let k = (b.event_id, b.customer.clone());
            if wanted.contains(&k) {
                *seats.entry(k).or_default() += b.quantity.get();
            }
        }
        Ok(seats.into_iter().map(|((e, c), n)| (e, c, n)).collect())
    }

    fn insert_bookings(&mut self, bookings: &[Booking]) -> Result<()> {
        for b in bookings {
            let taken = self.state.bookings.contains_key(&b.id)
                || self.state.codes.contains_key(&b.code)
                || b.external_id.as_ref().is_some_and(|x| self.state.booking_externals.contains_key(x))
                || b.tickets.iter().any(|t| self.state.secrets.contains_key(&t.secret));
            if taken {
                return Err(Error::collision("a booking code, id, external id or ticket secret is taken"));
            }
            if let Some(k) = &b.idempotency_key
                && self.state.keys.contains_key(&(b.customer.clone(), k.clone()))
            {
                return Err(Error::collision("a concurrent request used the same idempotency key"));
            }
            if !self.state.events.contains_key(&b.event_id) {
                return Err(integrity(format!("booking {} names no stored event", b.code)));
            }
            self.booking(b.id, Some(b.clone()));
        }
        Ok(())
    }

    fn set_status(&mut self, id: BookingId, from: BookingStatus, to: BookingStatus, now: Timestamp) -> Result<bool> {
        let Some(mut b) = self.state.bookings.get(&id).cloned().filter(|b| b.status == from) else {
            return Ok(false);
        };
        b.status = to;
        b.updated_at = now;
        self.booking(id, Some(b));
        Ok(true)
    }

    fn check_in(&mut self, booking: BookingId, seq: u32, now: Timestamp) -> Result<bool> {
        let Some(mut b) = self.state.bookings.get(&booking).cloned() else { return Ok(false) };
        let Some(t) = b.tickets.iter_mut().find(|t| t.seq == seq && t.checked_in_at.is_none()) else {
            return Ok(false);
        };
        t.checked_in_at = Some(now);
        self.booking(booking, Some(b));
        Ok(true)
    }

    fn insert_user(&mut self, account: &Account) -> Result<()> {
        let email = account.user.email.clone();
        if self.state.users.contains_key(&email) {
            return Err(Error::conflict(format!("a user {email} already exists")));
        }
        let old = self.state.put_user(email.clone(), Some(account.clone()));
        self.undo.push(Undo::User(email, old));
        Ok(())
    }

    fn lock_account(&mut self, email: &Email) -> Result<Option<(Account, u64)>> {
        let admins = self.state.users.values().filter(|a| a.user.role == Role::Admin).count() as u64;
        Ok(self.state.users.get(email).map(|a| (a.clone(), admins)))
    }

    fn update_user(&mut self, user: &User, hash: Option<&PasswordHash>) -> Result<()> {
        let email = &user.email;
        let mut a = self.state.users.get(email).cloned().ok_or_else(|| Error::not_found("user", email))?;
        a.user.role = user.role;
        a.user.updated_at = user.updated_at;
        if let Some(h) = hash {
            a.password_hash = h.clone();
        }
        let old = self.state.put_user(email.clone(), Some(a));
        self.undo.push(Undo::User(email.clone(), old));
        Ok(())
    }
}

/// A page of `items` (already in order) from `start`, at most `fetch` long.
fn page<T>(items: impl Iterator<Item = T>, start: PageStart, fetch: u32, after: impl Fn(&T) -> bool) -> Vec<T> {
    let fetch = fetch as usize;
    match start {
        PageStart::First => items.take(fetch).collect(),
        PageStart::Offset(n) => items.skip(usize::try_from(n).unwrap_or(usize::MAX)).take(fetch).collect(),
        PageStart::After(_) => items.filter(|i| after(i)).take(fetch).collect(),
    }
}

impl Store for MemoryStore {
    fn migrate(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn ping(&self) -> Result<()> {
        drop(self.lock());
        Ok(())
    }

    fn event(&self, key: &EventKey, now: Timestamp) -> Result<Option<Event>> {
        let s = self.lock();
        Ok(s.find(key).map(|e| s.event_at(e, now)))
    }

    fn list_events(&self, filter: &EventFilter, start: PageStart, fetch: u32, now: Timestamp) -> Result<Vec<Event>> {
        let s = self.lock();
        let price_ok = |e: &Event| {
            filter
                .min_price
                .is_none_or(|m| e.price.currency() == m.currency() && e.price.amount_minor() >= m.amount_minor())
                && filter
                    .max_price
                    .is_none_or(|m| e.price.currency() == m.currency() && e.price.amount_minor() <= m.amount_minor())
        };
        let mut events: Vec<&Event> = s
            .events
            .values()
            .filter(|e| filter.starts_from.is_none_or(|t| e.starts_at >= t))
            .filter(|e| filter.starts_before.is_none_or(|t| e.starts_at < t))
            .filter(|e| price_ok(e))
            .filter(|e| filter.status.is_none_or(|st| e.status == st))
            .filter(|e| filter.organizer.as_ref().is_none_or(|o| e.organizer == *o))
            .collect();
        events.sort_by_key(|e| (e.starts_at, e.id));
        let after = |e: &&Event| match start {
            PageStart::After(c) => (e.starts_at.as_microsecond(), e.id.as_uuid()) > (c.key, c.id),
            _ => true,
        };
        Ok(page(events.into_iter(), start, fetch, after).into_iter().map(|e| s.event_at(e, now)).collect())
    }

    fn booking(&self, code: &BookingCode) -> Result<Option<Booking>> {
        let s = self.lock();
        Ok(s.codes.get(code).and_then(|id| s.bookings.get(id)).cloned())
    }

    fn list_bookings(&self, filter: &BookingFilter, from: PageStart, max: u32, now: Timestamp) -> Result<Vec<Booking>> {
        let s = self.lock();
        let theirs = |b: &Booking| {
            filter.organizer.as_ref().is_none_or(|o| s.events.get(&b.event_id).is_some_and(|e| e.organizer == *o))
        };
        let matching = s
            .bookings
            .values()
            .filter(|b| filter.event.is_none_or(|e| b.event_id == e))
            .filter(|b| filter.customer.as_ref().is_none_or(|c| b.customer == *c))
            .filter(|b| filter.status.is_none_or(|st| (*b).clone().at(now).status == st))
            .filter(|b| theirs(b));
        let after = |b: &&Booking| match from {
            PageStart::After(c) => b.id.as_uuid() > c.id,
            _ => true,
        };
        Ok(page(matching, from, max, after).into_iter().cloned().collect())
    }

    fn account(&self, email: &Email) -> Result<Option<Account>> {
        Ok(self.lock().users.get(email).cloned())
    }

    fn list_users(&self) -> Result<Vec<User>> {
        Ok(self.lock().users.values().map(|a| a.user.clone()).collect())
    }

    fn domain_events(&self, filter: &AuditFilter, after: i64, fetch: u32) -> Result<Vec<DomainEvent>> {
        let s = self.lock();
        let organizer_of = |id: EventId| s.events.get(&id).map(|e| &e.organizer);
        Ok(s.outbox
            .iter()
            .filter(|e| e.position > after && filter.matches(e, organizer_of))
            .take(fetch as usize)
            .cloned()
            .collect())
    }

    fn relay_batch(&self, after: &RelayCursor, fetch: u32) -> Result<Vec<(RelayCursor, DomainEvent)>> {
        let s = self.lock();
        Ok(s.outbox
            .iter()
            .filter(|e| e.position > after.position)
            .take(fetch as usize)
            .map(|e| (RelayCursor { tx: 0, position: e.position }, e.clone()))
            .collect())
    }

    fn relay_state(&self, name: &str) -> Result<Option<RelayState>> {
        Ok(self.lock().relays.get(name).cloned())
    }

    fn relay_backlog(&self, after: &RelayCursor) -> Result<(u64, Option<Timestamp>)> {
        let s = self.lock();
        let later: Vec<&DomainEvent> = s.outbox.iter().filter(|e| e.position > after.position).collect();
        Ok((later.len() as u64, later.first().map(|e| e.occurred_at)))
    }

    fn sales_report(&self, event: Option<EventId>, organizer: Option<&Email>, now: Timestamp) -> Result<Vec<SalesRow>> {
        let s = self.lock();
        let mut events: Vec<&Event> = s
            .events
            .values()
            .filter(|e| event.is_none_or(|id| e.id == id))
            .filter(|e| organizer.is_none_or(|o| e.organizer == *o))
            .collect();
        events.sort_by_key(|e| (e.starts_at, e.id));
        let mut per_event: HashMap<EventId, (u64, u64, BTreeMap<i64, i64>)> = HashMap::new();
        for b in s.bookings.values() {
            let (confirmed, checked_in, by_price) = per_event.entry(b.event_id).or_default();
            if b.status == BookingStatus::Confirmed {
                *confirmed += 1;
                *by_price.entry(b.unit_price.amount_minor()).or_default() += i64::from(b.quantity.get());
            }
            *checked_in += b.tickets.iter().filter(|t| t.checked_in_at.is_some()).count() as u64;
        }
        events
            .into_iter()
            .map(|e| {
                let (confirmed, checked_in, by_price) = per_event.remove(&e.id).unwrap_or_default();
                let parts: Vec<(i64, i64)> = by_price.into_iter().collect();
                SalesRow::of(s.event_at(e, now), confirmed, checked_in, &parts)
            })
            .collect()
    }

    fn write(&self, _retry: Retry, body: &mut TxBody<'_>) -> Result<()> {
        // One writer at a time, so there are no deadlocks or serialization failures to
        // retry.
        let mut state = self.lock();
        let mut tx = MemTx { state: &mut state, undo: Vec::new() };
        match body(&mut tx)? {
            Commit::Yes => tx.undo.clear(),
            Commit::No => tx.rollback(),
        }
        Ok(())
    }
}
