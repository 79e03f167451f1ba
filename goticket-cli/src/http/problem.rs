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
use goticket_core::{Error, ErrorKind, Timestamp};
use serde::de::DeserializeOwned;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};

/// Largest request body accepted.
pub(super) const BODY_LIMIT: usize = 64 * 1024;

/// The media type of every error answer.
pub(super) const PROBLEM_JSON: &str = "application/problem+json";

/// An error as an RFC 9457 problem: a stable `type` per error kind. A validation
/// problem also lists every field that was wrong (`errors`), so a form can mark them
/// all at once. A storage failure shows a fixed text, never the driver's message (it
/// can hold SQL); the full error goes to the log, under the request's id.
#[derive(Debug)]
pub(super) enum Problem {
    /// Core's errors of one request; the first one decides the status.
    Errors {
        /// The first error.
        error: Error,
        /// Further errors of the same request.
        more: Vec<Error>,
    },
    /// An answer of the HTTP layer itself, with no core error behind it.
    Http {
        /// The status.
        status: u16,
        /// The `type` suffix.
        kind: &'static str,
        /// What happened.
        detail: String,
    },
}

/// The `type` of a body past [`BODY_LIMIT`].
pub(super) const TOO_LARGE_KIND: &str = "payload-too-large";

/// Seconds a client is told to wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

impl Problem {
    /// Every error of one request; the first one decides the status.
    pub(super) fn all(errors: Vec<Error>) -> Self {
        let mut errors = errors.into_iter();
        let error = errors.next().unwrap_or_else(|| Error::validation("body", "is invalid"));
        Problem::Errors { error, more: errors.collect() }
    }

    /// Its kind's name (`sold-out`, `validation`...), one of a fixed set.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Problem::Errors { error, .. } => error.kind().as_str(),
            Problem::Http { kind, .. } => kind,
        }
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        Problem::Errors { error, more: Vec::new() }
    }
}

/// What a storage failure says in public: the real message goes to the log.
fn public_detail(kind: ErrorKind) -> Option<&'static str> {
    match kind {
        ErrorKind::Storage | ErrorKind::Internal => {
            Some("internal error; the server log has the details under this response's x-request-id")
        }
        ErrorKind::Busy => Some("the service is busy; retry in a moment (a booking with the same Idempotency-Key)"),
        _ => None,
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let (error, more) = match self {
            Problem::Http { status, kind, detail } => return problem(status, kind, &detail),
            Problem::Errors { error, more } => (error, more),
        };
        let kind = error.kind();
        let detail = match public_detail(kind) {
            Some(public) => {
                let first: &(dyn std::error::Error + 'static) = &error;
                let chain = std::iter::successors(Some(first), |e| (*e).source())
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(": ");
                if kind == ErrorKind::Internal {
                    tracing::error!(error = %chain, "internal error");
                } else if kind == ErrorKind::Storage {
                    tracing::error!(error = %chain, "storage failure");
                } else {
                    tracing::warn!(error = %chain, "busy");
                }
                public.to_owned()
            }
            None => error.to_string(),
        };
        let mut response = problem_body(kind.http_status(), kind.as_str(), &detail);
        if kind == ErrorKind::Validation {
            let fields: Vec<serde_json::Value> = std::iter::once(&error)
                .chain(&more)
                .filter_map(|e| match e {
                    Error::Validation { field, reason } => {
                        Some(serde_json::json!({ "field": field, "reason": reason }))
                    }
                    _ => None,
                })
                .collect();
            response["errors"] = serde_json::Value::Array(fields);
        }
        render(response, kind.as_str())
    }
}

/// The kind of problem a response carries (one of a fixed set of names), for the
/// metrics middleware.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProblemKind(pub(super) &'static str);

/// The `type` of problems of kind `kind`.
fn type_uri(kind: &str) -> String {
    format!("https://goticket.dev/problems/{kind}")
}

/// A problem response; `kind` is one of core's error kinds except for the answers to
/// requests no route takes (see [`super::router`]).
pub(super) fn problem(status: u16, kind: &'static str, detail: &str) -> Response {
    render(problem_body(status, kind, detail), kind)
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

/// The problem response, marked with its kind for the metrics middleware.
fn render(body: serde_json::Value, kind: &'static str) -> Response {
    let status = body["status"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(u16::try_from(s).ok()?).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], body.to_string()).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static(RETRY_AFTER_SECS));
    }
    response.extensions_mut().insert(ProblemKind(kind));
    response
}

/// The OpenAPI response for every problem answered with `status`: its `type` is one of
/// the error kinds core maps to that status. Named so routes can refer to it.
pub(super) fn problem_response(status: u16) -> (&'static str, utoipa::openapi::Response) {
    let name = match status {
        401 => "Unauthenticated",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Refused",
        413 => "TooLarge",
        422 => "Invalid",
        500 => "Failed",
        503 => "Busy",
        _ => "Problem",
    };
    let kinds: Vec<&str> = match status {
        413 => vec![TOO_LARGE_KIND],
        _ => ErrorKind::ALL.iter().filter(|k| k.http_status() == status).map(|k| k.as_str()).collect(),
    };
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
    let mut response = ResponseBuilder::new()
        .description(format!("{reason}: a problem of type {}.", kinds.join(", ")))
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(schema)).build());
    if status == 503 {
        response = response.header(
            "Retry-After",
            utoipa::openapi::HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    (name, response.build())
}

/// Every status a route may answer with a problem.
pub(super) const PROBLEM_STATUSES: [u16; 8] = [401, 403, 404, 409, 413, 422, 500, 503];

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
/// A route may answer 413: it takes a body.
pub(super) const BODY: u16 = 1 << 5;

/// The problem responses of a route, in its `#[utoipa::path]`: those chosen in `SET`
/// (the flags above), and 500 and 503, which every route that reaches the store may
/// answer. Each refers to the response [`problem_response`] names.
#[derive(Debug)]
pub(super) struct Problems<const SET: u16>;

impl<const SET: u16> utoipa::IntoResponses for Problems<SET> {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let flags =
            [(401, UNAUTHENTICATED), (403, FORBIDDEN), (404, NOT_FOUND), (409, REFUSED), (413, BODY), (422, INVALID)];
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

/// Runs a service call on a blocking thread (the service is synchronous), inside the
/// request's span, so the spans core opens there are the request's children. The
/// request's deadline is [`super::deadline`]'s.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> goticket_core::Result<T> + Send + 'static,
) -> Reply<T> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|_| Problem::from(Error::internal("the request handler panicked")))?
        .map_err(Problem::from)
}

/// The answer to a request that ran out of time: busy, retry. The work may still
/// complete, so a booking should be retried with the same `Idempotency-Key`.
pub(super) fn timed_out(limit: Duration) -> Problem {
    Problem::Http {
        status: 503,
        kind: ErrorKind::Busy.as_str(),
        detail: format!(
            "no answer within {} s; the request may still complete: retry (a booking with the same Idempotency-Key)",
            limit.as_secs_f64()
        ),
    }
}

/// A JSON body: one past [`BODY_LIMIT`] is a 413 problem, every other way it can be
/// wrong a 422.
pub(super) fn body<T: DeserializeOwned>(raw: Result<Bytes, BytesRejection>) -> Reply<T> {
    let bytes = raw.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::Http {
                status: 413,
                kind: TOO_LARGE_KIND,
                detail: format!("the body is larger than {BODY_LIMIT} bytes"),
            }
        } else {
            Problem::from(Error::validation("body", r.body_text()))
        }
    })?;
    // serde's derived structs also take a JSON array, field by field in order
    // (`["admin"]` would rename an event): every body this API takes is an object.
    if bytes.iter().find(|b| !b" \t\r\n".contains(b)) != Some(&b'{') {
        return Err(Problem::from(Error::validation("body", "must be a JSON object")));
    }
    let mut json = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        Problem::from(Error::validation(field, plain(&e.into_inner().to_string())))
    })?;
    // Nothing but white space may follow the object.
    json.end().map_err(|e| Problem::from(Error::validation("body", plain(&e.to_string()))))?;
    Ok(value)
}

/// A query-string error as a caller reads it: the parameter named as the field, no
/// framework preamble ("Failed to deserialize query string: limt: unknown field").
fn query_error(text: &str) -> Error {
    let rest = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(text);
    match rest.split_once(": ") {
        Some((name, why)) if !name.contains(' ') => {
            let why =
                why.replace("unknown field", "is not a query parameter of this route").replace("field", "parameter");
            Error::validation(name, plain(&why))
        }
        _ => Error::validation("query", plain(rest)),
    }
}

/// A JSON error in words a caller knows: serde names Rust's types (`u32`, `struct
/// Foo`), which mean nothing outside this code base.
fn plain(message: &str) -> String {
    let words: Vec<&str> = message.split(' ').collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        let (core, tail) = w.split_at(w.trim_end_matches([',', ';']).len());
        let number = matches!(core, "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64");
        if number {
            out.push(format!("a whole number{tail}"));
        } else if matches!(core, "f32" | "f64") {
            out.push(format!("a number{tail}"));
        } else if matches!(core, "struct" | "enum") && i + 1 < words.len() {
            let next = words[i + 1];
            let tail = &next[next.trim_end_matches([',', ';']).len()..];
            out.push(format!("{}{tail}", if core == "struct" { "an object" } else { "one of the documented values" }));
            i += 1;
        } else {
            out.push(w.to_owned());
        }
        i += 1;
    }
    out.join(" ")
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

/// An optional query parameter given empty (`?event=&cursor=`, as forms and generated
/// clients send) is the same as one left out; an unknown one is still refused.
pub(crate) fn empty_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(<Option<String> as serde::Deserialize>::deserialize(d)?.filter(|v| !v.is_empty()))
}

/// A query string, with unknown or malformed parameters answered as a 422 problem.
#[derive(Debug)]
pub(super) struct QueryOf<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryOf<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Query(t) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|r| Problem::from(query_error(&r.body_text())))?;
        Ok(QueryOf(t))
    }
}

/// [`crate::parse::parse`], answered as a problem.
pub(super) fn parse<T: std::str::FromStr<Err = Error>>(field: &str, raw: &str) -> Reply<T> {
    crate::parse::parse(field, raw).map_err(Problem::from)
}

/// [`crate::parse::parse_opt`], answered as a problem.
pub(super) fn opt<T: std::str::FromStr<Err = Error>>(field: &str, raw: Option<&String>) -> Reply<Option<T>> {
    crate::parse::parse_opt(field, raw.map(String::as_str)).map_err(Problem::from)
}

/// [`crate::parse::time_opt`], answered as a problem.
pub(super) fn time(field: &str, raw: Option<&String>) -> Reply<Option<Timestamp>> {
    crate::parse::time_opt(field, raw.map(String::as_str)).map_err(Problem::from)
}

#[cfg(test)]
mod plain_tests {
    use super::plain;

    #[test]
    fn query_errors_name_the_parameter() {
        let e = super::query_error(
            "Failed to deserialize query string: limt: unknown field `limt`, expected one of `limit`, `cursor`",
        );
        assert_eq!(
            e.to_string(),
            "invalid limt: is not a query parameter of this route `limt`, expected one of `limit`, `cursor`"
        );
        let e = super::query_error("Failed to deserialize query string: limit: invalid digit found in string");
        assert_eq!(e.to_string(), "invalid limit: invalid digit found in string");
    }

    #[test]
    fn serde_errors_name_no_rust_types() {
        assert_eq!(
            plain(r#"invalid type: string "x", expected u32 at line 1 column 9"#),
            r#"invalid type: string "x", expected a whole number at line 1 column 9"#
        );
        assert_eq!(
            plain("invalid type: sequence, expected struct EventBody"),
            "invalid type: sequence, expected an object"
        );
        assert_eq!(plain("expected enum Role, got x"), "expected one of the documented values, got x");
        assert_eq!(plain("expected f64"), "expected a number");
        assert_eq!(plain("missing field `name`"), "missing field `name`");
    }
}
