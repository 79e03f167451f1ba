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

/// A slug's letters (the parser also lowercases input).
#[cfg(test)]
const SLUG_BODY: &str = "[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?";

/// What a slug may be: its letters, and not shaped like an event id (32 hex digits,
/// or in the 8-4-4-4-12 groups), which the parser refuses.
pub(crate) const SLUG: &str = concat!(
    "^(?![0-9a-f]{32}$)(?![0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$)",
    "[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"
);

/// An event named in a path or a query: its id or its slug (any case).
pub(crate) const EVENT_KEY: &str = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[a-zA-Z0-9]([a-zA-Z0-9-]{0,62}[a-zA-Z0-9])?)$";

/// An address in ASCII (the parser takes more: NFKC-equal forms and letters of other
/// scripts), at most 64 characters before the @ and a dotted domain.
pub(crate) const EMAIL: &str = concat!(
    "^[!-?A-~]{1,64}@",
    "[!-,/-?A-~]([!--/-?A-~]{0,61}[!-,/-?A-~])?",
    "(\\.[!-,/-?A-~]([!--/-?A-~]{0,61}[!-,/-?A-~])?)+$"
);

/// One-line or multi-line text with something visible in it (not white space, not a
/// control, not one of core's invisible characters) and no control character but tab
/// and newline: the rule of names, venues and descriptions, as a JSON Schema pattern.
pub const TEXT_PATTERN: &str = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u034F\\u061C\\u115F-\\u1160\\u17B4-\\u17B5\\u180B-\\u180F\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u206F\\u3164\\uFE00-\\uFE0F\\uFEFF\\uFFA0][^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$";

/// Money as text (`12.50 EUR`, `EUR 12.50`), exactly as [`crate::Money`]'s parser takes
/// it for a price: each ISO 4217 code with no more decimals than its minor unit, and
/// at most [`crate::Event::MAX_PRICE_MINOR`] minor units (upper-case codes, spaces
/// between; the parser is more forgiving). Built from the currency table, so a code
/// the parser refuses is never offered.
pub fn money_text_pattern() -> String {
    use iso_currency::IntoEnumIterator;
    use std::collections::BTreeMap;
    let mut by_exponent: BTreeMap<u32, Vec<&'static str>> = BTreeMap::new();
    for c in iso_currency::Currency::iter() {
        if let Ok(ours) = c.code().parse::<Currency>() {
            by_exponent.entry(ours.exponent()).or_default().push(c.code());
        }
    }
    let max_digits = crate::Event::MAX_PRICE_MINOR.to_string().len() as u32 - 1;
    let alternatives: Vec<String> = by_exponent
        .iter()
        .map(|(&exp, codes)| {
            let fraction = if exp == 0 { String::new() } else { format!("([.][0-9]{{1,{exp}}})?") };
            let amount = format!("[0-9]{{1,{}}}{fraction}", max_digits - exp);
            let codes = codes.join("|");
            format!("{amount} +({codes})|({codes}) +{amount}")
        })
        .collect();
    format!("^ *({}) *$", alternatives.join("|"))
}

/// Money as text in the OpenAPI document (see [`money_text_pattern`]).
#[derive(Debug, Clone, Copy)]
pub struct MoneyText;

impl utoipa::PartialSchema for MoneyText {
    fn schema() -> RefOr<Schema> {
        schema_of(
            text(
                "An amount and an ISO 4217 currency code, like `20.00 EUR` or `20 EUR`: no more decimals \
                  than the currency has.",
            )
            .pattern(Some(money_text_pattern()))
            .examples(["20.00 EUR"]),
        )
    }
}

impl utoipa::ToSchema for MoneyText {}

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
    Email => text("An email address (stored lowercase and NFKC-normalized; the pattern gives the \
            ASCII form, letters of other scripts are taken too).")
        .pattern(Some(EMAIL))
        .max_length(Some(254));
    Slug => text("An event's unique short name: lowercase letters, digits and dashes.")
        .pattern(Some(SLUG))
        .min_length(Some(1))
        .max_length(Some(64));
    crate::EventKey => text("An event: its id (a UUID) or its slug.").pattern(Some(EVENT_KEY)).max_length(Some(64));
    EventName => text("An event's name: 1 to 200 characters, not all white space, no control characters.")
        .pattern(Some(TEXT_PATTERN))
        .min_length(Some(1))
        .max_length(Some(200));
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// A pattern without its anchors, for proptest's generator.
    fn body(p: &str) -> String {
        p.trim_start_matches('^').trim_end_matches('$').to_owned()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Every price text the document describes is a price the server takes.
        #[test]
        fn what_the_money_pattern_describes_is_a_price(
            money in proptest::string::string_regex(&body(&super::money_text_pattern())).unwrap(),
        ) {
            let m = money.parse::<crate::Money>();
            prop_assert!(m.is_ok(), "{money:?}: {m:?}");
            prop_assert!(m.unwrap().amount_minor() <= crate::Event::MAX_PRICE_MINOR, "{money:?}");
        }
    }

    #[test]
    fn the_money_pattern_refuses_what_the_parser_refuses() {
        let p = super::money_text_pattern();
        for code in ["EUR", "JPY", "BHD"] {
            assert!(p.contains(code), "{code}");
        }
        assert!(!p.contains("XXX"), "a code with no minor unit is not offered");
        assert!(p.contains("[0-9]{1,9}([.][0-9]{1,2})? +("), "two-decimal currencies: {}", &p[..200.min(p.len())]);
    }

    /// The text pattern's "something visible" excludes exactly core's invisible set.
    #[test]
    fn the_text_pattern_excludes_the_invisible_characters() {
        for &(a, b) in crate::types::INVISIBLE {
            let range = if a == b {
                format!("\\u{:04X}", u32::from(a))
            } else {
                format!("\\u{:04X}-\\u{:04X}", u32::from(a), u32::from(b))
            };
            assert!(super::TEXT_PATTERN.contains(&range), "{range} missing from the pattern");
        }
    }

    /// The slug pattern is its body behind lookaheads for exactly the id shapes.
    #[test]
    fn the_slug_pattern_is_its_body_less_id_shapes() {
        let not_id = "(?![0-9a-f]{32}$)(?![0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$)";
        assert_eq!(super::SLUG, format!("^{not_id}{}$", super::SLUG_BODY));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        /// The document promises nothing the server refuses: every string the
        /// published patterns describe parses.
        #[test]
        fn what_the_patterns_describe_parses(
            slug in proptest::string::string_regex(super::SLUG_BODY).unwrap(),
            id_like in proptest::string::string_regex("[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap(),
            key in proptest::string::string_regex(&body(super::EVENT_KEY)).unwrap(),
            email in proptest::string::string_regex(&body(super::EMAIL)).unwrap(),
            name in proptest::string::string_regex(&format!("({}){{1,3}}", &body(super::TEXT_PATTERN))).unwrap(),
        ) {
            // The published pattern is the body less the two id shapes its lookaheads
            // exclude: every other string of the body parses, and those do not.
            let id_shaped = |s: &str| {
                let hex = |t: &str| t.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                let groups: Vec<&str> = s.split('-').collect();
                (s.len() == 32 && hex(s))
                    || (groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]) && groups.iter().all(|g| hex(g)))
            };
            prop_assert!(id_shaped(&slug) || slug.parse::<crate::Slug>().is_ok(), "slug {slug:?}");
            prop_assert!(id_shaped(&id_like) && id_like.parse::<crate::Slug>().is_err(), "id-like {id_like:?}");
            prop_assert!(key.parse::<crate::EventKey>().is_ok(), "key {key:?}");
            prop_assert!(email.len() > 254 || email.parse::<crate::Email>().is_ok(), "email {email:?}");
            let n = name.trim().chars().count();
            prop_assert!(n > 200 || name.parse::<crate::EventName>().is_ok(), "name {name:?}");
        }
    }
}
