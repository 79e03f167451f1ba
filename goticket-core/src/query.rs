//! Filters and pagination for list operations: `limit` plus an opaque cursor, or an
//! offset.

use jiff::Timestamp;
use serde::Serialize;
use uuid::Uuid;

use crate::booking::BookingStatus;
use crate::error::{Error, Result, shown};
use crate::event::EventStatus;
use crate::money::Money;
use crate::types::{Email, EventId};

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Events starting at or after this instant.
    pub starts_from: Option<Timestamp>,
    /// Events starting before this instant.
    pub starts_before: Option<Timestamp>,
    /// Price at least this (same currency only).
    pub min_price: Option<Money>,
    /// Price at most this (same currency only).
    pub max_price: Option<Money>,
    /// Only this status.
    pub status: Option<EventStatus>,
    /// Only events of this organizer (set by the service for organizers' own views).
    pub organizer: Option<Email>,
}

impl EventFilter {
    /// Checks that the ranges make sense.
    pub fn check(&self) -> Result<()> {
        if let (Some(a), Some(b)) = (self.starts_from, self.starts_before)
            && a >= b
        {
            return Err(Error::validation("to", format!("must be after from ({b} is not after {a})")));
        }
        if let (Some(a), Some(b)) = (self.min_price, self.max_price) {
            if a.currency() != b.currency() {
                return Err(Error::validation("max_price", "must be in the same currency as min_price"));
            }
            if a.amount_minor() > b.amount_minor() {
                return Err(Error::validation("max_price", format!("must not be below min_price ({b} < {a})")));
            }
        }
        Ok(())
    }
}

/// Which bookings to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookingFilter {
    /// Only this event.
    pub event: Option<EventId>,
    /// Only this customer.
    pub customer: Option<Email>,
    /// Only this status, as of now (an overdue hold is `expired`).
    pub status: Option<BookingStatus>,
    /// Only bookings of this organizer's events (set by the service).
    pub organizer: Option<Email>,
}

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageStart {
    /// From the beginning.
    #[default]
    First,
    /// After the item a cursor points at.
    After(Cursor),
    /// After skipping this many items.
    Offset(u64),
}

/// One page's request: `limit` between 1 and 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    limit: u32,
    /// Where to start.
    pub start: PageStart,
}

impl PageRequest {
    /// The default page size.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page size.
    pub const MAX_LIMIT: u32 = 1000;

    /// A page request; `limit` must be 1..=1000.
    pub fn new(limit: u32, start: PageStart) -> Result<Self> {
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(Error::validation("limit", format!("must be between 1 and {}, got {limit}", Self::MAX_LIMIT)));
        }
        Ok(PageRequest { limit, start })
    }

    /// Items per page.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// A page request as every face receives one, as text: `limit` (the default when
    /// absent), and where to start: after `cursor` or at `offset` (not both), else at
    /// the first item. Each error names `limit`, `cursor` or `offset`.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>, offset: Option<&str>) -> Result<Self> {
        let whole = |field: &str, raw: &str| {
            raw.trim()
                .parse::<u64>()
                .map_err(|_| Error::validation(field, format!("{} is not a whole number", shown(raw))))
        };
        let limit = match limit {
            Some(raw) => {
                let n = whole("limit", raw)?;
                u32::try_from(n).ok().filter(|n| *n <= Self::MAX_LIMIT).ok_or_else(|| {
                    Error::validation("limit", format!("must be between 1 and {}, got {n}", Self::MAX_LIMIT))
                })?
            }
            None => Self::DEFAULT_LIMIT,
        };
        let start = match (cursor, offset) {
            (Some(_), Some(_)) => return Err(Error::validation("offset", "give a cursor or an offset, not both")),
            (Some(c), None) => PageStart::After(Cursor::decode(c)?),
            (None, Some(o)) => PageStart::Offset(whole("offset", o)?),
            (None, None) => PageStart::First,
        };
        PageRequest::new(limit, start)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest { limit: Self::DEFAULT_LIMIT, start: PageStart::First }
    }
}

/// A position in a list ordered by `(key, id)`: events by start time, bookings by id.
/// Shown to clients as an opaque string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The sort key (microseconds since the epoch for events; 0 for bookings).
    pub key: i64,
    /// The id of the last item seen.
    pub id: Uuid,
}

impl Cursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(48);
        for b in self.key.to_be_bytes().iter().chain(self.id.as_bytes()) {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Reads the opaque text form back.
    pub fn decode(raw: &str) -> Result<Self> {
        let bad = || Error::validation("cursor", format!("{} is not a cursor this server handed out", shown(raw)));
        let raw = raw.trim();
        if raw.len() != 48 || !raw.is_ascii() {
            return Err(bad());
        }
        let mut bytes = [0u8; 24];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&raw[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let key = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let id = Uuid::from_slice(&bytes[8..]).map_err(|_| bad())?;
        Ok(Cursor { key, id })
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The cursor for the next page, if there is one.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor { key: -42, id: Uuid::from_u128(0x0190a0b4_1c2d_7e3f_8a9b_0c1d2e3f4a5b) };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "zz", &"g".repeat(48), &"0".repeat(47)] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_parse_from_text_naming_the_bad_field() {
        let field = |r: Result<PageRequest>| match r {
            Err(Error::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(PageRequest::parse(None, None, None).unwrap(), PageRequest::default());
        let c = Cursor { key: 7, id: Uuid::from_u128(9) }.encode();
        assert_eq!(
            PageRequest::parse(Some(" 10 "), Some(&c), None).unwrap().start,
            PageStart::After(Cursor::decode(&c).unwrap())
        );
        assert_eq!(PageRequest::parse(None, None, Some("3")).unwrap().start, PageStart::Offset(3));
        assert_eq!(field(PageRequest::parse(Some("0"), None, None)), "limit");
        assert_eq!(field(PageRequest::parse(Some("99999999999"), None, None)), "limit");
        assert_eq!(field(PageRequest::parse(Some("ten"), None, None)), "limit");
        assert_eq!(field(PageRequest::parse(None, Some("zz"), None)), "cursor");
        assert_eq!(field(PageRequest::parse(None, None, Some("-1"))), "offset");
        assert_eq!(field(PageRequest::parse(None, Some(&c), Some("1"))), "offset");
    }

    #[test]
    fn limits_are_bounded() {
        assert!(PageRequest::new(0, PageStart::First).is_err());
        assert!(PageRequest::new(1001, PageStart::First).is_err());
        assert_eq!(PageRequest::new(1000, PageStart::First).unwrap().limit(), 1000);
    }

    #[test]
    fn filters_check_their_ranges() {
        let f = EventFilter {
            min_price: Some("10 EUR".parse().unwrap()),
            max_price: Some("5 EUR".parse().unwrap()),
            ..Default::default()
        };
        assert!(f.check().is_err());
        let f = EventFilter {
            min_price: Some("1 EUR".parse().unwrap()),
            max_price: Some("5 USD".parse().unwrap()),
            ..Default::default()
        };
        assert!(f.check().is_err());
        let f = EventFilter {
            starts_from: Some("2027-02-01T00:00:00Z".parse().unwrap()),
            starts_before: Some("2027-01-01T00:00:00Z".parse().unwrap()),
            ..Default::default()
        };
        assert!(f.check().is_err());
    }
}
