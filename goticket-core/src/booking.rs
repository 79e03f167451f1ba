//! Bookings and tickets: the state machine and the rules a reservation, a
//! confirmation, a cancellation and a check-in must pass.
//!
//! Core's use cases ([`crate::engine`]) read the current state inside a store's
//! transaction and ask these functions what to do, so every store enforces exactly the
//! same rules.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, shown};
use crate::event::{Event, EventStatus};
use crate::money::Money;
use crate::types::{BookingCode, BookingId, Email, EventId, ExternalId, IdempotencyKey, Quantity, TicketSecret};

/// Where a booking is in its life.
///
/// ```text
/// reserve(hold) -> held --confirm--> confirmed --cancel--> cancelled
///                   |--cancel--> cancelled
///                   `--(expiry passes)--> expired
/// reserve(no hold) -> confirmed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BookingStatus {
    /// Seats are held until `expires_at`.
    Held,
    /// Seats are sold.
    Confirmed,
    /// Called off by the customer, the organizer or an event cancellation. Final.
    Cancelled,
    /// The hold ran out. Final.
    Expired,
}

impl BookingStatus {
    /// The lower-case name used in every interface and store.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Held => "held",
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Cancelled => "cancelled",
            BookingStatus::Expired => "expired",
        }
    }

    /// Whether the booking still takes seats.
    pub fn is_live(self) -> bool {
        matches!(self, BookingStatus::Held | BookingStatus::Confirmed)
    }
}

impl FromStr for BookingStatus {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "held" => Ok(BookingStatus::Held),
            "confirmed" => Ok(BookingStatus::Confirmed),
            "cancelled" | "canceled" => Ok(BookingStatus::Cancelled),
            "expired" => Ok(BookingStatus::Expired),
            _ => Err(Error::validation(
                "status",
                format!("{} is not one of held, confirmed, cancelled, expired", shown(raw)),
            )),
        }
    }
}

impl fmt::Display for BookingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One seat of a booking, with the secret that admits its holder once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ticket {
    /// Position in the booking, from 1.
    pub seq: u32,
    /// The check-in secret (at least 128 random bits).
    pub secret: TicketSecret,
    /// When it was scanned at the door, if it was.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub checked_in_at: Option<Timestamp>,
}

/// A customer's booking of one or more seats of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Booking {
    /// Id (UUIDv7).
    pub id: BookingId,
    /// Short human code.
    pub code: BookingCode,
    /// The event booked.
    pub event_id: EventId,
    /// Who booked.
    pub customer: Email,
    /// Seats.
    pub quantity: Quantity,
    /// State.
    pub status: BookingStatus,
    /// Price of one seat when booked.
    pub unit_price: Money,
    /// When the hold runs out; set for bookings made as holds.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// The client's retry key, if given.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The id it has in the system it was imported from, if any.
    pub external_id: Option<ExternalId>,
    /// Creation time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Last change time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
    /// One ticket per seat.
    pub tickets: Vec<Ticket>,
}

impl Booking {
    /// Whether this is a hold whose expiry has passed at `now`.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.status == BookingStatus::Held && self.expires_at.is_some_and(|t| t <= now)
    }

    /// The booking as it stands at `now`: an overdue hold is reported as expired,
    /// whether or not the sweeper has written that yet.
    pub fn at(mut self, now: Timestamp) -> Self {
        if self.is_overdue(now) {
            self.status = BookingStatus::Expired;
        }
        self
    }

    /// The booking's total price.
    pub fn total(&self) -> Money {
        self.unit_price.times(u64::from(self.quantity.get())).unwrap_or(self.unit_price)
    }
}

/// A state change asked of a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingAction {
    /// Turn a live hold into a sale.
    Confirm,
    /// Release the seats.
    Cancel,
}

/// What a permitted action does: the new status and the change to the event's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The new status.
    pub to: BookingStatus,
    /// Change to the event's `held`.
    pub held_delta: i64,
    /// Change to the event's `sold`.
    pub sold_delta: i64,
}

impl BookingAction {
    /// The verb, as used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingAction::Confirm => "confirm",
            BookingAction::Cancel => "cancel",
        }
    }

    /// The transition rule. `booking` is the stored state, with its tickets; an overdue
    /// hold counts as expired (and so cannot be confirmed). Once any ticket has been
    /// scanned at the door the booking is used: cancelling it would give its seat to
    /// someone else while its holder is inside. (Cancelling the whole event still
    /// cancels it; see the store's `cancel_event`.)
    pub fn apply(self, booking: &Booking, now: Timestamp) -> Result<Transition> {
        let q = i64::from(booking.quantity.get());
        let current = if booking.is_overdue(now) { BookingStatus::Expired } else { booking.status };
        if self == BookingAction::Cancel && booking.tickets.iter().any(|t| t.checked_in_at.is_some()) {
            return Err(Error::InvalidTransition {
                entity: "a booking",
                action: "cancel",
                current: format!("{current} and checked in"),
            });
        }
        match (self, current) {
            (BookingAction::Confirm, BookingStatus::Held) => {
                Ok(Transition { to: BookingStatus::Confirmed, held_delta: -q, sold_delta: q })
            }
            (BookingAction::Cancel, BookingStatus::Held) => {
                Ok(Transition { to: BookingStatus::Cancelled, held_delta: -q, sold_delta: 0 })
            }
            (BookingAction::Cancel, BookingStatus::Confirmed) => {
                Ok(Transition { to: BookingStatus::Cancelled, held_delta: 0, sold_delta: -q })
            }
            (action, current) => Err(Error::InvalidTransition {
                entity: "a booking",
                action: action.as_str(),
                current: current.as_str().into(),
            }),
        }
    }
}

/// A reservation, prepared by the service: ids, code and secrets are drawn before
/// the store's transaction so the store only decides and writes.
#[derive(Debug, Clone)]
pub struct ReserveRequest {
    /// The new booking's id.
    pub id: BookingId,
    /// The new booking's code.
    pub code: BookingCode,
    /// The event.
    pub event_id: EventId,
    /// The customer.
    pub customer: Email,
    /// Who asks (the customer, an organizer or admin booking for them, an importer):
    /// the domain event's actor.
    pub actor: Email,
    /// Seats.
    pub quantity: Quantity,
    /// Hold expiry, or `None` to buy outright.
    pub hold_until: Option<Timestamp>,
    /// Retry key.
    pub idempotency_key: Option<IdempotencyKey>,
    /// For imports: the row's external id (a second row with it never books twice).
    pub external_id: Option<ExternalId>,
    /// One secret per seat.
    pub secrets: Vec<TicketSecret>,
    /// For an import that moves a booking from another store: the booking as it was
    /// there (its `code` and `secrets` are the request's). It is written as it stands,
    /// without the sale rules (it was sold already); only the seats must fit.
    pub restore: Option<Restored>,
}

/// What a moved booking was in the store it came from, beyond its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Its status there (a hold whose expiry has passed is written as expired).
    pub status: BookingStatus,
    /// Its price per seat.
    pub unit_price: Money,
    /// When each ticket, in seat order, was checked in, if it was.
    pub checked_in: Vec<Option<Timestamp>>,
}

/// The rule for a moved booking: it is written as it was (status, price, secrets,
/// check-ins), and a live one must still fit the event's free seats.
pub fn decide_restore(req: &ReserveRequest, r: &Restored, event: &Event, now: Timestamp) -> Result<Booking> {
    let q = req.quantity.get();
    if req.secrets.len() != q as usize || r.checked_in.len() != q as usize {
        return Err(Error::validation("tickets", "one ticket per seat is required"));
    }
    if r.status == BookingStatus::Held && req.hold_until.is_none() {
        return Err(Error::validation("hold_until", "is required for a held booking"));
    }
    let status = match r.status {
        BookingStatus::Held if req.hold_until.is_some_and(|t| t <= now) => BookingStatus::Expired,
        other => other,
    };
    if status.is_live() && event.available < q {
        return Err(Error::SoldOut { requested: q, available: event.available });
    }
    Ok(booking_of(req, status, r.unit_price, &r.checked_in, now))
}

/// The booking a decided request makes: its ids, code and secrets are the request's.
fn booking_of(
    req: &ReserveRequest,
    status: BookingStatus,
    unit_price: Money,
    checked_in: &[Option<Timestamp>],
    now: Timestamp,
) -> Booking {
    Booking {
        id: req.id,
        code: req.code.clone(),
        event_id: req.event_id,
        customer: req.customer.clone(),
        quantity: req.quantity,
        status,
        unit_price,
        expires_at: req.hold_until,
        idempotency_key: req.idempotency_key.clone(),
        external_id: req.external_id.clone(),
        created_at: now,
        updated_at: now,
        tickets: req
            .secrets
            .iter()
            .zip(checked_in.iter().copied().chain(std::iter::repeat(None)))
            .zip(1..)
            .map(|((secret, at), seq)| Ticket { seq, secret: secret.clone(), checked_in_at: at })
            .collect(),
    }
}

/// A successful reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reservation {
    /// The booking made (or, for a retry, the one made the first time).
    #[serde(flatten)]
    pub booking: Booking,
    /// Whether this answered a retry with an earlier booking.
    pub replayed: bool,
}

/// The reservation rule. `event` is read inside the transaction after its overdue
/// holds were expired; `already` is what the customer holds or bought for the event.
/// Gives the booking to insert, or the refusal.
pub fn decide_reservation(req: &ReserveRequest, event: &Event, already: u32, now: Timestamp) -> Result<Booking> {
    let q = req.quantity.get();
    if event.status == EventStatus::Cancelled {
        return Err(Error::NotOnSale { reason: "the event is cancelled".into() });
    }
    if now >= event.ends_at {
        return Err(Error::NotOnSale { reason: format!("the event ended at {}", event.ends_at) });
    }
    if let Some(open) = event.sales_start
        && now < open
    {
        return Err(Error::NotOnSale { reason: format!("sales open at {open}") });
    }
    if let Some(close) = event.sales_end
        && now >= close
    {
        return Err(Error::NotOnSale { reason: format!("sales closed at {close}") });
    }
    if let Some(limit) = event.max_per_customer
        && already.saturating_add(q) > limit.get()
    {
        return Err(Error::LimitExceeded { limit: limit.get(), already, requested: q });
    }
    if event.available < q {
        return Err(Error::SoldOut { requested: q, available: event.available });
    }
    if let Some(until) = req.hold_until
        && until <= now
    {
        return Err(Error::validation("hold_until", format!("{until} is not in the future")));
    }
    if req.secrets.len() != q as usize {
        return Err(Error::validation("tickets", "one secret per seat is required"));
    }
    let status = if req.hold_until.is_some() { BookingStatus::Held } else { BookingStatus::Confirmed };
    Ok(booking_of(req, status, event.price, &[], now))
}

/// The retry rule, for a request whose retry key (of the same customer) or external id
/// matches `existing`: the same request gets `existing` back; a different one (another
/// event, customer, quantity, or a hold where a sale was made) is a conflict.
pub fn replay(req: &ReserveRequest, existing: Booking, now: Timestamp) -> Result<Reservation> {
    let same = existing.event_id == req.event_id
        && existing.customer == req.customer
        && existing.quantity == req.quantity
        && existing.expires_at.is_some() == req.hold_until.is_some();
    if !same {
        let reason = match &req.external_id {
            Some(x) if existing.external_id.as_ref() == Some(x) => {
                format!("booking {x} already exists with other data ({})", existing.code)
            }
            _ => format!(
                "idempotency key {:?} was already used for a different booking ({})",
                req.idempotency_key.as_ref().map(|k| k.as_str()).unwrap_or_default(),
                existing.code
            ),
        };
        return Err(Error::conflict(reason));
    }
    Ok(Reservation { booking: existing.at(now), replayed: true })
}

/// A successful check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckIn {
    /// The booking the ticket belongs to.
    pub booking_code: BookingCode,
    /// The event.
    pub event_id: EventId,
    /// The event's name.
    pub event_name: String,
    /// The booking's customer.
    pub customer: Email,
    /// Which seat of the booking.
    pub seq: u32,
    /// Seats in the booking.
    pub of: u32,
    /// When it was checked in (now).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub checked_in_at: Timestamp,
}

impl CheckIn {
    /// The record of `ticket` of `booking` (of `event`) scanned at `at`.
    pub fn of(booking: &Booking, ticket: &Ticket, event: &Event, at: Timestamp) -> Self {
        CheckIn {
            booking_code: booking.code.clone(),
            event_id: event.id,
            event_name: event.name.to_string(),
            customer: booking.customer.clone(),
            seq: ticket.seq,
            of: booking.quantity.get(),
            checked_in_at: at,
        }
    }
}

/// The check-in rule: a ticket of a confirmed booking, scanned for the first time.
pub fn decide_check_in(booking: &Booking, ticket: &Ticket, now: Timestamp) -> Result<()> {
    if let Some(at) = ticket.checked_in_at {
        return Err(Error::AlreadyCheckedIn { at });
    }
    let status = booking.clone().at(now).status;
    if status != BookingStatus::Confirmed {
        return Err(Error::InvalidTransition {
            entity: "a ticket of a booking",
            action: "check in",
            current: status.as_str().into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SeededEntropy;
    use crate::event::NewEvent;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2027-01-01T12:00:00Z";

    fn event(capacity: u32, limit: Option<u32>) -> Event {
        let mut n = NewEvent::new(
            "Gig".parse().unwrap(),
            ts("2027-05-01T19:00:00Z"),
            ts("2027-05-01T23:00:00Z"),
            capacity.try_into().unwrap(),
            "10 EUR".parse().unwrap(),
        );
        n.max_per_customer = limit.map(|l| l.try_into().unwrap());
        n.into_event("0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b".parse().unwrap(), "o@example.com".parse().unwrap(), ts(NOW))
            .unwrap()
    }

    fn request(q: u32, hold: bool) -> ReserveRequest {
        let e = SeededEntropy::new(u64::from(q));
        ReserveRequest {
            id: "0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a00".parse().unwrap(),
            code: BookingCode::generate(&e),
            event_id: "0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b".parse().unwrap(),
            customer: "c@example.com".parse().unwrap(),
            actor: "c@example.com".parse().unwrap(),
            quantity: q.try_into().unwrap(),
            hold_until: hold.then(|| ts("2027-01-01T12:15:00Z")),
            idempotency_key: None,
            external_id: None,
            secrets: (0..q).map(|_| TicketSecret::generate(&e)).collect(),
            restore: None,
        }
    }

    #[test]
    fn reservation_makes_a_hold_or_a_sale() {
        let e = event(10, None);
        let held = decide_reservation(&request(2, true), &e, 0, ts(NOW)).unwrap();
        assert_eq!((held.status, held.tickets.len()), (BookingStatus::Held, 2));
        assert_eq!(held.unit_price, e.price);
        let sold = decide_reservation(&request(3, false), &e, 0, ts(NOW)).unwrap();
        assert_eq!((sold.status, sold.expires_at), (BookingStatus::Confirmed, None));
        assert_eq!(sold.tickets.iter().map(|t| t.seq).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn reservation_refuses_past_capacity_and_says_what_is_left() {
        let e = event(10, None).with_counters(4, 5);
        let err = decide_reservation(&request(2, false), &e, 0, ts(NOW)).unwrap_err();
        assert!(matches!(err, Error::SoldOut { requested: 2, available: 1 }), "{err}");
        assert!(decide_reservation(&request(1, false), &e, 0, ts(NOW)).is_ok());
    }

    #[test]
    fn reservation_enforces_the_per_customer_limit() {
        let e = event(10, Some(4));
        let err = decide_reservation(&request(2, false), &e, 3, ts(NOW)).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { limit: 4, already: 3, requested: 2 }), "{err}");
        assert!(decide_reservation(&request(1, false), &e, 3, ts(NOW)).is_ok());
    }

    #[test]
    fn reservation_respects_status_end_and_sales_window() {
        let mut e = event(10, None);
        e.status = EventStatus::Cancelled;
        assert!(matches!(decide_reservation(&request(1, false), &e, 0, ts(NOW)), Err(Error::NotOnSale { .. })));
        let e = event(10, None);
        assert!(matches!(
            decide_reservation(&request(1, false), &e, 0, ts("2027-05-01T23:00:00Z")),
            Err(Error::NotOnSale { .. })
        ));
        let mut e = event(10, None);
        e.sales_start = Some(ts("2027-02-01T00:00:00Z"));
        e.sales_end = Some(ts("2027-03-01T00:00:00Z"));
        assert!(decide_reservation(&request(1, false), &e, 0, ts(NOW)).unwrap_err().to_string().contains("sales open"));
        assert!(decide_reservation(&request(1, false), &e, 0, ts("2027-02-01T00:00:00Z")).is_ok());
        assert!(
            decide_reservation(&request(1, false), &e, 0, ts("2027-03-01T00:00:00Z"))
                .unwrap_err()
                .to_string()
                .contains("sales closed")
        );
    }

    fn booking(status: BookingStatus) -> Booking {
        let mut b = decide_reservation(&request(2, true), &event(10, None), 0, ts(NOW)).unwrap();
        b.status = status;
        b
    }

    #[test]
    fn every_transition_allowed_and_refused() {
        use BookingAction::*;
        use BookingStatus::*;
        let now = ts(NOW);
        assert_eq!(
            Confirm.apply(&booking(Held), now).unwrap(),
            Transition { to: Confirmed, held_delta: -2, sold_delta: 2 }
        );
        assert_eq!(
            Cancel.apply(&booking(Held), now).unwrap(),
            Transition { to: Cancelled, held_delta: -2, sold_delta: 0 }
        );
        assert_eq!(
            Cancel.apply(&booking(Confirmed), now).unwrap(),
            Transition { to: Cancelled, held_delta: 0, sold_delta: -2 }
        );
        for (action, from) in
            [(Confirm, Confirmed), (Confirm, Cancelled), (Confirm, Expired), (Cancel, Cancelled), (Cancel, Expired)]
        {
            let err = action.apply(&booking(from), now).unwrap_err();
            assert_eq!(err.to_string(), format!("cannot {} a booking that is {}", action.as_str(), from));
        }
    }

    #[test]
    fn a_checked_in_booking_cannot_be_cancelled() {
        let mut b = booking(BookingStatus::Confirmed);
        b.tickets[1].checked_in_at = Some(ts(NOW));
        let err = BookingAction::Cancel.apply(&b, ts(NOW)).unwrap_err();
        assert_eq!(err.to_string(), "cannot cancel a booking that is confirmed and checked in");
        b.tickets[1].checked_in_at = None;
        assert!(BookingAction::Cancel.apply(&b, ts(NOW)).is_ok(), "unscanned, it can");
    }

    #[test]
    fn an_overdue_hold_is_expired_and_cannot_be_confirmed() {
        let b = booking(BookingStatus::Held);
        let later = ts("2027-01-01T12:15:00Z");
        assert!(b.is_overdue(later));
        assert_eq!(b.clone().at(later).status, BookingStatus::Expired);
        let err = BookingAction::Confirm.apply(&b, later).unwrap_err();
        assert_eq!(err.to_string(), "cannot confirm a booking that is expired");
        assert!(BookingAction::Cancel.apply(&b, later).is_err());
        assert!(BookingAction::Confirm.apply(&b, ts("2027-01-01T12:14:59Z")).is_ok());
    }

    #[test]
    fn replay_returns_the_original_or_conflicts() {
        let req = request(2, true);
        let original = decide_reservation(&req, &event(10, None), 0, ts(NOW)).unwrap();
        let r = replay(&req, original.clone(), ts(NOW)).unwrap();
        assert!(r.replayed);
        assert_eq!(r.booking.id, original.id);
        let other = request(3, true);
        assert!(matches!(replay(&other, original.clone(), ts(NOW)), Err(Error::Conflict { .. })));
        let bought = request(2, false);
        assert!(matches!(replay(&bought, original, ts(NOW)), Err(Error::Conflict { .. })));
    }

    #[test]
    fn check_in_once_and_only_for_confirmed() {
        let now = ts(NOW);
        let b = booking(BookingStatus::Confirmed);
        assert!(decide_check_in(&b, &b.tickets[0], now).is_ok());
        let mut used = b.tickets[0].clone();
        used.checked_in_at = Some(ts("2027-01-01T11:00:00Z"));
        let err = decide_check_in(&b, &used, now).unwrap_err();
        assert_eq!(err.to_string(), "ticket already checked in at 2027-01-01T11:00:00Z");
        for s in [BookingStatus::Held, BookingStatus::Cancelled, BookingStatus::Expired] {
            let b = booking(s);
            assert!(matches!(decide_check_in(&b, &b.tickets[0], now), Err(Error::InvalidTransition { .. })), "{s}");
        }
    }

    #[test]
    fn a_moved_booking_is_written_as_it_was_and_only_live_ones_take_seats() {
        let now = ts(NOW);
        let restored = |status, checked: Option<&str>| Restored {
            status,
            unit_price: "3 EUR".parse().unwrap(),
            checked_in: vec![checked.map(ts), None],
        };
        let full = event(2, Some(1)).with_counters(0, 2);
        let req = request(2, false);
        for status in [BookingStatus::Cancelled, BookingStatus::Expired] {
            let b = decide_restore(&req, &restored(status, None), &full, now).unwrap();
            assert_eq!(b.status, status, "a dead booking needs no seat, even on a full event");
        }
        let err = decide_restore(&req, &restored(BookingStatus::Confirmed, None), &full, now).unwrap_err();
        assert!(matches!(err, Error::SoldOut { requested: 2, available: 0 }), "{err}");
        let open = event(10, Some(1));
        let b = decide_restore(&req, &restored(BookingStatus::Confirmed, Some("2027-01-01T11:00:00Z")), &open, now)
            .expect("the per-customer limit and the sale rules are not asked again");
        assert_eq!((b.unit_price.amount_minor(), b.code.clone()), (300, req.code.clone()), "its own price and code");
        assert_eq!(b.tickets[0].checked_in_at, Some(ts("2027-01-01T11:00:00Z")));
        assert_eq!(b.tickets.iter().map(|t| &t.secret).collect::<Vec<_>>(), req.secrets.iter().collect::<Vec<_>>());
        let lapsed = ReserveRequest { hold_until: Some(ts("2027-01-01T11:59:00Z")), ..request(2, true) };
        let b = decide_restore(&lapsed, &restored(BookingStatus::Held, None), &open, now).unwrap();
        assert_eq!(b.status, BookingStatus::Expired, "a hold past its expiry arrives expired");
        let short = Restored { checked_in: vec![None], ..restored(BookingStatus::Confirmed, None) };
        assert!(decide_restore(&req, &short, &open, now).is_err(), "one ticket per seat");
    }

    #[test]
    fn status_parses() {
        assert_eq!("HELD".parse::<BookingStatus>().unwrap(), BookingStatus::Held);
        assert!("pending".parse::<BookingStatus>().is_err());
    }
}

/// What a store read, inside its transaction, before planning a reservation batch.
#[derive(Debug, Default)]
pub struct BatchState {
    /// The batch's events, after their overdue holds were expired. A missing event
    /// makes its requests "not found".
    pub events: std::collections::HashMap<EventId, Event>,
    /// Earlier bookings, by customer and retry key, for the requests that carry one.
    pub by_key: std::collections::HashMap<(Email, IdempotencyKey), Booking>,
    /// Live seats (held or confirmed) per event and customer, for events with a
    /// per-customer limit.
    pub seats_by_customer: std::collections::HashMap<(EventId, Email), u32>,
    /// Earlier bookings by external id, for the (imported) requests that carry one.
    pub by_external: std::collections::HashMap<ExternalId, Booking>,
}

/// What a reservation batch does: each request's outcome, the bookings to insert and
/// each event's counter changes.
#[derive(Debug, Default)]
pub struct BatchPlan {
    /// One outcome per request, in order.
    pub outcomes: Vec<Result<Reservation>>,
    /// New bookings (with their tickets), in order.
    pub inserts: Vec<Booking>,
    /// Per event: the counter changes, sorted by event id.
    pub deltas: Vec<crate::store::CounterDelta>,
}

/// The batch reservation rule: requests are decided one after another, in arrival
/// order, each seeing the seats, limits and retry keys of those before it, exactly as
/// if each had run alone. Stores read a [`BatchState`], call this, and write the plan.
pub fn plan_reservations(batch: &[ReserveRequest], mut state: BatchState, now: Timestamp) -> BatchPlan {
    let mut plan = BatchPlan { outcomes: Vec::with_capacity(batch.len()), ..BatchPlan::default() };
    let mut deltas: std::collections::BTreeMap<EventId, (i64, i64)> = std::collections::BTreeMap::new();
    for req in batch {
        if let Some(x) = &req.external_id
            && let Some(existing) = state.by_external.get(x)
        {
            plan.outcomes.push(replay(req, existing.clone(), now));
            continue;
        }
        if let Some(key) = &req.idempotency_key
            && let Some(existing) = state.by_key.get(&(req.customer.clone(), key.clone()))
        {
            plan.outcomes.push(replay(req, existing.clone(), now));
            continue;
        }
        let Some(event) = state.events.get_mut(&req.event_id) else {
            plan.outcomes.push(Err(Error::not_found("event", req.event_id)));
            continue;
        };
        let seats_key = (req.event_id, req.customer.clone());
        let already = state.seats_by_customer.get(&seats_key).copied().unwrap_or(0);
        let decided = match &req.restore {
            Some(r) => decide_restore(req, r, event, now),
            None => decide_reservation(req, event, already, now),
        };
        match decided {
            Ok(booking) => {
                let q = booking.quantity.get();
                let d = deltas.entry(event.id).or_default();
                *event = match booking.status {
                    BookingStatus::Held => {
                        d.0 += i64::from(q);
                        event.clone().with_counters(event.held + q, event.sold)
                    }
                    BookingStatus::Confirmed => {
                        d.1 += i64::from(q);
                        event.clone().with_counters(event.held, event.sold + q)
                    }
                    BookingStatus::Cancelled | BookingStatus::Expired => event.clone(),
                };
                if booking.status.is_live() {
                    *state.seats_by_customer.entry(seats_key).or_default() += q;
                }
                if let Some(key) = &req.idempotency_key {
                    state.by_key.insert((req.customer.clone(), key.clone()), booking.clone());
                }
                if let Some(x) = &req.external_id {
                    state.by_external.insert(x.clone(), booking.clone());
                }
                plan.inserts.push(booking.clone());
                plan.outcomes.push(Ok(Reservation { booking, replayed: false }));
            }
            Err(e) => plan.outcomes.push(Err(e)),
        }
    }
    plan.deltas =
        deltas.into_iter().map(|(event, (held, sold))| crate::store::CounterDelta { event, held, sold }).collect();
    plan
}

#[cfg(test)]
mod plan_tests {
    use super::*;
    use crate::clock::SeededEntropy;
    use crate::event::NewEvent;

    const NOW: &str = "2027-01-01T12:00:00Z";

    fn event(capacity: u32, limit: Option<u32>) -> Event {
        let mut n = NewEvent::new(
            "Gig".parse().unwrap(),
            "2027-05-01T19:00:00Z".parse().unwrap(),
            "2027-05-01T23:00:00Z".parse().unwrap(),
            capacity.try_into().unwrap(),
            "10 EUR".parse().unwrap(),
        );
        n.max_per_customer = limit.map(|l| l.try_into().unwrap());
        n.into_event(
            EventId::from_uuid(uuid::Uuid::from_u128(1)),
            "o@example.com".parse().unwrap(),
            NOW.parse().unwrap(),
        )
        .unwrap()
    }

    fn req(e: &SeededEntropy, customer: &str, q: u32, key: Option<&str>) -> ReserveRequest {
        ReserveRequest {
            id: BookingId::from_uuid(uuid::Uuid::from_u128(u128::from(e.next()))),
            code: BookingCode::generate(e),
            event_id: EventId::from_uuid(uuid::Uuid::from_u128(1)),
            customer: customer.parse().unwrap(),
            actor: customer.parse().unwrap(),
            quantity: q.try_into().unwrap(),
            hold_until: None,
            idempotency_key: key.map(|k| k.parse().unwrap()),
            external_id: None,
            secrets: (0..q).map(|_| TicketSecret::generate(e)).collect(),
            restore: None,
        }
    }

    #[test]
    fn a_batch_decides_in_arrival_order_like_requests_one_by_one() {
        let e = SeededEntropy::new(5);
        let ev = event(5, Some(3));
        let batch = vec![
            req(&e, "a@example.com", 2, None),
            req(&e, "a@example.com", 2, None),
            req(&e, "b@example.com", 3, Some("k")),
            req(&e, "b@example.com", 3, Some("k")),
            req(&e, "c@example.com", 1, None),
        ];
        let mut state = BatchState::default();
        state.events.insert(ev.id, ev.clone());
        let plan = plan_reservations(&batch, state, NOW.parse().unwrap());
        let kinds: Vec<_> =
            plan.outcomes.iter().map(|o| o.as_ref().map(|r| r.replayed).map_err(|e| e.kind())).collect();
        assert_eq!(
            kinds,
            [Ok(false), Err(crate::ErrorKind::LimitExceeded), Ok(false), Ok(true), Err(crate::ErrorKind::SoldOut)]
        );
        assert_eq!(plan.inserts.len(), 2, "a replay inserts nothing");
        assert_eq!(plan.deltas, [crate::store::CounterDelta { event: ev.id, held: 0, sold: 5 }]);
    }

    #[test]
    fn a_missing_event_fails_only_its_own_requests() {
        let e = SeededEntropy::new(6);
        let plan = plan_reservations(&[req(&e, "a@example.com", 1, None)], BatchState::default(), NOW.parse().unwrap());
        assert_eq!(plan.outcomes[0].as_ref().unwrap_err().kind(), crate::ErrorKind::NotFound);
        assert!(plan.inserts.is_empty() && plan.deltas.is_empty());
    }
}
