//! One description of each record: the fields of an event and of a booking, what each
//! is called, and where it appears (import and export files, list tables). The CLI's
//! tables and CSV output, the import and export files, the import's change rule and
//! the HTTP response bodies are derived from it.
//!
//! The description is closed in both directions: [`EventField::value`] and
//! [`BookingField::value`] destructure the whole record, so a field added to `Event`
//! or `Booking` does not compile until it is described here; and every use of a field
//! (reading an import row, deciding an import's change) is an exhaustive `match`, so a
//! field added here does not compile until each use handles it. A test checks that
//! the HTTP body (serde's) is exactly the description's fields and values.

use jiff::Timestamp;
use serde::{Serialize, Serializer};

use crate::booking::{Booking, Ticket};
use crate::event::Event;
use crate::money::Money;

/// One field's value, as every face shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// Not set.
    Null,
    /// Text (ids, names, statuses, emails).
    Text(String),
    /// A count.
    Number(u64),
    /// An amount: `12.50 EUR` as text, `{"amount_minor", "currency"}` in JSON.
    Money(Money),
    /// An instant, RFC 3339 in UTC.
    Time(Timestamp),
    /// A booking's tickets: `SECRET` or `SECRET@CHECKED_IN_AT` per seat, separated by
    /// spaces, as text; the ticket objects in JSON.
    Tickets(Vec<Ticket>),
}

impl FieldValue {
    fn text_of<T: ToString>(v: &T) -> Self {
        FieldValue::Text(v.to_string())
    }

    fn opt<T>(v: Option<&T>, f: impl FnOnce(&T) -> FieldValue) -> Self {
        v.map_or(FieldValue::Null, f)
    }

    /// The value as one cell of text (a table, CSV, an import file): empty when unset.
    pub fn text(&self) -> String {
        match self {
            FieldValue::Null => String::new(),
            FieldValue::Text(s) => s.clone(),
            FieldValue::Number(n) => n.to_string(),
            FieldValue::Money(m) => m.to_string(),
            FieldValue::Time(t) => t.to_string(),
            FieldValue::Tickets(ts) => crate::import::tickets_cell(ts),
        }
    }
}

impl Serialize for FieldValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldValue::Null => s.serialize_none(),
            FieldValue::Text(t) => s.serialize_str(t),
            FieldValue::Number(n) => s.serialize_u64(*n),
            FieldValue::Money(m) => m.serialize(s),
            FieldValue::Time(t) => t.serialize(s),
            FieldValue::Tickets(ts) => ts.serialize(s),
        }
    }
}

/// Whether, and how, a field is a column of an import and export file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFile {
    /// Not in files (the store assigns or counts it).
    No,
    /// A column every file must have, by this name.
    Required(&'static str),
    /// A column a file may have, by this name.
    Optional(&'static str),
}

impl InFile {
    /// The column's name, if it is one.
    pub fn column(self) -> Option<&'static str> {
        match self {
            InFile::No => None,
            InFile::Required(c) | InFile::Optional(c) => Some(c),
        }
    }
}

/// Whether a field is shown in list tables or only when one record is shown (JSON
/// and CSV output always have every field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InTable {
    /// In list tables too.
    List,
    /// Only in the table of one record.
    Detail,
}

/// The columns of one kind of import and export file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// Every file has these.
    pub required: Vec<&'static str>,
    /// A file may have these.
    pub optional: Vec<&'static str>,
}

impl Columns {
    fn of(fields: impl Iterator<Item = InFile>) -> Self {
        let mut c = Columns { required: Vec::new(), optional: Vec::new() };
        for f in fields {
            match f {
                InFile::No => {}
                InFile::Required(name) => c.required.push(name),
                InFile::Optional(name) => c.optional.push(name),
            }
        }
        c
    }

    /// Whether `name` is one of them.
    pub fn contains(&self, name: &str) -> bool {
        self.required.contains(&name) || self.optional.contains(&name)
    }
}

/// Declares a record's fields once: the enum, its `ALL` list in display order, each
/// field's name (JSON key and table header), its file column and its table place.
macro_rules! record_fields {
    (
        $(#[$meta:meta])*
        $vis:vis enum $record:ident {
            $( $(#[$doc:meta])* $field:ident = $name:literal, $file:expr, $table:ident; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $record {
            $( $(#[$doc])* $field, )*
        }

        impl $record {
            /// Every field, in the order tables, CSV output and export files show them.
            pub const ALL: &'static [$record] = &[$( $record::$field, )*];

            /// Its name: the JSON key and the table header.
            pub fn name(self) -> &'static str {
                match self {
                    $( $record::$field => $name, )*
                }
            }

            /// Whether it is a column of import and export files, and by what name.
            pub fn in_file(self) -> InFile {
                #[allow(unused_imports)]
                use InFile::*;
                match self {
                    $( $record::$field => $file, )*
                }
            }

            /// Whether list tables show it.
            pub fn in_table(self) -> InTable {
                match self {
                    $( $record::$field => InTable::$table, )*
                }
            }

            /// The columns of this record's files.
            pub fn columns() -> Columns {
                Columns::of(Self::ALL.iter().map(|f| f.in_file()))
            }

            /// The file columns in field order (an export's header).
            pub fn file_order() -> Vec<&'static str> {
                Self::ALL.iter().filter_map(|f| f.in_file().column()).collect()
            }
        }
    };
}

record_fields! {
    /// A field of an [`Event`].
    pub enum EventField {
        /// Its id (an export writes it as the external id of an event without one).
        Id = "id", No, List;
        /// Its key in the system it came from; an import file's key.
        ExternalId = "external_id", Required("external_id"), Detail;
        /// Its unique short name.
        Slug = "slug", Optional("slug"), List;
        /// Its name.
        Name = "name", Required("name"), List;
        /// Its start.
        StartsAt = "starts_at", Required("starts_at"), List;
        /// Its end.
        EndsAt = "ends_at", Required("ends_at"), Detail;
        /// Seats in total.
        Capacity = "capacity", Required("capacity"), List;
        /// Seats in live holds (counted).
        Held = "held", No, List;
        /// Seats sold (counted).
        Sold = "sold", No, List;
        /// Seats left (counted).
        Available = "available", No, List;
        /// Price of a seat.
        Price = "price", Required("price"), List;
        /// Most seats per customer.
        MaxPerCustomer = "max_per_customer", Optional("max_per_customer"), Detail;
        /// Scheduled or cancelled.
        Status = "status", Optional("status"), List;
        /// Where.
        Venue = "venue", Optional("venue"), Detail;
        /// When sales open.
        SalesStart = "sales_start", Optional("sales_start"), Detail;
        /// When sales close.
        SalesEnd = "sales_end", Optional("sales_end"), Detail;
        /// Its owner.
        Organizer = "organizer", Optional("organizer"), Detail;
        /// What it is.
        Description = "description", Optional("description"), Detail;
        /// When it was created (kept by a move).
        CreatedAt = "created_at", No, Detail;
        /// When it last changed.
        UpdatedAt = "updated_at", No, Detail;
    }
}

impl EventField {
    /// The field's value in `e`.
    pub fn value(self, e: &Event) -> FieldValue {
        // Every field of the record, so that a new one does not compile until it is
        // described above.
        let Event {
            id,
            external_id,
            slug,
            name,
            description,
            venue,
            starts_at,
            ends_at,
            capacity,
            held,
            sold,
            available,
            price,
            max_per_customer,
            sales_start,
            sales_end,
            status,
            organizer,
            created_at,
            updated_at,
        } = e;
        match self {
            EventField::Id => FieldValue::text_of(id),
            EventField::ExternalId => FieldValue::opt(external_id.as_ref(), FieldValue::text_of),
            EventField::Slug => FieldValue::opt(slug.as_ref(), FieldValue::text_of),
            EventField::Name => FieldValue::text_of(name),
            EventField::StartsAt => FieldValue::Time(*starts_at),
            EventField::EndsAt => FieldValue::Time(*ends_at),
            EventField::Capacity => FieldValue::Number(capacity.get().into()),
            EventField::Held => FieldValue::Number((*held).into()),
            EventField::Sold => FieldValue::Number((*sold).into()),
            EventField::Available => FieldValue::Number((*available).into()),
            EventField::Price => FieldValue::Money(*price),
            EventField::MaxPerCustomer => {
                FieldValue::opt(max_per_customer.as_ref(), |m| FieldValue::Number(m.get().into()))
            }
            EventField::Status => FieldValue::text_of(status),
            EventField::Venue => FieldValue::opt(venue.as_ref(), FieldValue::text_of),
            EventField::SalesStart => FieldValue::opt(sales_start.as_ref(), |t| FieldValue::Time(*t)),
            EventField::SalesEnd => FieldValue::opt(sales_end.as_ref(), |t| FieldValue::Time(*t)),
            EventField::Organizer => FieldValue::text_of(organizer),
            EventField::Description => FieldValue::opt(description.as_ref(), FieldValue::text_of),
            EventField::CreatedAt => FieldValue::Time(*created_at),
            EventField::UpdatedAt => FieldValue::Time(*updated_at),
        }
    }

    /// The field's cell in an export file: the value, except that an event without an
    /// external id is named by its id (see [`crate::import::event_reference`]).
    pub fn export_value(self, e: &Event) -> FieldValue {
        match self {
            EventField::ExternalId => FieldValue::Text(crate::import::event_reference(e)),
            EventField::Id
            | EventField::Slug
            | EventField::Name
            | EventField::StartsAt
            | EventField::EndsAt
            | EventField::Capacity
            | EventField::Held
            | EventField::Sold
            | EventField::Available
            | EventField::Price
            | EventField::MaxPerCustomer
            | EventField::Status
            | EventField::Venue
            | EventField::SalesStart
            | EventField::SalesEnd
            | EventField::Organizer
            | EventField::Description
            | EventField::CreatedAt
            | EventField::UpdatedAt => self.value(e),
        }
    }
}

record_fields! {
    /// A field of a [`Booking`].
    pub enum BookingField {
        /// Its short code.
        Code = "code", Optional("code"), List;
        /// Its id.
        Id = "id", No, Detail;
        /// Its key in the system it came from; an import file's key.
        ExternalId = "external_id", Required("external_id"), Detail;
        /// The event booked (its id; a file names it by its external id).
        EventId = "event_id", Required("event"), Detail;
        /// Who booked.
        Customer = "customer", Required("customer"), List;
        /// Seats.
        Quantity = "quantity", Required("quantity"), List;
        /// Held, confirmed, cancelled or expired.
        Status = "status", Required("status"), List;
        /// Price of one seat when booked.
        UnitPrice = "unit_price", Optional("unit_price"), List;
        /// When the hold runs out.
        ExpiresAt = "expires_at", Optional("hold_until"), List;
        /// The client's retry key (not moved: it belongs to the old store's clients).
        IdempotencyKey = "idempotency_key", No, Detail;
        /// When it was created.
        CreatedAt = "created_at", No, Detail;
        /// When it last changed.
        UpdatedAt = "updated_at", No, Detail;
        /// Its tickets with their check-ins.
        Tickets = "tickets", Optional("tickets"), Detail;
    }
}

impl BookingField {
    /// The field's value in `b`.
    pub fn value(self, b: &Booking) -> FieldValue {
        let Booking {
            id,
            code,
            event_id,
            customer,
            quantity,
            status,
            unit_price,
            expires_at,
            idempotency_key,
            external_id,
            created_at,
            updated_at,
            tickets,
        } = b;
        match self {
            BookingField::Code => FieldValue::text_of(code),
            BookingField::Id => FieldValue::text_of(id),
            BookingField::ExternalId => FieldValue::opt(external_id.as_ref(), FieldValue::text_of),
            BookingField::EventId => FieldValue::text_of(event_id),
            BookingField::Customer => FieldValue::text_of(customer),
            BookingField::Quantity => FieldValue::Number(quantity.get().into()),
            BookingField::Status => FieldValue::text_of(status),
            BookingField::UnitPrice => FieldValue::Money(*unit_price),
            BookingField::ExpiresAt => FieldValue::opt(expires_at.as_ref(), |t| FieldValue::Time(*t)),
            BookingField::IdempotencyKey => FieldValue::opt(idempotency_key.as_ref(), FieldValue::text_of),
            BookingField::CreatedAt => FieldValue::Time(*created_at),
            BookingField::UpdatedAt => FieldValue::Time(*updated_at),
            BookingField::Tickets => FieldValue::Tickets(tickets.clone()),
        }
    }

    /// The field's cell in an export file: the value, except that the booking and its
    /// event are named by external id, else id (`event_ref`, see
    /// [`crate::import::event_reference`]).
    pub fn export_value(self, b: &Booking, event_ref: &str) -> FieldValue {
        match self {
            BookingField::ExternalId => FieldValue::Text(crate::import::booking_reference(b)),
            BookingField::EventId => FieldValue::Text(event_ref.to_owned()),
            BookingField::Code
            | BookingField::Id
            | BookingField::Customer
            | BookingField::Quantity
            | BookingField::Status
            | BookingField::UnitPrice
            | BookingField::ExpiresAt
            | BookingField::IdempotencyKey
            | BookingField::CreatedAt
            | BookingField::UpdatedAt
            | BookingField::Tickets => self.value(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BookingRequest, EventKey, MemoryStore, NewEvent, Principal, Role, Service};

    fn sample() -> (Event, Booking) {
        let service = Service::new(std::sync::Arc::new(MemoryStore::new()));
        let admin = Principal::new("a@example.com".parse().unwrap(), Role::Admin);
        let mut new = NewEvent::new(
            "Gig".parse().unwrap(),
            "2090-01-01T19:00:00Z".parse().unwrap(),
            "2090-01-01T22:00:00Z".parse().unwrap(),
            9u32.try_into().unwrap(),
            "12.50 EUR".parse().unwrap(),
        );
        new.venue = Some("Hall".into());
        new.sales_end = Some("2029-12-31T00:00:00Z".parse().unwrap());
        let e = service.create_event(&admin, new).unwrap();
        let mut req = BookingRequest::buy(EventKey::Id(e.id), 2u32.try_into().unwrap());
        req.hold = Some("1h".parse().unwrap());
        let b = service.reserve(&admin, req).unwrap().booking;
        let e = service.event(&admin, &EventKey::Id(e.id)).unwrap();
        (e, b)
    }

    fn described<F: Copy>(
        all: &[F],
        name: fn(F) -> &'static str,
        value: impl Fn(F) -> FieldValue,
    ) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> =
            all.iter().map(|&f| (name(f).to_owned(), serde_json::to_value(value(f)).unwrap())).collect();
        serde_json::Value::Object(map)
    }

    /// The HTTP and CLI JSON body (serde's) is exactly the description: the same keys
    /// and the same values. A field renamed, added or left out on one side fails here.
    #[test]
    fn the_json_body_is_the_description() {
        let (e, b) = sample();
        assert_eq!(serde_json::to_value(&e).unwrap(), described(EventField::ALL, EventField::name, |f| f.value(&e)));
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            described(BookingField::ALL, BookingField::name, |f| f.value(&b))
        );
    }

    #[test]
    fn names_and_columns_are_unique() {
        fn unique(names: Vec<&str>) {
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{names:?}");
        }
        unique(EventField::ALL.iter().map(|f| f.name()).collect());
        unique(EventField::file_order());
        unique(BookingField::ALL.iter().map(|f| f.name()).collect());
        unique(BookingField::file_order());
    }

    #[test]
    fn values_read_as_text() {
        let (e, b) = sample();
        assert_eq!(EventField::Price.value(&e).text(), "12.50 EUR");
        assert_eq!(EventField::Slug.value(&e).text(), "");
        assert_eq!(EventField::Held.value(&e).text(), "2");
        assert_eq!(EventField::ExternalId.export_value(&e).text(), e.id.to_string());
        assert_eq!(BookingField::EventId.export_value(&b, "ev-1").text(), "ev-1");
        assert_eq!(BookingField::Tickets.value(&b).text(), crate::import::tickets_cell(&b.tickets));
        assert_eq!(
            EventField::columns().required,
            ["external_id", "name", "starts_at", "ends_at", "capacity", "price"]
        );
    }
}
