//! Errors as RFC 9457 problems, their OpenAPI responses (built from core's one table of
//! error kinds and statuses), and the helpers that turn request input into core's types,
//! each failure a problem that names what was wrong.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use goticket_core::{Error, ErrorKind, StoreError, StoreErrorKind, Timestamp};
use serde::de::DeserializeOwned;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};

/// Largest request body accepted.
pub(super) const BODY_LIMIT: usize = 64 * 1024;

/// The media type of every error answer.
pub(super) const PROBLEM_JSON: &str = "application/problem+json";

/// An error as an RFC 9457 problem: a stable `type` per error kind. A validation
/// problem also lists every field that was wrong (`errors`), so a form can mark them
/// all at once.
#[derive(Debug)]
pub(super) struct Problem {
    error: Error,
    /// Further errors of the same request.
    more: Vec<Error>,
}

impl Problem {
    /// Every error of one request; the first one decides the status.
    pub(super) fn all(errors: Vec<Error>) -> Self {
        let mut errors = errors.into_iter();
        let error = errors.next().unwrap_or_else(|| Error::validation("body", "is invalid"));
        Problem { error, more: errors.collect() }
    }

    pub(super) fn kind(&self) -> ErrorKind {
        self.error.kind()
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        Problem { error, more: Vec::new() }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let kind = self.error.kind();
        let mut response = problem_body(kind.http_status(), kind.as_str(), &self.error.to_string());
        if kind == ErrorKind::Validation {
            let fields: Vec<serde_json::Value> = std::iter::once(&self.error)
                .chain(&self.more)
                .filter_map(|e| match e {
                    Error::Validation { field, reason } => {
                        Some(serde_json::json!({ "field": field, "reason": reason }))
                    }
                    _ => None,
                })
                .collect();
            response["errors"] = serde_json::Value::Array(fields);
        }
        render(response)
    }
}

/// The `type` of problems of kind `kind`.
fn type_uri(kind: &str) -> String {
    format!("https://goticket.dev/problems/{kind}")
}

/// A problem response; `kind` is one of core's error kinds except for the answers to
/// requests no route takes (see [`super::router`]).
pub(super) fn problem(status: u16, kind: &str, detail: &str) -> Response {
    render(problem_body(status, kind, detail))
}

fn problem_body(status: u16, kind: &str, detail: &str) -> serde_json::Value {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    serde_json::json!({
        "type": type_uri(kind),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail,
    })
}

fn render(body: serde_json::Value) -> Response {
    let status = body["status"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(u16::try_from(s).ok()?).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], body.to_string()).into_response()
}

/// The OpenAPI response for every problem answered with `status`: its `type` is one of
/// the error kinds core maps to that status. Named so routes can refer to it.
pub(super) fn problem_response(status: u16) -> (&'static str, utoipa::openapi::Response) {
    let name = match status {
        401 => "Unauthenticated",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Refused",
        422 => "Invalid",
        500 => "StorageFailed",
        503 => "Busy",
        _ => "Problem",
    };
    let kinds: Vec<&str> = ErrorKind::ALL.iter().filter(|k| k.http_status() == status).map(|k| k.as_str()).collect();
    let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("error");
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let schema = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("An RFC 9457 problem."))
        .property(
            "type",
            string()
                .description(Some("What went wrong, stable per error kind."))
                .enum_values(Some(kinds.iter().map(|k| type_uri(k)))),
        )
        .required("type")
        .property("title", string().description(Some("The status's reason phrase.")))
        .required("title")
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some([status]))
                .description(Some("The HTTP status.")),
        )
        .required("status")
        .property("detail", string().description(Some("What was wrong, naming the field or value.")))
        .required("detail");
    let schema = if status == ErrorKind::Validation.http_status() {
        let field = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("field", string().description(Some("The field, parameter or header.")))
            .required("field")
            .property("reason", string().description(Some("What is wrong with it.")))
            .required("reason");
        schema
            .property(
                "errors",
                utoipa::openapi::schema::ArrayBuilder::new()
                    .items(field)
                    .description(Some("Every field that was wrong, the one in `detail` first.")),
            )
            .required("errors")
    } else {
        schema
    };
    let response = ResponseBuilder::new()
        .description(format!("{reason}: a problem of type {}.", kinds.join(", ")))
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(schema)).build())
        .build();
    (name, response)
}

/// Every status a route may answer with a problem.
pub(super) const PROBLEM_STATUSES: [u16; 7] = [401, 403, 404, 409, 422, 500, 503];

/// A route may answer 401: it needs a bearer token.
pub(super) const UNAUTHENTICATED: u16 = 1;
/// A route may answer 403: a role may not act.
pub(super) const FORBIDDEN: u16 = 1 << 1;
/// A route may answer 404: it names something that may not exist.
pub(super) const NOT_FOUND: u16 = 1 << 2;
/// A route may answer 409: a rule may refuse it.
pub(super) const REFUSED: u16 = 1 << 3;
/// A route may answer 422: it takes input.
pub(super) const INVALID: u16 = 1 << 4;

/// The problem responses of a route, in its `#[utoipa::path]`: those chosen in `SET`
/// (the flags above), and 500 and 503, which every route that reaches the store may
/// answer. Each refers to the response [`problem_response`] names.
#[derive(Debug)]
pub(super) struct Problems<const SET: u16>;

impl<const SET: u16> utoipa::IntoResponses for Problems<SET> {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let flags = [(401, UNAUTHENTICATED), (403, FORBIDDEN), (404, NOT_FOUND), (409, REFUSED), (422, INVALID)];
        flags
            .iter()
            .filter(|(_, flag)| SET & flag != 0)
            .map(|(status, _)| *status)
            .chain([500, 503])
            .map(|status| {
                let name = problem_response(status).0;
                (status.to_string(), RefOr::Ref(utoipa::openapi::Ref::from_response_name(name)))
            })
            .collect()
    }
}

pub(super) type Reply<T> = Result<T, Problem>;

/// Runs a service call on a blocking thread (the service is synchronous). The
/// request's deadline is [`super::deadline`]'s.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> goticket_core::Result<T> + Send + 'static,
) -> Reply<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| {
            Problem::from(Error::Storage(StoreError::new(StoreErrorKind::Other, "the request handler panicked", None)))
        })?
        .map_err(Problem::from)
}

/// The answer to a request that ran out of time: busy, retry. The work may still
/// complete, so a booking should be retried with the same `Idempotency-Key`.
pub(super) fn timed_out(limit: Duration) -> Problem {
    Problem::from(Error::Storage(StoreError::new(
        StoreErrorKind::Busy,
        format!(
            "no answer within {} s; the request may still complete: retry (a booking with the same Idempotency-Key)",
            limit.as_secs_f64()
        ),
        None,
    )))
}

/// A JSON body, with every way it can be wrong answered as a 422 problem.
pub(super) fn body<T: DeserializeOwned>(raw: Result<Bytes, BytesRejection>) -> Reply<T> {
    let bytes = raw.map_err(|r| {
        Problem::from(if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::validation("body", format!("is larger than {BODY_LIMIT} bytes"))
        } else {
            Error::validation("body", r.body_text())
        })
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Problem::from(Error::validation("body", e.to_string())))
}

/// Path parameters, with a malformed one (bad percent-encoding, say) answered as a 422
/// problem rather than axum's plain-text 400.
#[derive(Debug)]
pub(super) struct PathOf<T>(pub(super) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathOf<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(t) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|r| Problem::from(Error::validation("path", r.body_text())))?;
        Ok(PathOf(t))
    }
}

/// A query string, with unknown or malformed parameters answered as a 422 problem.
#[derive(Debug)]
pub(super) struct QueryOf<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryOf<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Query(t) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|r| Problem::from(Error::validation("query", r.body_text())))?;
        Ok(QueryOf(t))
    }
}

pub(super) fn parse<T: std::str::FromStr<Err = Error>>(field: &str, raw: &str) -> Reply<T> {
    raw.parse::<T>().map_err(|e| Problem::from(e.in_field(field)))
}

pub(super) fn opt<T: std::str::FromStr<Err = Error>>(field: &str, raw: Option<&String>) -> Reply<Option<T>> {
    raw.map(|r| parse(field, r)).transpose()
}

pub(super) fn time(field: &str, raw: Option<&String>) -> Reply<Option<Timestamp>> {
    raw.map(|r| goticket_core::parse_timestamp(field, r).map_err(Problem::from)).transpose()
}
