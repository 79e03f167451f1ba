//! Money as integer minor units plus an ISO 4217 currency; never floating point.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, shown};

/// An ISO 4217 currency that has a minor unit (EUR, USD, JPY, BHD...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// The three-letter code.
    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Digits after the decimal point (2 for EUR, 0 for JPY, 3 for BHD).
    pub fn exponent(self) -> u32 {
        u32::from(self.0.exponent().expect("Currency is only constructed for codes with an exponent"))
    }
}

impl FromStr for Currency {
    type Err = Error;

    fn from_str(raw: &str) -> Result<Self> {
        let code = raw.trim().to_ascii_uppercase();
        let c = iso_currency::Currency::from_code(&code)
            .ok_or_else(|| Error::validation("currency", format!("{} is not an ISO 4217 currency code", shown(raw))))?;
        if c.exponent().is_none() {
            return Err(Error::validation("currency", format!("{code} has no minor unit and cannot price tickets")));
        }
        Ok(Currency(c))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A non-negative amount of money. Serialized as `{"amount_minor": 2000, "currency":
/// "EUR"}`; read from that or from the text every other input takes (`"20 EUR"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Money {
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    amount_minor: i64,
    currency: Currency,
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(MoneyVisitor)
    }
}

/// Reads money as text or as its two parts, saying what it expects in words a caller
/// knows (never a Rust type name).
struct MoneyVisitor;

impl<'de> serde::de::Visitor<'de> for MoneyVisitor {
    type Value = Money;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"money as text like "20.00 EUR", or as {"amount_minor": 2000, "currency": "EUR"}"#)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Money, E> {
        v.parse().map_err(|e: Error| E::custom(reason_of(e)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Money, A::Error> {
        let (mut amount, mut currency): (Option<i64>, Option<String>) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "amount_minor" if amount.is_none() => amount = Some(map.next_value::<MinorUnits>()?.0),
                "currency" if currency.is_none() => currency = Some(map.next_value()?),
                "amount_minor" | "currency" => return Err(serde::de::Error::custom(format!("{key} is given twice"))),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "{} is not a part of money (amount_minor, currency)",
                        shown(other)
                    )));
                }
            }
        }
        let amount = amount.ok_or_else(|| serde::de::Error::custom("amount_minor is missing"))?;
        let currency: Currency = currency
            .ok_or_else(|| serde::de::Error::custom("currency is missing"))?
            .parse()
            .map_err(|e: Error| serde::de::Error::custom(reason_of(e)))?;
        Money::new(amount, currency).map_err(|e| serde::de::Error::custom(reason_of(e)))
    }
}

/// An amount in minor units, expected in words (serde would say "i64").
struct MinorUnits(i64);

impl<'de> Deserialize<'de> for MinorUnits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Whole;
        impl serde::de::Visitor<'_> for Whole {
            type Value = i64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of minor units (cents), like 2000")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<i64, E> {
                Ok(v)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<i64, E> {
                i64::try_from(v).map_err(|_| E::custom(format!("{v} minor units is too large")))
            }
        }
        d.deserialize_i64(Whole).map(MinorUnits)
    }
}

/// The reason of a validation error, without its field (serde names the place).
fn reason_of(e: Error) -> String {
    match e {
        Error::Validation { reason, .. } => reason,
        other => other.to_string(),
    }
}

impl Money {
    /// An amount in minor units (cents for EUR); must not be negative.
    pub fn new(amount_minor: i64, currency: Currency) -> Result<Self> {
        if amount_minor < 0 {
            return Err(Error::validation("price", format!("must not be negative, got {amount_minor} minor units")));
        }
        Ok(Money { amount_minor, currency })
    }

    /// The amount in minor units.
    pub fn amount_minor(self) -> i64 {
        self.amount_minor
    }

    /// The currency.
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// `self * n`, refusing overflow.
    pub fn times(self, n: u64) -> Result<Money> {
        i64::try_from(n)
            .ok()
            .and_then(|n| self.amount_minor.checked_mul(n))
            .map(|amount_minor| Money { amount_minor, currency: self.currency })
            .ok_or_else(|| Error::validation("price", "amount overflows"))
    }
}

impl FromStr for Money {
    type Err = Error;

    /// Parses `"12.50 EUR"`, `"12.5 EUR"`, `"12 EUR"` or `"EUR 12.50"` exactly.
    fn from_str(raw: &str) -> Result<Self> {
        let bad = |why: &str| Error::validation("price", format!("{} {why}", shown(raw)));
        let mut parts = raw.split_whitespace();
        let (a, b) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) => (a, b),
            _ => return Err(bad("is not an amount and a currency, like \"12.50 EUR\"")),
        };
        let (amount, code) = if a.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) { (b, a) } else { (a, b) };
        let currency: Currency = code.parse()?;
        if amount.starts_with('-') {
            return Err(bad("must not be negative"));
        }
        let (whole, frac) = match amount.split_once('.') {
            Some((w, f)) => (w, f),
            None => (amount, ""),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (amount.contains('.') && !digits(frac)) {
            return Err(bad("has an amount that is not a plain decimal number"));
        }
        let exp = currency.exponent();
        if frac.len() > exp as usize {
            return Err(bad(&format!("has more than {exp} decimal places for {currency}")));
        }
        let scale = 10i64.pow(exp);
        let frac_value = if frac.is_empty() { 0 } else { frac.parse::<i64>().map_err(|_| bad("is out of range"))? };
        let frac_minor = frac_value * 10i64.pow(exp - frac.len() as u32);
        let amount_minor = whole
            .parse::<i64>()
            .ok()
            .and_then(|w| w.checked_mul(scale))
            .and_then(|w| w.checked_add(frac_minor))
            .ok_or_else(|| bad("is out of range"))?;
        Money::new(amount_minor, currency)
    }
}

impl fmt::Display for Money {
    /// Formats as `12.50 EUR`, the same form [`Money::from_str`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = self.currency.exponent();
        if exp == 0 {
            return write!(f, "{} {}", self.amount_minor, self.currency);
        }
        let scale = 10i64.pow(exp);
        write!(
            f,
            "{}.{:0width$} {}",
            self.amount_minor / scale,
            self.amount_minor % scale,
            self.currency,
            width = exp as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        let m: Money = "12.50 EUR".parse().unwrap();
        assert_eq!((m.amount_minor(), m.currency().code()), (1250, "EUR"));
        assert_eq!("12.5 eur".parse::<Money>().unwrap().amount_minor(), 1250);
        assert_eq!("12 EUR".parse::<Money>().unwrap().amount_minor(), 1200);
        assert_eq!("EUR 0.07".parse::<Money>().unwrap().amount_minor(), 7);
        assert_eq!("1500 JPY".parse::<Money>().unwrap().amount_minor(), 1500);
        assert_eq!("1.234 BHD".parse::<Money>().unwrap().amount_minor(), 1234);
        assert_eq!("0 USD".parse::<Money>().unwrap().amount_minor(), 0);
    }

    #[test]
    fn formats_back_the_same() {
        for s in ["12.50 EUR", "0.07 EUR", "1500 JPY", "1.234 BHD", "0.00 USD"] {
            assert_eq!(s.parse::<Money>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_money_with_the_reason() {
        let cases = [
            ("-1.00 EUR", "negative"),
            ("12.505 EUR", "decimal places"),
            ("12.5 JPY", "decimal places"),
            ("12,50 EUR", "plain decimal"),
            ("1e3 EUR", "plain decimal"),
            ("12.50 XYZ", "ISO 4217"),
            ("12.50 XAU", "no minor unit"),
            ("12.50", "amount and a currency"),
            ("", "amount and a currency"),
            ("99999999999999999999 EUR", "out of range"),
            (". EUR", "plain decimal"),
            ("5. EUR", "plain decimal"),
        ];
        for (raw, why) in cases {
            let err = raw.parse::<Money>().unwrap_err().to_string();
            assert!(err.starts_with("invalid "), "{raw}: {err}");
            assert!(err.contains(why), "{raw}: {err}");
        }
    }

    #[test]
    fn new_refuses_negative_amounts() {
        let eur: Currency = "EUR".parse().unwrap();
        assert!(Money::new(-1, eur).is_err());
        assert!(Money::new(0, eur).is_ok());
    }

    #[test]
    fn serde_shape_and_validation() {
        let m: Money = "12.50 EUR".parse().unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"amount_minor":1250,"currency":"EUR"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Money>(r#"{"amount_minor":-5,"currency":"EUR"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount_minor":5,"currency":"ZZZ"}"#).is_err());
    }

    #[test]
    fn money_reads_as_text_too_and_errors_name_no_rust_type() {
        assert_eq!(serde_json::from_str::<Money>(r#""20 EUR""#).unwrap(), "20.00 EUR".parse().unwrap());
        let err = |json: &str| serde_json::from_str::<Money>(json).unwrap_err().to_string();
        for (json, says) in [
            (r#""20 ZZZ""#, "ZZZ"),
            (r#""-3 EUR""#, "negative"),
            ("20", r#"expected money as text like "20.00 EUR""#),
            (r#"{"amount_minor":5}"#, "currency is missing"),
            (r#"{"amount_minor":5,"currency":"EUR","tip":1}"#, "\"tip\" is not a part of money"),
            (r#"{"amount_minor":"5","currency":"EUR"}"#, "invalid type"),
        ] {
            let e = err(json);
            assert!(e.contains(says), "{json}: {e}");
            for rust in ["Money", "Repr", "struct", "i64", "Currency"] {
                assert!(!e.contains(rust), "{json}: {e} names {rust}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn display_parse_round_trips(amount in 0i64..=i64::MAX / 1000, code in proptest::sample::select(vec!["EUR", "JPY", "BHD", "USD"])) {
            let m = Money::new(amount, code.parse().unwrap()).unwrap();
            proptest::prop_assert_eq!(m.to_string().parse::<Money>().unwrap(), m);
        }
    }
}
