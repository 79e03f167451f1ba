//! The command line, as clap derive types. Values that carry domain rules (dates,
//! money, numbers with bounds) are taken as text and parsed by core, so a bad value
//! is "invalid input" (exit 5) with core's reason, not a usage error.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// goticket: event ticketing that never oversells.
#[derive(Debug, Parser)]
#[command(name = "goticket", version, about, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Database: a SQLite file path, sqlite:PATH[?synchronous=normal], or postgres://...
    #[arg(long, global = true, env = "GOTICKET_DB", hide_env_values = true, default_value = "./goticket.db")]
    pub db: String,

    /// A file holding the database URL, used instead of --db (and of GOTICKET_DB, which
    /// it overrides, as an image's default): a secret mounted by Kubernetes or Compose,
    /// so a PostgreSQL password is in neither the environment nor the process list.
    /// Surrounding whitespace (a trailing newline) is ignored.
    #[arg(long, global = true, env = "GOTICKET_DB_FILE", value_name = "PATH")]
    pub db_file: Option<std::path::PathBuf>,

    /// Whether `--db` itself was on the command line (not from GOTICKET_DB or the
    /// default): then `--db-file` too is a contradiction, refused.
    #[arg(skip)]
    pub db_on_command_line: bool,

    /// Output format [default: table on a terminal, tsv when piped].
    #[arg(long, global = true, env = "GOTICKET_FORMAT", value_enum)]
    pub format: Option<Format>,

    /// Act as this user (their role from `goticket user`; a customer if they have no
    /// account) instead of as the admin.
    #[arg(long = "as", global = true, env = "GOTICKET_AS", value_name = "EMAIL")]
    pub as_user: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    Table,
    /// One JSON document.
    Json,
    /// CSV with a header row.
    Csv,
    /// Tab-separated lines with a header row (the default when stdout is not a
    /// terminal).
    Tsv,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema.
    Migrate,
    /// Create, list, show, change and cancel events.
    #[command(subcommand)]
    Event(EventCmd),
    /// Book seats of an event (a hold with --hold, otherwise a sale).
    Book(BookArgs),
    /// Show, list, confirm and cancel bookings.
    #[command(subcommand)]
    Booking(BookingCmd),
    /// Maintenance of holds.
    #[command(subcommand)]
    Holds(HoldsCmd),
    /// Check a ticket in at the door by its secret.
    Checkin {
        /// The ticket's secret.
        secret: String,
    },
    /// Reports.
    #[command(subcommand)]
    Report(ReportCmd),
    /// Seed a sample event, sell it out with concurrent buyers, and show the result.
    Demo(DemoArgs),
    /// Measure throughput and latency.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Import from CSV or JSON Lines: validated row by row, atomic, idempotent.
    #[command(subcommand)]
    Import(ImportCmd),
    /// Export as CSV or JSON Lines (the same columns import reads).
    #[command(subcommand)]
    Export(ExportCmd),
    /// User accounts and roles (admin, organizer, customer).
    #[command(subcommand)]
    User(UserCmd),
    /// Domain events: relay them to a broker, see the relay's status.
    #[command(subcommand)]
    Events(EventsCmd),
    /// The audit log: who did what, when (every domain event, oldest first; admins
    /// read all of it, organizers what concerns their own events).
    Audit(AuditArgs),
    /// Serve the HTTP API (REST + JSON, JWT bearer auth).
    #[cfg(feature = "http")]
    Serve(ServeArgs),
    /// Print the HTTP API's OpenAPI 3.1 document (what `serve` answers at /openapi.json).
    #[cfg(feature = "http")]
    Openapi,
    /// Print a new Ed25519 private key (PKCS#8 PEM) for `serve --jwt-key-file`.
    #[cfg(feature = "http")]
    Keygen,
    /// Ask a running server whether it is up: exit 0 if the URL answers 200 in time, 1
    /// otherwise (the container image's health check; opens no database).
    #[cfg(feature = "http")]
    Health(HealthArgs),
    /// Print a shell completion script: `goticket completions bash > /etc/bash_completion.d/goticket`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `goticket man > goticket.1 && man ./goticket.1`.
    Man,
}

/// `events` subcommands.
#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// Publish the outbox's domain events to RabbitMQ: at least once, in order per
    /// aggregate, resuming where the last relay stopped. One relay per database holds
    /// the lease; others stand by and take over when it stops renewing it.
    #[cfg(feature = "amqp")]
    Relay(RelayArgs),
    /// Delete old domain events from the log (the relay never deletes): only those the
    /// relay has published, unless --unpublished-too; each aggregate's latest event is
    /// kept (the next one is numbered after it).
    Prune {
        /// Events older than this go (1 second to 7 days... or longer with days: 90d).
        #[arg(long, value_name = "AGE")]
        older_than: String,
        /// The relay whose cursor says what is published.
        #[arg(long, default_value = "default")]
        relay: String,
        /// Delete unpublished events too (a database that runs no relay).
        #[arg(long)]
        unpublished_too: bool,
    },
    /// The relay's cursor, lease holder, backlog and lag.
    Status {
        /// The relay's name.
        #[arg(long, default_value = "default")]
        name: String,
    },
}

/// `events relay` (and the relay `serve --relay` runs).
#[cfg(feature = "amqp")]
#[derive(Debug, Args, Clone)]
pub struct RelayArgs {
    /// The broker, like amqp://guest:guest@127.0.0.1:5672/%2f.
    #[arg(long = "to", env = "GOTICKET_RELAY_URL", hide_env_values = true, value_name = "URL")]
    pub to: Option<String>,
    /// A file holding the broker's URL (a mounted secret: the password stays out of the
    /// environment and the process list), instead of --to.
    #[arg(long, env = "GOTICKET_RELAY_URL_FILE", value_name = "PATH")]
    pub to_file: Option<std::path::PathBuf>,
    /// The topic exchange events go to (declared durable if missing); each event's
    /// routing key is its type, like booking.confirmed.
    #[arg(long, default_value = "goticket.events")]
    pub exchange: String,
    /// The relay's name: one cursor and one lease per name.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// How long the lease lasts unless renewed (every batch and every poll renews it);
    /// another relay takes over this long after this one stops.
    #[arg(long, default_value = "15s")]
    pub lease: String,
    /// Most events per batch (1 to 10000).
    #[arg(long, default_value = "500")]
    pub batch: u32,
    /// How long to wait when caught up or standing by.
    #[arg(long, default_value = "1s")]
    pub poll: String,
    /// How long a connect or a batch's confirms may take; shorter than --lease.
    #[arg(long, default_value = "5s")]
    pub timeout: String,
    /// Publish until caught up, then exit (exit 1 on a failure, or if another relay
    /// holds the lease).
    #[arg(long)]
    pub once: bool,
}

/// `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only what concerns this event (id or slug): its own changes and its bookings'.
    #[arg(long)]
    pub event: Option<String>,
    /// Only what happened to this booking (its code).
    #[arg(long)]
    pub booking: Option<String>,
    /// Only what this account did.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only from this time on (RFC 3339, like 2027-01-01T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Items per page (1-1000).
    #[arg(long, allow_hyphen_values = true, default_value = "50")]
    pub limit: String,
    /// Continue after a previous page's next_cursor.
    #[arg(long)]
    pub cursor: Option<String>,
}

/// `health`.
#[cfg(feature = "http")]
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The URL to ask (plain http; a health check talks to its own container).
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    pub url: String,
    /// How long to wait for the answer, connecting included (e.g. 3s).
    #[arg(long, default_value = "3s")]
    pub timeout: String,
}

/// `serve`.
#[cfg(feature = "http")]
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// File holding the token signing secret, for HS256 tokens (else env
    /// GOTICKET_JWT_SECRET; with neither and no --jwt-key-file, an ephemeral one, with a
    /// warning: tokens then die with the process).
    #[arg(long, conflicts_with = "jwt_key_file")]
    pub jwt_secret_file: Option<std::path::PathBuf>,
    /// Ed25519 private key (PKCS#8 PEM, from `goticket keygen` or `openssl genpkey
    /// -algorithm ed25519`) for EdDSA tokens; the public key is served at
    /// /.well-known/jwks.json.
    #[arg(long, env = "GOTICKET_JWT_KEY_FILE")]
    pub jwt_key_file: Option<std::path::PathBuf>,
    /// How long a login token is valid (e.g. 1h, 30m).
    #[arg(long, default_value = "1h")]
    pub token_ttl: String,
    /// How often overdue holds are expired in the background (reads never count them
    /// as held in between).
    #[arg(long, default_value = "30s")]
    pub sweep_every: String,
    /// How long a request may take (waiting for a lock included) before it is
    /// answered 503; a booking answered so may still complete, so clients retry it
    /// with the same Idempotency-Key.
    #[arg(long, default_value = "30s")]
    pub request_timeout: String,
    /// Request logs (stderr; GOTICKET_LOG sets the filter) as JSON lines, for a log
    /// collector, instead of text.
    #[arg(long)]
    pub json_logs: bool,
    /// Let web pages from this origin call the API from a browser (CORS), like
    /// `https://shop.example.com`; repeat for more, or `*` for any (tokens travel in the
    /// Authorization header, never in cookies). Without it, no CORS headers are sent.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// How long a client may take to send a request's headers, and how long an idle
    /// kept-alive connection stays open; a slower one is closed.
    #[arg(long, default_value = "10s")]
    pub header_timeout: String,
    /// Most connections open at once; past it new ones are closed at once, so a flood
    /// of idle connections cannot use up the process's file descriptors. Defaults to
    /// what the file-descriptor limit leaves room for, at most 10000.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// On SIGTERM or SIGINT, how long in-flight requests may finish before the process
    /// exits anyway.
    #[arg(long, default_value = "10s")]
    pub shutdown_grace: String,
    /// Password hashes (logins, sign-ups) run at once, each taking 19 MiB and a core;
    /// past it a short queue waits and the rest are answered 503 with Retry-After.
    /// Defaults to the number of cores.
    #[arg(long)]
    pub hash_concurrency: Option<usize>,
    /// Export traces to this OpenTelemetry collector over OTLP/HTTP, like
    /// `http://127.0.0.1:4318` (`/v1/traces` is added). Nothing is exported without it.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// The share of traces exported, 0 to 1; a caller's `traceparent` that says
    /// sampled (or not) decides for its request.
    #[arg(long, env = "GOTICKET_TRACE_SAMPLE_RATIO", default_value = "1", value_name = "RATIO")]
    pub trace_sample_ratio: String,
    /// Also run the event relay in this process, publishing to this broker, like
    /// `amqp://guest:guest@127.0.0.1:5672/%2f` (what `events relay --to` does, with its
    /// default lease, batch and pace; one relay per database holds the lease, so every
    /// server of a fleet may have this flag).
    #[cfg(feature = "amqp")]
    #[arg(long, env = "GOTICKET_RELAY_URL", hide_env_values = true, value_name = "URL")]
    pub relay: Option<String>,
    /// A file holding the in-process relay's broker URL (a mounted secret), instead of
    /// --relay.
    #[cfg(feature = "amqp")]
    #[arg(long, env = "GOTICKET_RELAY_URL_FILE", value_name = "PATH")]
    pub relay_file: Option<std::path::PathBuf>,
    /// The exchange the in-process relay publishes to.
    #[cfg(feature = "amqp")]
    #[arg(long, default_value = "goticket.events", value_name = "NAME")]
    pub relay_exchange: String,
    /// Keep domain events this long (like 90d), then prune those the relay has published
    /// (`events prune`, hourly in the background). Without it the log is kept whole.
    #[arg(long, value_name = "AGE")]
    pub event_retention: Option<String>,
}

/// User subcommands. Passwords are read from a prompt or with --password-stdin,
/// never from an argument (arguments show up in `ps` and shell history).
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user.
    Add {
        /// Email (the login).
        #[arg(long)]
        email: String,
        /// admin, organizer or customer.
        #[arg(long)]
        role: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Change a user's role.
    SetRole {
        /// The user.
        #[arg(long)]
        email: String,
        /// admin, organizer or customer.
        #[arg(long)]
        role: String,
    },
    /// Change a user's password.
    Passwd {
        /// The user.
        #[arg(long)]
        email: String,
        /// Read the password from standard input instead of prompting. Changing your
        /// own password (`--as` the same email) needs the current one too: then the
        /// first line is the current password and the second the new one.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// File formats for import and export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Import subcommands.
#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// Events: external_id, name, starts_at, ends_at, capacity, price [, slug, venue,
    /// description, max_per_customer].
    Events(ImportArgs),
    /// Bookings: external_id, event (its external id, slug or id), customer, quantity,
    /// status (held or confirmed) [, hold_until].
    Bookings(ImportArgs),
}

/// `import events`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file (.csv, .jsonl), or - for standard input.
    pub file: String,
    /// The file's format (default: from its extension; required for -).
    #[arg(long, value_enum)]
    pub input_format: Option<FileFormat>,
    /// Write the valid rows and skip the invalid ones (instead of all-or-nothing).
    #[arg(long)]
    pub skip_invalid: bool,
    /// With --skip-invalid: write the rejected rows to this file, in the input's format,
    /// with an `error` column giving the reasons; fix it and import it again.
    #[arg(long, requires = "skip_invalid")]
    pub rejects: Option<std::path::PathBuf>,
    /// Validate everything (against the database too) and write nothing.
    #[arg(long, conflicts_with = "skip_invalid")]
    pub dry_run: bool,
    /// With --skip-invalid: rows per committed transaction.
    #[arg(long, default_value_t = 10_000)]
    pub batch_size: usize,
}

/// Export subcommands.
#[derive(Debug, Subcommand)]
pub enum ExportCmd {
    /// Events, in start order.
    Events(ExportEventsArgs),
    /// Live bookings (held and confirmed), in creation order.
    Bookings(ExportBookingsArgs),
}

/// `export bookings`.
#[derive(Debug, Args)]
pub struct ExportBookingsArgs {
    /// Only this event (id or slug).
    #[arg(long)]
    pub event: Option<String>,
    /// Only this customer.
    #[arg(long)]
    pub customer: Option<String>,
    /// Also the cancelled and expired bookings (by default only live ones: held and
    /// confirmed).
    #[arg(long)]
    pub all: bool,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
    /// The format (default: from --output's extension, else JSON Lines under --format json, else csv).
    #[arg(long, value_enum)]
    pub output_format: Option<FileFormat>,
}

/// `export events`.
#[derive(Debug, Args)]
pub struct ExportEventsArgs {
    /// Events starting at or after this time.
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// Events starting before this time.
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// scheduled or cancelled.
    #[arg(long)]
    pub status: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
    /// The format (default: from --output's extension, else JSON Lines under --format json, else csv).
    #[arg(long, value_enum)]
    pub output_format: Option<FileFormat>,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// A hot on-sale: M buyers on C threads book one fresh event.
    FlashSale(FlashSaleArgs),
    /// The batched floor: one thread books a fresh event N requests per transaction.
    Batched(BatchedArgs),
    /// Load-test a running `goticket serve`: C connections book one event until it is
    /// sold out.
    #[cfg(feature = "http")]
    Http(HttpBenchArgs),
}

/// `bench http`.
#[cfg(feature = "http")]
#[derive(Debug, Args)]
pub struct HttpBenchArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: String,
    /// A bearer token of an admin or of the event's organizer.
    #[arg(long, env = "GOTICKET_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The event (id or slug) to sell out.
    #[arg(long)]
    pub event: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    pub concurrency: u32,
}

/// `bench flash-sale`.
#[derive(Debug, Args)]
pub struct FlashSaleArgs {
    /// Seats of the fresh event.
    #[arg(long, default_value_t = 10_000)]
    pub capacity: u32,
    /// Buyers in total (each makes one booking request).
    #[arg(long, default_value_t = 20_000)]
    pub buyers: u32,
    /// Buyers booking at the same time (threads).
    #[arg(long, default_value_t = 64)]
    pub concurrency: u32,
    /// Seats per booking.
    #[arg(long, default_value_t = 1)]
    pub qty: u32,
    /// One transaction per booking instead of combined batches.
    #[arg(long)]
    pub no_combine: bool,
    /// Largest combined batch.
    #[arg(long, default_value_t = 256)]
    pub max_batch: usize,
    /// Sell this existing event (id or slug) instead of a fresh one, e.g. from several
    /// processes at once; --capacity is then ignored.
    #[arg(long)]
    pub event: Option<String>,
}

/// `bench batched`.
#[derive(Debug, Args)]
pub struct BatchedArgs {
    /// Seats of the fresh event.
    #[arg(long, default_value_t = 20_000)]
    pub capacity: u32,
    /// Requests per transaction.
    #[arg(long, default_value_t = 100)]
    pub batch: u32,
    /// Seats per booking.
    #[arg(long, default_value_t = 1)]
    pub qty: u32,
}

/// Event subcommands.
#[derive(Debug, Subcommand)]
pub enum EventCmd {
    /// Create an event.
    Create(EventCreate),
    /// List events by start time.
    List(EventList),
    /// Show one event.
    Show {
        /// Event id or slug.
        event: String,
    },
    /// Change an event.
    Update(EventUpdate),
    /// Cancel an event and all its bookings.
    Cancel {
        /// Event id or slug.
        event: String,
    },
}

/// `event create`.
#[derive(Debug, Args)]
pub struct EventCreate {
    /// Name (1-200 characters).
    #[arg(long)]
    pub name: String,
    /// Start, RFC 3339 with offset (2027-03-01T19:30:00Z).
    #[arg(long, allow_hyphen_values = true)]
    pub starts_at: String,
    /// End, after the start.
    #[arg(long, allow_hyphen_values = true)]
    pub ends_at: String,
    /// Seats (1 to 10,000,000).
    #[arg(long, allow_hyphen_values = true)]
    pub capacity: String,
    /// Price per seat, like "12.50 EUR".
    #[arg(long, allow_hyphen_values = true)]
    pub price: String,
    #[command(flatten)]
    pub options: EventOptions,
    /// Owner (admins only; default: the acting user).
    #[arg(long)]
    pub organizer: Option<String>,
}

/// `event list`.
#[derive(Debug, Args)]
pub struct EventList {
    /// Events starting at or after this time.
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// Events starting before this time.
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Lowest price, like "10 EUR".
    #[arg(long, allow_hyphen_values = true)]
    pub min_price: Option<String>,
    /// Highest price, like "50 EUR".
    #[arg(long, allow_hyphen_values = true)]
    pub max_price: Option<String>,
    /// scheduled or cancelled.
    #[arg(long)]
    pub status: Option<String>,
    /// Paging.
    #[command(flatten)]
    pub page: PageArgs,
}

/// Paging options shared by list commands.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Items per page (1-1000).
    #[arg(long, allow_hyphen_values = true, default_value = "50")]
    pub limit: String,
    /// Skip this many items.
    #[arg(long, allow_hyphen_values = true, conflicts_with = "cursor")]
    pub offset: Option<String>,
    /// Continue after a previous page's next_cursor.
    #[arg(long)]
    pub cursor: Option<String>,
}

/// Optional fields `event update --clear` can empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Clearable {
    /// The slug.
    Slug,
    /// The description.
    Description,
    /// The venue.
    Venue,
    /// The per-customer limit.
    MaxPerCustomer,
    /// The sales start.
    SalesStart,
    /// The sales end.
    SalesEnd,
}

impl Clearable {
    /// The event field it names, as core calls it.
    pub fn field(self) -> &'static str {
        match self {
            Clearable::Slug => "slug",
            Clearable::Description => "description",
            Clearable::Venue => "venue",
            Clearable::MaxPerCustomer => "max_per_customer",
            Clearable::SalesStart => "sales_start",
            Clearable::SalesEnd => "sales_end",
        }
    }
}

/// `event update`.
#[derive(Debug, Args)]
pub struct EventUpdate {
    /// Event id or slug.
    pub event: String,
    /// New name.
    #[arg(long)]
    pub name: Option<String>,
    /// New start.
    #[arg(long, allow_hyphen_values = true)]
    pub starts_at: Option<String>,
    /// New end.
    #[arg(long, allow_hyphen_values = true)]
    pub ends_at: Option<String>,
    /// New capacity (not below the seats held and sold).
    #[arg(long, allow_hyphen_values = true)]
    pub capacity: Option<String>,
    /// New price.
    #[arg(long, allow_hyphen_values = true)]
    pub price: Option<String>,
    #[command(flatten)]
    pub options: EventOptions,
    /// Empty these optional fields.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub clear: Vec<Clearable>,
}

/// The optional fields of an event, the same for `event create` and `event update`.
#[derive(Debug, Args)]
pub struct EventOptions {
    /// Unique URL-friendly name.
    #[arg(long)]
    pub slug: Option<String>,
    /// Venue.
    #[arg(long)]
    pub venue: Option<String>,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Most seats one customer may hold or buy.
    #[arg(long, allow_hyphen_values = true)]
    pub max_per_customer: Option<String>,
    /// When sales open (at once if never set).
    #[arg(long, allow_hyphen_values = true)]
    pub sales_start: Option<String>,
    /// When sales close (when the event ends if never set).
    #[arg(long, allow_hyphen_values = true)]
    pub sales_end: Option<String>,
    /// Allow a start in the past (entering an event that has already happened).
    #[arg(long)]
    pub allow_past: bool,
}

/// `book`.
#[derive(Debug, Args)]
pub struct BookArgs {
    /// Event id or slug.
    pub event: String,
    /// Customer email (default: the --as user).
    #[arg(long)]
    pub customer: Option<String>,
    /// Seats (1-100).
    #[arg(long, allow_hyphen_values = true, default_value = "1")]
    pub qty: String,
    /// Hold the seats this long (15m, 1h, 90s) instead of buying.
    #[arg(long)]
    pub hold: Option<String>,
    /// Retry key: the same key never books twice.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// Booking subcommands.
#[derive(Debug, Subcommand)]
pub enum BookingCmd {
    /// Show a booking with its tickets.
    Show {
        /// Booking code.
        code: String,
    },
    /// List bookings.
    List(BookingList),
    /// Confirm a hold.
    Confirm {
        /// Booking code.
        code: String,
    },
    /// Cancel a booking.
    Cancel {
        /// Booking code.
        code: String,
    },
}

/// `booking list`.
#[derive(Debug, Args)]
pub struct BookingList {
    /// Only this event (id or slug).
    #[arg(long)]
    pub event: Option<String>,
    /// Only this customer.
    #[arg(long)]
    pub customer: Option<String>,
    /// held, confirmed, cancelled or expired.
    #[arg(long)]
    pub status: Option<String>,
    /// Paging.
    #[command(flatten)]
    pub page: PageArgs,
}

/// Hold subcommands.
#[derive(Debug, Subcommand)]
pub enum HoldsCmd {
    /// Expire every overdue hold now (reads never count them anyway).
    Expire,
}

/// Report subcommands.
#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// Seats, bookings, check-ins and revenue per event.
    Sales {
        /// Only this event (id or slug).
        #[arg(long)]
        event: Option<String>,
    },
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seats of the sample event.
    #[arg(long, allow_hyphen_values = true, default_value_t = 200)]
    pub capacity: u32,
    /// Concurrent buyer threads.
    #[arg(long, default_value_t = 8)]
    pub buyers: u32,
}
