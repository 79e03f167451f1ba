//! The conformance suite every goticket store runs unchanged: scenario tests for each
//! operation and error, a random-sequence state machine checked against an in-memory
//! reference model, and a hot-event stress test.
//!
//! A store crate runs it all with one macro in its integration tests:
//!
//! ```text
//! fn fixture() -> Option<goticket_conformance::Fixture> { /* open a fresh store */ }
//! goticket_conformance::conformance_tests!(fixture);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod events;
pub mod fault;
pub mod hardening;
pub mod machine;
pub mod outcomes;
pub mod scenarios;

use std::any::Any;
use std::sync::Arc;

use goticket_core::{
    Capacity, Email, Event, EventKey, ManualClock, Money, NewEvent, Principal, Role, SeededEntropy, Service, Store,
    Timestamp,
};

/// A fresh, migrated, empty store, plus whatever keeps it alive (a temp dir, a
/// PostgreSQL schema that is dropped on drop).
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// Dropped after the test.
    pub guard: Box<dyn Any + Send>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").field("store", &self.store).finish_non_exhaustive()
    }
}

/// The start of every test's simulated time.
pub fn epoch() -> Timestamp {
    "2027-01-01T12:00:00Z".parse().expect("a valid constant timestamp")
}

/// A service over the fixture's store with a manual clock at [`epoch`] and seeded
/// entropy.
#[derive(Debug)]
pub struct Harness {
    /// The service under test.
    pub service: Service,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    /// The fixture.
    pub fixture: Fixture,
}

impl Harness {
    /// Wraps a fixture.
    pub fn new(fixture: Fixture, seed: u64) -> Self {
        let clock = Arc::new(ManualClock::new(epoch()));
        let service = Service::with_sources(fixture.store.clone(), clock.clone(), Arc::new(SeededEntropy::new(seed)));
        Harness { service, clock, fixture }
    }

    /// Moves simulated time on.
    pub fn advance_secs(&self, secs: i64) {
        self.clock.advance(goticket_core::SignedDuration::from_secs(secs));
    }

    /// Creates an event starting months after [`epoch`] as `p`.
    pub fn event(&self, p: &Principal, capacity: u32, price: &str, limit: Option<u32>) -> Event {
        let mut n = new_event("Conformance night", capacity, price);
        n.max_per_customer = limit.map(|l| l.try_into().expect("test limits are in range"));
        self.service.create_event(p, n).expect("creating a valid event succeeds")
    }
}

/// A valid new event starting 2027-06-01.
pub fn new_event(name: &str, capacity: u32, price: &str) -> NewEvent {
    NewEvent::new(
        name.parse().expect("test names are valid"),
        "2027-06-01T19:00:00Z".parse().expect("valid"),
        "2027-06-01T23:00:00Z".parse().expect("valid"),
        Capacity::try_from(capacity).expect("test capacities are in range"),
        price.parse::<Money>().expect("test prices are valid"),
    )
}

/// A principal with a role.
pub fn principal(email: &str, role: Role) -> Principal {
    Principal::new(email.parse::<Email>().expect("test emails are valid"), role)
}

/// The admin used by the suite.
pub fn admin() -> Principal {
    principal("admin@example.com", Role::Admin)
}

/// The event key for an event.
pub fn key(e: &Event) -> EventKey {
    EventKey::Id(e.id)
}

/// Generates one `#[test]` per scenario, plus the state machine and stress tests, for
/// a store given by a `fn() -> Option<Fixture>`. Attributes after the fixture go on
/// every generated test: a backend that may be absent passes
/// `#[cfg_attr(its_cfg, ignore = "why")]`, so a run without it counts the tests as
/// ignored, never as passed. `None` from the fixture is for the same case at run time;
/// the fixture must then fail instead where a skip is not acceptable (`CI=true`).
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path $(, #[$attr:meta])* $(,)?) => {
        $crate::conformance_tests!(@scenarios $fixture; [$(#[$attr])*];
            create_show_and_find_by_slug, duplicate_slug_conflicts, list_filters_and_pages,
            hold_confirm_cancel_flow, buy_outright_and_cancel, sold_out_says_what_is_left,
            per_customer_limit_counts_holds_and_sales, idempotent_retry_and_conflict,
            overdue_holds_never_block_or_count, sweeper_expires_and_reports, cancel_event_cascades,
            capacity_rises_and_falls_only_to_taken, check_in_once, batch_outcomes_are_independent,
            batch_same_customer_limit_and_key, sales_window_and_end, not_found_errors,
            role_rules, sales_report_figures, update_event_fields, concurrent_threads_never_oversell,
            batch_collision_fails_only_its_request, concurrent_threads_without_combiner,
            combined_buyers_mixed_quantities_limits_and_keys, a_failing_request_does_not_poison_its_batch,
            users_roles_and_passwords
        );
        $crate::conformance_tests!(@hardening $fixture; [$(#[$attr])*];
            a_checked_in_booking_cannot_be_cancelled, a_scan_and_a_cancel_never_both_win,
            bookings_while_holds_expire_never_fail, prices_are_bounded_and_reports_add_up,
            the_last_admin_keeps_the_role, look_alike_emails_are_one_account,
            imports_resolve_moved_events_and_refuse_ambiguity
        );

        $crate::conformance_tests!(@outcomes $fixture; [$(#[$attr])*];
            a_lost_commit_answers_what_was_written, event_imports_in_every_mode, booking_imports_in_every_mode
        );

        $crate::conformance_tests!(@events $fixture; [$(#[$attr])*];
            every_change_writes_its_events, a_rolled_back_change_leaves_no_event, imports_write_one_event_per_row,
            audit_log_scopes_and_filters, combined_sales_write_one_event_each,
            pruning_keeps_what_is_unpublished_and_each_latest, a_relay_batch_counts_unless_the_lease_was_taken,
            a_rerun_or_a_no_op_writes_no_second_event
        );

        proptest::proptest! {
            #![proptest_config(proptest::prelude::ProptestConfig {
                cases: $crate::machine::cases(),
                max_shrink_iters: 2000,
                ..proptest::prelude::ProptestConfig::default()
            })]
            #[test]
            $(#[$attr])*
            fn state_machine_matches_reference_model(ops in $crate::machine::ops()) {
                if let Some(f) = $fixture() {
                    $crate::machine::run(f, &ops)?;
                }
            }
        }
    };
    (@events $fixture:path; $attrs:tt; $($name:ident),* $(,)?) => {
        $( $crate::conformance_tests!(@test $attrs; $name; $crate::events::$name; $fixture); )*
    };
    (@outcomes $fixture:path; $attrs:tt; $($name:ident),* $(,)?) => {
        $( $crate::conformance_tests!(@test $attrs; $name; $crate::outcomes::$name; $fixture); )*
    };
    (@hardening $fixture:path; $attrs:tt; $($name:ident),* $(,)?) => {
        $( $crate::conformance_tests!(@test $attrs; $name; $crate::hardening::$name; $fixture); )*
    };
    (@scenarios $fixture:path; $attrs:tt; $($name:ident),* $(,)?) => {
        $( $crate::conformance_tests!(@test $attrs; $name; $crate::scenarios::$name; $fixture); )*
    };
    (@test [$(#[$attr:meta])*]; $name:ident; $run:path; $fixture:path) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            if let Some(f) = $fixture() {
                $run(f);
            }
        }
    };
}
