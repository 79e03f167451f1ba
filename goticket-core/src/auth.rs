//! Who is acting, and what each role may do. Every service operation takes a
//! [`Principal`] and asks these rules before touching the store.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::booking::Booking;
use crate::error::{Error, Result, shown};
use crate::event::Event;
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
}
