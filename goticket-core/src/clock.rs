//! Time and randomness come in through these small traits so tests can travel in time
//! and stay deterministic. The system implementations are the only places core reads
//! the outside world, and both are behind a trait object the caller chooses.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

use crate::error::{Error, Result, shown};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant. Implementations return microsecond precision.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        to_micros(Timestamp::now())
    }
}

/// A clock that only moves when told to: for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock { micros: AtomicI64::new(start.as_microsecond()) }
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: SignedDuration) {
        let delta = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.micros.fetch_add(delta, Ordering::SeqCst);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: Timestamp) {
        self.micros.store(to.as_microsecond(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_microsecond(self.micros.load(Ordering::SeqCst))
            .expect("a ManualClock only holds values that came from a valid Timestamp")
    }
}

/// Truncates a timestamp to microseconds, the precision every store keeps.
pub fn to_micros(ts: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(ts.as_microsecond())
        .expect("truncating a valid timestamp to microseconds stays in range")
}

/// Parses an RFC 3339 timestamp with an explicit offset (`Z` or `+02:00`) into UTC
/// with microsecond precision. `field` names the input in the error.
pub fn parse_timestamp(field: &str, raw: &str) -> Result<Timestamp> {
    let raw = raw.trim();
    let ts = Timestamp::from_str(raw).map_err(|e| {
        Error::validation(
            field,
            format!(
                "{} is not an RFC 3339 date-time with an offset, like 2027-03-01T19:30:00Z{}",
                shown(raw),
                out_of_range(&e.to_string())
            ),
        )
    })?;
    // Years before 0001 cannot round-trip through every store's date type (jiff
    // itself stops at 9999).
    const YEAR_ONE: i64 = -62_135_596_800;
    if ts.as_second() < YEAR_ONE {
        return Err(Error::validation(field, format!("{} is outside the years 0001-9999", shown(raw))));
    }
    Ok(to_micros(ts))
}

/// The part of the date parser's message worth a user's reading: which field is out
/// of its range (`: the month must be 1 to 12`); nothing for a mere misspelling (the
/// parser would say "failed to parse four digit integer as year").
fn out_of_range(message: &str) -> String {
    let Some((_, rest)) = message.split_once("parameter '") else { return String::new() };
    let Some((name, rest)) = rest.split_once('\'') else { return String::new() };
    let Some(range) = rest.split("range of ").nth(1) else { return String::new() };
    let range = range.trim_end_matches(|c: char| !c.is_ascii_digit());
    match range.split_once("..=") {
        // Past the last instant jiff knows (late on 9999-12-31): say so in years.
        Some(_) if name.contains("timestamp") => ": it is outside the years 0001-9999".to_owned(),
        Some((lo, hi)) => format!(": the {} must be {lo} to {hi}", name.replace('-', " ")),
        None => String::new(),
    }
}

/// How long a hold lasts before it expires: 1 second to 7 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldDuration(SignedDuration);

impl HoldDuration {
    /// The shortest hold.
    pub const MIN: SignedDuration = SignedDuration::from_secs(1);
    /// The longest hold.
    pub const MAX: SignedDuration = SignedDuration::from_hours(24 * 7);

    /// A hold of the given duration, if within bounds.
    pub fn new(d: SignedDuration) -> Result<Self> {
        if d < Self::MIN || d > Self::MAX {
            return Err(Error::validation("hold", format!("must be between 1s and 7 days, got {d:#}")));
        }
        Ok(HoldDuration(d))
    }

    /// The duration.
    pub fn get(self) -> SignedDuration {
        self.0
    }

    /// When a hold made at `now` expires.
    pub fn expiry_from(self, now: Timestamp) -> Timestamp {
        to_micros(now.saturating_add(self.0).expect("a hold of at most 7 days stays within the timestamp range"))
    }
}

impl FromStr for HoldDuration {
    type Err = Error;

    /// Accepts `15m`, `90s`, `1h30m`, `2 hours`, or ISO 8601 `PT15M`.
    fn from_str(raw: &str) -> Result<Self> {
        let d = SignedDuration::from_str(raw.trim()).map_err(|_| {
            Error::validation("hold", format!("{} is not a duration like 15m, 90s or 1h30m", shown(raw)))
        })?;
        HoldDuration::new(d)
    }
}

impl fmt::Display for HoldDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

/// A source of random bytes for ids, booking codes and ticket secrets.
pub trait Entropy: Send + Sync + fmt::Debug {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// The operating system's cryptographically secure random source.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        getrandom::fill(buf).expect("the operating system provides random bytes; without them no secret is safe");
    }
}

/// A deterministic generator (SplitMix64) for tests. Never use it for real tickets:
/// its output is predictable from the seed.
#[derive(Debug)]
pub struct SeededEntropy {
    state: Mutex<u64>,
}

impl SeededEntropy {
    /// A generator that always produces the same bytes for the same seed.
    pub fn new(seed: u64) -> Self {
        SeededEntropy { state: Mutex::new(seed) }
    }
}

impl SeededEntropy {
    /// The next 64 random bits.
    pub fn next(&self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

impl Entropy for SeededEntropy {
    fn fill(&self, buf: &mut [u8]) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for chunk in buf.chunks_mut(8) {
            *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_date_is_explained_without_the_parser_s_words() {
        let err = |raw: &str| parse_timestamp("--starts-at", raw).unwrap_err().to_string();
        let e = err("tomorrow");
        assert_eq!(
            e,
            "invalid --starts-at: \"tomorrow\" is not an RFC 3339 date-time with an offset, like 2027-03-01T19:30:00Z"
        );
        assert!(
            err("2030-13-01T00:00:00Z").ends_with(": the month must be 1 to 12"),
            "{}",
            err("2030-13-01T00:00:00Z")
        );
        assert!(err("2030-01-01T25:00:00Z").contains("the hour must be 0 to 23"), "{}", err("2030-01-01T25:00:00Z"));
        assert!(!err("2030-02-30T00:00:00Z").contains("parse"), "{}", err("2030-02-30T00:00:00Z"));
        let late = err("9999-12-31T23:59:59Z");
        assert!(late.ends_with("outside the years 0001-9999") && !late.contains("Unix"), "{late}");
    }

    #[test]
    fn parses_rfc3339_into_utc() {
        let ts = parse_timestamp("starts_at", "2027-03-01T20:30:00+01:00").unwrap();
        assert_eq!(ts.to_string(), "2027-03-01T19:30:00Z");
    }

    #[test]
    fn truncates_to_microseconds() {
        let ts = parse_timestamp("t", "2027-03-01T19:30:00.123456789Z").unwrap();
        assert_eq!(ts.to_string(), "2027-03-01T19:30:00.123456Z");
    }

    #[test]
    fn rejects_dates_without_offset_and_garbage() {
        for bad in ["2027-03-01T19:30:00", "2027-03-01", "tomorrow", "", "2027-13-01T00:00:00Z"] {
            let err = parse_timestamp("starts_at", bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid starts_at:"), "{bad}: {err}");
        }
    }

    #[test]
    fn hold_durations_parse_and_are_bounded() {
        assert_eq!("15m".parse::<HoldDuration>().unwrap().get(), SignedDuration::from_mins(15));
        assert_eq!("1h30m".parse::<HoldDuration>().unwrap().get(), SignedDuration::from_mins(90));
        assert_eq!("PT2S".parse::<HoldDuration>().unwrap().get(), SignedDuration::from_secs(2));
        for bad in ["0s", "-5m", "8d", "soon", ""] {
            assert!(bad.parse::<HoldDuration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn manual_clock_travels() {
        let start = parse_timestamp("t", "2027-01-01T00:00:00Z").unwrap();
        let clock = ManualClock::new(start);
        clock.advance(SignedDuration::from_secs(90));
        assert_eq!(clock.now().to_string(), "2027-01-01T00:01:30Z");
    }

    #[test]
    fn seeded_entropy_is_deterministic() {
        let (a, b) = (SeededEntropy::new(7), SeededEntropy::new(7));
        let (mut x, mut y) = ([0u8; 21], [0u8; 21]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 21]);
    }
}
