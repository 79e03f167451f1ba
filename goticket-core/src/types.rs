//! Value types that cannot hold an invalid value: ids, codes, secrets, email,
//! bounded numbers and texts. Each is built through `FromStr`/`TryFrom` or `new`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::{Clock, Entropy};
use crate::error::{Error, Result, shown};

macro_rules! bounded_u32 {
    ($(#[$doc:meta])* $name:ident, $field:literal, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "u32", into = "u32")]
        pub struct $name(u32);

        impl $name {
            /// The smallest allowed value.
            pub const MIN: u32 = $min;
            /// The largest allowed value.
            pub const MAX: u32 = $max;

            /// The value.
            pub fn get(self) -> u32 {
                self.0
            }
        }

        impl TryFrom<u32> for $name {
            type Error = Error;
            fn try_from(v: u32) -> Result<Self> {
                if !(Self::MIN..=Self::MAX).contains(&v) {
                    return Err(Error::validation(
                        $field,
                        format!("must be between {} and {}, got {v}", Self::MIN, Self::MAX),
                    ));
                }
                Ok($name(v))
            }
        }

        impl TryFrom<i64> for $name {
            type Error = Error;
            fn try_from(v: i64) -> Result<Self> {
                let v = u32::try_from(v).map_err(|_| {
                    Error::validation($field, format!("must be between {} and {}, got {v}", Self::MIN, Self::MAX))
                })?;
                Self::try_from(v)
            }
        }

        impl From<$name> for u32 {
            fn from(v: $name) -> u32 {
                v.0
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(raw: &str) -> Result<Self> {
                let v: i64 = raw.trim().parse().map_err(|_| {
                    Error::validation($field, format!("{} is not a whole number", $crate::error::shown(raw)))
                })?;
                Self::try_from(v)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

bounded_u32!(
    /// Seats an event has: 1 to 10,000,000.
    Capacity, "capacity", 1, 10_000_000
);
bounded_u32!(
    /// Seats in one booking: 1 to 100.
    Quantity, "quantity", 1, 100
);
bounded_u32!(
    /// The most seats one customer may hold or buy for one event.
    PerCustomerLimit, "max_per_customer", 1, 10_000_000
);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new time-ordered id (UUIDv7) from the clock and the entropy source.
            pub fn generate(clock: &dyn Clock, entropy: &dyn Entropy) -> Self {
                $name(new_v7(clock, entropy))
            }

            /// The UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Wraps a UUID read back from storage.
            pub fn from_uuid(u: Uuid) -> Self {
                $name(u)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(raw: &str) -> Result<Self> {
                Uuid::try_parse(raw.trim())
                    .map($name)
                    .map_err(|_| Error::validation($what, format!("{} is not a UUID", $crate::error::shown(raw))))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// An event's id.
    EventId, "event id"
);
uuid_id!(
    /// A booking's id.
    BookingId, "booking id"
);

fn new_v7(clock: &dyn Clock, entropy: &dyn Entropy) -> Uuid {
    let millis = u64::try_from(clock.now().as_millisecond()).unwrap_or(0);
    let mut random = [0u8; 10];
    entropy.fill(&mut random);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// Crockford's base32 alphabet: no I, L, O or U, so codes read aloud unambiguously.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn crockford_value(c: char) -> Option<u32> {
    let c = match c.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        c => c,
    };
    CROCKFORD.iter().position(|&a| a as char == c).map(|p| p as u32)
}

fn crockford_encode(mut value: u128, len: usize) -> String {
    let mut out = vec![b'0'; len];
    for slot in out.iter_mut().rev() {
        *slot = CROCKFORD[(value & 31) as usize];
        value >>= 5;
    }
    String::from_utf8(out).expect("Crockford digits are ASCII")
}

fn crockford_decode(s: &str) -> Option<u128> {
    s.chars().try_fold(0u128, |acc, c| Some(acc.checked_mul(32)? + u128::from(crockford_value(c)?)))
}

/// A short, human booking code: 12 Crockford base32 characters (60 bits), shown as
/// `XXXX-XXXX-XXXX`. Input is forgiving: lower case, missing dashes, O for 0, I/L for 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BookingCode(String);

impl BookingCode {
    const LEN: usize = 12;

    /// A fresh random code.
    pub fn generate(entropy: &dyn Entropy) -> Self {
        let mut b = [0u8; 8];
        entropy.fill(&mut b);
        let raw = crockford_encode(u128::from(u64::from_le_bytes(b) >> 4), Self::LEN);
        BookingCode(format!("{}-{}-{}", &raw[0..4], &raw[4..8], &raw[8..12]))
    }

    /// The code as shown, `XXXX-XXXX-XXXX`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for BookingCode {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        let compact: String = raw.chars().filter(|c| *c != '-' && !c.is_whitespace()).collect();
        let value = (compact.chars().count() == Self::LEN).then(|| crockford_decode(&compact)).flatten();
        let Some(value) = value else {
            return Err(Error::validation(
                "booking code",
                format!("{} is not a booking code like 7K3M-Q9TX-2BHD", shown(raw)),
            ));
        };
        let s = crockford_encode(value, Self::LEN);
        Ok(BookingCode(format!("{}-{}-{}", &s[0..4], &s[4..8], &s[8..12])))
    }
}

impl TryFrom<String> for BookingCode {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<BookingCode> for String {
    fn from(c: BookingCode) -> String {
        c.0
    }
}

impl fmt::Display for BookingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A ticket's check-in secret: 128 random bits as 26 Crockford base32 characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TicketSecret(String);

impl TicketSecret {
    const LEN: usize = 26;

    /// A fresh secret from the entropy source.
    pub fn generate(entropy: &dyn Entropy) -> Self {
        let mut b = [0u8; 16];
        entropy.fill(&mut b);
        TicketSecret(crockford_encode(u128::from_le_bytes(b), Self::LEN))
    }

    /// The secret's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TicketSecret {
    // Secrets stay out of debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketSecret({}…)", &self.0[..4])
    }
}

impl FromStr for TicketSecret {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        let t = raw.trim();
        // 26 digits carry 130 bits; a real secret has the top two clear, so the first
        // digit is below 8 (and the value fits a u128).
        let ok = t.chars().count() == Self::LEN
            && t.chars().next().and_then(crockford_value).is_some_and(|v| v < 8)
            && crockford_decode(t).is_some();
        if !ok {
            return Err(Error::validation("ticket secret", "is not a ticket secret (26 letters and digits)"));
        }
        let value = crockford_decode(t).expect("checked just above");
        Ok(TicketSecret(crockford_encode(value, Self::LEN)))
    }
}

impl TryFrom<String> for TicketSecret {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<TicketSecret> for String {
    fn from(c: TicketSecret) -> String {
        c.0
    }
}

impl fmt::Display for TicketSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address in its one normalized form: trimmed, Unicode NFKC (so full-width
/// `ｃ` is `c`), lower case. Two addresses that display alike compare alike, because
/// what renders as nothing (control, format and other invisible characters) and
/// non-ASCII punctuation or symbols are refused rather than kept.
///
/// Beyond ASCII, an address holds only letters, marks and digits (of any script).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stored address as it would have been had the current rules applied when it was
    /// written: invisible characters dropped, then parsed. For migrating old data only;
    /// input from outside goes through `parse`, which refuses them.
    pub fn from_stored_lossy(raw: &str) -> Result<Self> {
        let visible: String = raw.chars().filter(|c| !is_invisible(*c)).collect();
        visible.parse()
    }
}

/// Characters that render as nothing: controls, formats (zero-width space, joiners,
/// direction marks, BOM...), unassigned and private-use code points, and the other
/// default-ignorable code points of Unicode (fillers, variation selectors).
fn is_invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    let default_ignorable = matches!(c,
        '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FFA0}' | '\u{E0100}'..='\u{E01EF}');
    default_ignorable
        || matches!(
            c.general_category(),
            G::Control
                | G::Format
                | G::Surrogate
                | G::PrivateUse
                | G::Unassigned
                | G::LineSeparator
                | G::ParagraphSeparator
        )
}

/// Whether `c` may stand in an address (outside the ASCII rules): a letter, mark or
/// digit of some script that is not invisible.
fn is_visible_word_char(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup as G, UnicodeGeneralCategory};
    matches!(c.general_category_group(), G::Letter | G::Mark | G::Number) && !is_invisible(c)
}

fn normalize_email(raw: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    // Lower-casing can leave a string that is no longer in NFKC (a dotted capital I);
    // normalizing again gives the one form.
    raw.trim().nfkc().collect::<String>().to_lowercase().nfkc().collect()
}

impl FromStr for Email {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        let bad = |why: &str| Error::validation("email", format!("{} {why}", shown(raw)));
        // Bound the work before normalizing (NFKC can lengthen a string).
        if raw.len() > 1024 {
            return Err(bad("is longer than 254 characters"));
        }
        if let Some(c) = raw.trim().chars().find(|c| is_invisible(*c)) {
            return Err(bad(&format!("contains the invisible character U+{:04X}", u32::from(c))));
        }
        let s = normalize_email(raw);
        if s.len() > 254 {
            return Err(bad("is longer than 254 characters"));
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err(bad("has no @"));
        };
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return Err(bad("is not a valid address"));
        }
        // ASCII is taken as before (any visible character); beyond ASCII, only letters,
        // marks and digits: no symbols, punctuation or spaces that imitate ASCII ones.
        let allowed = |c: char| c.is_ascii_graphic() || (!c.is_ascii() && is_visible_word_char(c));
        if let Some(c) = s.chars().find(|&c| !allowed(c)) {
            return Err(bad(&format!("contains {c:?} (U+{:04X}), which an address may not contain", u32::from(c))));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 || labels.iter().any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-')) {
            return Err(bad("has an invalid domain"));
        }
        Ok(Email(s))
    }
}

impl TryFrom<String> for Email {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event's URL-friendly unique name: 1-64 of `a-z 0-9 -`, no dash at either end,
/// and never shaped like a UUID (so an id and a slug are never confused).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Slug {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        let s = raw.trim().to_ascii_lowercase();
        let bad = |why: &str| Error::validation("slug", format!("{} {why}", shown(raw)));
        if s.is_empty() || s.len() > 64 {
            return Err(bad("must be 1 to 64 characters"));
        }
        if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(bad("may only contain letters, digits and dashes"));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(bad("must not start or end with a dash"));
        }
        if Uuid::try_parse(&s).is_ok() {
            return Err(bad("looks like an event id"));
        }
        Ok(Slug(s))
    }
}

impl TryFrom<String> for Slug {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Slug> for String {
    fn from(s: Slug) -> String {
        s.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters that render as nothing (soft hyphen, zero-width spaces and joiners,
/// direction marks, fillers, variation selectors, the byte-order mark): a name,
/// venue or description needs one character beyond these and white space.
pub(crate) const INVISIBLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
];

/// Trims `raw` and checks its length in characters; `None` when it is empty and
/// `optional` is set.
pub fn bounded_text(field: &str, raw: &str, max_chars: usize, optional: bool) -> Result<Option<String>> {
    let t = raw.trim();
    // Text of nothing but white space and characters that render as nothing reads as
    // empty; the OpenAPI text pattern says the same (see `INVISIBLE`).
    let visible =
        |c: char| !c.is_whitespace() && !c.is_control() && !INVISIBLE.iter().any(|&(a, b)| (a..=b).contains(&c));
    if !t.chars().any(visible) {
        return if optional { Ok(None) } else { Err(Error::validation(field, "must not be empty")) };
    }
    let n = t.chars().count();
    if n > max_chars {
        return Err(Error::validation(field, format!("must be at most {max_chars} characters, got {n}")));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::validation(field, "must not contain control characters"));
    }
    Ok(Some(t.to_owned()))
}

/// An event's name: 1-200 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventName(String);

impl EventName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EventName {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        let s = bounded_text("name", raw, 200, false)?.expect("required text is Some");
        Ok(EventName(s))
    }
}

impl TryFrom<String> for EventName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<EventName> for String {
    fn from(s: EventName) -> String {
        s.0
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id a row has in the system it was imported from: 1-200 characters, no
/// control characters. Re-importing a row with the same external id never creates a
/// second one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExternalId(String);

impl ExternalId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ExternalId {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        let s = bounded_text("external_id", raw, 200, false)?.expect("required text is Some");
        if s.contains('\n') || s.contains('\t') {
            return Err(Error::validation("external_id", "must be on one line"));
        }
        Ok(ExternalId(s))
    }
}

impl TryFrom<String> for ExternalId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<ExternalId> for String {
    fn from(s: ExternalId) -> String {
        s.0
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client-chosen key that makes a booking request safe to retry: 1-200 printable
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IdempotencyKey {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        if raw.is_empty() || raw.len() > 200 || !raw.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::validation(
                "idempotency key",
                "must be 1 to 200 printable ASCII characters without spaces",
            ));
        }
        Ok(IdempotencyKey(raw.to_owned()))
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<IdempotencyKey> for String {
    fn from(s: IdempotencyKey) -> String {
        s.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, SeededEntropy};

    #[test]
    fn bounded_numbers_refuse_out_of_range() {
        assert!("0".parse::<Capacity>().is_err());
        assert!("10000001".parse::<Capacity>().is_err());
        assert!("-3".parse::<Capacity>().is_err());
        assert!("abc".parse::<Capacity>().unwrap_err().to_string().contains("capacity"));
        assert_eq!("10000000".parse::<Capacity>().unwrap().get(), 10_000_000);
        assert!("101".parse::<Quantity>().is_err());
        assert!("0".parse::<Quantity>().is_err());
        assert_eq!(" 100 ".parse::<Quantity>().unwrap().get(), 100);
        assert!("0".parse::<PerCustomerLimit>().unwrap_err().to_string().contains("max_per_customer"));
    }

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(" Ann@Example.COM ".parse::<Email>().unwrap().as_str(), "ann@example.com");
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a@b@example.com",
            "ann@.com",
            "ann@-x.com",
            "ann\u{200B}@example.com",
            "cust1@example.com\u{200B}",
            "ann\u{2060}@example.com",
            "ann\u{202E}@example.com",
            "ann\u{FEFF}@example.com",
            "ann\u{00AD}@example.com",
            "ann\u{3164}@example.com",
            "ann\u{FE0F}@example.com",
            "ann\u{E0041}@example.com",
            "ann\u{2028}@example.com",
            "ann\u{2003}x@example.com",
            "ann\u{1F600}@example.com",
        ] {
            assert!(bad.parse::<Email>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_are_at_most_254_bytes_in_normal_form() {
        let at = |n: usize| format!("{}@{}.com", "a".repeat(64), "b".repeat(n - 64 - 5));
        assert!(at(254).parse::<Email>().is_ok());
        assert!(at(255).parse::<Email>().is_err());
        // Width folds before the length is counted: 254 full-width bytes are fewer ASCII ones.
        assert!(format!("ａ@{}.com", "b".repeat(246)).parse::<Email>().is_ok());
    }

    #[test]
    fn emails_that_look_alike_are_one_email() {
        let plain: Email = "cust1@example.com".parse().unwrap();
        for alike in ["ｃｕｓｔ１@ｅｘａｍｐｌｅ.ｃｏｍ", "CUST1@Example.Com", "  cust1@example.com\n"] {
            assert_eq!(alike.parse::<Email>().unwrap(), plain, "{alike:?}");
        }
        // Letters of other scripts stay letters (internationalized addresses).
        assert_eq!("Jürgen@Bücher.de".parse::<Email>().unwrap().as_str(), "jürgen@bücher.de");
        assert_eq!("\u{0041}\u{030A}@x.se".parse::<Email>().unwrap().as_str(), "\u{00E5}@x.se", "composed");
        let err = "cust1@example.com\u{200B}".parse::<Email>().unwrap_err().to_string();
        assert!(err.contains("invisible character U+200B"), "{err}");
        assert_eq!(Email::from_stored_lossy("cust1@example.com\u{200B}").unwrap(), plain);
        assert!(Email::from_stored_lossy("not an email").is_err());
        assert!("x".repeat(5000).parse::<Email>().unwrap_err().to_string().len() < 200, "not echoed whole");
    }

    #[test]
    fn slugs_are_checked() {
        assert_eq!("Summer-Fest-2027".parse::<Slug>().unwrap().as_str(), "summer-fest-2027");
        for bad in ["", "-a", "a-", "a b", "ä", "0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b", &"a".repeat(65)] {
            assert!(bad.parse::<Slug>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!("  Gig  ".parse::<EventName>().unwrap().as_str(), "Gig");
        assert!("   ".parse::<EventName>().is_err());
        assert!("x".repeat(201).parse::<EventName>().is_err());
        assert!("x".repeat(200).parse::<EventName>().is_ok());
        assert!("é".repeat(200).parse::<EventName>().is_ok(), "counts characters, not bytes");
    }

    #[test]
    fn booking_codes_round_trip_and_forgive() {
        let e = SeededEntropy::new(1);
        let code = BookingCode::generate(&e);
        assert_eq!(code.as_str().len(), 14);
        assert_eq!(code.as_str().parse::<BookingCode>().unwrap(), code);
        let sloppy = code.as_str().replace('-', "").to_lowercase();
        assert_eq!(sloppy.parse::<BookingCode>().unwrap(), code);
        assert_eq!("oooo-iiii-llll".parse::<BookingCode>().unwrap().as_str(), "0000-1111-1111");
        for bad in ["", "ABCD-EFGH", "ABCD-EFGH-JKMU", "ABCD-EFGH-JKMNP"] {
            assert!(bad.parse::<BookingCode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ticket_secrets_carry_128_bits() {
        let e = SeededEntropy::new(2);
        let a = TicketSecret::generate(&e);
        let b = TicketSecret::generate(&e);
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 26);
        assert_eq!(a.as_str().parse::<TicketSecret>().unwrap(), a);
        assert!("Z".repeat(26).parse::<TicketSecret>().is_err(), "more than 128 bits");
        assert!("short".parse::<TicketSecret>().is_err());
        assert!(!format!("{a:?}").contains(a.as_str()), "debug output hides the secret");
    }

    #[test]
    fn ids_are_uuid_v7_and_time_ordered() {
        let clock = ManualClock::new("2027-01-01T00:00:00Z".parse().unwrap());
        let e = SeededEntropy::new(3);
        let a = EventId::generate(&clock, &e);
        clock.advance(jiff::SignedDuration::from_millis(5));
        let b = EventId::generate(&clock, &e);
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a < b);
        assert_eq!(a.to_string().parse::<EventId>().unwrap(), a);
        assert!("nope".parse::<EventId>().is_err());
    }

    #[test]
    fn idempotency_keys_are_printable() {
        assert!("order-42".parse::<IdempotencyKey>().is_ok());
        assert!("".parse::<IdempotencyKey>().is_err());
        assert!("a b".parse::<IdempotencyKey>().is_err());
    }
}

#[cfg(test)]
mod visible_tests {
    /// A name of nothing but invisible characters is empty; one with a visible
    /// character keeps its joiners (emoji sequences).
    #[test]
    fn names_need_a_visible_character() {
        for blank in ["\u{feff}", "\u{200b}", " \u{00ad} ", "\u{180e}\u{3164}"] {
            assert!(blank.parse::<super::EventName>().is_err(), "{blank:?}");
        }
        let family = "Family \u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467} day";
        assert_eq!(family.parse::<super::EventName>().expect("visible").as_str(), family);
    }
}
