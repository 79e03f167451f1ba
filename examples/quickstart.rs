//! Embedding goticket in your own program: open a store, create an event, hold two
//! seats, confirm them, and print what you got. Run it from the repository with
//! `cargo run --example quickstart [DB_FILE]`. In your own crate it needs
//! `goticket-core` and `goticket-store-sqlite` and nothing else.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use goticket_core::{
    BookingRequest, EventKey, HoldDuration, NewEvent, Principal, Role, Service, Store, parse_timestamp,
};
use goticket_store_sqlite::SqliteStore;

/// The whole flow on the SQLite file at `path`, reported to `out`.
pub fn run(path: &Path, out: &mut impl Write) -> Result<(), Box<dyn std::error::Error>> {
    let store = SqliteStore::open(path)?;
    store.migrate()?;
    let service = Service::new(Arc::new(store));

    // Every operation names who is acting; roles are checked by the service.
    let organizer = Principal::new("org@example.com".parse()?, Role::Organizer);
    let customer = Principal::new("ann@example.com".parse()?, Role::Customer);

    let mut new = NewEvent::new(
        "Rust meetup".parse()?,
        parse_timestamp("starts_at", "2090-05-04T18:00:00+02:00")?,
        parse_timestamp("ends_at", "2090-05-04T21:00:00+02:00")?,
        "80".parse()?,
        "12.50 EUR".parse()?,
    );
    new.max_per_customer = Some("4".parse()?);
    let event = service.create_event(&organizer, new)?;

    // Hold two seats for 15 minutes, then confirm them (payment went through).
    let mut request = BookingRequest::buy(EventKey::Id(event.id), "2".parse()?);
    request.hold = Some("15m".parse::<HoldDuration>()?);
    let held = service.reserve(&customer, request)?.booking;
    let booking = service.confirm(&customer, &held.code)?;

    let event = service.event(&customer, &EventKey::Id(event.id))?;
    writeln!(out, "event {} ({}): {} sold, {} available", event.name, event.id, event.sold, event.available)?;
    writeln!(
        out,
        "booking {} for {}: {} x {} = {} [{}]",
        booking.code,
        booking.customer,
        booking.quantity,
        booking.unit_price,
        booking.total(),
        booking.status
    )?;
    for ticket in &booking.tickets {
        writeln!(out, "  ticket {}: {}", ticket.seq, ticket.secret)?;
    }
    Ok(())
}

#[allow(dead_code)] // the tests include this file for `run` only
fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A database file: the first argument, or a new one in the temp directory.
    let path = std::env::args().nth(1).map_or_else(
        || std::env::temp_dir().join(format!("goticket-quickstart-{}.db", std::process::id())),
        Into::into,
    );
    run(&path, &mut std::io::stdout().lock())?;
    println!("(database: {})", path.display());
    Ok(())
}
