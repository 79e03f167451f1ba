//! Event routes: create, list, show, update, cancel.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use goticket_core::{Event, EventFields, EventFilter, EventKey, EventStatus, Money, Page};
use serde::Deserialize;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::App;
use super::problem::{
    BODY, FORBIDDEN, INVALID, NOT_FOUND, PathOf, Problem, Problems, QueryOf, REFUSED, Reply, UNAUTHENTICATED, blocking,
    body, opt, parse, time,
};
use super::users::Caller;

/// An event's fields, as the CLI's JSON names them. To update, send only what changes;
/// `null` clears an optional field (slug, description, venue, max_per_customer,
/// sales_start, sales_end), and an empty text is refused rather than taken as either.
/// The organizer cannot change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventBody {
    /// 1 to 200 characters.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<goticket_core::EventName>)]
    name: Option<Option<String>>,
    /// A unique short name to use instead of the id: lowercase letters, digits, dashes.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<goticket_core::Slug>)]
    slug: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    venue: Option<Option<String>>,
    /// Start (RFC 3339).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    starts_at: Option<Option<String>>,
    /// End (RFC 3339), after the start.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    ends_at: Option<Option<String>>,
    /// Seats in total; never below the seats held and sold.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<goticket_core::Capacity>)]
    capacity: Option<Option<u32>>,
    /// Price of one seat: text like `20.00 EUR` (as everywhere else), or the
    /// structured form responses use.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<MoneyInput>)]
    price: Option<Option<Money>>,
    /// Most seats one customer may hold or buy.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<goticket_core::PerCustomerLimit>)]
    max_per_customer: Option<Option<u32>>,
    /// When sales open (RFC 3339), before the event ends; at once if absent.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    sales_start: Option<Option<String>>,
    /// When sales close (RFC 3339); at the event's end if absent.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    sales_end: Option<Option<String>>,
    /// The owner, if an admin creates the event for an organizer; else the caller.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<goticket_core::Email>)]
    organizer: Option<Option<String>>,
    /// Allow a start in the past (entering an event that has already happened); a
    /// start that has passed is refused otherwise. Not a change by itself.
    #[serde(default)]
    allow_past: bool,
}

/// Money in a request: the text every other input takes, or the structured form.
pub(super) struct MoneyInput;

impl PartialSchema for MoneyInput {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::OneOfBuilder;
        OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("MoneyText"))
            .item(utoipa::openapi::Ref::from_schema_name("Money"))
            .description(Some("Money as text or in minor units."))
            .into()
    }
}

impl ToSchema for MoneyInput {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Money::name().into_owned(), Money::schema()));
        schemas.push(("MoneyText".into(), goticket_core::MoneyText::schema()));
        Money::schemas(schemas);
    }
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl EventBody {
    /// The body as core's event fields (numbers and money back to text, so core parses
    /// every face's input the same way), and the fields sent as `null`.
    fn fields(self) -> (EventFields, Vec<&'static str>, bool) {
        let allow_past = self.allow_past;
        let mut nulls = Vec::new();
        let mut take = |name: &'static str, v: Option<Option<String>>| {
            if v == Some(None) {
                nulls.push(name);
            }
            v.flatten()
        };
        let fields = EventFields {
            name: take("name", self.name),
            starts_at: take("starts_at", self.starts_at),
            ends_at: take("ends_at", self.ends_at),
            capacity: take("capacity", self.capacity.map(|c| c.map(|c| c.to_string()))),
            price: take("price", self.price.map(|m| m.map(|m| m.to_string()))),
            slug: take("slug", self.slug),
            venue: take("venue", self.venue),
            description: take("description", self.description),
            max_per_customer: take("max_per_customer", self.max_per_customer.map(|m| m.map(|m| m.to_string()))),
            sales_start: take("sales_start", self.sales_start),
            sales_end: take("sales_end", self.sales_end),
            organizer: take("organizer", self.organizer),
            external_id: None,
        };
        (fields, nulls, allow_past)
    }
}

/// The body that creates an event: [`EventBody`] with core's required fields required.
pub(super) struct NewEventBody;

impl PartialSchema for NewEventBody {
    fn schema() -> RefOr<Schema> {
        let mut schema = EventBody::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.required = EventFields::REQUIRED.iter().map(|f| (*f).to_owned()).collect();
            // A required field is also not null here (the update body's null clears).
            for field in EventFields::REQUIRED {
                if let Some(property) = object.properties.get_mut(field) {
                    not_null(property);
                }
            }
            object.description = Some("A new event; name, starts_at, ends_at, capacity and price are required.".into());
            text_rules(object);
        }
        schema
    }
}

impl ToSchema for NewEventBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        EventBody::schemas(schemas);
    }
}

/// The body that changes an event: [`EventBody`] where only the clearable fields may
/// be `null`, and without the organizer (who cannot change).
pub(super) struct UpdateEventBody;

impl PartialSchema for UpdateEventBody {
    fn schema() -> RefOr<Schema> {
        let mut schema = EventBody::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.properties.remove("organizer");
            for (name, property) in object.properties.iter_mut() {
                if !EventFields::CLEARABLE.contains(&name.as_str()) {
                    not_null(property);
                }
            }
            object.description = Some(
                "A change: only the fields given change; null clears slug, description, venue, \
                 max_per_customer, sales_start or sales_end."
                    .into(),
            );
            text_rules(object);
        }
        schema
    }
}

impl ToSchema for UpdateEventBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        EventBody::schemas(schemas);
    }
}

/// Venue and description obey the rule of every free text (core's `TEXT_PATTERN`).
fn text_rules(object: &mut utoipa::openapi::schema::Object) {
    for (field, max) in [("venue", 200), ("description", 10_000)] {
        if let Some(RefOr::T(Schema::Object(o))) = object.properties.get_mut(field) {
            o.pattern = Some(goticket_core::TEXT_PATTERN.into());
            o.max_length = Some(max);
        }
    }
}

/// The property without its `null` alternative: `["string", "null"]` becomes
/// `"string"`, and `oneOf: [null, X]` becomes `X`.
fn not_null(property: &mut RefOr<Schema>) {
    use utoipa::openapi::schema::{SchemaType, Type};
    match property {
        RefOr::T(Schema::Object(o)) => {
            if let SchemaType::Array(types) = &o.schema_type {
                let kept: Vec<Type> = types.iter().filter(|t| **t != Type::Null).cloned().collect();
                if let [one] = kept.as_slice() {
                    o.schema_type = SchemaType::Type(one.clone());
                }
            }
        }
        RefOr::T(Schema::OneOf(one)) => {
            let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
            let kept: Vec<RefOr<Schema>> = one.items.iter().filter(|s| !is_null(s)).cloned().collect();
            if let [only] = kept.as_slice() {
                *property = only.clone();
            }
        }
        _ => {}
    }
}

/// The `{event}` path parameter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct EventPath {
    /// The event's id or slug.
    #[param(value_type = goticket_core::EventKey)]
    event: String,
}

impl EventPath {
    pub(super) fn key(&self) -> Reply<EventKey> {
        parse("event", &self.event)
    }
}

/// Creates an event.
///
/// Organizers create events for themselves, admins for any organizer.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    security(("bearer" = [])),
    request_body = NewEventBody,
    responses(
        (status = 201, description = "The event, as created.", body = Event),
        Problems<{ UNAUTHENTICATED | FORBIDDEN | REFUSED | INVALID | BODY }>,
    ),
)]
pub(super) async fn create_event(
    State(app): State<App>,
    Caller(p): Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Reply<impl IntoResponse> {
    // Who may create comes before what the body says.
    app.service.may_create_events(&p)?;
    // On creation a null is the same as leaving the field out.
    let (fields, _, allow_past) = body::<EventBody>(raw)?.fields();
    let mut new = fields.parse().map_err(Problem::all)?;
    new.allow_past = allow_past;
    let e = blocking(move || app.service.create_event(&p, new)).await?;
    Ok((StatusCode::CREATED, Json(e)))
}

/// Changes an event.
///
/// Its organizer or an admin may. Send only the fields that change; `null` clears an
/// optional one. Capacity never drops below the seats held and sold.
#[utoipa::path(
    patch,
    path = "/v1/events/{event}",
    tag = "events",
    security(("bearer" = [])),
    params(EventPath),
    request_body = UpdateEventBody,
    responses(
        (status = 200, description = "The event, changed.", body = Event),
        Problems<{ UNAUTHENTICATED | FORBIDDEN | NOT_FOUND | REFUSED | INVALID | BODY }>,
    ),
)]
pub(super) async fn update_event(
    State(app): State<App>,
    Caller(p): Caller,
    PathOf(path): PathOf<EventPath>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply<impl IntoResponse> {
    let key = path.key()?;
    let (fields, nulls, allow_past) = body::<EventBody>(raw)?.fields();
    let mut patch = fields.parse_patch(&nulls).map_err(Problem::all)?;
    patch.allow_past = allow_past;
    Ok(Json(blocking(move || app.service.update_event(&p, &key, &patch)).await?))
}

paged_query!(
    /// Which events to list, and which page.
    EventQuery {
        /// Events starting at or after this time (RFC 3339).
        #[param(value_type = Option<String>, format = DateTime)]
        from: Option<String>,
        /// Events starting before this time (RFC 3339).
        #[param(value_type = Option<String>, format = DateTime)]
        to: Option<String>,
        /// Events at this price or more, like `10.00 EUR` (same currency only).
        #[param(value_type = Option<goticket_core::MoneyText>)]
        min_price: Option<String>,
        /// Events at this price or less, like `50 EUR` (same currency only).
        #[param(value_type = Option<goticket_core::MoneyText>)]
        max_price: Option<String>,
        /// Only events in this state.
        #[param(value_type = Option<EventStatus>)]
        status: Option<String>,
    }
);

/// Lists events, by start time.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    security(("bearer" = [])),
    params(EventQuery),
    responses(
        (status = 200, description = "A page of events.", body = Page<Event>),
        Problems<{ UNAUTHENTICATED | INVALID }>,
    ),
)]
pub(super) async fn list_events(
    State(app): State<App>,
    Caller(p): Caller,
    QueryOf(q): QueryOf<EventQuery>,
) -> Reply<impl IntoResponse> {
    let filter = EventFilter {
        starts_from: time("from", q.from.as_ref())?,
        starts_before: time("to", q.to.as_ref())?,
        min_price: opt("min_price", q.min_price.as_ref())?,
        max_price: opt("max_price", q.max_price.as_ref())?,
        status: opt("status", q.status.as_ref())?,
        organizer: None,
    };
    let page = q.page()?;
    Ok(Json(blocking(move || app.service.list_events(&p, &filter, page)).await?))
}

/// One event, with its live counters.
#[utoipa::path(
    get,
    path = "/v1/events/{event}",
    tag = "events",
    security(("bearer" = [])),
    params(EventPath),
    responses(
        (status = 200, description = "The event.", body = Event),
        Problems<{ UNAUTHENTICATED | NOT_FOUND | INVALID }>,
    ),
)]
pub(super) async fn show_event(
    State(app): State<App>,
    Caller(p): Caller,
    PathOf(path): PathOf<EventPath>,
) -> Reply<impl IntoResponse> {
    let key = path.key()?;
    Ok(Json(blocking(move || app.service.event(&p, &key)).await?))
}

/// Cancels an event: sales stop and its live bookings are cancelled.
///
/// Its organizer or an admin may.
#[utoipa::path(
    post,
    path = "/v1/events/{event}/cancel",
    tag = "events",
    security(("bearer" = [])),
    params(EventPath),
    responses(
        (status = 200, description = "The event, cancelled.", body = Event),
        Problems<{ UNAUTHENTICATED | FORBIDDEN | NOT_FOUND | REFUSED | INVALID }>,
    ),
)]
pub(super) async fn cancel_event(
    State(app): State<App>,
    Caller(p): Caller,
    PathOf(path): PathOf<EventPath>,
) -> Reply<impl IntoResponse> {
    let key = path.key()?;
    Ok(Json(blocking(move || app.service.cancel_event(&p, &key)).await?))
}
