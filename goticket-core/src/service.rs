//! The service API: every operation of every face (library, CLI, HTTP) exists once,
//! here. Each takes the acting principal, asks the role rules ([`crate::auth`]),
//! prepares the request (ids, codes and secrets drawn before any transaction) and runs
//! the use case ([`crate::engine`]) on the store.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use jiff::Timestamp;

use crate::auth::Principal;
use crate::booking::Booking;
use crate::booking::{BookingAction, CheckIn, Reservation, ReserveRequest};
use crate::clock::{Clock, Entropy, HoldDuration, OsEntropy, SystemClock};
use crate::combiner::{Combiner, CombinerSnapshot};
use crate::engine;
use crate::error::{Error, Result};
use crate::event::{Event, EventPatch, NewEvent};
use crate::outbox::{AuditFilter, AuditQuery, DomainEvent, RelayLease, RelayState, RelayStatus, RelayStep, Retention};
use crate::query::{BookingFilter, Cursor, EventFilter, Page, PageRequest};
use crate::store::{EventKey, SalesRow, Store};
use crate::types::{BookingCode, BookingId, Email, EventId, IdempotencyKey, Quantity, TicketSecret};
use crate::users::{Account, HashGate, Password, PasswordHash, User};

/// A request to book seats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRequest {
    /// The event, by id or slug.
    pub event: EventKey,
    /// The customer; defaults to the acting principal.
    pub customer: Option<Email>,
    /// Seats.
    pub quantity: Quantity,
    /// Hold for this long; `None` buys outright.
    pub hold: Option<HoldDuration>,
    /// Retry key: the same key from the same customer never books twice.
    pub idempotency_key: Option<IdempotencyKey>,
}

impl BookingRequest {
    /// Buy `quantity` seats of `event` outright, for the acting principal.
    pub fn buy(event: EventKey, quantity: Quantity) -> Self {
        BookingRequest { event, customer: None, quantity, hold: None, idempotency_key: None }
    }
}

/// The default bound on a combined batch.
pub const DEFAULT_MAX_BATCH: usize = 256;

/// The goticket service over one store.
///
/// Concurrent [`Service::reserve`] calls go through the flash-sale combiner by default
/// (a committer thread that takes every waiting request): they are committed together,
/// one transaction per batch. [`Service::without_combiner`] turns that off. Clones share one combiner.
#[derive(Debug, Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    /// Started on the first reservation; `None` when combining is off.
    combiner: Option<Arc<OnceLock<Result<Combiner, String>>>>,
    max_batch: usize,
    /// Event id -> owner. Both never change, so a reservation can be authorized
    /// without a read; everything that can change is decided in the store's
    /// transaction.
    owners: Arc<RwLock<HashMap<EventId, Email>>>,
    /// Every password hash and check runs under this bound.
    hashing: Arc<HashGate>,
    /// The store's errors by kind.
    store_errors: Arc<crate::traced::StoreErrorCounts>,
}

/// Owners remembered before the cache starts over.
const OWNER_CACHE_LIMIT: usize = 100_000;

impl Service {
    /// A service on `store` with the system clock and the OS random source.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_sources(store, Arc::new(SystemClock), Arc::new(OsEntropy))
    }

    /// A service with a chosen clock and entropy source (tests, simulations).
    pub fn with_sources(store: Arc<dyn Store>, clock: Arc<dyn Clock>, entropy: Arc<dyn Entropy>) -> Self {
        let store_errors = Arc::<crate::traced::StoreErrorCounts>::default();
        Service {
            store: Arc::new(crate::traced::Traced(store, store_errors.clone())),
            store_errors,
            clock,
            entropy,
            combiner: Some(Arc::new(OnceLock::new())),
            max_batch: DEFAULT_MAX_BATCH,
            owners: Arc::default(),
            hashing: Arc::default(),
        }
    }

    /// This service with password hashing bounded by `gate` (default: two at once,
    /// eight waiting). A server sets it from its cores.
    pub fn with_hash_gate(mut self, gate: HashGate) -> Self {
        self.hashing = Arc::new(gate);
        self
    }

    /// This service with reservations committed one per transaction, no combining.
    pub fn without_combiner(mut self) -> Self {
        self.combiner = None;
        self
    }

    /// This service with combined batches of at most `max_batch` requests (default 256).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        if self.combiner.is_some() {
            self.combiner = Some(Arc::new(OnceLock::new()));
        }
        self
    }

    /// Whether reservations are combined.
    pub fn is_combining(&self) -> bool {
        self.combiner.is_some()
    }

    /// What the combiner has done, if it is on and has started.
    pub fn combiner_stats(&self) -> Option<CombinerSnapshot> {
        self.combiner.as_ref()?.get()?.as_ref().ok().map(Combiner::stats)
    }

    /// The storage errors (busy, unavailable, integrity...) the store has returned
    /// since this service started, by kind, every kind listed.
    pub fn store_errors(&self) -> [(crate::StoreErrorKind, u64); crate::StoreErrorKind::ALL.len()] {
        self.store_errors.snapshot()
    }

    /// How long calls have waited for a database connection, if the store counts it.
    pub fn pool_waits(&self) -> Option<crate::PoolWaits> {
        self.store.pool_waits()
    }

    /// The current time on the service's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Brings the store's schema up to date; returns the migration's notes for the
    /// operator (see [`Store::migrate`]).
    pub fn migrate(&self) -> Result<Vec<String>> {
        self.store.migrate()
    }

    /// Checks that the store answers.
    pub fn ping(&self) -> Result<()> {
        self.store.ping()
    }

    fn load_event(&self, key: &EventKey, now: Timestamp) -> Result<Event> {
        self.store.event(key, now)?.ok_or_else(|| Error::not_found("event", key))
    }

    fn load_booking(&self, code: &BookingCode) -> Result<Booking> {
        self.store.booking(code)?.ok_or_else(|| Error::not_found("booking", code))
    }

    /// Whether the principal may create events at all (customers may not). A face asks
    /// this before it reads a request's body, so a refusal is never hidden behind a
    /// complaint about the body.
    pub fn may_create_events(&self, p: &Principal) -> Result<()> {
        p.require_create_event(p.email())
    }

    /// Creates an event owned by the principal (or, for an admin, by `new.organizer`).
    pub fn create_event(&self, p: &Principal, new: NewEvent) -> Result<Event> {
        let owner = new.organizer.clone().unwrap_or_else(|| p.email().clone());
        p.require_create_event(&owner)?;
        let now = self.now();
        crate::event::check_start(new.starts_at, now, new.allow_past)?;
        let event = new.into_event(EventId::generate(&*self.clock, &*self.entropy), owner, now)?;
        engine::create_event(&*self.store, &event, p.email())?;
        Ok(event)
    }

    /// Shows one event. Events are public: any principal may see any event.
    pub fn event(&self, _p: &Principal, key: &EventKey) -> Result<Event> {
        self.load_event(key, self.now())
    }

    /// The id of an event named by id or slug (an id is answered without a read). Events
    /// are public, so any principal may ask.
    pub fn event_id(&self, _p: &Principal, key: &EventKey) -> Result<EventId> {
        Ok(self.owner_of(key, self.now())?.0)
    }

    /// Lists events by start time.
    pub fn list_events(&self, _p: &Principal, filter: &EventFilter, page: PageRequest) -> Result<Page<Event>> {
        filter.check()?;
        let mut items = self.store.list_events(filter, page.start, page.limit() + 1, self.now())?;
        Ok(paginate(&mut items, page.limit(), |e| Cursor { key: e.starts_at.as_microsecond(), id: e.id.as_uuid() }))
    }

    /// Changes an event; see [`EventPatch::apply`] for the rules.
    pub fn update_event(&self, p: &Principal, key: &EventKey, patch: &EventPatch) -> Result<Event> {
        if patch.is_empty() {
            return Err(Error::validation("update", "nothing to change: give at least one field"));
        }
        let now = self.now();
        let current = self.load_event(key, now)?;
        p.require_manage(&current, "update")?;
        // Only a start that moves is checked: a client sending the whole event back
        // with a start already past changes nothing there.
        if let Some(start) = patch.starts_at
            && start != current.starts_at
        {
            crate::event::check_start(start, now, patch.allow_past)?;
        }
        engine::update_event(&*self.store, current.id, now, p.email(), &|e| patch.apply(e, now))
    }

    /// Cancels an event and all its live bookings; it sells nothing afterwards.
    pub fn cancel_event(&self, p: &Principal, key: &EventKey) -> Result<Event> {
        let now = self.now();
        let current = self.load_event(key, now)?;
        p.require_manage(&current, "cancel")?;
        engine::cancel_event(&*self.store, current.id, now, p.email())
    }

    /// Books seats: a hold if `hold` is set, a sale otherwise. Concurrent calls are
    /// combined into shared transactions unless combining is off.
    ///
    /// Traced as a `reserve` span whose `batch_size` says how many requests shared its
    /// transaction.
    pub fn reserve(&self, p: &Principal, req: BookingRequest) -> Result<Reservation> {
        let span = tracing::info_span!("reserve", batch_size = tracing::field::Empty);
        let _entered = span.enter();
        let Some(slot) = &self.combiner else {
            span.record("batch_size", 1);
            return self.reserve_many(p, vec![req])?.pop().expect("one request gives one outcome");
        };
        let now = self.now();
        let prepared = self.prepare(p, req, now, &mut HashMap::new())?;
        let combiner = slot.get_or_init(|| {
            Combiner::start(self.store.clone(), self.clock.clone(), self.max_batch).map_err(|e| e.to_string())
        });
        match combiner {
            Ok(c) => c.submit(prepared),
            Err(why) => Err(Error::internal(why.clone())),
        }
    }

    /// Books a batch in one store transaction, in order; each request gets its own
    /// outcome, and one refusal does not fail the others. The outer error means the
    /// store failed and nothing was written.
    pub fn reserve_many(&self, p: &Principal, reqs: Vec<BookingRequest>) -> Result<Vec<Result<Reservation>>> {
        let _span = tracing::info_span!("reserve_many", batch_size = reqs.len()).entered();
        let now = self.now();
        let mut events: HashMap<EventKey, (EventId, Email)> = HashMap::new();
        let mut outcomes: Vec<Option<Result<Reservation>>> = Vec::with_capacity(reqs.len());
        let mut batch = Vec::with_capacity(reqs.len());
        let mut slots = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.into_iter().enumerate() {
            match self.prepare(p, req, now, &mut events) {
                Ok(r) => {
                    batch.push(r);
                    slots.push(i);
                    outcomes.push(None);
                }
                Err(e) => outcomes.push(Some(Err(e))),
            }
        }
        if !batch.is_empty() {
            let results = engine::reserve(&*self.store, &batch, now)?;
            if results.len() != slots.len() {
                return Err(Error::internal(format!("{} requests got {} outcomes", slots.len(), results.len())));
            }
            for (slot, result) in slots.into_iter().zip(results) {
                outcomes[slot] = Some(result);
            }
        }
        Ok(outcomes.into_iter().map(|o| o.expect("every request has an outcome")).collect())
    }

    fn prepare(
        &self,
        p: &Principal,
        req: BookingRequest,
        now: Timestamp,
        seen: &mut HashMap<EventKey, (EventId, Email)>,
    ) -> Result<ReserveRequest> {
        let customer = req.customer.unwrap_or_else(|| p.email().clone());
        // The owner and id of an event never change, so checking them before the
        // store's transaction is race-free; capacity and status are decided inside it.
        let (event_id, owner) = match seen.get(&req.event) {
            Some(known) => known.clone(),
            None => {
                let known = self.owner_of(&req.event, now)?;
                seen.insert(req.event.clone(), known.clone());
                known
            }
        };
        p.require_book_for_event_of(&owner, event_id, &customer)?;
        let q = req.quantity.get();
        Ok(ReserveRequest {
            id: BookingId::generate(&*self.clock, &*self.entropy),
            code: BookingCode::generate(&*self.entropy),
            event_id,
            customer,
            actor: p.email().clone(),
            quantity: req.quantity,
            hold_until: req.hold.map(|h| h.expiry_from(now)),
            idempotency_key: req.idempotency_key,
            external_id: None,
            secrets: (0..q).map(|_| TicketSecret::generate(&*self.entropy)).collect(),
            restore: None,
        })
    }

    /// An event's id and owner: from the cache for ids, from the store otherwise (a
    /// slug can move to another event, an id cannot).
    fn owner_of(&self, key: &EventKey, now: Timestamp) -> Result<(EventId, Email)> {
        if let EventKey::Id(id) = key
            && let Some(owner) = self.owners.read().unwrap_or_else(|p| p.into_inner()).get(id)
        {
            return Ok((*id, owner.clone()));
        }
        let event = self.load_event(key, now)?;
        let mut owners = self.owners.write().unwrap_or_else(|p| p.into_inner());
        if owners.len() >= OWNER_CACHE_LIMIT {
            owners.clear();
        }
        owners.insert(event.id, event.organizer.clone());
        Ok((event.id, event.organizer))
    }

    /// Shows a booking as of now.
    pub fn booking(&self, p: &Principal, code: &BookingCode) -> Result<Booking> {
        let now = self.now();
        let booking = self.load_booking(code)?;
        let event = self.load_event(&EventKey::Id(booking.event_id), now)?;
        p.require_booking_access(&booking, &event)?;
        Ok(booking.at(now))
    }

    /// Lists bookings: admins see all, organizers those of their events, customers
    /// their own.
    pub fn list_bookings(&self, p: &Principal, filter: BookingFilter, page: PageRequest) -> Result<Page<Booking>> {
        let now = self.now();
        let filter = p.scope_bookings(filter, &|id| self.load_event(&EventKey::Id(id), now))?;
        let mut items = self.store.list_bookings(&filter, page.start, page.limit() + 1, now)?;
        let mut page = paginate(&mut items, page.limit(), |b| Cursor { key: 0, id: b.id.as_uuid() });
        page.items = page.items.into_iter().map(|b| b.at(now)).collect();
        Ok(page)
    }

    /// Confirms a live hold.
    pub fn confirm(&self, p: &Principal, code: &BookingCode) -> Result<Booking> {
        self.transition(p, code, BookingAction::Confirm)
    }

    /// Cancels a hold or a confirmed booking, releasing its seats.
    pub fn cancel_booking(&self, p: &Principal, code: &BookingCode) -> Result<Booking> {
        self.transition(p, code, BookingAction::Cancel)
    }

    fn transition(&self, p: &Principal, code: &BookingCode, action: BookingAction) -> Result<Booking> {
        let now = self.now();
        let booking =
            engine::transition(&*self.store, code, action, now, p.email(), &|b, e| p.require_booking_access(b, e))?;
        Ok(booking.at(now))
    }

    /// Expires every overdue hold. Tidying only: no read or reservation ever counts
    /// an overdue hold, swept or not.
    pub fn expire_holds(&self, p: &Principal) -> Result<u64> {
        p.require_admin("expire holds")?;
        engine::expire_holds(&*self.store, self.now())
    }

    /// Checks a ticket in at the door, once.
    pub fn check_in(&self, p: &Principal, secret: &TicketSecret) -> Result<CheckIn> {
        let now = self.now();
        engine::check_in(&*self.store, secret, now, p.email(), &|e| p.require_manage(e, "check in tickets of"))
    }

    /// Imports validated event rows (see [`crate::import`]), owned by the principal;
    /// existing events (same external id) are updated only if the principal manages
    /// them. `on_row` hears each row's outcome.
    pub fn import_events(
        &self,
        p: &Principal,
        rows: &mut dyn Iterator<Item = crate::import::EventRow>,
        mode: crate::import::ImportMode,
        on_row: &mut dyn FnMut(u64, &Result<crate::import::ImportAction>),
    ) -> Result<()> {
        p.require_create_event(p.email())?;
        let now = self.now();
        let owner = p.email().clone();
        let mut events = rows.map(|r| {
            // A row may name its owner (an export does); only an admin may import
            // events for someone else.
            let owner = r.event.organizer.clone().unwrap_or_else(|| owner.clone());
            let event = p.require_create_event(&owner).and_then(|()| {
                // parse_event_row checks every rule into_event applies; a row built by
                // hand that breaks one is refused as that row, never a panic.
                let mut e = r.event.into_event(EventId::generate(&*self.clock, &*self.entropy), owner, now)?;
                e.status = r.status;
                Ok(e)
            });
            crate::import::ImportEvent { line: r.line, event }
        });
        engine::import_events(
            &*self.store,
            &mut events,
            mode,
            now,
            p.email(),
            &|e| p.require_manage(e, "update"),
            on_row,
        )
    }

    /// Imports validated booking rows; each books with the rules of [`Service::reserve`]
    /// and the principal must be allowed to book for the row's customer.
    pub fn import_bookings(
        &self,
        p: &Principal,
        rows: &mut dyn Iterator<Item = crate::import::BookingRow>,
        mode: crate::import::ImportMode,
        on_row: &mut dyn FnMut(u64, &Result<crate::import::ImportAction>),
    ) -> Result<()> {
        let now = self.now();
        let mut items = rows.map(|r| {
            // A row of an export keeps its code and secrets; any other row is a new sale.
            let (code, secrets, restore) = match r.moved {
                Some(m) => (m.code, m.secrets, Some(m.restored)),
                None => (
                    BookingCode::generate(&*self.entropy),
                    (0..r.quantity.get()).map(|_| TicketSecret::generate(&*self.entropy)).collect(),
                    None,
                ),
            };
            crate::import::ImportBooking {
                line: r.line,
                event: r.event,
                request: ReserveRequest {
                    id: BookingId::generate(&*self.clock, &*self.entropy),
                    code,
                    event_id: EventId::from_uuid(uuid::Uuid::nil()),
                    customer: r.customer,
                    actor: p.email().clone(),
                    quantity: r.quantity,
                    hold_until: r.hold_until,
                    idempotency_key: None,
                    external_id: Some(r.external_id),
                    secrets,
                    restore,
                },
            }
        });
        engine::import_bookings(&*self.store, &mut items, mode, now, &|e, c| p.require_book_for(e, c), on_row)
    }

    /// The audit log: the domain events the principal may read (see
    /// [`Principal::scope_audit`]), in position order, one page at a time by cursor.
    /// It is a record to read, not a feed to follow: on PostgreSQL a position is drawn
    /// before its transaction commits, so an entry can appear behind a cursor already
    /// handed out (the relay, which is the feed, never misses one).
    pub fn audit(&self, p: &Principal, query: &AuditQuery, page: PageRequest) -> Result<Page<DomainEvent>> {
        let now = self.now();
        let event = query.event.as_ref().map(|k| self.load_event(k, now)).transpose()?;
        let booking = query.booking.as_ref().map(|c| self.load_booking(c)).transpose()?;
        if let Some(b) = &booking {
            let e = self.load_event(&EventKey::Id(b.event_id), now)?;
            p.require_booking_access(b, &e)?;
        }
        let filter = AuditFilter {
            event: event.as_ref().map(|e| e.id),
            booking: booking.as_ref().map(|b| b.id),
            actor: query.actor.clone(),
            since: query.since,
            organizer: None,
        };
        let filter = p.scope_audit(filter, event.as_ref())?;
        let after = match page.start {
            crate::PageStart::First => 0,
            crate::PageStart::After(c) => c.key,
            crate::PageStart::Offset(_) => {
                return Err(Error::validation("offset", "the audit log pages by cursor (next_cursor), not by offset"));
            }
        };
        let mut items = self.store.domain_events(&filter, after, page.limit() + 1)?;
        Ok(paginate(&mut items, page.limit(), |e| Cursor { key: e.position, id: e.id }))
    }

    /// One step of the event relay (admins: the relay is a system process); see
    /// [`engine::relay_step`]. `publish` returns once the broker confirmed every event.
    pub fn relay_step(
        &self,
        p: &Principal,
        lease: &RelayLease,
        fetch: u32,
        publish: &mut dyn FnMut(&[DomainEvent]) -> std::result::Result<(), String>,
    ) -> Result<RelayStep> {
        p.require_admin("run the event relay")?;
        engine::relay_step(&*self.store, lease, fetch.clamp(1, 10_000), &|| self.now(), publish)
    }

    /// Gives a relay's lease up, so another relay takes over at once.
    pub fn relay_release(&self, p: &Principal, lease: &RelayLease) -> Result<()> {
        p.require_admin("run the event relay")?;
        engine::relay_release(&*self.store, lease)
    }

    /// Deletes domain events older than `older_than` from the log (admins): only those
    /// the relay `relay` has published unless `unpublished` says otherwise, and never
    /// an aggregate's latest event (the next one's number follows it). The relay never
    /// deletes; this is the retention setting's work. Returns how many went.
    pub fn prune_events(&self, p: &Principal, older_than: Retention, relay: &str, unpublished: bool) -> Result<u64> {
        p.require_admin("prune the audit log")?;
        let before =
            self.now().checked_sub(older_than.get()).map_err(|e| Error::validation("older_than", e.to_string()))?;
        engine::prune_events(&*self.store, before, relay, unpublished)
    }

    /// A relay's cursor, lease and backlog (admins).
    pub fn relay_status(&self, p: &Principal, name: &str) -> Result<RelayStatus> {
        p.require_admin("read the relay's status")?;
        let state = self.store.relay_state(name)?.unwrap_or_else(|| RelayState::new(name));
        let (backlog, oldest) = self.store.relay_backlog(&state.cursor)?;
        let lag = oldest.map_or(0, |t| u64::try_from(self.now().duration_since(t).as_secs()).unwrap_or(0));
        Ok(RelayStatus { state, backlog, oldest_unpublished: oldest, lag_seconds: lag })
    }

    /// Creates a user account (admins only).
    pub fn add_user(&self, p: &Principal, email: Email, role: crate::Role, password: &Password) -> Result<User> {
        p.require_admin("add users")?;
        self.create_account(email, role, password, Some(p.email()))
    }

    /// Self-service sign-up: always a customer.
    pub fn register(&self, email: Email, password: &Password) -> Result<User> {
        let actor = email.clone();
        self.create_account(email, crate::Role::Customer, password, Some(&actor))
    }

    fn create_account(
        &self,
        email: Email,
        role: crate::Role,
        password: &Password,
        actor: Option<&Email>,
    ) -> Result<User> {
        let now = self.now();
        let user = User { email, role, created_at: now, updated_at: now };
        let account = Account { user, password_hash: self.hashing.hash(password, &*self.entropy)? };
        engine::create_user(&*self.store, &account, actor)?;
        Ok(account.user)
    }

    /// Seats in live holds and seats sold over every event, now (admins only: a
    /// server's metrics ask as an internal admin).
    pub fn seat_totals(&self, p: &Principal) -> Result<crate::store::SeatTotals> {
        p.require_admin("see the seat totals")?;
        self.store.seat_totals(self.now())
    }

    /// Every user (admins only).
    pub fn list_users(&self, p: &Principal) -> Result<Vec<User>> {
        p.require_admin("list users")?;
        self.store.list_users()
    }

    /// Changes a user's role (admins only; the last admin account keeps its role).
    pub fn set_role(&self, p: &Principal, email: &Email, role: crate::Role) -> Result<User> {
        self.change_user(p, email, Some(role), None, None)
    }

    /// Changes a password: an admin for anyone, a user for themself (with their
    /// current password, so a stolen session cannot take the account).
    pub fn set_password(
        &self,
        p: &Principal,
        email: &Email,
        password: &Password,
        current: Option<&str>,
    ) -> Result<User> {
        self.change_user(p, email, None, Some(password), current)
    }

    /// Changes a user's role (admins only), password (an admin for anyone, a user for
    /// themself), or both at once: one write, so never one without the other.
    /// Changing one's own password needs the current one (`current`), admins included;
    /// demoting the last admin account is refused.
    pub fn change_user(
        &self,
        p: &Principal,
        email: &Email,
        role: Option<crate::Role>,
        password: Option<&Password>,
        current: Option<&str>,
    ) -> Result<User> {
        if role.is_none() && password.is_none() {
            return Err(Error::validation("user", "give a role, a password or both to change"));
        }
        if p.require_change_user(email, role.is_some(), password.is_some())? {
            let current = current
                .ok_or_else(|| Error::validation("current_password", "is required to change your own password"))?;
            let account = self.store.account(email)?.ok_or_else(|| Error::not_found("user", email))?;
            if !self.hashing.verify(&account.password_hash, current)? {
                return Err(Error::validation("current_password", "is not your current password"));
            }
        }
        let hash = password.map(|pw| self.hashing.hash(pw, &*self.entropy)).transpose()?;
        engine::change_user(&*self.store, email, role, hash.as_ref(), self.now(), p.email())
    }

    /// Checks an email and password; the same answer, and about the same time, for an
    /// unknown email and a wrong password. Runs under the hashing bound: past it, a
    /// retryable busy error.
    pub fn authenticate(&self, email: &Email, password: &str) -> Result<Principal> {
        let denied = || Error::Unauthenticated { reason: "wrong email or password".into() };
        let account = self.store.account(email)?;
        // An unknown email spends the time a real check would, so timing does not
        // reveal which accounts exist.
        let hash: &PasswordHash = match &account {
            Some(a) => &a.password_hash,
            None => dummy_hash(),
        };
        let ok = self.hashing.verify(hash, password)? && account.is_some();
        match account {
            Some(a) if ok => Ok(Principal::new(a.user.email, a.user.role)),
            _ => Err(denied()),
        }
    }

    /// The principal an operator acts as with `--as EMAIL`: that user's role if the
    /// account exists, a customer otherwise.
    pub fn principal_for(&self, email: Email) -> Result<Principal> {
        Ok(match self.store.account(&email)? {
            Some(a) => Principal::new(a.user.email, a.user.role),
            None => Principal::new(email, crate::Role::Customer),
        })
    }

    /// Sales per event: one event, or all the principal manages.
    pub fn sales_report(&self, p: &Principal, event: Option<&EventKey>) -> Result<Vec<SalesRow>> {
        let now = self.now();
        let event = event.map(|key| self.load_event(key, now)).transpose()?;
        let (event, organizer) = p.sales_scope(event.as_ref())?;
        self.store.sales_report(event, organizer.as_ref(), now)
    }
}

fn dummy_hash() -> &'static PasswordHash {
    static DUMMY: OnceLock<PasswordHash> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let pw: Password = "not anyone's password".parse().expect("a valid constant password");
        PasswordHash::new(&pw, &crate::clock::OsEntropy).expect("hashing a valid password succeeds")
    })
}

fn paginate<T>(items: &mut Vec<T>, limit: u32, cursor: impl Fn(&T) -> Cursor) -> Page<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more { items.last().map(|last| cursor(last).encode()) } else { None };
    Page { items: std::mem::take(items), next_cursor }
}
