//! OpenAPI schemas of the value types (feature `openapi`), so the HTTP API's document is
//! generated from the types it serves. The structs and enums derive `utoipa::ToSchema`
//! where they are defined; the value types here are written out by hand because their
//! JSON is a plain string or number with rules of its own (bounds, patterns) that a
//! derive cannot see.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

use crate::money::Currency;
use crate::types::{
    BookingCode, BookingId, Capacity, Email, EventId, EventName, ExternalId, IdempotencyKey, PerCustomerLimit,
    Quantity, Slug, TicketSecret,
};
use crate::users::Password;

/// Crockford base-32 digits: no I, L, O or U.
const CROCKFORD: &str = "[0-9A-HJKMNP-TV-Z]";

fn schema_of(build: ObjectBuilder) -> RefOr<Schema> {
    RefOr::T(Schema::Object(build.build()))
}

macro_rules! value_schema {
    ($($ty:ty => $build:expr;)*) => {$(
        impl utoipa::PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                schema_of($build)
            }
        }
        impl utoipa::ToSchema for $ty {}
    )*};
}

fn bounded(min: u32, max: u32, what: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(min))
        .maximum(Some(max))
        .description(Some(what))
}

fn text(what: &str) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).description(Some(what))
}

fn uuid(what: &str) -> ObjectBuilder {
    text(what).format(Some(SchemaFormat::Custom("uuid".into())))
}

value_schema! {
    Capacity => bounded(Capacity::MIN, Capacity::MAX, "Seats in total.");
    Quantity => bounded(Quantity::MIN, Quantity::MAX, "Seats in one booking.");
    PerCustomerLimit =>
        bounded(PerCustomerLimit::MIN, PerCustomerLimit::MAX, "Most seats one customer may hold or buy.");
    EventId => uuid("An event's id (UUIDv7).");
    BookingId => uuid("A booking's id (UUIDv7).");
    BookingCode => text("A booking's short code: 12 Crockford base-32 digits in groups of four \
            (case and dashes are ignored on input).")
        .pattern(Some(format!("^{CROCKFORD}{{4}}-{CROCKFORD}{{4}}-{CROCKFORD}{{4}}$")))
        .examples(["7K3M-Q9TX-2BHD"]);
    TicketSecret => text("A ticket's check-in secret: 128 random bits as 26 Crockford base-32 digits.")
        .pattern(Some(format!("^[0-7]{CROCKFORD}{{25}}$")));
    Email => text("An email address (stored lowercase).")
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(254));
    Slug => text("An event's unique short name: lowercase letters, digits and dashes.")
        .pattern(Some("^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"))
        .min_length(Some(1))
        .max_length(Some(64));
    EventName => text("An event's name.").min_length(Some(1)).max_length(Some(200));
    ExternalId => text("The id in the system the row was imported from.").min_length(Some(1)).max_length(Some(200));
    IdempotencyKey => text("The client's retry key: 1 to 200 printable ASCII characters without spaces.")
        .pattern(Some("^[!-~]{1,200}$"));
    Password => text(&format!("A password: {} to {} characters.", Password::MIN_CHARS, Password::MAX_CHARS))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(Password::MIN_CHARS))
        .max_length(Some(Password::MAX_CHARS));
    Currency => text("An ISO 4217 currency code (case-insensitive on input).")
        .pattern(Some("^[A-Z]{3}$"))
        .examples(["EUR"]);
}
