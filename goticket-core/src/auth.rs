//! Who is acting, and what each role may do. Every service operation takes a
//! [`Principal`] and asks these rules; every authorization rule is here, and nowhere
//! else.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::booking::Booking;
use crate::error::{Error, Result, shown};
use crate::event::Event;
use crate::outbox::AuditFilter;
use crate::query::BookingFilter;
use crate::types::{Email, EventId};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Own events, their bookings, check-in.
    Organizer,
    /// Books for self; sees and cancels own bookings.
    Customer,
}

impl Role {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Organizer => "organizer",
            Role::Customer => "customer",
        }
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "organizer" => Ok(Role::Organizer),
            "customer" => Ok(Role::Customer),
            _ => Err(Error::validation("role", format!("{} is not one of admin, organizer, customer", shown(raw)))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity an operation runs as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    email: Email,
    role: Role,
}

impl Principal {
    /// A principal with an email and a role.
    pub fn new(email: Email, role: Role) -> Self {
        Principal { email, role }
    }

    /// The email.
    pub fn email(&self) -> &Email {
        &self.email
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether the principal owns (or administers) the event.
    pub fn manages(&self, event: &Event) -> bool {
        self.is_admin() || (self.role == Role::Organizer && event.organizer == self.email)
    }

    /// May create events owned by `owner`.
    pub fn require_create_event(&self, owner: &Email) -> Result<()> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Organizer if *owner == self.email => Ok(()),
            Role::Organizer => Err(Error::forbidden("an organizer creates events only for themself")),
            Role::Customer => Err(Error::forbidden("customers cannot create events")),
        }
    }

    /// May change or cancel the event, see its bookings and report, check in its tickets.
    pub fn require_manage(&self, event: &Event, action: &str) -> Result<()> {
        if self.manages(event) {
            return Ok(());
        }
        Err(Error::forbidden(format!("{} {} may not {action} event {}", self.role, self.email, event.id)))
    }

    /// May book seats of `event` for `customer`: customers for themselves, organizers
    /// for anyone on their own events (a box office), admins for anyone.
    pub fn require_book_for(&self, event: &Event, customer: &Email) -> Result<()> {
        self.require_book_for_event_of(&event.organizer, event.id, customer)
    }

    /// [`Principal::require_book_for`] knowing only the event's id and owner.
    pub fn require_book_for_event_of(&self, owner: &Email, event: EventId, customer: &Email) -> Result<()> {
        let manages = self.is_admin() || (self.role == Role::Organizer && *owner == self.email);
        if *customer == self.email || manages {
            return Ok(());
        }
        Err(Error::forbidden(format!("{} {} may not book for {customer} on event {event}", self.role, self.email)))
    }

    /// May see, confirm or cancel the booking.
    pub fn require_booking_access(&self, booking: &Booking, event: &Event) -> Result<()> {
        if booking.customer == self.email || self.manages(event) {
            return Ok(());
        }
        Err(Error::forbidden(format!("{} {} may not access booking {}", self.role, self.email, booking.code)))
    }

    /// May run system-wide maintenance (the hold sweeper).
    pub fn require_admin(&self, action: &str) -> Result<()> {
        if self.is_admin() {
            return Ok(());
        }
        Err(Error::forbidden(format!("only an admin may {action}")))
    }

    /// The audit log the principal may read, narrowed from `filter`: admins read all of
    /// it, organizers what concerns their own events (a filter naming another's event is
    /// refused), customers none.
    pub fn scope_audit(&self, mut filter: AuditFilter, event: Option<&Event>) -> Result<AuditFilter> {
        match self.role {
            Role::Admin => {}
            Role::Organizer => {
                if let Some(e) = event {
                    self.require_manage(e, "read the audit log of")?;
                }
                filter.organizer = Some(self.email.clone());
            }
            Role::Customer => return Err(Error::forbidden("customers may not read the audit log")),
        }
        Ok(filter)
    }

    /// The bookings the principal may list, narrowed from `filter`: admins see all,
    /// organizers those of their own events (`event` loads the event a filter names,
    /// which they must manage), customers their own (asking for another customer's is
    /// refused).
    pub fn scope_bookings(
        &self,
        mut filter: BookingFilter,
        event: &dyn Fn(EventId) -> Result<Event>,
    ) -> Result<BookingFilter> {
        match self.role {
            Role::Admin => {}
            Role::Organizer => {
                if let Some(id) = filter.event {
                    self.require_manage(&event(id)?, "list bookings of")?;
                }
                filter.organizer = Some(self.email.clone());
            }
            Role::Customer => {
                if filter.customer.as_ref().is_some_and(|c| *c != self.email) {
                    return Err(Error::forbidden("customers may list only their own bookings"));
                }
                filter.customer = Some(self.email.clone());
            }
        }
        Ok(filter)
    }

    /// Which sales the principal may see: one event they manage, or (with `None`) all
    /// events for an admin and their own for an organizer. Gives the store's
    /// `(event, organizer)` selection.
    pub fn sales_scope(&self, event: Option<&Event>) -> Result<(Option<EventId>, Option<Email>)> {
        match (event, self.role) {
            (Some(e), _) => self.require_manage(e, "see the sales of").map(|()| (Some(e.id), None)),
            (None, Role::Admin) => Ok((None, None)),
            (None, Role::Organizer) => Ok((None, Some(self.email.clone()))),
            (None, Role::Customer) => Err(Error::forbidden("customers cannot see sales reports")),
        }
    }

    /// May change the account `email`'s role (admins only) and/or password (an admin
    /// for anyone, a user for themself). Gives whether the current password must be
    /// checked first: when changing one's own password, admins included, so a stolen
    /// session cannot take the account.
    pub fn require_change_user(&self, email: &Email, role: bool, password: bool) -> Result<bool> {
        if role {
            self.require_admin("change roles")?;
        }
        let own = *email == self.email;
        if !own {
            self.require_admin("change another user's password")?;
        }
        Ok(password && own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::NewEvent;

    const OWNER: &str = "owner@example.com";

    fn p(email: &str, role: Role) -> Principal {
        Principal::new(email.parse().unwrap(), role)
    }

    /// Every kind of principal the rules tell apart, with its name for messages.
    fn everyone() -> [(&'static str, Principal); 5] {
        [
            ("admin", p("root@example.com", Role::Admin)),
            ("owning organizer", p(OWNER, Role::Organizer)),
            ("other organizer", p("rival@example.com", Role::Organizer)),
            ("customer of the booking", p("buyer@example.com", Role::Customer)),
            ("other customer", p("nosy@example.com", Role::Customer)),
        ]
    }

    fn event() -> Event {
        let t = |s: &str| s.parse().unwrap();
        NewEvent::new(
            "Gig".parse().unwrap(),
            t("2027-05-01T19:00:00Z"),
            t("2027-05-01T23:00:00Z"),
            10u32.try_into().unwrap(),
            "1 EUR".parse().unwrap(),
        )
        .into_event(EventId::from_uuid(uuid::Uuid::from_u128(7)), OWNER.parse().unwrap(), t("2027-01-01T00:00:00Z"))
        .unwrap()
    }

    fn booking(e: &Event) -> Booking {
        let req = crate::ReserveRequest {
            id: crate::BookingId::from_uuid(uuid::Uuid::from_u128(8)),
            code: crate::BookingCode::generate(&crate::SeededEntropy::new(1)),
            event_id: e.id,
            customer: "buyer@example.com".parse().unwrap(),
            actor: "buyer@example.com".parse().unwrap(),
            quantity: 1u32.try_into().unwrap(),
            hold_until: None,
            idempotency_key: None,
            external_id: None,
            secrets: vec![crate::TicketSecret::generate(&crate::SeededEntropy::new(2))],
            restore: None,
        };
        crate::booking::decide_reservation(&req, e, 0, "2027-01-02T00:00:00Z".parse().unwrap()).unwrap()
    }

    /// Runs `rule` for every principal and checks who is allowed.
    fn allowed(rule: impl Fn(&Principal) -> Result<()>, expected: [bool; 5]) {
        for ((who, principal), want) in everyone().into_iter().zip(expected) {
            match rule(&principal) {
                Ok(()) => assert!(want, "{who} was allowed"),
                Err(e) => {
                    assert!(!want, "{who} was refused: {e}");
                    assert_eq!(e.kind(), crate::ErrorKind::Forbidden, "{who}: {e}");
                }
            }
        }
    }

    #[test]
    fn roles_parse_from_their_names_in_any_case() {
        for role in [Role::Admin, Role::Organizer, Role::Customer] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(format!(" {} ", role.as_str().to_uppercase()).parse::<Role>().unwrap(), role);
        }
        let err = "root".parse::<Role>().unwrap_err();
        assert_eq!(err.to_string(), "invalid role: \"root\" is not one of admin, organizer, customer");
    }

    #[test]
    fn creating_events() {
        allowed(|p| p.require_create_event(p.email()), [true, true, true, false, false]);
        allowed(|p| p.require_create_event(&OWNER.parse().unwrap()), [true, true, false, false, false]);
    }

    #[test]
    fn managing_an_event() {
        let e = event();
        allowed(|p| p.require_manage(&e, "update"), [true, true, false, false, false]);
        let err = everyone()[2].1.require_manage(&e, "update").unwrap_err();
        assert!(err.to_string().contains("organizer rival@example.com may not update event"), "{err}");
    }

    #[test]
    fn booking_for_oneself_and_for_others() {
        let e = event();
        let buyer: Email = "buyer@example.com".parse().unwrap();
        allowed(|p| p.require_book_for(&e, p.email()), [true; 5]);
        allowed(|p| p.require_book_for(&e, &buyer), [true, true, false, true, false]);
        allowed(|p| p.require_book_for_event_of(&e.organizer, e.id, &buyer), [true, true, false, true, false]);
    }

    #[test]
    fn seeing_and_changing_a_booking() {
        let e = event();
        let b = booking(&e);
        allowed(|p| p.require_booking_access(&b, &e), [true, true, false, true, false]);
    }

    #[test]
    fn system_wide_operations() {
        allowed(|p| p.require_admin("add users"), [true, false, false, false, false]);
    }

    #[test]
    fn listing_bookings() {
        let e = event();
        let load = |_: EventId| Ok(e.clone());
        let all = BookingFilter::default();
        let scoped: Vec<Result<BookingFilter>> =
            everyone().iter().map(|(_, p)| p.scope_bookings(all.clone(), &load)).collect();
        assert_eq!(scoped[0].as_ref().unwrap(), &all, "an admin sees everything");
        assert_eq!(scoped[1].as_ref().unwrap().organizer.as_ref().unwrap().as_str(), OWNER);
        assert_eq!(scoped[2].as_ref().unwrap().organizer.as_ref().unwrap().as_str(), "rival@example.com");
        assert_eq!(scoped[3].as_ref().unwrap().customer.as_ref().unwrap().as_str(), "buyer@example.com");
        let of_event = BookingFilter { event: Some(e.id), ..BookingFilter::default() };
        allowed(|p| p.scope_bookings(of_event.clone(), &load).map(|_| ()), [true, true, false, true, true]);
        let of_buyer =
            BookingFilter { customer: Some("buyer@example.com".parse().unwrap()), ..BookingFilter::default() };
        allowed(|p| p.scope_bookings(of_buyer.clone(), &load).map(|_| ()), [true, true, true, true, false]);
    }

    #[test]
    fn sales_reports() {
        let e = event();
        allowed(|p| p.sales_scope(Some(&e)).map(|_| ()), [true, true, false, false, false]);
        allowed(|p| p.sales_scope(None).map(|_| ()), [true, true, true, false, false]);
        let [admin, owner, ..] = everyone();
        assert_eq!(admin.1.sales_scope(None).unwrap(), (None, None));
        assert_eq!(owner.1.sales_scope(None).unwrap(), (None, Some(OWNER.parse().unwrap())));
        assert_eq!(owner.1.sales_scope(Some(&e)).unwrap(), (Some(e.id), None));
    }

    #[test]
    fn changing_accounts() {
        let buyer: Email = "buyer@example.com".parse().unwrap();
        allowed(|p| p.require_change_user(&buyer, true, false).map(|_| ()), [true, false, false, false, false]);
        allowed(|p| p.require_change_user(&buyer, false, true).map(|_| ()), [true, false, false, true, false]);
        allowed(|p| p.require_change_user(p.email(), false, true).map(|_| ()), [true; 5]);
        let [admin, _, _, customer, _] = everyone();
        assert!(
            customer.1.require_change_user(&buyer, false, true).unwrap(),
            "one's own password needs the current one"
        );
        assert!(admin.1.require_change_user(admin.1.email(), false, true).unwrap(), "an admin's own too");
        assert!(!admin.1.require_change_user(&buyer, false, true).unwrap(), "an admin resetting another's does not");
        assert!(!admin.1.require_change_user(admin.1.email(), true, false).unwrap(), "a role change alone does not");
    }
}
