//! The tables, as `diesel print-schema` writes them for the migrations.
#![allow(missing_docs)]

diesel::table! {
    events (id) {
        id -> Uuid,
        slug -> Nullable<Text>,
        name -> Text,
        description -> Nullable<Text>,
        venue -> Nullable<Text>,
        starts_at -> Timestamptz,
        ends_at -> Timestamptz,
        capacity -> Int4,
        price_minor -> Int8,
        currency -> Text,
        max_per_customer -> Nullable<Int4>,
        sales_start -> Nullable<Timestamptz>,
        sales_end -> Nullable<Timestamptz>,
        status -> Text,
        organizer -> Text,
        held -> Int4,
        sold -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        external_id -> Nullable<Text>,
    }
}

diesel::table! {
    bookings (id) {
        id -> Uuid,
        code -> Text,
        event_id -> Uuid,
        customer -> Text,
        quantity -> Int4,
        status -> Text,
        unit_price_minor -> Int8,
        currency -> Text,
        expires_at -> Nullable<Timestamptz>,
        idempotency_key -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        external_id -> Nullable<Text>,
    }
}

diesel::table! {
    tickets (booking_id, seq) {
        booking_id -> Uuid,
        seq -> Int4,
        secret -> Text,
        checked_in_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    users (email) {
        email -> Text,
        role -> Text,
        password_hash -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(bookings -> events (event_id));
diesel::joinable!(tickets -> bookings (booking_id));
diesel::allow_tables_to_appear_in_same_query!(events, bookings, tickets, users);
