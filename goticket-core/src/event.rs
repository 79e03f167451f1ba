//! Events: what an organizer sells, the rules for creating, changing and cancelling one.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, shown};
use crate::money::Money;
use crate::types::{Capacity, Email, EventId, EventName, ExternalId, PerCustomerLimit, Slug};

/// Whether an event still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// On the calendar; may be selling.
    Scheduled,
    /// Called off: sells nothing, its bookings were cancelled. Final.
    Cancelled,
}

impl EventStatus {
    /// The lower-case name used in every interface and store.
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Scheduled => "scheduled",
            EventStatus::Cancelled => "cancelled",
        }
    }
}

impl FromStr for EventStatus {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "scheduled" => Ok(EventStatus::Scheduled),
            "cancelled" | "canceled" => Ok(EventStatus::Cancelled),
            _ => Err(Error::validation("status", format!("{} is not one of scheduled, cancelled", shown(raw)))),
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event with its live counters. `held` never counts holds past their expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Id (UUIDv7).
    pub id: EventId,
    /// The id it has in the system it was imported from, if any.
    pub external_id: Option<ExternalId>,
    /// Optional unique slug.
    pub slug: Option<Slug>,
    /// Name.
    pub name: EventName,
    /// Optional description.
    pub description: Option<String>,
    /// Optional venue.
    pub venue: Option<String>,
    /// Start, UTC.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub starts_at: Timestamp,
    /// End, UTC; always after `starts_at`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub ends_at: Timestamp,
    /// Seats in total.
    pub capacity: Capacity,
    /// Seats in live holds.
    pub held: u32,
    /// Seats in confirmed bookings.
    pub sold: u32,
    /// `capacity - held - sold`.
    pub available: u32,
    /// Price of one seat.
    pub price: Money,
    /// Most seats one customer may hold or buy, if limited.
    pub max_per_customer: Option<PerCustomerLimit>,
    /// When sales open, if not at once.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub sales_start: Option<Timestamp>,
    /// When sales close, if before the event ends.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub sales_end: Option<Timestamp>,
    /// Scheduled or cancelled.
    pub status: EventStatus,
    /// The organizer who owns the event.
    pub organizer: Email,
    /// Creation time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Last change time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

impl Event {
    /// Sets the counters and derives `available`. Stores call this when they read an
    /// event; `held + sold <= capacity` is their CHECK constraint.
    pub fn with_counters(mut self, held: u32, sold: u32) -> Self {
        self.held = held;
        self.sold = sold;
        self.available = self.capacity.get().saturating_sub(held.saturating_add(sold));
        self
    }

    /// The rule for cancelling an event: only a scheduled one can be.
    pub fn check_cancel(&self) -> Result<()> {
        if self.status == EventStatus::Cancelled {
            return Err(Error::InvalidTransition { entity: "an event", action: "cancel", current: "cancelled".into() });
        }
        Ok(())
    }
}

/// Everything needed to create an event; checked as a whole by [`NewEvent::into_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Name.
    pub name: EventName,
    /// Optional unique slug.
    pub slug: Option<Slug>,
    /// Optional description (at most 10,000 characters).
    pub description: Option<String>,
    /// Optional venue (at most 200 characters).
    pub venue: Option<String>,
    /// Start.
    pub starts_at: Timestamp,
    /// End, after the start.
    pub ends_at: Timestamp,
    /// Seats.
    pub capacity: Capacity,
    /// Price of one seat.
    pub price: Money,
    /// Per-customer limit.
    pub max_per_customer: Option<PerCustomerLimit>,
    /// Sales open.
    pub sales_start: Option<Timestamp>,
    /// Sales close.
    pub sales_end: Option<Timestamp>,
    /// Owner; defaults to the creating principal. Only an admin may name another.
    pub organizer: Option<Email>,
    /// The id in the system it was imported from.
    pub external_id: Option<ExternalId>,
    /// Whether it may start in the past (history being entered). Without it,
    /// [`crate::Service::create_event`] refuses a start that has passed: a typo in the
    /// year should not create an event that can never sell. Imports are history and
    /// are not asked.
    pub allow_past: bool,
}

/// The rule for a start given by hand (a new event, or a change of its start): it must
/// lie ahead unless the caller says it may not.
pub(crate) fn check_start(starts_at: Timestamp, now: Timestamp, allow_past: bool) -> Result<()> {
    if allow_past || starts_at > now {
        return Ok(());
    }
    Err(Error::validation(
        "starts_at",
        format!(
            "{starts_at} is in the past (it is now {now}); to enter an event that has already started, allow the past"
        ),
    ))
}

impl NewEvent {
    /// A minimal new event; optional fields empty.
    pub fn new(name: EventName, starts_at: Timestamp, ends_at: Timestamp, capacity: Capacity, price: Money) -> Self {
        NewEvent {
            name,
            slug: None,
            description: None,
            venue: None,
            starts_at,
            ends_at,
            capacity,
            price,
            max_per_customer: None,
            sales_start: None,
            sales_end: None,
            organizer: None,
            external_id: None,
            allow_past: false,
        }
    }

    /// Checks the cross-field rules and builds the event with zero counters.
    pub fn into_event(self, id: EventId, organizer: Email, now: Timestamp) -> Result<Event> {
        let event = Event {
            id,
            external_id: self.external_id,
            slug: self.slug,
            name: self.name,
            description: self.description,
            venue: self.venue,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            capacity: self.capacity,
            held: 0,
            sold: 0,
            available: self.capacity.get(),
            price: self.price,
            max_per_customer: self.max_per_customer,
            sales_start: self.sales_start,
            sales_end: self.sales_end,
            status: EventStatus::Scheduled,
            organizer,
            created_at: now,
            updated_at: now,
        };
        check_text("description", event.description.as_ref(), 10_000)?;
        check_text("venue", event.venue.as_ref(), 200)?;
        check_event(&event)?;
        Ok(event)
    }
}

impl Event {
    /// The highest price of one seat, in minor units (a billion euros; a hundred
    /// billion yen). With at most [`Capacity::MAX`] seats, every sum of an event's
    /// sales fits the 64-bit amounts every store keeps.
    pub const MAX_PRICE_MINOR: i64 = 100_000_000_000;
}

const _: () = assert!(Event::MAX_PRICE_MINOR.checked_mul(Capacity::MAX as i64).is_some());

/// The rule of every face's free text (see `EventFields`), for a venue or description
/// set in code too, so that what a store keeps is what an import of its export reads
/// back: trimmed, not empty, no control character but tab and newline. Checked where
/// the text is set (a new event, a change of that field), so an event stored before
/// the rule can still change its other fields.
fn check_text(field: &str, text: Option<&String>, max: usize) -> Result<()> {
    let Some(t) = text else { return Ok(()) };
    let clean = crate::types::bounded_text(field, t, max, true)?;
    if clean.as_deref() != Some(t.as_str()) {
        return Err(Error::validation(field, "must not be empty or start or end with white space"));
    }
    Ok(())
}

/// The rules every stored event obeys, whether new or changed.
fn check_event(e: &Event) -> Result<()> {
    if e.price.amount_minor() > Event::MAX_PRICE_MINOR {
        return Err(Error::validation(
            "price",
            format!(
                "must be at most {} per seat, got {}",
                Money::new(Event::MAX_PRICE_MINOR, e.price.currency())?,
                e.price
            ),
        ));
    }
    if let Some(open) = e.sales_start
        && open >= e.ends_at
    {
        return Err(Error::validation("sales_start", format!("must be before the event ends ({})", e.ends_at)));
    }
    if e.starts_at >= e.ends_at {
        return Err(Error::validation(
            "ends_at",
            format!("must be after starts_at ({} is not after {})", e.ends_at, e.starts_at),
        ));
    }
    if let (Some(open), Some(close)) = (e.sales_start, e.sales_end)
        && open >= close
    {
        return Err(Error::validation("sales_end", format!("must be after sales_start ({close} is not after {open})")));
    }
    if let Some(close) = e.sales_end
        && close > e.ends_at
    {
        return Err(Error::validation("sales_end", format!("must not be after the event ends ({})", e.ends_at)));
    }
    for (field, text, max) in [("description", &e.description, 10_000), ("venue", &e.venue, 200)] {
        if let Some(t) = text
            && t.chars().count() > max
        {
            return Err(Error::validation(field, format!("must be at most {max} characters")));
        }
    }
    Ok(())
}

/// A partial change to an event. `None` leaves a field alone; for optional fields,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventPatch {
    /// New name.
    pub name: Option<EventName>,
    /// New or cleared slug.
    pub slug: Option<Option<Slug>>,
    /// New or cleared description.
    pub description: Option<Option<String>>,
    /// New or cleared venue.
    pub venue: Option<Option<String>>,
    /// New start.
    pub starts_at: Option<Timestamp>,
    /// New end.
    pub ends_at: Option<Timestamp>,
    /// New capacity: may rise freely, may fall only to `held + sold`.
    pub capacity: Option<Capacity>,
    /// New price (for future bookings; the currency is fixed once seats are taken).
    pub price: Option<Money>,
    /// New or cleared per-customer limit (applies to future bookings).
    pub max_per_customer: Option<Option<PerCustomerLimit>>,
    /// New or cleared sales start.
    pub sales_start: Option<Option<Timestamp>>,
    /// New or cleared sales end.
    pub sales_end: Option<Option<Timestamp>>,
    /// Whether a new start may lie in the past (see [`NewEvent::allow_past`]); not a
    /// change by itself.
    pub allow_past: bool,
}

impl EventPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        EventPatch { allow_past: false, ..self.clone() } == EventPatch::default()
    }

    /// The rule for changing an event: applied to the current state, read inside the
    /// store's transaction, it gives the new state or the refusal.
    pub fn apply(&self, current: &Event, now: Timestamp) -> Result<Event> {
        if current.status == EventStatus::Cancelled {
            return Err(Error::InvalidTransition { entity: "an event", action: "update", current: "cancelled".into() });
        }
        let mut e = current.clone();
        if let Some(v) = &self.name {
            e.name = v.clone();
        }
        if let Some(v) = &self.slug {
            e.slug = v.clone();
        }
        if let Some(v) = &self.description {
            check_text("description", v.as_ref(), 10_000)?;
            e.description = v.clone();
        }
        if let Some(v) = &self.venue {
            check_text("venue", v.as_ref(), 200)?;
            e.venue = v.clone();
        }
        if let Some(v) = self.starts_at {
            e.starts_at = v;
        }
        if let Some(v) = self.ends_at {
            e.ends_at = v;
        }
        if let Some(cap) = self.capacity {
            let taken = current.held + current.sold;
            if cap.get() < taken {
                return Err(Error::conflict(format!(
                    "capacity cannot go below the {taken} seats already held or sold (asked for {cap})"
                )));
            }
            e.capacity = cap;
        }
        if let Some(price) = self.price {
            if price.currency() != current.price.currency() && current.held + current.sold > 0 {
                return Err(Error::conflict(format!(
                    "the currency cannot change from {} while seats are held or sold",
                    current.price.currency()
                )));
            }
            e.price = price;
        }
        if let Some(v) = self.max_per_customer {
            e.max_per_customer = v;
        }
        if let Some(v) = self.sales_start {
            e.sales_start = v;
        }
        if let Some(v) = self.sales_end {
            e.sales_end = v;
        }
        check_event(&e)?;
        e.updated_at = now;
        Ok(e.with_counters(current.held, current.sold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn sample() -> Event {
        NewEvent::new(
            "Gig".parse().unwrap(),
            ts("2027-05-01T19:00:00Z"),
            ts("2027-05-01T23:00:00Z"),
            "10".parse().unwrap(),
            "12.50 EUR".parse().unwrap(),
        )
        .into_event(
            "0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b".parse().unwrap(),
            "org@example.com".parse().unwrap(),
            ts("2027-01-01T00:00:00Z"),
        )
        .unwrap()
    }

    /// Text set in code must obey the faces' rule, where it is set; an event stored
    /// before the rule (with a venue like " Hall ") can still change other fields.
    #[test]
    fn text_rules_apply_where_text_is_set() {
        use std::sync::Arc;
        let store = Arc::new(crate::MemoryStore::new());
        let service = crate::Service::new(store.clone());
        let admin = crate::Principal::new("a@example.com".parse().unwrap(), crate::Role::Admin);
        let mut n = NewEvent::new(
            "Gig".parse().unwrap(),
            ts("2090-05-01T19:00:00Z"),
            ts("2090-05-01T23:00:00Z"),
            "10".parse().unwrap(),
            "1 EUR".parse().unwrap(),
        );
        n.venue = Some(" Hall ".into());
        assert!(service.create_event(&admin, n.clone()).unwrap_err().to_string().contains("venue"));
        n.venue = None;
        let mut old = n
            .into_event(
                crate::EventId::generate(&crate::SystemClock, &crate::OsEntropy),
                admin.email().clone(),
                ts("2026-01-01T00:00:00Z"),
            )
            .unwrap();
        old.venue = Some(" Hall ".into());
        crate::engine::create_event(&*store, &old, admin.email()).unwrap();
        let key = crate::EventKey::Id(old.id);
        let more = EventPatch { capacity: Some("20".parse().unwrap()), ..EventPatch::default() };
        service.update_event(&admin, &key, &more).expect("another field changes");
        let bad = EventPatch { description: Some(Some("x\u{7}".into())), ..EventPatch::default() };
        assert!(service.update_event(&admin, &key, &bad).is_err(), "a changed text obeys the rule");
    }

    /// A start typed by hand must lie ahead, on create and on a change of the start,
    /// unless the caller allows the past; an import (history) is not asked.
    #[test]
    fn a_start_in_the_past_is_refused_unless_allowed() {
        use std::sync::Arc;
        let clock = Arc::new(crate::ManualClock::new(ts("2027-06-01T00:00:00Z")));
        let service = crate::Service::with_sources(
            Arc::new(crate::MemoryStore::new()),
            clock.clone(),
            Arc::new(crate::SeededEntropy::new(1)),
        );
        let admin = crate::Principal::new("a@example.com".parse().unwrap(), crate::Role::Admin);
        let past = || {
            NewEvent::new(
                "Gig".parse().unwrap(),
                ts("2027-05-01T19:00:00Z"),
                ts("2027-05-01T23:00:00Z"),
                "10".parse().unwrap(),
                "1 EUR".parse().unwrap(),
            )
        };
        let err = service.create_event(&admin, past()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Validation);
        assert!(err.to_string().contains("starts_at") && err.to_string().contains("in the past"), "{err}");
        let mut allowed = past();
        allowed.allow_past = true;
        let e = service.create_event(&admin, allowed).expect("history, when asked for");
        let key = crate::EventKey::Id(e.id);
        let mut now_exactly = past();
        now_exactly.starts_at = ts("2027-06-01T00:00:00Z");
        now_exactly.ends_at = ts("2027-06-01T01:00:00Z");
        assert!(service.create_event(&admin, now_exactly).is_err(), "starting this instant is not ahead");
        let back = EventPatch { starts_at: Some(ts("2027-05-01T18:00:00Z")), ..EventPatch::default() };
        assert!(service.update_event(&admin, &key, &back).unwrap_err().to_string().contains("in the past"));
        let other = EventPatch { capacity: Some("20".parse().unwrap()), ..EventPatch::default() };
        service.update_event(&admin, &key, &other).expect("a past event's other fields still change");
        let same =
            EventPatch { starts_at: Some(e.starts_at), venue: Some(Some("Hall".into())), ..EventPatch::default() };
        service.update_event(&admin, &key, &same).expect("the whole event sent back, its past start unchanged");
        let forward = EventPatch {
            starts_at: Some(ts("2027-07-01T19:00:00Z")),
            ends_at: Some(ts("2027-07-01T23:00:00Z")),
            ..EventPatch::default()
        };
        service.update_event(&admin, &key, &forward).expect("a start moved ahead");
        let only_flag = EventPatch { allow_past: true, ..EventPatch::default() };
        assert!(only_flag.is_empty(), "allowing the past changes nothing by itself");
        let allowed = EventPatch { allow_past: true, ..back };
        service.update_event(&admin, &key, &allowed).expect("moved back, when asked for");
    }

    #[test]
    fn new_event_checks_dates_and_window() {
        let mut n = NewEvent::new(
            "Gig".parse().unwrap(),
            ts("2027-05-01T19:00:00Z"),
            ts("2027-05-01T19:00:00Z"),
            "10".parse().unwrap(),
            "1 EUR".parse().unwrap(),
        );
        let id = "0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b".parse().unwrap();
        let org: Email = "o@example.com".parse().unwrap();
        let now = ts("2027-01-01T00:00:00Z");
        assert!(n.clone().into_event(id, org.clone(), now).unwrap_err().to_string().contains("ends_at"));
        n.ends_at = ts("2027-05-01T23:00:00Z");
        n.sales_start = Some(ts("2027-04-01T00:00:00Z"));
        n.sales_end = Some(ts("2027-03-01T00:00:00Z"));
        assert!(n.clone().into_event(id, org.clone(), now).unwrap_err().to_string().contains("sales_end"));
        n.sales_end = Some(ts("2027-06-01T00:00:00Z"));
        assert!(
            n.clone()
                .into_event(id, org.clone(), now)
                .unwrap_err()
                .to_string()
                .contains("must not be after the event ends")
        );
        n.sales_end = Some(ts("2027-05-01T18:00:00Z"));
        let e = n.into_event(id, org, now).unwrap();
        assert_eq!((e.held, e.sold, e.available, e.status), (0, 0, 10, EventStatus::Scheduled));
    }

    #[test]
    fn capacity_rises_freely_and_falls_only_to_taken_seats() {
        let e = sample().with_counters(3, 4);
        let now = ts("2027-01-02T00:00:00Z");
        let up = EventPatch { capacity: Some("50".parse().unwrap()), ..Default::default() }.apply(&e, now).unwrap();
        assert_eq!((up.capacity.get(), up.available), (50, 43));
        let exact = EventPatch { capacity: Some("7".parse().unwrap()), ..Default::default() }.apply(&e, now).unwrap();
        assert_eq!(exact.available, 0);
        let err = EventPatch { capacity: Some("6".parse().unwrap()), ..Default::default() }.apply(&e, now).unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
    }

    #[test]
    fn currency_is_fixed_once_seats_are_taken() {
        let patch = EventPatch { price: Some("10 USD".parse().unwrap()), ..Default::default() };
        let now = ts("2027-01-02T00:00:00Z");
        assert!(patch.apply(&sample(), now).is_ok());
        assert!(patch.apply(&sample().with_counters(1, 0), now).is_err());
        let same_currency = EventPatch { price: Some("99 EUR".parse().unwrap()), ..Default::default() };
        assert!(same_currency.apply(&sample().with_counters(1, 1), now).is_ok());
    }

    #[test]
    fn prices_are_bounded_so_sales_sums_fit() {
        let now = ts("2027-01-02T00:00:00Z");
        let huge = EventPatch { price: Some("92233720368547758.07 EUR".parse().unwrap()), ..Default::default() };
        let err = huge.apply(&sample(), now).unwrap_err().to_string();
        assert!(err.starts_with("invalid price: must be at most 1000000000.00 EUR per seat"), "{err}");
        let top = EventPatch { price: Some("1000000000.00 EUR".parse().unwrap()), ..Default::default() };
        assert!(top.apply(&sample(), now).is_ok());
        let mut n = NewEvent::new(
            "Gig".parse().unwrap(),
            ts("2027-05-01T19:00:00Z"),
            ts("2027-05-01T23:00:00Z"),
            "10".parse().unwrap(),
            "100000000001 JPY".parse().unwrap(),
        );
        let (id, org) = ("0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b".parse().unwrap(), "o@example.com".parse().unwrap());
        assert!(n.clone().into_event(id, org, now).is_err());
        n.price = "100000000000 JPY".parse().unwrap();
        assert!(n.into_event(id, "o@example.com".parse().unwrap(), now).is_ok());
    }

    #[test]
    fn sales_cannot_start_after_the_event_ends() {
        let now = ts("2027-01-02T00:00:00Z");
        let late = EventPatch { sales_start: Some(Some(ts("2027-05-02T00:00:00Z"))), ..Default::default() };
        let err = late.apply(&sample(), now).unwrap_err().to_string();
        assert!(err.starts_with("invalid sales_start: must be before the event ends"), "{err}");
        let at_end = EventPatch { sales_start: Some(Some(ts("2027-05-01T23:00:00Z"))), ..Default::default() };
        assert!(at_end.apply(&sample(), now).is_err(), "a window that opens as the event ends sells nothing");
        let ok = EventPatch { sales_start: Some(Some(ts("2027-05-01T22:59:59Z"))), ..Default::default() };
        assert!(ok.apply(&sample(), now).is_ok());
    }

    #[test]
    fn patch_rechecks_dates() {
        let patch = EventPatch { ends_at: Some(ts("2027-05-01T18:00:00Z")), ..Default::default() };
        assert!(patch.apply(&sample(), ts("2027-01-02T00:00:00Z")).is_err());
    }

    #[test]
    fn cancelled_events_are_final() {
        let mut e = sample();
        assert!(e.check_cancel().is_ok());
        e.status = EventStatus::Cancelled;
        assert!(matches!(e.check_cancel(), Err(Error::InvalidTransition { .. })));
        let err =
            EventPatch { name: Some("X".parse().unwrap()), ..Default::default() }.apply(&e, e.updated_at).unwrap_err();
        assert_eq!(err.to_string(), "cannot update an event that is cancelled");
    }

    #[test]
    fn required_lists_what_parse_requires() {
        let errors = EventFields::default().parse().expect_err("nothing given");
        let fields: Vec<String> = errors
            .iter()
            .map(|e| match e {
                Error::Validation { field, .. } => field.clone(),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(fields, EventFields::REQUIRED);
    }

    #[test]
    fn status_parses() {
        assert_eq!("Cancelled".parse::<EventStatus>().unwrap(), EventStatus::Cancelled);
        assert!("done".parse::<EventStatus>().is_err());
    }
}

/// An event as text fields, the way every face receives one (CLI flags, JSON bodies,
/// import rows). Parsing applies the domain's rules once for all of them; each error
/// names its field (`capacity`, `starts_at`...), and the face renames it if it must.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct EventFields {
    pub name: Option<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub capacity: Option<String>,
    pub price: Option<String>,
    pub slug: Option<String>,
    pub venue: Option<String>,
    pub description: Option<String>,
    pub max_per_customer: Option<String>,
    pub sales_start: Option<String>,
    pub sales_end: Option<String>,
    pub organizer: Option<String>,
    pub external_id: Option<String>,
}

/// Collects the errors of a field-by-field parse.
struct Fields(Vec<Error>);

impl Fields {
    fn take<T>(&mut self, field: &str, r: Result<T>) -> Option<T> {
        r.map_err(|e| self.0.push(e.in_field(field))).ok()
    }

    fn parse<T: FromStr<Err = Error>>(&mut self, field: &str, raw: Option<&String>) -> Option<T> {
        let raw = raw.filter(|v| !v.trim().is_empty())?;
        self.take(field, raw.parse())
    }

    fn time(&mut self, field: &str, raw: Option<&String>) -> Option<Timestamp> {
        let raw = raw.filter(|v| !v.trim().is_empty())?;
        self.take(field, crate::clock::parse_timestamp(field, raw))
    }

    /// Optional text: `None` when absent, `Some(None)` when given empty (clears it).
    fn text(&mut self, field: &str, raw: Option<&String>, max: usize) -> Option<Option<String>> {
        let raw = raw?;
        self.take(field, crate::types::bounded_text(field, raw, max, true))
    }

    fn required<T>(&mut self, field: &str, v: Option<T>, given: Option<&String>) -> Option<T> {
        if given.is_none_or(|g| g.trim().is_empty()) {
            self.0.push(Error::validation(field, "is required"));
        }
        v
    }
}

impl EventFields {
    /// The fields a new event must have.
    pub const REQUIRED: [&'static str; 5] = ["name", "starts_at", "ends_at", "capacity", "price"];

    /// A new event from the fields: every field's error, in field order.
    pub fn parse(&self) -> std::result::Result<NewEvent, Vec<Error>> {
        let mut f = Fields(Vec::new());
        let name = f.parse::<EventName>("name", self.name.as_ref());
        let name = f.required("name", name, self.name.as_ref());
        let starts_at = f.time("starts_at", self.starts_at.as_ref());
        let starts_at = f.required("starts_at", starts_at, self.starts_at.as_ref());
        let ends_at = f.time("ends_at", self.ends_at.as_ref());
        let ends_at = f.required("ends_at", ends_at, self.ends_at.as_ref());
        let capacity = f.parse::<Capacity>("capacity", self.capacity.as_ref());
        let capacity = f.required("capacity", capacity, self.capacity.as_ref());
        let price = f.parse::<Money>("price", self.price.as_ref());
        let price = f.required("price", price, self.price.as_ref());
        let slug = f.parse::<Slug>("slug", self.slug.as_ref());
        let venue = f.text("venue", self.venue.as_ref(), 200).flatten();
        let description = f.text("description", self.description.as_ref(), 10_000).flatten();
        let max_per_customer = f.parse::<PerCustomerLimit>("max_per_customer", self.max_per_customer.as_ref());
        let sales_start = f.time("sales_start", self.sales_start.as_ref());
        let sales_end = f.time("sales_end", self.sales_end.as_ref());
        let organizer = f.parse::<Email>("organizer", self.organizer.as_ref());
        let external_id = f.parse::<ExternalId>("external_id", self.external_id.as_ref());
        if let (Some(s), Some(e)) = (starts_at, ends_at)
            && s >= e
        {
            f.0.push(Error::validation("ends_at", format!("must be after starts_at ({e} is not after {s})")));
        }
        match (name, starts_at, ends_at, capacity, price) {
            (Some(name), Some(starts_at), Some(ends_at), Some(capacity), Some(price)) if f.0.is_empty() => {
                let mut n = NewEvent::new(name, starts_at, ends_at, capacity, price);
                n.slug = slug;
                n.venue = venue;
                n.description = description;
                n.max_per_customer = max_per_customer;
                n.sales_start = sales_start;
                n.sales_end = sales_end;
                n.organizer = organizer;
                n.external_id = external_id;
                Ok(n)
            }
            _ => Err(f.0),
        }
    }

    /// The optional fields a change may clear.
    pub const CLEARABLE: [&'static str; 6] =
        ["slug", "description", "venue", "max_per_customer", "sales_start", "sales_end"];

    /// A change from the fields that are given, clearing the optional fields named in
    /// `clear` (see [`EventFields::CLEARABLE`]). Clearing is explicit: a given field
    /// whose text is empty is an error, never a silent no-op or a silent clear. The
    /// owner and the external id cannot change.
    pub fn parse_patch(&self, clear: &[&str]) -> std::result::Result<EventPatch, Vec<Error>> {
        let mut f = Fields(Vec::new());
        for (field, v) in [("organizer", &self.organizer), ("external_id", &self.external_id)] {
            if v.is_some() {
                f.0.push(Error::validation(field, "cannot be changed"));
            }
        }
        let given = [
            ("name", &self.name),
            ("starts_at", &self.starts_at),
            ("ends_at", &self.ends_at),
            ("capacity", &self.capacity),
            ("price", &self.price),
            ("slug", &self.slug),
            ("venue", &self.venue),
            ("description", &self.description),
            ("max_per_customer", &self.max_per_customer),
            ("sales_start", &self.sales_start),
            ("sales_end", &self.sales_end),
        ];
        for (field, v) in given {
            if v.as_ref().is_some_and(|v| v.trim().is_empty()) {
                let how = if Self::CLEARABLE.contains(&field) { "; to clear it, ask for that explicitly" } else { "" };
                f.0.push(Error::validation(field, format!("is empty{how}")));
            }
        }
        for field in clear {
            if !Self::CLEARABLE.contains(field) {
                f.0.push(Error::validation(
                    *field,
                    format!("cannot be cleared (only {} can)", Self::CLEARABLE.join(", ")),
                ));
            } else if given.iter().any(|(g, v)| g == field && v.is_some()) {
                f.0.push(Error::validation(*field, "is both given and cleared"));
            }
        }
        fn cleared<T>(clear: &[&str], field: &str) -> Option<Option<T>> {
            clear.contains(&field).then_some(None)
        }
        let patch = EventPatch {
            name: f.parse("name", self.name.as_ref()),
            slug: f.parse("slug", self.slug.as_ref()).map(Some).or(cleared(clear, "slug")),
            description: f.text("description", self.description.as_ref(), 10_000).or(cleared(clear, "description")),
            venue: f.text("venue", self.venue.as_ref(), 200).or(cleared(clear, "venue")),
            starts_at: f.time("starts_at", self.starts_at.as_ref()),
            ends_at: f.time("ends_at", self.ends_at.as_ref()),
            capacity: f.parse("capacity", self.capacity.as_ref()),
            price: f.parse("price", self.price.as_ref()),
            max_per_customer: f
                .parse("max_per_customer", self.max_per_customer.as_ref())
                .map(Some)
                .or(cleared(clear, "max_per_customer")),
            sales_start: f.time("sales_start", self.sales_start.as_ref()).map(Some).or(cleared(clear, "sales_start")),
            sales_end: f.time("sales_end", self.sales_end.as_ref()).map(Some).or(cleared(clear, "sales_end")),
            allow_past: false,
        };
        if f.0.is_empty() { Ok(patch) } else { Err(f.0) }
    }
}

#[cfg(test)]
mod fields_tests {
    use super::*;

    fn good() -> EventFields {
        EventFields {
            name: Some("Gig".into()),
            starts_at: Some("2090-01-01T19:00:00Z".into()),
            ends_at: Some("2090-01-01T22:00:00Z".into()),
            capacity: Some("10".into()),
            price: Some("12.50 EUR".into()),
            ..EventFields::default()
        }
    }

    #[test]
    fn good_fields_parse() {
        let mut f = good();
        f.venue = Some("  Hall ".into());
        f.description = Some("".into());
        let n = f.parse().unwrap();
        assert_eq!((n.capacity.get(), n.venue.as_deref(), n.description), (10, Some("Hall"), None));
    }

    #[test]
    fn every_error_names_its_field_in_order() {
        let f = EventFields {
            name: Some("  ".into()),
            starts_at: Some("tomorrow".into()),
            capacity: Some("0".into()),
            price: Some("-1 EUR".into()),
            slug: Some("Not A Slug".into()),
            ..EventFields::default()
        };
        let fields: Vec<String> = f
            .parse()
            .unwrap_err()
            .into_iter()
            .map(|e| match e {
                Error::Validation { field, .. } => field,
                other => other.to_string(),
            })
            .collect();
        assert_eq!(fields, ["name", "starts_at", "ends_at", "capacity", "price", "slug"]);
    }

    #[test]
    fn dates_are_checked_together() {
        let mut f = good();
        f.ends_at = Some("2090-01-01T18:00:00Z".into());
        assert!(f.parse().unwrap_err()[0].to_string().starts_with("invalid ends_at: must be after starts_at"));
    }

    #[test]
    fn patches_take_only_given_fields_and_clear_only_on_request() {
        let f = EventFields { capacity: Some("50".into()), ..EventFields::default() };
        let p = f.parse_patch(&["venue", "slug", "max_per_customer", "sales_start", "sales_end"]).unwrap();
        assert_eq!((p.capacity.map(|c| c.get()), p.venue, p.name), (Some(50), Some(None), None));
        assert_eq!(
            (p.slug, p.max_per_customer, p.sales_start, p.sales_end),
            (Some(None), Some(None), Some(None), Some(None))
        );
        assert_eq!(p.description, None, "not named, not touched");
        let owner = EventFields { organizer: Some("x@example.com".into()), ..EventFields::default() };
        assert!(owner.parse_patch(&[]).is_err());
    }

    #[test]
    fn empty_text_in_a_patch_is_an_error_not_a_silent_change() {
        for field in ["slug", "max_per_customer", "sales_start", "sales_end", "venue", "name", "capacity"] {
            let mut f = EventFields::default();
            match field {
                "slug" => f.slug = Some(" ".into()),
                "max_per_customer" => f.max_per_customer = Some(String::new()),
                "sales_start" => f.sales_start = Some(String::new()),
                "sales_end" => f.sales_end = Some(String::new()),
                "venue" => f.venue = Some(String::new()),
                "name" => f.name = Some(String::new()),
                _ => f.capacity = Some(String::new()),
            }
            let errors = f.parse_patch(&[]).unwrap_err();
            assert!(errors[0].to_string().starts_with(&format!("invalid {field}: is empty")), "{field}: {}", errors[0]);
        }
        let err = EventFields::default().parse_patch(&["name"]).unwrap_err();
        assert!(err[0].to_string().contains("cannot be cleared"), "{}", err[0]);
        let both = EventFields { slug: Some("a".into()), ..EventFields::default() };
        assert!(both.parse_patch(&["slug"]).unwrap_err()[0].to_string().contains("both given and cleared"));
    }
}
