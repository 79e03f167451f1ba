//! Which web origins a browser may call the API from (CORS): none unless
//! `--cors-origin` names them.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};

/// Which web origins browsers may call the API from (CORS).
#[derive(Debug, Clone, Default)]
pub enum Cors {
    /// None: no CORS headers (same-origin pages, and every non-browser client, work).
    #[default]
    Off,
    /// Any origin.
    Any,
    /// These origins.
    Origins(Vec<HeaderValue>),
}

impl Cors {
    /// From `--cors-origin` values: `*`, or origins like `https://shop.example.com`.
    pub fn from_flags(origins: &[String]) -> Result<Self, goticket_core::Error> {
        if origins.iter().any(|o| o == "*") {
            return Ok(Cors::Any);
        }
        if origins.is_empty() {
            return Ok(Cors::Off);
        }
        let parse = |o: &String| {
            let bad = || {
                goticket_core::Error::validation(
                    "--cors-origin",
                    format!("{o:?} is not an origin like https://shop.example.com (a scheme and a host, no path)"),
                )
            };
            let (scheme, host) = o.split_once("://").ok_or_else(bad)?;
            let plain = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
            if !matches!(scheme, "http" | "https") || host.is_empty() || !host.chars().all(plain) {
                return Err(bad());
            }
            HeaderValue::from_str(o).map_err(|_| bad())
        };
        Ok(Cors::Origins(origins.iter().map(parse).collect::<Result<_, _>>()?))
    }

    pub(super) fn layer(&self) -> Option<tower_http::cors::CorsLayer> {
        use tower_http::cors::{AllowOrigin, CorsLayer};
        let origin = match self {
            Cors::Off => return None,
            Cors::Any => AllowOrigin::any(),
            Cors::Origins(list) => AllowOrigin::list(list.clone()),
        };
        Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods([Method::GET, Method::POST, Method::PATCH])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    HeaderName::from_static("idempotency-key"),
                    HeaderName::from_static("x-request-id"),
                ])
                .expose_headers([HeaderName::from_static("x-request-id")])
                .max_age(Duration::from_secs(600)),
        )
    }
}
