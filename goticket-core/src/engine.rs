//! Every write use case, written once, over the primitives a store's transaction
//! offers ([`Tx`]). The service authorizes and prepares; these functions read under
//! the transaction's locks, ask the domain rules, and write the outcome.
//!
//! Failures are answered by what the caller may do with them:
//! - a [`Error::Collision`] (two random keys alike) wrote nothing: a reservation batch
//!   is re-run one request at a time, so it fails only the request that collided;
//! - a write whose outcome is unknown (the connection was lost during COMMIT) is never
//!   re-run blindly: it runs again carrying what makes it itself (ids, codes, the
//!   status it moves from), so the rerun cannot apply twice, and a refused rerun reads
//!   what the first attempt wrote and answers that (see `settle`);
//! - deadlocks and serialization failures are retried inside each store's
//!   [`Store::write`].

use std::collections::BTreeSet;

use jiff::Timestamp;

use crate::auth::Role;
use crate::booking::{
    BatchState, Booking, BookingAction, BookingStatus, CheckIn, Reservation, ReserveRequest, decide_check_in,
    plan_reservations,
};
use crate::error::{Error, Result};
use crate::event::{Event, EventStatus};
use crate::import::{
    ImportAction, ImportBooking, ImportEvent, ImportMode, ImportState, Refusals, SeenIds, plan_event_import,
    prepare_booking_import,
};
use crate::outbox::{BookingChange, DomainEvent, DomainEventType, Outbox, RelayLease, RelayStep};
use crate::store::{Commit, CounterDelta, EventKey, Retry, Store, Tx};
use crate::types::{BookingCode, Email, EventId, Slug, TicketSecret};
use crate::users::{Account, PasswordHash, User, decide_role_change};

/// Runs `body` in one write transaction of `store` and gives back what it returned.
pub fn run<T>(store: &dyn Store, retry: Retry, mut body: impl FnMut(&mut dyn Tx) -> Result<(T, Commit)>) -> Result<T> {
    let mut out = None;
    store.write(retry, &mut |tx| {
        let (value, commit) = body(tx)?;
        out = Some(value);
        Ok(commit)
    })?;
    out.ok_or_else(|| Error::internal("the store returned without running the transaction body"))
}

/// Runs `body` and commits.
fn commit<T>(store: &dyn Store, mut body: impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
    run(store, Retry::Allowed, |tx| Ok((body(tx)?, Commit::Yes)))
}

/// The answer to a write whose first attempt may have committed: if `first` failed
/// with an unknown outcome, the write runs `again`. Every write carries what makes it
/// itself (the booking's id and code, the status it moves from, a ticket not yet
/// scanned, the new row's key), so the rerun cannot apply twice: if the first attempt
/// was written, the rerun is refused (a collision, a transition from the wrong status,
/// a ticket already scanned) or finds no seat left. Only then is `look` asked, and by
/// then the first attempt's commit, which the rerun waited for on the same locks or
/// keys, is visible: what it finds written is the answer; otherwise the rerun's own
/// answer stands.
fn settle<T>(
    first: Result<T>,
    look: impl FnOnce() -> Result<Option<T>>,
    again: impl FnOnce() -> Result<T>,
) -> Result<T> {
    match first {
        Err(e) if e.is_outcome_unknown() => match again() {
            Ok(done) => Ok(done),
            Err(refused) => match look() {
                Ok(Some(done)) => Ok(done),
                _ => Err(refused),
            },
        },
        other => other,
    }
}

/// Locks events (in id order), expiring their overdue holds; the expiries go into
/// `out`.
fn lock_events(tx: &mut dyn Tx, ids: &[EventId], now: Timestamp, out: &mut Outbox) -> Result<Vec<Event>> {
    let locked = tx.lock_events(ids, now)?;
    out.expired(&locked.expired);
    Ok(locked.events)
}

/// The one locked event `id`, as of `now`, its overdue holds expired (into `out`).
fn lock_event(tx: &mut dyn Tx, id: EventId, now: Timestamp, out: &mut Outbox) -> Result<Event> {
    lock_events(tx, &[id], now, out)?.pop().ok_or_else(|| Error::not_found("event", id))
}

// ----- Reservations -------------------------------------------------------------

/// Books a batch of prepared requests in one transaction, in order; each gets its own
/// outcome. A collision or a failure of the batch as a whole (other than a busy or
/// unreachable store) re-runs each request alone, so one bad request never fails its
/// neighbours; after an unknown outcome each request is settled alone
/// (`settle_reservation`). The outer error means nothing was written.
pub fn reserve(store: &dyn Store, batch: &[ReserveRequest], now: Timestamp) -> Result<Vec<Result<Reservation>>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    match commit(store, |tx| reserve_in(tx, batch, now)) {
        Ok(outcomes) => Ok(outcomes),
        Err(e) if e.is_outcome_unknown() => {
            Ok(batch.iter().map(|req| settle_reservation(store, req, now, e.replicate())).collect())
        }
        Err(e) if batch.len() > 1 && !matches!(e, Error::Storage(ref s) if s.is_retryable()) => {
            Ok(batch.iter().map(|req| reserve_alone(store, req, now)).collect())
        }
        Err(e) => Err(e),
    }
}

/// One request in its own transaction, settled if its outcome is unknown.
fn reserve_alone(store: &dyn Store, req: &ReserveRequest, now: Timestamp) -> Result<Reservation> {
    match reserve_once(store, req, now) {
        Err(e) if e.is_outcome_unknown() => settle_reservation(store, req, now, e),
        other => other,
    }
}

/// One request in its own transaction: its outcome, or the transaction's failure.
fn reserve_once(store: &dyn Store, req: &ReserveRequest, now: Timestamp) -> Result<Reservation> {
    let mut outcomes = commit(store, |tx| reserve_in(tx, std::slice::from_ref(req), now))?;
    match (outcomes.pop(), outcomes.is_empty()) {
        (Some(outcome), true) => outcome,
        _ => Err(Error::internal("one request did not get exactly one outcome")),
    }
}

/// A request whose transaction may have committed runs once more (it carries its id
/// and code, so it cannot book twice); if that is refused, its booking found by the
/// code and id it was given is its answer.
fn settle_reservation(store: &dyn Store, req: &ReserveRequest, now: Timestamp, unknown: Error) -> Result<Reservation> {
    let mine = || {
        Ok(store
            .booking(&req.code)?
            .filter(|b| b.id == req.id)
            .map(|b| Reservation { booking: b.at(now), replayed: false }))
    };
    settle(Err(unknown), mine, || reserve_once(store, req, now))
}

/// The batch reservation inside a transaction: lock the batch's events (in id order)
/// and expire their overdue holds, read what the rules need (earlier bookings by retry
/// key and external id, customers' live seats where a limit applies) in one query
/// each, let core plan, write the plan in bulk.
pub(crate) fn reserve_in(
    tx: &mut dyn Tx,
    batch: &[ReserveRequest],
    now: Timestamp,
) -> Result<Vec<Result<Reservation>>> {
    let mut state = BatchState::default();
    let mut out = Outbox::new(now);
    let ids: Vec<EventId> = batch.iter().map(|r| r.event_id).collect::<BTreeSet<_>>().into_iter().collect();
    for e in lock_events(tx, &ids, now, &mut out)? {
        state.events.insert(e.id, e);
    }
    let external = distinct(batch.iter().filter_map(|r| r.external_id.clone()));
    if !external.is_empty() {
        for b in tx.bookings_by_external_id(&external)? {
            if let Some(x) = b.external_id.clone() {
                state.by_external.insert(x, b);
            }
        }
    }
    let keys = distinct(batch.iter().filter_map(|r| r.idempotency_key.clone().map(|k| (r.customer.clone(), k))));
    if !keys.is_empty() {
        for b in tx.bookings_by_key(&keys)? {
            if let Some(k) = b.idempotency_key.clone() {
                state.by_key.insert((b.customer.clone(), k), b);
            }
        }
    }
    let limited: Vec<(EventId, Email)> = batch
        .iter()
        .filter(|r| state.events.get(&r.event_id).is_some_and(|e| e.max_per_customer.is_some()))
        .map(|r| (r.event_id, r.customer.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !limited.is_empty() {
        for (event, customer, seats) in tx.live_seats(&limited)? {
            state.seats_by_customer.insert((event, customer), seats);
        }
    }
    let plan = plan_reservations(batch, state, now);
    if !plan.inserts.is_empty() {
        tx.insert_bookings(&plan.inserts)?;
        let actors: std::collections::HashMap<_, _> = batch.iter().map(|r| (r.id, &r.actor)).collect();
        for b in &plan.inserts {
            out.booking_created(b, actors.get(&b.id).copied());
        }
    }
    if !plan.deltas.is_empty() {
        tx.add_to_counters(&plan.deltas)?;
    }
    out.write(tx)?;
    Ok(plan.outcomes)
}

/// The items once each, in first-seen order.
fn distinct<T: std::hash::Hash + Eq + Clone>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    items.filter(|i| seen.insert(i.clone())).collect()
}

// ----- Bookings and tickets ------------------------------------------------------

/// Confirms or cancels a booking: reads it, locks its event (expiring overdue holds,
/// which may include this one), reads it again under the lock, lets `authorize` and
/// the transition rule decide, writes the status with a guard and moves the counters.
pub fn transition(
    store: &dyn Store,
    code: &BookingCode,
    action: BookingAction,
    now: Timestamp,
    actor: &Email,
    authorize: &dyn Fn(&Booking, &Event) -> Result<()>,
) -> Result<Booking> {
    let attempt = || {
        commit(store, |tx| {
            let mut out = Outbox::new(now);
            let before = tx.booking_by_code(code)?.ok_or_else(|| Error::not_found("booking", code))?;
            let event = lock_event(tx, before.event_id, now, &mut out)?;
            let mut booking = tx.booking_by_code(code)?.unwrap_or(before);
            authorize(&booking, &event)?;
            let t = action.apply(&booking, now)?;
            if !tx.set_status(booking.id, booking.status, t.to, now)? {
                return Err(Error::conflict(format!("booking {code} changed concurrently; retry")));
            }
            tx.add_to_counters(&[CounterDelta { event: event.id, held: t.held_delta, sold: t.sold_delta }])?;
            out.booking_changed(&BookingChange::of(&booking), t.to, None, Some(actor));
            out.write(tx)?;
            booking.status = t.to;
            booking.updated_at = now;
            Ok(booking)
        })
    };
    let target = match action {
        BookingAction::Confirm => BookingStatus::Confirmed,
        BookingAction::Cancel => BookingStatus::Cancelled,
    };
    settle(attempt(), || Ok(store.booking(code)?.filter(|b| b.status == target && b.updated_at == now)), attempt)
}

/// Checks a ticket in once: finds its booking, locks the booking's event (a cancel of
/// the same booking locks it too, so a scan and a cancel never both win), reads the
/// booking again under the lock, lets `authorize` and the check-in rule decide, and
/// records the scan with a guard.
pub fn check_in(
    store: &dyn Store,
    secret: &TicketSecret,
    now: Timestamp,
    actor: &Email,
    authorize: &dyn Fn(&Event) -> Result<()>,
) -> Result<CheckIn> {
    let missing = || Error::not_found("ticket", "with that secret");
    let attempt = || {
        commit(store, |tx| {
            let mut out = Outbox::new(now);
            let found = tx.booking_by_secret(secret)?.ok_or_else(missing)?;
            let event = lock_event(tx, found.event_id, now, &mut out)?;
            let booking = tx.bookings_by_id(&[found.id])?.pop().ok_or_else(missing)?;
            let ticket = booking.tickets.iter().find(|t| &t.secret == secret).ok_or_else(missing)?;
            authorize(&event)?;
            decide_check_in(&booking, ticket, now)?;
            if !tx.check_in(booking.id, ticket.seq, now)? {
                return Err(Error::conflict("ticket was checked in concurrently"));
            }
            out.checked_in(&booking, ticket.seq, now, Some(actor));
            out.write(tx)?;
            Ok(CheckIn::of(&booking, ticket, &event, now))
        })
    };
    // The store reads bookings by code only; a read-only transaction finds one by a
    // ticket's secret. Nothing in it needs a lock.
    let look = || {
        let Some(b) = run(store, Retry::Allowed, |tx| Ok((tx.booking_by_secret(secret)?, Commit::No)))? else {
            return Ok(None);
        };
        let Some(t) = b.tickets.iter().find(|t| &t.secret == secret && t.checked_in_at == Some(now)) else {
            return Ok(None);
        };
        let e = store.event(&EventKey::Id(b.event_id), now)?.ok_or_else(|| Error::not_found("event", b.event_id))?;
        Ok(Some(CheckIn::of(&b, t, &e, now)))
    };
    settle(attempt(), look, attempt)
}

/// Expires every overdue hold; returns how many. Running it twice is harmless, so an
/// unknown outcome is simply swept again; the count is then that of the second sweep
/// (the first's may have been written already), a lower bound.
pub fn expire_holds(store: &dyn Store, now: Timestamp) -> Result<u64> {
    let sweep = || {
        commit(store, |tx| {
            let expired = tx.expire_all_holds(now)?;
            let mut out = Outbox::new(now);
            out.expired(&expired);
            out.write(tx)?;
            Ok(expired.len() as u64)
        })
    };
    settle(sweep(), || Ok(None), sweep)
}

/// A store's taken-slug conflict, naming the slug.
fn slug_taken(err: Error, e: &Event) -> Error {
    match (err, &e.slug) {
        (Error::Conflict { .. }, Some(slug)) => {
            Error::conflict(format!("slug {:?} is already used by another event", slug.as_str()))
        }
        (other, _) => other,
    }
}

// ----- Events --------------------------------------------------------------------

/// Inserts a new event.
pub fn create_event(store: &dyn Store, event: &Event, actor: &Email) -> Result<()> {
    let attempt = || {
        commit(store, |tx| {
            tx.insert_events(std::slice::from_ref(event)).map_err(|e| slug_taken(e, event))?;
            let mut out = Outbox::new(event.created_at);
            out.event(DomainEventType::EventCreated, event, Some(actor));
            out.write(tx)
        })
    };
    settle(attempt(), || Ok(store.event(&EventKey::Id(event.id), event.created_at)?.map(|_| ())), attempt)
}

/// Changes an event: locks it (expiring its overdue holds, so `decide` sees the seats
/// really taken), asks `decide` for the new state and writes it.
pub fn update_event(
    store: &dyn Store,
    id: EventId,
    now: Timestamp,
    actor: &Email,
    decide: &dyn Fn(&Event) -> Result<Event>,
) -> Result<Event> {
    let attempt = || {
        commit(store, |tx| {
            let mut out = Outbox::new(now);
            let current = lock_event(tx, id, now, &mut out)?;
            let next = decide(&current)?;
            // A patch that changes nothing (or the rerun of one that was written) writes
            // nothing and announces nothing.
            if (Event { updated_at: current.updated_at, ..next.clone() }) == current {
                out.write(tx)?;
                return Ok(current);
            }
            tx.update_event(&next).map_err(|e| slug_taken(e, &next))?;
            out.event(DomainEventType::EventChanged, &next, Some(actor));
            out.write(tx)?;
            Ok(next)
        })
    };
    // A patch sets fields to given values, so running it again after an unknown outcome
    // gives the same event whether or not the first run was written (an update time
    // cannot tell: an event created this instant has it too).
    settle(attempt(), || Ok(None), attempt)
}

/// Cancels an event and, with it, every live booking: the event is locked, the rule
/// checked, the bookings cancelled, the counters emptied and the event written.
pub fn cancel_event(store: &dyn Store, id: EventId, now: Timestamp, actor: &Email) -> Result<Event> {
    let attempt = || {
        commit(store, |tx| {
            let mut out = Outbox::new(now);
            let current = lock_event(tx, id, now, &mut out)?;
            current.check_cancel()?;
            let cancelled_bookings = tx.cancel_live_bookings(id, now)?;
            for c in &cancelled_bookings {
                out.booking_changed(c, BookingStatus::Cancelled, Some("event_cancelled"), Some(actor));
            }
            let (held, sold) = (i64::from(current.held), i64::from(current.sold));
            if held != 0 || sold != 0 {
                tx.add_to_counters(&[CounterDelta { event: id, held: -held, sold: -sold }])?;
            }
            let mut cancelled = current.with_counters(0, 0);
            cancelled.status = EventStatus::Cancelled;
            cancelled.updated_at = now;
            tx.update_event(&cancelled)?;
            out.event_cancelled(&cancelled, cancelled_bookings.len(), Some(actor));
            out.write(tx)?;
            Ok(cancelled)
        })
    };
    let look = || {
        Ok(store.event(&EventKey::Id(id), now)?.filter(|e| e.status == EventStatus::Cancelled && e.updated_at == now))
    };
    settle(attempt(), look, attempt)
}

// ----- Imports -------------------------------------------------------------------

/// Rows an import decides and writes at a time (one read and one bulk write each).
pub const IMPORT_CHUNK: usize = 1000;

/// A chunk of an import, decided and written inside the import's transaction, its
/// refusals counted.
type ImportChunk<'a, R> = dyn FnMut(&mut dyn Tx, Vec<R>, &mut Refusals) -> Result<()> + 'a;

/// Runs an import: pulls rows in chunks and hands each to `chunk` (which counts its
/// refusals) inside one transaction (all-or-nothing, or a dry run that rolls back) or
/// one transaction per batch. Never re-run by the store: the rows are a stream. An
/// interrupted batch import, or one whose last commit has an unknown outcome, is
/// completed exactly by running it again (rows carry external ids).
fn import_loop<R>(
    store: &dyn Store,
    rows: &mut dyn Iterator<Item = R>,
    mode: ImportMode,
    chunk: &mut ImportChunk<'_, R>,
) -> Result<()> {
    let mut refusals = Refusals::default();
    match mode {
        ImportMode::Batches(n) => loop {
            let mut batch = (&mut *rows).take(n.max(1)).peekable();
            if batch.peek().is_none() {
                return Ok(());
            }
            run(store, Retry::Never, |tx| {
                while batch.peek().is_some() {
                    chunk(tx, batch.by_ref().take(IMPORT_CHUNK).collect(), &mut refusals)?;
                }
                Ok(((), Commit::Yes))
            })?;
        },
        ImportMode::AllOrNothing | ImportMode::DryRun => {
            run(store, Retry::Never, |tx| {
                loop {
                    let rows: Vec<R> = (&mut *rows).take(IMPORT_CHUNK).collect();
                    if rows.is_empty() {
                        break;
                    }
                    chunk(tx, rows, &mut refusals)?;
                }
                let keep = mode == ImportMode::AllOrNothing && refusals.count() == 0;
                Ok(((), if keep { Commit::Yes } else { Commit::No }))
            })?;
            match refusals.into_error() {
                Some(e) if mode == ImportMode::AllOrNothing => Err(e),
                _ => Ok(()),
            }
        }
    }
}

/// Imports events keyed by external id (see [`plan_event_import`] for the rule);
/// `may_update` says whether the importer may change an existing event, `on_row` hears
/// every row's outcome. In `AllOrNothing` mode a refused row means nothing is written
/// and the call fails.
pub fn import_events(
    store: &dyn Store,
    rows: &mut dyn Iterator<Item = ImportEvent>,
    mode: ImportMode,
    now: Timestamp,
    actor: &Email,
    may_update: &dyn Fn(&Event) -> Result<()>,
    on_row: &mut dyn FnMut(u64, &Result<ImportAction>),
) -> Result<()> {
    let mut seen = SeenIds::default();
    import_loop(store, rows, mode, &mut |tx, chunk, refusals| {
        let mut state = ImportState::default();
        let mut out = Outbox::new(now);
        let keys: Vec<String> = chunk
            .iter()
            .filter_map(|r| Some(r.event.as_ref().ok()?.external_id.as_ref()?.as_str().to_owned()))
            .collect();
        if !keys.is_empty() {
            // Found without locks, then locked in id order (expiring their overdue
            // holds, so a capacity change sees the seats really taken).
            let ids: Vec<EventId> = tx.find_events(&keys, now)?.iter().map(|e| e.id).collect();
            for e in lock_events(tx, &ids, now, &mut out)? {
                let key = e.external_id.as_ref().map_or_else(|| e.id.to_string(), |x| x.as_str().to_owned());
                if let Some(slug) = &e.slug {
                    state.slugs.insert(slug.clone(), e.id);
                }
                state.existing.insert(key, e);
            }
        }
        let slugs: Vec<Slug> = chunk.iter().filter_map(|r| r.event.as_ref().ok()?.slug.clone()).collect();
        if !slugs.is_empty() {
            state.slugs.extend(tx.slug_owners(&slugs)?);
        }
        let plan = plan_event_import(chunk, state, &mut seen, now, may_update);
        if !plan.inserts.is_empty() {
            tx.insert_events(&plan.inserts)?;
        }
        for e in &plan.updates {
            tx.update_event(e).map_err(|err| slug_taken(err, e))?;
        }
        for e in &plan.inserts {
            out.event(DomainEventType::EventCreated, e, Some(actor));
        }
        for e in &plan.updates {
            out.event(DomainEventType::EventChanged, e, Some(actor));
        }
        out.write(tx)?;
        for (line, outcome) in plan.outcomes {
            refusals.report(line, outcome, on_row);
        }
        Ok(())
    })
}

/// Imports bookings keyed by external id: resolves each row's event (by id, external
/// id, or slug), asks `may_book`, and reserves the rest with the batch rule of
/// [`reserve`] (an external id seen before is a no-op if the row is the same, a
/// conflict otherwise). Modes and reporting as in [`import_events`].
pub fn import_bookings(
    store: &dyn Store,
    rows: &mut dyn Iterator<Item = ImportBooking>,
    mode: ImportMode,
    now: Timestamp,
    may_book: &dyn Fn(&Event, &Email) -> Result<()>,
    on_row: &mut dyn FnMut(u64, &Result<ImportAction>),
) -> Result<()> {
    import_loop(store, rows, mode, &mut |tx, chunk, refusals| {
        let plan = prepare_booking_import(chunk, &mut |raw| resolve_event(tx, raw, now), may_book)?;
        let results = reserve_in(tx, &plan.batch, now)?;
        plan.finish(results, refusals, on_row);
        Ok(())
    })
}

/// An event named by an import row: its id, else its external id, else its slug. A
/// UUID that is no event's id may still be an external id: an export names an event
/// that had none by its id, and importing that export into another store keeps the id
/// as the new event's external id.
fn resolve_event(tx: &mut dyn Tx, raw: &str, now: Timestamp) -> Result<Option<Event>> {
    // Read without locks: the batch locks every event it books in id order, and
    // locking here, in the file's order, could deadlock with another writer.
    let found = tx.find_events(&[raw.to_owned()], now)?;
    let by_id = raw.parse::<EventId>().ok().and_then(|id| found.iter().find(|e| e.id == id));
    let by_external = || found.iter().find(|e| e.external_id.as_ref().is_some_and(|x| x.as_str() == raw));
    if let Some(e) = by_id.or_else(by_external) {
        return Ok(Some(e.clone()));
    }
    match raw.parse::<Slug>() {
        Ok(slug) => tx.event_by_slug(&slug, now),
        Err(_) => Ok(None),
    }
}

// ----- Users ---------------------------------------------------------------------

/// Inserts an account; a taken email is a conflict.
pub fn create_user(store: &dyn Store, account: &Account, actor: Option<&Email>) -> Result<()> {
    let attempt = || {
        commit(store, |tx| {
            tx.insert_user(account).map_err(|e| match e {
                Error::Conflict { .. } => Error::conflict(format!("a user {} already exists", account.user.email)),
                other => other,
            })?;
            let mut out = Outbox::new(account.user.created_at);
            out.user_created(&account.user, actor);
            out.write(tx)
        })
    };
    let look = || {
        Ok(store
            .account(&account.user.email)?
            .filter(|a| a.password_hash.as_str() == account.password_hash.as_str())
            .map(|_| ()))
    };
    settle(attempt(), look, attempt)
}

/// Changes an account's role (decided by [`decide_role_change`] on the locked account
/// and admin count, so the last admin keeps the role however many change at once)
/// and/or its password hash, in one write.
pub fn change_user(
    store: &dyn Store,
    email: &Email,
    role: Option<Role>,
    hash: Option<&PasswordHash>,
    now: Timestamp,
    actor: &Email,
) -> Result<User> {
    let attempt = || {
        commit(store, |tx| {
            let (account, admins) = tx.lock_account(email)?.ok_or_else(|| Error::not_found("user", email))?;
            let role = decide_role_change(&account.user, admins, role)?;
            let from = account.user.role;
            // The same hash again (the rerun of a change that was written) is no change.
            let hash = hash.filter(|h| h.as_str() != account.password_hash.as_str());
            let new_role = role.unwrap_or(from);
            if new_role == from && hash.is_none() {
                return Ok(account.user);
            }
            let user = User { role: new_role, updated_at: now, ..account.user };
            tx.update_user(&user, hash)?;
            let mut out = Outbox::new(now);
            out.user_changed(&user, from, hash.is_some(), Some(actor));
            out.write(tx)?;
            Ok(user)
        })
    };
    // A role and a hash are set to given values (and a demoted admin is no admin the
    // second time), so running it again after an unknown outcome gives the same account.
    settle(attempt(), || Ok(None), attempt)
}

// ----- The relay ------------------------------------------------------------------

/// One step of a relay: take or renew the lease (standing by if another relay holds
/// it), read the next batch after the cursor, hand it to `publish` (which returns once
/// the broker has confirmed every event, or fails), then move the cursor past it, in a
/// transaction that checks the lease is still this relay's. At least once: a crash
/// between the broker's confirm and the cursor's move publishes the batch again, with
/// the same event ids.
pub fn relay_step(
    store: &dyn Store,
    lease: &RelayLease,
    fetch: u32,
    now: &dyn Fn() -> Timestamp,
    publish: &mut dyn FnMut(&[DomainEvent]) -> std::result::Result<(), String>,
) -> Result<RelayStep> {
    let taken = commit(store, |tx| {
        let mut state = tx.lock_relay(&lease.name)?;
        let taken = state.take(&lease.owner, now(), lease.ttl);
        if taken.is_ok() {
            tx.put_relay(&state)?;
        }
        Ok(taken.map(|()| state.cursor))
    })?;
    let cursor = match taken {
        Ok(c) => c,
        Err((holder, until)) => return Ok(RelayStep::Standby { holder, until }),
    };
    let batch = store.relay_batch(&cursor, fetch)?;
    let Some((last, _)) = batch.last().cloned() else { return Ok(RelayStep::Idle) };
    let events: Vec<DomainEvent> = batch.into_iter().map(|(_, e)| e).collect();
    let outcome = publish(&events);
    commit(store, |tx| {
        let mut state = tx.lock_relay(&lease.name)?;
        let at = now();
        // Still this relay's, and nobody moved the cursor meanwhile: the batch counts,
        // even if the lease ran out while it was being confirmed (no one took it). A
        // relay that took the lease over changed the owner.
        if state.owner.as_deref() != Some(lease.owner.as_str()) || state.cursor != cursor {
            return Ok(RelayStep::LostLease);
        }
        let step = match &outcome {
            Ok(()) => {
                state.cursor = last;
                state.published = state.published.saturating_add(events.len() as u64);
                state.last_published_at = Some(at);
                state.last_error = None;
                RelayStep::Published { count: events.len() }
            }
            Err(why) => {
                state.last_error = Some(crate::error::clipped(why.clone(), 500));
                RelayStep::Failed { error: why.clone() }
            }
        };
        state.take(&lease.owner, at, lease.ttl).map_err(|_| Error::internal("a held lease could not be renewed"))?;
        tx.put_relay(&state)?;
        Ok(step)
    })
}

/// Gives the lease up (a relay stopping cleanly), so another relay takes over at once.
pub fn relay_release(store: &dyn Store, lease: &RelayLease) -> Result<()> {
    commit(store, |tx| {
        let mut state = tx.lock_relay(&lease.name)?;
        if state.owner.as_deref() == Some(lease.owner.as_str()) {
            state.owner = None;
            state.lease_until = None;
            tx.put_relay(&state)?;
        }
        Ok(())
    })
}

/// Prunes the log: deletes events older than `before` (and, unless `unpublished` is
/// set, only those the relay `relay` has published), in transactions of at most
/// 10,000 deletions, each aggregate's latest event kept. Returns how many.
pub fn prune_events(store: &dyn Store, before: Timestamp, relay: &str, unpublished: bool) -> Result<u64> {
    let upto = if unpublished {
        None
    } else {
        match store.relay_state(relay)? {
            Some(state) => Some(state.cursor),
            // No relay ever ran: nothing counts as published.
            None => return Ok(0),
        }
    };
    let mut total = 0;
    loop {
        let n = commit(store, |tx| tx.prune_events(before, upto.as_ref(), 10_000))?;
        total += n;
        if n < 10_000 {
            return Ok(total);
        }
    }
}
