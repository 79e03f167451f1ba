//! One function per command: parse the arguments with core's types, call the
//! service, render.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::{Context, Result};
use goticket_core::{
    BookingCode, BookingFilter, BookingRequest, Email, Error, EventFields, EventFilter, EventKey, PageRequest,
    Principal, Role, Service, Store, TicketSecret,
};
use goticket_store_pg::PgStore;
use goticket_store_sqlite::SqliteStore;

use crate::args::{
    BookingCmd, Cli, Command, EventCmd, ExportCmd, Format, HoldsCmd, ImportCmd, PageArgs, ReportCmd, UserCmd,
};
#[cfg(feature = "http")]
use crate::http::keys::Signer;
use crate::output::Out;
use crate::parse::{Backend, parse, parse_opt, time_opt};
use goticket_core::users::Password;

/// The principal the CLI acts as when `--as` is not given.
const ADMIN_EMAIL: &str = "admin@goticket.local";

/// The first of core's field errors, named by the flag that carried the field
/// (`starts_at` -> `--starts-at`).
fn flag_error(errors: Vec<Error>) -> Error {
    let first = errors.into_iter().next().unwrap_or_else(|| Error::validation("input", "is invalid"));
    match &first {
        Error::Validation { field, .. } => {
            let flag = format!("--{}", field.replace('_', "-"));
            first.in_field(&flag)
        }
        _ => first,
    }
}

/// Opens the store a `--db` URL names and brings its schema up to date.
/// `flag` names where the URL came from, for messages.
pub fn open_store(url: &str, flag: &str) -> Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match Backend::of(url) {
        Backend::Postgres => Arc::new(PgStore::connect(url).map_err(|e| e.in_field(flag))?),
        Backend::Sqlite => Arc::new(SqliteStore::open_url(url).map_err(|e| e.in_field(flag))?),
    };
    let notes = store.migrate().with_context(|| format!("preparing the database {}", redact(url)))?;
    for note in notes {
        eprintln!("goticket: migration: {note}");
    }
    Ok(store)
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (url, None),
    };
    let mut out = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    };
    // libpq also takes the password as a parameter: `?password=...`.
    if let Some(q) = query {
        let masked: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&masked.join("&"));
    }
    out
}

/// The admin by default; with `--as`, that user with their stored role.
fn principal(s: &Service, as_user: &Option<String>) -> Result<Principal, Error> {
    match as_user {
        None => Ok(Principal::new(ADMIN_EMAIL.parse()?, Role::Admin)),
        Some(email) => s.principal_for(parse::<Email>("--as", email)?),
    }
}

/// A duration flag (`30s`, `5m`, 1 second to 7 days), as the standard library's.
fn duration(flag: &str, raw: &str) -> Result<std::time::Duration> {
    let d: goticket_core::HoldDuration = raw.parse().map_err(|e: Error| e.in_field(flag))?;
    Ok(std::time::Duration::from_secs(u64::try_from(d.get().as_secs()).unwrap_or(1)))
}

/// The database URL: `--db`, or what `--db-file` holds. No message quotes the file,
/// which holds a password.
fn database_url(cli: &Cli) -> Result<String> {
    let Some(path) = &cli.db_file else { return Ok(cli.db.clone()) };
    if cli.db_on_command_line {
        return Err(Error::validation("--db-file", "give --db or --db-file, not both").into());
    }
    // Anything else would be taken for a SQLite path, and messages about a path quote
    // it: a URL with a password in it, from a secret, must never be shown.
    secret_url("--db-file", path, &["postgres://", "postgresql://", "sqlite:"])
}

/// A URL read from a secret file named by `flag`: a regular file (a FIFO or a device
/// would block or never end) of at most 64 KiB holding one line that starts with one
/// of `schemes`. No message quotes the file, which holds a password.
fn secret_url(flag: &str, path: &std::path::Path, schemes: &[&str]) -> Result<String> {
    const MOST: u64 = 64 * 1024;
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("{flag}: opening {shown}"))?;
    if !meta.is_file() {
        return Err(Error::validation(flag, format!("{shown} is not a regular file")).into());
    }
    let file = std::fs::File::open(path).with_context(|| format!("{flag}: opening {shown}"))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, MOST + 1), &mut text)
        .map_err(|_| Error::validation(flag, format!("{shown} is not a UTF-8 text file")))?;
    let url = text.trim();
    let problem = if text.len() as u64 > MOST {
        Some("is larger than 64 KiB; it should hold one URL".to_owned())
    } else if url.is_empty() {
        Some("is empty; it should hold the URL".to_owned())
    } else if url.contains(['\n', '\r']) {
        Some("holds more than one line; it should hold one URL".to_owned())
    } else if !schemes.iter().any(|s| url.starts_with(s)) {
        let (last, rest) = schemes.split_last().unwrap_or((&"", &[]));
        let named = if rest.is_empty() { (*last).to_owned() } else { format!("{} or {last}", rest.join(", ")) };
        Some(format!("does not hold a {named} URL"))
    } else {
        None
    };
    match problem {
        Some(p) => Err(Error::validation(flag, format!("{shown} {p}")).into()),
        None => Ok(url.to_owned()),
    }
}

/// The relay's broker URL: `--to`, or what the secret file holds.
#[cfg(feature = "amqp")]
fn relay_url(flag: &str, url: Option<&str>, file: Option<&std::path::Path>) -> Result<Option<String>> {
    match (url.filter(|u| !u.trim().is_empty()), file) {
        (Some(_), Some(_)) => Err(Error::validation(flag, "give the URL or its file, not both").into()),
        (Some(u), None) => Ok(Some(u.to_owned())),
        (None, Some(path)) => secret_url(&format!("{flag}-file"), path, &["amqp://", "amqps://"]).map(Some),
        (None, None) => Ok(None),
    }
}

/// `goticket events ...`.
fn events(s: &Service, p: &Principal, cmd: crate::args::EventsCmd, out: &mut Out<impl Write>) -> Result<()> {
    match cmd {
        crate::args::EventsCmd::Status { name } => out.one(&s.relay_status(p, &name)?)?,
        crate::args::EventsCmd::Prune { older_than, relay, unpublished_too } => {
            let age: goticket_core::Retention = parse("--older-than", &older_than)?;
            let n = s.prune_events(p, age, &relay, unpublished_too)?;
            out.message(&format!("{n} events pruned"), serde_json::json!({ "pruned": n }))?;
        }
        #[cfg(feature = "amqp")]
        crate::args::EventsCmd::Relay(a) => {
            let (lease, pace, timeout) = relay_settings(&a)?;
            let to = relay_url("--to", a.to.as_deref(), a.to_file.as_deref())?.ok_or_else(|| {
                Error::validation("--to", "give the broker's URL (--to) or a file holding it (--to-file)")
            })?;
            let mut publisher = crate::relay::Amqp::new(&to, &a.exchange, timeout)?;
            let stop = crate::relay::stop_on_signal()?;
            let n = crate::relay::run(s, p, &lease, &mut publisher, &pace, &stop)?;
            out.message(&format!("{n} events published"), serde_json::json!({ "published": n }))?;
        }
    }
    Ok(())
}

/// A relay's lease and pace from its flags.
#[cfg(feature = "amqp")]
pub(crate) fn relay_settings(
    a: &crate::args::RelayArgs,
) -> Result<(goticket_core::RelayLease, crate::relay::Pace, std::time::Duration)> {
    let ttl = duration("--lease", &a.lease)?;
    let timeout = duration("--timeout", &a.timeout)?;
    // A step may connect (one timeout) and then publish (another) before it renews.
    if timeout * 2 >= ttl {
        return Err(Error::validation(
            "--timeout",
            "must be under half of --lease (a step may connect and publish, each up to --timeout, before it renews)",
        )
        .into());
    }
    if !(1..=10_000).contains(&a.batch) {
        return Err(Error::validation("--batch", format!("must be between 1 and 10000, got {}", a.batch)).into());
    }
    if a.name.is_empty() || a.name.len() > 100 {
        return Err(Error::validation("--name", "must be 1 to 100 bytes").into());
    }
    let lease = goticket_core::RelayLease {
        name: a.name.clone(),
        owner: crate::relay::owner_id(),
        ttl: goticket_core::SignedDuration::try_from(ttl).map_err(|e| Error::validation("--lease", e.to_string()))?,
    };
    let pace = crate::relay::Pace { batch: a.batch, poll: duration("--poll", &a.poll)?, once: a.once };
    Ok((lease, pace, timeout))
}

/// `goticket health`: one GET, 200 in time or an error naming what came instead.
#[cfg(feature = "http")]
fn health(a: &crate::args::HealthArgs) -> Result<String> {
    if !a.url.starts_with("http://") {
        return Err(Error::validation("--url", format!("{:?} is not an http:// URL", a.url)).into());
    }
    let timeout = duration("--timeout", &a.timeout)?;
    let agent = ureq::AgentBuilder::new().timeout(timeout).redirects(0).build();
    match agent.get(&a.url).call() {
        Ok(r) if r.status() == 200 => Ok(format!("{} answered 200", a.url)),
        Ok(r) => anyhow::bail!("{} answered {} {}", a.url, r.status(), r.status_text()),
        Err(ureq::Error::Status(code, r)) => anyhow::bail!("{} answered {code} {}", a.url, r.status_text()),
        Err(e) => anyhow::bail!("{} did not answer within {}: {e}", a.url, a.timeout),
    }
}

/// `goticket serve`: settings from flags and environment, then the server.
#[cfg(feature = "http")]
fn serve(service: Service, a: &crate::args::ServeArgs) -> Result<()> {
    let addr = a.addr.parse().map_err(|_| Error::validation("--addr", format!("{:?} is not host:port", a.addr)))?;
    let read = |path: &std::path::Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let signer = match (&a.jwt_key_file, &a.jwt_secret_file, std::env::var("GOTICKET_JWT_SECRET")) {
        (Some(path), _, _) => {
            let pem = String::from_utf8(read(path)?).map_err(|_| {
                Error::validation("--jwt-key-file", format!("{} is not a PEM text file", path.display()))
            })?;
            Signer::ed25519_pem(&pem).map_err(|e| e.in_field(&format!("--jwt-key-file {}", path.display())))?
        }
        (None, Some(path), _) => Signer::hmac(read(path)?)?,
        (None, None, Ok(s)) => Signer::hmac(s.into_bytes())?,
        (None, None, Err(_)) => {
            eprintln!(
                "goticket: warning: no --jwt-key-file, GOTICKET_JWT_SECRET or --jwt-secret-file; tokens will not \
                 survive a restart"
            );
            let mut key = vec![0u8; 32];
            goticket_core::Entropy::fill(&goticket_core::OsEntropy, &mut key);
            Signer::hmac(key)?
        }
    };
    let token_ttl = duration("--token-ttl", &a.token_ttl)?;
    let sweep_every = duration("--sweep-every", &a.sweep_every)?;
    let request_timeout = duration("--request-timeout", &a.request_timeout)?;
    let header_timeout = duration("--header-timeout", &a.header_timeout)?;
    let shutdown_grace = duration("--shutdown-grace", &a.shutdown_grace)?;
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let hashing = a.hash_concurrency.unwrap_or(cores).max(1);
    // A short queue: a burst of logins waits a moment, a flood is told to come back.
    let gate = goticket_core::users::HashGate::new(hashing, 4 * hashing, std::time::Duration::from_secs(5));
    #[cfg(feature = "amqp")]
    let relay = a
        .relay
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .map(|url| start_relay(&service, url, &a.relay_exchange))
        .transpose()?;
    let served = crate::http::serve(
        service.with_hash_gate(gate),
        crate::http::Settings {
            addr,
            signer,
            token_ttl,
            sweep_every,
            request_timeout,
            json_logs: a.json_logs,
            cors: crate::http::Cors::from_flags(&a.cors_origins)?,
            header_timeout,
            max_connections: a.max_connections,
            shutdown_grace,
            event_retention: a.event_retention.as_deref().map(|r| parse("--event-retention", r)).transpose()?,
            trace_export: a
                .otlp_endpoint
                .as_deref()
                .filter(|e| !e.trim().is_empty())
                .map(|e| crate::http::TraceExport::from_flags(e, &a.trace_sample_ratio))
                .transpose()?,
        },
    );
    // The server has drained: the relay finishes its batch and gives its lease up.
    #[cfg(feature = "amqp")]
    if let Some((stop, thread)) = relay {
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = thread.join();
    }
    served
}

/// `serve --relay`: the relay loop on a thread of its own, until the flag is set.
#[cfg(feature = "amqp")]
fn start_relay(
    service: &Service,
    url: &str,
    exchange: &str,
) -> Result<(std::sync::Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<()>)> {
    let args = crate::args::RelayArgs {
        to: Some(url.to_owned()),
        to_file: None,
        exchange: exchange.to_owned(),
        name: "default".to_owned(),
        lease: "15s".to_owned(),
        batch: 500,
        poll: "1s".to_owned(),
        timeout: "5s".to_owned(),
        once: false,
    };
    let (lease, pace, timeout) = relay_settings(&args)?;
    let mut publisher = crate::relay::Amqp::new(url, exchange, timeout).map_err(|e| match e.downcast::<Error>() {
        Ok(Error::Validation { reason, .. }) => Error::validation("--relay", reason).into(),
        Ok(other) => other.into(),
        Err(e) => e,
    })?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flag, service) = (stop.clone(), service.clone());
    let thread = std::thread::Builder::new().name("relay".into()).spawn(move || {
        let p = crate::http::internal_admin("relay");
        if let Err(e) = crate::relay::run(&service, &p, &lease, &mut publisher, &pace, &flag) {
            eprintln!("goticket: relay: stopped: {e}");
        }
    })?;
    Ok((stop, thread))
}

/// The current password, to change one's own: the first line of standard input, or
/// typed once at a prompt without echo.
fn read_current_password(from_stdin: bool) -> Result<String> {
    use std::io::{BufRead, IsTerminal};
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the current password from standard input")?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::validation("current_password", "no terminal to prompt on: give --password-stdin").into());
    }
    rpassword::prompt_password("Current password: ").context("reading the current password")
}

/// A password from standard input, or typed twice at a prompt without echo.
fn read_password(from_stdin: bool) -> Result<Password> {
    use std::io::{BufRead, IsTerminal};
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
        return Ok(line.parse()?);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::validation("password", "no terminal to prompt on: give --password-stdin").into());
    }
    let first = rpassword::prompt_password("Password: ").context("reading the password")?;
    let again = rpassword::prompt_password("Again: ").context("reading the password")?;
    if first != again {
        return Err(Error::validation("password", "the two entries differ").into());
    }
    Ok(first.parse()?)
}

fn user(s: &Service, p: &Principal, cmd: UserCmd, out: &mut Out<impl Write>) -> Result<()> {
    match cmd {
        UserCmd::Add { email, role, password_stdin } => {
            let (email, role) = (parse::<Email>("--email", &email)?, parse::<Role>("--role", &role)?);
            let pw = read_password(password_stdin)?;
            out.one(&s.add_user(p, email, role, &pw)?)?;
        }
        UserCmd::List => out.list(&s.list_users(p)?)?,
        UserCmd::SetRole { email, role } => {
            out.one(&s.set_role(p, &parse("--email", &email)?, parse("--role", &role)?)?)?;
        }
        UserCmd::Passwd { email, password_stdin } => {
            let email: Email = parse("--email", &email)?;
            // Core asks for the current password when the change is one's own.
            let current = if p.email() == &email { Some(read_current_password(password_stdin)?) } else { None };
            let pw = read_password(password_stdin)?;
            out.one(&s.set_password(p, &email, &pw, current.as_deref())?)?;
        }
    }
    Ok(())
}

/// Core's refusal of a start in the past, named by its flag.
fn start_flag(e: Error) -> Error {
    match e {
        Error::Validation { field, reason } if field == "starts_at" && reason.ends_with("allow the past") => {
            Error::Validation { field: "--starts-at".into(), reason: format!("{reason} with --allow-past") }
        }
        other => other,
    }
}

fn page(args: &PageArgs) -> Result<PageRequest, Error> {
    PageRequest::parse(Some(&args.limit), args.cursor.as_deref(), args.offset.as_deref()).map_err(|e| match e {
        // Core names the field; here it came from a flag.
        Error::Validation { field, reason } => Error::Validation { field: format!("--{field}"), reason },
        other => other,
    })
}

/// Runs one parsed command line, writing results to `w`.
pub fn run(cli: Cli, w: impl Write) -> Result<()> {
    // Generated from the command definition itself, so they never fall behind it.
    if let Command::Completions { .. } | Command::Man = cli.command {
        let mut w = w;
        let mut cmd = <Cli as clap::CommandFactory>::command();
        match cli.command {
            Command::Completions { shell } => clap_complete::generate(shell, &mut cmd, "goticket", &mut w),
            _ => clap_mangen::Man::new(cmd).render(&mut w)?,
        }
        return Ok(w.flush()?);
    }
    // The API's document is made from the code, and the HTTP load test talks only to a
    // server: neither has a database to open.
    #[cfg(feature = "http")]
    if let Command::Openapi | Command::Keygen = cli.command {
        let mut w = w;
        match cli.command {
            Command::Keygen => write!(w, "{}", Signer::generate_ed25519_pem()?)?,
            _ => writeln!(w, "{}", crate::http::openapi_document())?,
        }
        return Ok(w.flush()?);
    }
    // Tables for people, tab-separated lines for pipes, unless --format says.
    let format = cli.format.unwrap_or(if std::io::stdout().is_terminal() { Format::Table } else { Format::Tsv });
    let mut out = Out::new(format, w).chosen(cli.format.is_some());
    #[cfg(feature = "http")]
    if let Command::Bench(crate::args::BenchCmd::Http(a)) = &cli.command {
        out.one(&crate::bench::http(a)?)?;
        return Ok(out.flush()?);
    }
    #[cfg(feature = "http")]
    if let Command::Health(a) = &cli.command {
        let text = health(a)?;
        out.message(&text, serde_json::json!({ "url": a.url, "status": 200 }))?;
        return Ok(out.flush()?);
    }
    let url = database_url(&cli)?;
    let store = open_store(&url, if cli.db_file.is_some() { "--db-file" } else { "--db" })?;
    let service = Service::new(store.clone());
    let outcome = dispatch(&service, cli, &url, &mut out);
    // On every exit path, success or not: SQLite's write-ahead log is merged into the
    // database file, so the file alone holds everything (a copy of it is complete).
    if let Err(e) = store.close() {
        eprintln!("goticket: warning: {e}");
    }
    // The service goes first, and with it the combiner's thread (its Drop joins it),
    // so the store's connections are closed here, on this thread, before the process
    // exits: libpq closing them on another thread during exit can crash the process.
    drop(service);
    drop(store);
    outcome?;
    out.flush()?;
    Ok(())
}

/// Runs one command that needs the store.
fn dispatch(service: &Service, cli: Cli, url: &str, out: &mut Out<impl Write>) -> Result<()> {
    let p = principal(service, &cli.as_user)?;
    let s = service;
    match cli.command {
        // open_store migrated, and printed what the migration had to say.
        Command::Migrate => out.message("schema is up to date", serde_json::json!({ "migrated": true }))?,
        Command::Event(cmd) => event(s, &p, cmd, out)?,
        Command::Book(a) => {
            let req = BookingRequest {
                event: parse("event", &a.event)?,
                customer: parse_opt("--customer", a.customer.as_deref())?,
                quantity: parse("--qty", &a.qty)?,
                hold: parse_opt("--hold", a.hold.as_deref())?,
                idempotency_key: parse_opt("--idempotency-key", a.idempotency_key.as_deref())?,
            };
            out.one(&s.reserve(&p, req)?)?;
        }
        Command::Booking(cmd) => booking(s, &p, cmd, out)?,
        Command::Holds(HoldsCmd::Expire) => {
            let n = s.expire_holds(&p)?;
            out.message(&format!("expired {n} overdue holds"), serde_json::json!({ "expired": n }))?;
        }
        Command::Checkin { secret } => out.one(&s.check_in(&p, &parse::<TicketSecret>("secret", &secret)?)?)?,
        Command::Report(ReportCmd::Sales { event }) => {
            let key: Option<EventKey> = parse_opt("--event", event.as_deref())?;
            out.list(&s.sales_report(&p, key.as_ref())?)?;
        }
        Command::Demo(a) => crate::demo::run(s, &p, &a, out)?,
        Command::Bench(cmd) => crate::bench::run(s, &p, url, cmd, out)?,
        Command::Import(ImportCmd::Events(a)) => crate::import_export::import_events(s, &p, &a, out)?,
        Command::User(cmd) => user(s, &p, cmd, out)?,
        Command::Events(cmd) => events(s, &p, cmd, out)?,
        Command::Audit(a) => {
            let query = goticket_core::AuditQuery {
                event: parse_opt("--event", a.event.as_deref())?,
                booking: parse_opt("--booking", a.booking.as_deref())?,
                actor: parse_opt("--actor", a.actor.as_deref())?,
                since: crate::parse::time_opt("--since", a.since.as_deref())?,
            };
            let page = PageRequest::parse(Some(&a.limit), a.cursor.as_deref(), None).map_err(|e| match e {
                Error::Validation { field, reason } => Error::Validation { field: format!("--{field}"), reason },
                other => other,
            })?;
            out.page(&s.audit(&p, &query, page)?)?;
        }
        #[cfg(feature = "http")]
        Command::Serve(a) => serve(service.clone(), &a)?,
        #[cfg(feature = "http")]
        Command::Openapi | Command::Keygen | Command::Health(_) => {} // answered above, before a store is opened
        Command::Completions { .. } | Command::Man => {} // likewise
        Command::Import(ImportCmd::Bookings(a)) => crate::import_export::import_bookings(s, &p, &a, out)?,
        Command::Export(ExportCmd::Events(a)) => crate::import_export::export_events(s, &p, &a, out)?,
        Command::Export(ExportCmd::Bookings(a)) => crate::import_export::export_bookings(s, &p, &a, out)?,
    }
    Ok(())
}

/// `fields` with the optional ones from the flags.
fn with_options(o: crate::args::EventOptions, fields: EventFields) -> EventFields {
    EventFields {
        slug: o.slug,
        venue: o.venue,
        description: o.description,
        max_per_customer: o.max_per_customer,
        sales_start: o.sales_start,
        sales_end: o.sales_end,
        ..fields
    }
}

fn event(s: &Service, p: &Principal, cmd: EventCmd, out: &mut Out<impl Write>) -> Result<()> {
    match cmd {
        EventCmd::Create(a) => {
            let allow_past = a.options.allow_past;
            let fields = with_options(
                a.options,
                EventFields {
                    name: Some(a.name),
                    starts_at: Some(a.starts_at),
                    ends_at: Some(a.ends_at),
                    capacity: Some(a.capacity),
                    price: Some(a.price),
                    organizer: a.organizer,
                    ..EventFields::default()
                },
            );
            let mut new = fields.parse().map_err(flag_error)?;
            new.allow_past = allow_past;
            out.one(&s.create_event(p, new).map_err(start_flag)?)?;
        }
        EventCmd::List(a) => {
            let filter = EventFilter {
                starts_from: time_opt("--from", a.from.as_deref())?,
                starts_before: time_opt("--to", a.to.as_deref())?,
                min_price: parse_opt("--min-price", a.min_price.as_deref())?,
                max_price: parse_opt("--max-price", a.max_price.as_deref())?,
                status: parse_opt("--status", a.status.as_deref())?,
                organizer: None,
            };
            out.page(&s.list_events(p, &filter, page(&a.page)?)?)?;
        }
        EventCmd::Show { event } => out.one(&s.event(p, &parse("event", &event)?)?)?,
        EventCmd::Update(a) => {
            let allow_past = a.options.allow_past;
            let fields = with_options(
                a.options,
                EventFields {
                    name: a.name,
                    starts_at: a.starts_at,
                    ends_at: a.ends_at,
                    capacity: a.capacity,
                    price: a.price,
                    ..EventFields::default()
                },
            );
            let clear: Vec<&str> = a.clear.iter().map(|c| c.field()).collect();
            let mut patch = fields.parse_patch(&clear).map_err(flag_error)?;
            patch.allow_past = allow_past;
            out.one(&s.update_event(p, &parse("event", &a.event)?, &patch).map_err(start_flag)?)?;
        }
        EventCmd::Cancel { event } => out.one(&s.cancel_event(p, &parse("event", &event)?)?)?,
    }
    Ok(())
}

fn booking(s: &Service, p: &Principal, cmd: BookingCmd, out: &mut Out<impl Write>) -> Result<()> {
    let code = |raw: &str| parse::<BookingCode>("code", raw);
    match cmd {
        BookingCmd::Show { code: c } => out.one(&s.booking(p, &code(&c)?)?)?,
        BookingCmd::Confirm { code: c } => out.one(&s.confirm(p, &code(&c)?)?)?,
        BookingCmd::Cancel { code: c } => out.one(&s.cancel_booking(p, &code(&c)?)?)?,
        BookingCmd::List(a) => {
            let event = match parse_opt::<EventKey>("--event", a.event.as_deref())? {
                Some(key) => Some(s.event_id(p, &key)?),
                None => None,
            };
            let filter = BookingFilter {
                event,
                customer: parse_opt("--customer", a.customer.as_deref())?,
                status: parse_opt("--status", a.status.as_deref())?,
                organizer: None,
            };
            out.page(&s.list_bookings(p, filter, page(&a.page)?)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(super::redact("postgres://app:s3cret@db:5432/t"), "postgres://app:***@db:5432/t");
        assert_eq!(super::redact("postgres://app@db/t"), "postgres://app@db/t");
        assert_eq!(super::redact("./goticket.db"), "./goticket.db");
        assert_eq!(
            super::redact("postgres://app@db/t?sslmode=require&password=s3cret"),
            "postgres://app@db/t?sslmode=require&password=***"
        );
    }
}
