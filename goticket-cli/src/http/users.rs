//! Accounts over HTTP: sign-up, login (a signed, expiring bearer token), the bearer
//! check that turns a request into core's principal, and the admin's user routes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use goticket_core::users::User;
use goticket_core::{Email, Error, Principal, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{
    BODY, FORBIDDEN, INVALID, NOT_FOUND, PathOf, Problem, Problems, REFUSED, Reply, UNAUTHENTICATED, blocking, body,
    parse,
};
use super::{App, Items};

/// What a token says: who, in which role, until when.
#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iat: u64,
    exp: u64,
}

/// The caller, from a valid bearer token.
pub(super) struct Caller(pub(super) Principal);

impl FromRequestParts<App> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let unauth = |reason: &str| Problem::from(Error::Unauthenticated { reason: reason.into() });
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| unauth("a bearer token is required"))?;
        // The scheme is case-insensitive (RFC 9110 section 11.1).
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| unauth("the Authorization header is not \"Bearer <token>\""))?;
        // The server's own algorithm only (no confusion between a secret and a public
        // key), and no leeway: a token is refused the second its `exp` passes.
        let claims: Claims = app.signer.verify(token).map_err(|e| unauth(token_problem(&e)))?;
        let email: Email = claims.sub.parse().map_err(|_| unauth("invalid token subject"))?;
        let role: Role = claims.role.parse().map_err(|_| unauth("invalid token role"))?;
        Ok(Caller(Principal::new(email, role)))
    }
}

/// An email and a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Credentials {
    #[schema(value_type = Email)]
    email: String,
    /// The password (at sign-up: see the `Password` schema for the rule; a login
    /// takes whatever the account was given, so older, shorter ones still work).
    password: String,
}

/// A new customer's email and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SignUp {
    #[schema(value_type = Email)]
    email: String,
    #[schema(value_type = goticket_core::users::Password)]
    password: String,
}

/// A signed bearer token.
#[derive(Serialize, ToSchema)]
pub(super) struct Token {
    /// Send it as `Authorization: Bearer <token>`.
    token: String,
    /// Seconds until it expires.
    expires_in: u64,
}

/// Signs up a customer.
#[utoipa::path(
    post,
    path = "/v1/auth/register",
    tag = "users",
    request_body = SignUp,
    responses(
        (status = 201, description = "The account, a customer's.", body = User),
        Problems<{ REFUSED | INVALID | BODY }>,
    ),
)]
pub(super) async fn register(State(app): State<App>, raw: Result<Bytes, BytesRejection>) -> Reply<impl IntoResponse> {
    let c: SignUp = body(raw)?;
    let email: Email = parse("email", &c.email)?;
    let password = parse("password", &c.password)?;
    let user = blocking(move || app.service.register(email, &password)).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Logs in: a token for the bearer header.
///
/// A wrong password and an unknown email get the same answer. The token carries the
/// role the account had at login.
#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "users",
    request_body = Credentials,
    responses(
        (status = 200, description = "A token.", body = Token),
        Problems<{ UNAUTHENTICATED | INVALID | BODY }>,
    ),
)]
pub(super) async fn login(State(app): State<App>, raw: Result<Bytes, BytesRejection>) -> Reply<impl IntoResponse> {
    let c: Credentials = body(raw)?;
    let email: Email = parse("email", &c.email)?;
    let service = app.service.clone();
    let p = blocking(move || service.authenticate(&email, &c.password)).await?;
    let now = jsonwebtoken::get_current_timestamp();
    let claims =
        Claims { sub: p.email().to_string(), role: p.role().to_string(), iat: now, exp: now + app.ttl.as_secs() };
    let token =
        app.signer.sign(&claims).map_err(|e| Problem::from(Error::internal(format!("cannot sign a token: {e}"))))?;
    Ok(Json(Token { token, expires_in: app.ttl.as_secs() }))
}

/// Why a bearer token was refused, in words (the library's own are type names such as
/// `InvalidToken`).
fn token_problem(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "the token has expired; log in again",
        K::ImmatureSignature => "the token is not valid yet",
        K::InvalidSignature => "the token's signature does not match this server's key",
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => {
            "the token is signed with an algorithm this server does not accept"
        }
        K::MissingRequiredClaim(_) | K::InvalidIssuer | K::InvalidAudience | K::InvalidSubject => {
            "the token lacks a claim this server needs"
        }
        _ => "the bearer value is not a token this server issued",
    }
}

/// Lists every account (admins only).
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every account, by email.", body = Items<User>),
        Problems<{ UNAUTHENTICATED | FORBIDDEN }>,
    ),
)]
pub(super) async fn list_users(State(app): State<App>, Caller(p): Caller) -> Reply<impl IntoResponse> {
    let users = blocking(move || app.service.list_users(&p)).await?;
    Ok(Json(Items { items: users }))
}

/// A new account with its role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    #[schema(value_type = Email)]
    email: String,
    #[schema(value_type = Role)]
    role: String,
    #[schema(value_type = goticket_core::users::Password)]
    password: String,
}

/// Adds an account in any role (admins only).
#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "users",
    security(("bearer" = [])),
    request_body = NewUser,
    responses(
        (status = 201, description = "The account.", body = User),
        Problems<{ UNAUTHENTICATED | FORBIDDEN | REFUSED | INVALID | BODY }>,
    ),
)]
pub(super) async fn add_user(
    State(app): State<App>,
    Caller(p): Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Reply<impl IntoResponse> {
    let u: NewUser = body(raw)?;
    let (email, role) = (parse("email", &u.email)?, parse("role", &u.role)?);
    let password = parse("password", &u.password)?;
    let user = blocking(move || app.service.add_user(&p, email, role, &password)).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// A change to an account: a role (admins only), a password (admins, or users for
/// themselves), or both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserChange {
    /// The new role (admins only). Give it, the password, or both; never null.
    #[schema(value_type = Role, required = false)]
    role: Option<String>,
    /// The new password; never null.
    #[schema(value_type = goticket_core::users::Password, required = false)]
    password: Option<String>,
    /// Required to change one's own password (admins too): a stolen token alone does
    /// not take the account.
    current_password: Option<String>,
}

/// Changes an account's role, password, or both at once.
///
/// Only admins change roles; users change their own password (giving the current
/// one), admins anyone's. The last admin account keeps its role (409). A change that
/// is refused changes nothing. A new role applies from the next login.
#[utoipa::path(
    patch,
    path = "/v1/users/{email}",
    tag = "users",
    security(("bearer" = [])),
    params(("email" = goticket_core::Email, Path, description = "The account's email.")),
    request_body = UserChange,
    responses(
        (status = 200, description = "The account, changed.", body = User),
        Problems<{ UNAUTHENTICATED | FORBIDDEN | NOT_FOUND | REFUSED | INVALID | BODY }>,
    ),
)]
pub(super) async fn change_user(
    State(app): State<App>,
    Caller(p): Caller,
    PathOf(email): PathOf<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply<impl IntoResponse> {
    let email: Email = parse("email", &email)?;
    let change: UserChange = body(raw)?;
    let role: Option<Role> = change.role.as_deref().map(|r| parse("role", r)).transpose()?;
    let password = change.password.as_deref().map(|pw| parse("password", pw)).transpose()?;
    let current = change.current_password;
    Ok(Json(blocking(move || app.service.change_user(&p, &email, role, password.as_ref(), current.as_deref())).await?))
}
