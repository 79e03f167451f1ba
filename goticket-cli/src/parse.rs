//! Text to core's values, the one way every face of the CLI does it: core parses, and
//! the error names the flag or field the text came from. Also which backend a `--db`
//! URL names. A leaf: it uses nothing else of the CLI.

use std::str::FromStr;

use goticket_core::{Error, Timestamp, parse_timestamp};

/// Parses `raw` with core's rules, naming `field` (a flag, a JSON field) in the error.
pub(crate) fn parse<T: FromStr<Err = Error>>(field: &str, raw: &str) -> Result<T, Error> {
    raw.parse::<T>().map_err(|e| e.in_field(field))
}

/// [`parse`] for an optional value.
pub(crate) fn parse_opt<T: FromStr<Err = Error>>(field: &str, raw: Option<&str>) -> Result<Option<T>, Error> {
    raw.map(|r| parse(field, r)).transpose()
}

/// An optional RFC 3339 time, naming `field` in the error.
pub(crate) fn time_opt(field: &str, raw: Option<&str>) -> Result<Option<Timestamp>, Error> {
    raw.map(|r| parse_timestamp(field, r)).transpose()
}

/// The storage backend a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// Anything else: a file path, `sqlite:PATH`, `sqlite://PATH`.
    Sqlite,
}

impl Backend {
    /// The backend `url` names.
    pub(crate) fn of(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// Its name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_comes_from_the_scheme() {
        assert_eq!(Backend::of("postgres://u@h/db"), Backend::Postgres);
        assert_eq!(Backend::of("postgresql://u@h/db"), Backend::Postgres);
        assert_eq!(Backend::of("postgres.db"), Backend::Sqlite, "a file named postgres is a file");
        assert_eq!(Backend::of("sqlite:x.db").name(), "sqlite");
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse::<goticket_core::Capacity>("--capacity", "0").unwrap_err();
        assert!(err.to_string().starts_with("invalid --capacity:"), "{err}");
        assert_eq!(parse_opt::<goticket_core::Capacity>("c", None).unwrap(), None);
        assert!(time_opt("--from", Some("tomorrow")).unwrap_err().to_string().contains("--from"));
    }
}
