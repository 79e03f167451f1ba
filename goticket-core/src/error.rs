//! Typed errors: the domain's refusals and the storage failures behind them, with the
//! one table that maps each kind to a CLI exit code and an HTTP status.

use std::fmt;

use jiff::Timestamp;

/// Everything a goticket operation can refuse or fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input that breaks a domain rule: names the field and the reason.
    #[error("invalid {field}: {reason}")]
    Validation {
        /// The field (or column, or flag) that was wrong.
        field: String,
        /// Why it was rejected, including the offending value where useful.
        reason: String,
    },
    /// The thing asked for does not exist (or the principal may not know it exists).
    #[error("{what} not found: {key}")]
    NotFound {
        /// What kind of thing: "event", "booking", "ticket".
        what: &'static str,
        /// The key that was looked up.
        key: String,
    },
    /// Not enough seats left for the request.
    #[error("sold out: requested {requested}, {available} left")]
    SoldOut {
        /// Seats the request asked for.
        requested: u32,
        /// Seats that were still available.
        available: u32,
    },
    /// The request would take the customer past the event's per-customer limit.
    #[error("per-customer limit exceeded: limit {limit}, already booked {already}, requested {requested}")]
    LimitExceeded {
        /// The event's `max_per_customer`.
        limit: u32,
        /// Seats the customer already holds or bought for the event.
        already: u32,
        /// Seats the request asked for.
        requested: u32,
    },
    /// The event is not selling (cancelled, ended, or outside its sales window).
    #[error("not on sale: {reason}")]
    NotOnSale {
        /// Why it is not on sale.
        reason: String,
    },
    /// The requested state change is not allowed from the current state.
    #[error("cannot {action} {entity} that is {current}")]
    InvalidTransition {
        /// "a booking" or "an event".
        entity: &'static str,
        /// The attempted action: "confirm", "cancel", "update", "check in".
        action: &'static str,
        /// The current state, as shown to users.
        current: String,
    },
    /// A ticket was scanned a second time.
    #[error("ticket already checked in at {at}")]
    AlreadyCheckedIn {
        /// When the first scan happened.
        at: Timestamp,
    },
    /// The request contradicts existing data (a taken slug, a reused idempotency key...).
    #[error("conflict: {reason}")]
    Conflict {
        /// What conflicted.
        reason: String,
    },
    /// The acting principal may not do this.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// What was not allowed.
        reason: String,
    },
    /// No (valid) identity was presented.
    #[error("unauthenticated: {reason}")]
    Unauthenticated {
        /// What was missing or wrong.
        reason: String,
    },
    /// Two writes drew the same random key (a booking code, a ticket secret) or raced
    /// for the same unique value: nothing was written, and running the same request
    /// again is safe.
    #[error("collision: {reason}; nothing was written, please retry")]
    Collision {
        /// What collided.
        reason: String,
    },
    /// A bug: a panic, a broken invariant, a failure that is nobody's input and no
    /// store's fault. Never retried; reported as an internal error.
    #[error("internal error: {reason}")]
    Internal {
        /// What went wrong, for the log.
        reason: String,
    },
    /// The store failed; see [`StoreError::is_retryable`] and
    /// [`StoreErrorKind::OutcomeUnknown`].
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// An all-or-nothing import refused some rows and wrote nothing. Its kind is the
    /// first refusal's, so a forbidden row exits 6 and a sold-out one 4.
    #[error("{refused} rows were refused, nothing was written; the first, line {line}: {first}")]
    ImportRefused {
        /// How many rows were refused.
        refused: u64,
        /// The first refused row's line.
        line: u64,
        /// Why it was refused.
        first: Box<Error>,
    },
}

/// Longest piece of outside input an error message repeats.
const SHOWN_CHARS: usize = 60;
/// Longest reason an error carries: a safety net for messages that embed input.
const REASON_BYTES: usize = 1000;

/// Outside input as an error message shows it: quoted, escaped and cut to its first
/// 60 characters, with the full size named, so a 50 MB field is not echoed back.
pub fn shown(raw: &str) -> String {
    if raw.chars().count() <= SHOWN_CHARS {
        return format!("{raw:?}");
    }
    let head: String = raw.chars().take(SHOWN_CHARS).collect();
    format!("{head:?}... ({} bytes)", raw.len())
}

/// `text` cut at a character boundary to at most `max` bytes, marked when cut.
pub(crate) fn clipped(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &text[..end], text.len())
}

/// The kind of an [`Error`], for mapping to exit codes, HTTP statuses and stable names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::Validation`].
    Validation,
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::SoldOut`].
    SoldOut,
    /// See [`Error::LimitExceeded`].
    LimitExceeded,
    /// See [`Error::NotOnSale`].
    NotOnSale,
    /// See [`Error::InvalidTransition`].
    InvalidTransition,
    /// See [`Error::AlreadyCheckedIn`].
    AlreadyCheckedIn,
    /// See [`Error::Conflict`].
    Conflict,
    /// See [`Error::Forbidden`].
    Forbidden,
    /// See [`Error::Unauthenticated`].
    Unauthenticated,
    /// A retryable storage failure (busy, lock timeout, connection lost).
    Busy,
    /// Any other storage failure.
    Storage,
    /// A bug (see [`Error::Internal`]).
    Internal,
}

impl Error {
    /// Shorthand for a validation error.
    pub fn validation(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Validation { field: clipped(field.into(), 200), reason: clipped(reason.into(), REASON_BYTES) }
    }

    /// Shorthand for a not-found error.
    pub fn not_found(what: &'static str, key: impl fmt::Display) -> Self {
        Error::NotFound { what, key: key.to_string() }
    }

    /// Shorthand for a forbidden error.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Error::Forbidden { reason: reason.into() }
    }

    /// Shorthand for a conflict error.
    pub fn conflict(reason: impl Into<String>) -> Self {
        Error::Conflict { reason: clipped(reason.into(), REASON_BYTES) }
    }

    /// Shorthand for an internal error.
    pub fn internal(reason: impl Into<String>) -> Self {
        Error::Internal { reason: clipped(reason.into(), REASON_BYTES) }
    }

    /// The same failure again, for answering each request of a batch that failed as a
    /// whole (the cause chain is not copied).
    pub(crate) fn replicate(&self) -> Error {
        match self {
            Error::Storage(s) => Error::Storage(StoreError::new(s.kind, s.message.clone(), None)),
            Error::Collision { reason } => Error::Collision { reason: reason.clone() },
            Error::Internal { reason } => Error::Internal { reason: reason.clone() },
            other => Error::internal(other.to_string()),
        }
    }

    /// Shorthand for a collision (safe to re-run).
    pub fn collision(reason: impl Into<String>) -> Self {
        Error::Collision { reason: clipped(reason.into(), REASON_BYTES) }
    }

    /// Whether the write may have been committed even though it failed (the connection
    /// was lost during COMMIT): never re-run it without first reading what happened.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::Storage(e) if e.kind() == StoreErrorKind::OutcomeUnknown)
    }

    /// Whether the same call may succeed if made again later, unchanged: a busy or
    /// unreachable store, or a collision. A write whose outcome is unknown is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Storage(e) => e.is_retryable(),
            Error::Collision { .. } => true,
            _ => false,
        }
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Validation { .. } => ErrorKind::Validation,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::SoldOut { .. } => ErrorKind::SoldOut,
            Error::LimitExceeded { .. } => ErrorKind::LimitExceeded,
            Error::NotOnSale { .. } => ErrorKind::NotOnSale,
            Error::InvalidTransition { .. } => ErrorKind::InvalidTransition,
            Error::AlreadyCheckedIn { .. } => ErrorKind::AlreadyCheckedIn,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Forbidden { .. } => ErrorKind::Forbidden,
            Error::Unauthenticated { .. } => ErrorKind::Unauthenticated,
            Error::Storage(e) if e.is_retryable() => ErrorKind::Busy,
            Error::Storage(_) => ErrorKind::Storage,
            Error::Collision { .. } => ErrorKind::Busy,
            Error::Internal { .. } => ErrorKind::Internal,
            Error::ImportRefused { first, .. } => first.kind(),
        }
    }

    /// Renames the field of a validation error (e.g. `time` -> `starts_at`); other
    /// errors pass through unchanged.
    pub fn in_field(self, name: &str) -> Self {
        match self {
            Error::Validation { reason, .. } => Error::Validation { field: name.to_owned(), reason },
            other => other,
        }
    }
}

impl ErrorKind {
    /// Every kind, for tables and documents built from this one (the HTTP API's
    /// problem types, for one).
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::Validation,
        ErrorKind::NotFound,
        ErrorKind::SoldOut,
        ErrorKind::LimitExceeded,
        ErrorKind::NotOnSale,
        ErrorKind::InvalidTransition,
        ErrorKind::AlreadyCheckedIn,
        ErrorKind::Conflict,
        ErrorKind::Forbidden,
        ErrorKind::Unauthenticated,
        ErrorKind::Busy,
        ErrorKind::Storage,
        ErrorKind::Internal,
    ];

    /// The `goticket` CLI exit code for this kind (design section 5).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::NotFound => 3,
            ErrorKind::SoldOut
            | ErrorKind::LimitExceeded
            | ErrorKind::NotOnSale
            | ErrorKind::InvalidTransition
            | ErrorKind::AlreadyCheckedIn
            | ErrorKind::Conflict => 4,
            ErrorKind::Validation => 5,
            ErrorKind::Forbidden | ErrorKind::Unauthenticated => 6,
            ErrorKind::Busy | ErrorKind::Storage | ErrorKind::Internal => 1,
        }
    }

    /// The HTTP status for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::Validation => 422,
            ErrorKind::NotFound => 404,
            ErrorKind::SoldOut
            | ErrorKind::LimitExceeded
            | ErrorKind::NotOnSale
            | ErrorKind::InvalidTransition
            | ErrorKind::AlreadyCheckedIn
            | ErrorKind::Conflict => 409,
            ErrorKind::Forbidden => 403,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Busy => 503,
            ErrorKind::Storage | ErrorKind::Internal => 500,
        }
    }

    /// A stable, machine-readable name (used as the problem `type` suffix and in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Validation => "validation",
            ErrorKind::NotFound => "not-found",
            ErrorKind::SoldOut => "sold-out",
            ErrorKind::LimitExceeded => "limit-exceeded",
            ErrorKind::NotOnSale => "not-on-sale",
            ErrorKind::InvalidTransition => "invalid-transition",
            ErrorKind::AlreadyCheckedIn => "already-checked-in",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Busy => "busy",
            ErrorKind::Storage => "storage",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of the storage layer. Store crates convert their driver errors into
/// this privately, so core never depends on a database crate.
#[derive(Debug, thiserror::Error)]
#[error("storage: {message}")]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// What class of storage failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The database is locked or overloaded; the same call may succeed later.
    Busy,
    /// The database cannot be reached (pool exhausted, server down); retryable.
    Unavailable,
    /// The schema is missing, older or newer than this build expects.
    Schema,
    /// Stored data or a constraint contradicts the domain: a bug or corruption.
    Integrity,
    /// The connection failed while the transaction was committing: it may or may not
    /// have been written. Never re-run blindly; read what happened first.
    OutcomeUnknown,
    /// Anything else.
    Other,
}

impl StoreErrorKind {
    /// Every kind, in a fixed order.
    pub const ALL: [StoreErrorKind; 6] = [
        StoreErrorKind::Busy,
        StoreErrorKind::Unavailable,
        StoreErrorKind::Schema,
        StoreErrorKind::Integrity,
        StoreErrorKind::OutcomeUnknown,
        StoreErrorKind::Other,
    ];

    /// The kind's name, as metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreErrorKind::Busy => "busy",
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Schema => "schema",
            StoreErrorKind::Integrity => "integrity",
            StoreErrorKind::OutcomeUnknown => "outcome-unknown",
            StoreErrorKind::Other => "other",
        }
    }
}

impl StoreError {
    /// A new storage error with a message and optional source.
    pub fn new(
        kind: StoreErrorKind,
        message: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        StoreError { kind, message: message.into(), source }
    }

    /// The class of failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, StoreErrorKind::Busy | StoreErrorKind::Unavailable)
    }
}

/// Shorthand for results in goticket.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_exit_code_and_status() {
        let cases = [
            (ErrorKind::Validation, 5, 422),
            (ErrorKind::NotFound, 3, 404),
            (ErrorKind::SoldOut, 4, 409),
            (ErrorKind::LimitExceeded, 4, 409),
            (ErrorKind::NotOnSale, 4, 409),
            (ErrorKind::InvalidTransition, 4, 409),
            (ErrorKind::AlreadyCheckedIn, 4, 409),
            (ErrorKind::Conflict, 4, 409),
            (ErrorKind::Forbidden, 6, 403),
            (ErrorKind::Unauthenticated, 6, 401),
            (ErrorKind::Busy, 1, 503),
            (ErrorKind::Storage, 1, 500),
            (ErrorKind::Internal, 1, 500),
        ];
        assert_eq!(cases.map(|c| c.0), ErrorKind::ALL, "ALL lists every kind once");
        for (kind, code, status) in cases {
            assert_eq!(kind.exit_code(), code, "{kind}");
            assert_eq!(kind.http_status(), status, "{kind}");
        }
    }

    #[test]
    fn retryable_storage_errors_are_busy() {
        let busy = Error::from(StoreError::new(StoreErrorKind::Busy, "locked", None));
        assert_eq!(busy.kind(), ErrorKind::Busy);
        let other = Error::from(StoreError::new(StoreErrorKind::Integrity, "bad row", None));
        assert_eq!(other.kind(), ErrorKind::Storage);
        assert!(!other.is_retryable());
        let unknown = Error::from(StoreError::new(StoreErrorKind::OutcomeUnknown, "lost during commit", None));
        assert!(unknown.is_outcome_unknown() && !unknown.is_retryable(), "never re-run blindly");
        assert_eq!(unknown.kind(), ErrorKind::Storage);
        let collided = Error::collision("booking code");
        assert!(collided.is_retryable() && !collided.is_outcome_unknown());
        assert_eq!(collided.kind(), ErrorKind::Busy);
        assert_eq!(Error::internal("a panic").kind(), ErrorKind::Internal);
    }

    #[test]
    fn outside_input_is_shown_cut() {
        assert_eq!(shown("12 EUR"), "\"12 EUR\"");
        let huge = "x".repeat(50_000_000);
        let s = shown(&huge);
        assert!(s.len() < 100 && s.ends_with("(50000000 bytes)"), "{s}");
        let e = Error::validation("body", format!("bad: {huge}"));
        assert!(e.to_string().len() < REASON_BYTES + 300, "reasons are capped");
        assert!(Error::validation("f", "é".repeat(2000)).to_string().contains("bytes in all"));
        // Cut at a character boundary at or below the limit (the euro sign is 3 bytes).
        let cut = clipped("€".repeat(500), 1000);
        assert!(cut.starts_with(&"€".repeat(333)) && !cut.starts_with(&"€".repeat(334)), "{cut}");
    }

    #[test]
    fn a_refused_import_has_its_first_refusal_kind() {
        let e = Error::ImportRefused { refused: 2, line: 3, first: Box::new(Error::forbidden("not yours")) };
        assert_eq!(e.kind(), ErrorKind::Forbidden);
        assert_eq!(e.kind().exit_code(), 6);
        assert_eq!(e.to_string(), "2 rows were refused, nothing was written; the first, line 3: forbidden: not yours");
    }

    #[test]
    fn messages_are_lowercase_one_liners() {
        let e = Error::SoldOut { requested: 3, available: 1 };
        assert_eq!(e.to_string(), "sold out: requested 3, 1 left");
        let e = Error::validation("capacity", "must be at least 1, got 0");
        assert_eq!(e.to_string(), "invalid capacity: must be at least 1, got 0");
        assert_eq!(e.in_field("row 3 capacity").to_string(), "invalid row 3 capacity: must be at least 1, got 0");
    }
}
