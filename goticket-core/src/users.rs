//! User accounts: an email, a role and an argon2id password hash. Passwords never
//! leave this module in clear, are never logged, and are never compared by hand.

use std::fmt;
use std::str::FromStr;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash as Phc;
use jiff::Timestamp;
use serde::Serialize;

use crate::auth::Role;
use crate::clock::Entropy;
use crate::error::{Error, Result};
use crate::types::Email;

/// A password as typed: 12 to 1024 characters (the one rule; every face and the HTTP
/// document state these constants). Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The shortest password accepted.
    pub const MIN_CHARS: usize = 12;
    /// The longest password accepted.
    pub const MAX_CHARS: usize = 1024;

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl FromStr for Password {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        // Trailing newlines come from `echo pw | goticket ... --password-stdin`.
        let pw = raw.trim_end_matches(['\n', '\r']);
        let n = pw.chars().count();
        if n < Self::MIN_CHARS {
            return Err(Error::validation("password", format!("must be at least {} characters", Self::MIN_CHARS)));
        }
        if n > Self::MAX_CHARS {
            return Err(Error::validation("password", format!("must be at most {} characters", Self::MAX_CHARS)));
        }
        Ok(Password(pw.to_owned()))
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// An argon2id hash in PHC string form (`$argon2id$v=19$m=19456,t=2,p=1$...`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

/// Argon2's working memory: 1 KiB blocks, 19,456 of them with OWASP's parameters.
/// [`HashGate`] keeps one per permit and lends it to each hash, so hashing allocates
/// nothing: memory cannot pile up in the allocator's per-thread arenas however many
/// threads a flood of logins runs on.
pub type HashMemory = Vec<argon2::Block>;

/// The most memory a stored hash may ask for (64 MiB): a hash is only ever verified
/// with the parameters it names, and they come from the database.
const MAX_HASH_BLOCKS: usize = 64 * 1024;

/// Runs argon2 over `memory`, growing it if the parameters need more.
fn argon2_into(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut HashMemory,
) -> std::result::Result<(), argon2::Error> {
    let need = argon.params().block_count();
    if memory.len() < need {
        memory.resize(need, argon2::Block::new());
    }
    argon.hash_password_into_with_memory(password, salt, out, &mut memory[..need])
}

impl PasswordHash {
    /// Hashes `password` with argon2id (OWASP's parameters: 19 MiB, 2 passes) and a
    /// 16-byte salt from `entropy`.
    pub fn new(password: &Password, entropy: &dyn Entropy) -> Result<Self> {
        Self::new_in(password, entropy, &mut HashMemory::new())
    }

    /// [`PasswordHash::new`] working in `memory`.
    pub fn new_in(password: &Password, entropy: &dyn Entropy, memory: &mut HashMemory) -> Result<Self> {
        let mut salt = [0u8; 16];
        entropy.fill(&mut salt);
        let cannot = |e: &dyn fmt::Display| Error::validation("password", format!("cannot be hashed: {e}"));
        let argon = Argon2::default();
        let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
        argon2_into(&argon, password.bytes(), &salt, &mut out, memory).map_err(|e| cannot(&e))?;
        let phc = Phc {
            algorithm: argon2::Algorithm::Argon2id.ident(),
            version: Some(argon2::Version::V0x13.into()),
            params: argon.params().try_into().map_err(|e: argon2::password_hash::Error| cannot(&e))?,
            salt: Some(argon2::password_hash::phc::Salt::new(&salt).map_err(|e| cannot(&e))?),
            hash: Some(argon2::password_hash::phc::Output::new(&out).map_err(|e| cannot(&e))?),
        };
        Ok(PasswordHash(phc.to_string()))
    }

    /// Whether `password` matches (compared in constant time).
    pub fn verify(&self, password: &str) -> bool {
        self.verify_in(password, &mut HashMemory::new())
    }

    /// [`PasswordHash::verify`] working in `memory`, with the algorithm, version and
    /// parameters the stored hash names.
    pub fn verify_in(&self, password: &str, memory: &mut HashMemory) -> bool {
        let Ok(phc) = Phc::new(&self.0) else { return false };
        let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else { return false };
        let Ok(params) = argon2::Params::try_from(&phc) else { return false };
        let Ok(algorithm) = argon2::Algorithm::try_from(phc.algorithm.as_str()) else { return false };
        let version = match phc.version.map(argon2::Version::try_from) {
            None => argon2::Version::default(),
            Some(Ok(v)) => v,
            Some(Err(_)) => return false,
        };
        if params.block_count() > MAX_HASH_BLOCKS {
            return false;
        }
        let mut out = vec![0u8; expected.as_bytes().len()];
        let argon = Argon2::new(algorithm, version, params);
        if argon2_into(&argon, password.as_bytes(), salt.as_ref(), &mut out, memory).is_err() {
            return false;
        }
        // `Output`'s equality is argon2's constant-time comparison.
        argon2::password_hash::phc::Output::new(&out).is_ok_and(|computed| computed == *expected)
    }

    /// The PHC string, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A hash read back from storage.
    pub fn from_stored(s: String) -> Result<Self> {
        Phc::new(&s).map_err(|e| {
            Error::Storage(crate::error::StoreError::new(
                crate::error::StoreErrorKind::Integrity,
                format!("stored password hash is invalid: {e}"),
                None,
            ))
        })?;
        Ok(PasswordHash(s))
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// The bound on password hashing. Each argon2id run takes 19 MiB and most of a core
/// for a while, and anyone can ask for one (a login, a sign-up): at most `permits` run
/// at once, at most `queue` more wait (each for at most `wait`), and everyone past
/// that is told at once to retry later. So memory stays near `permits` x 19 MiB
/// however many requests arrive.
#[derive(Debug)]
pub struct HashGate {
    permits: usize,
    queue: usize,
    wait: std::time::Duration,
    state: std::sync::Mutex<GateState>,
    freed: std::sync::Condvar,
    /// Working memory, one per permit at most, lent to each hash in turn.
    memories: std::sync::Mutex<Vec<HashMemory>>,
}

#[derive(Debug, Default)]
struct GateState {
    running: usize,
    waiting: usize,
}

impl HashGate {
    /// A gate for `permits` hashes at once (at least 1) and `queue` waiting ones.
    pub fn new(permits: usize, queue: usize, wait: std::time::Duration) -> Self {
        HashGate {
            permits: permits.max(1),
            queue,
            wait,
            state: std::sync::Mutex::default(),
            freed: std::sync::Condvar::new(),
            memories: std::sync::Mutex::default(),
        }
    }

    /// Hashes a new password under the gate.
    pub fn hash(&self, password: &Password, entropy: &dyn Entropy) -> Result<PasswordHash> {
        self.run(|memory| PasswordHash::new_in(password, entropy, memory))?
    }

    /// Checks a password under the gate.
    pub fn verify(&self, hash: &PasswordHash, password: &str) -> Result<bool> {
        self.run(|memory| hash.verify_in(password, memory))
    }

    /// Runs `f` (the hashing, in the working memory it is lent) under the gate, or
    /// refuses with a retryable busy error.
    pub fn run<T>(&self, f: impl FnOnce(&mut HashMemory) -> T) -> Result<T> {
        let busy = || {
            Error::Storage(crate::error::StoreError::new(
                crate::error::StoreErrorKind::Busy,
                "too many password checks at once; retry in a second",
                None,
            ))
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.running >= self.permits {
            if state.waiting >= self.queue {
                return Err(busy());
            }
            state.waiting += 1;
            let deadline = std::time::Instant::now() + self.wait;
            while state.running >= self.permits {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    state.waiting -= 1;
                    return Err(busy());
                }
                state = self.freed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
            }
            state.waiting -= 1;
        }
        state.running += 1;
        drop(state);
        // Released even if `f` panics.
        struct Release<'a>(&'a HashGate);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.state.lock().unwrap_or_else(|p| p.into_inner()).running -= 1;
                self.0.freed.notify_one();
            }
        }
        let _release = Release(self);
        let mut memory = self.memories.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default();
        let out = f(&mut memory);
        // At most `permits` hashes hold one at a time, so at most that many are kept.
        self.memories.lock().unwrap_or_else(|p| p.into_inner()).push(memory);
        Ok(out)
    }
}

impl Default for HashGate {
    /// Two at once, eight waiting up to five seconds.
    fn default() -> Self {
        HashGate::new(2, 8, std::time::Duration::from_secs(5))
    }
}

/// A user account; its password hash is kept apart (see `Account`) and never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Login and identity.
    pub email: Email,
    /// What the user may do.
    pub role: Role,
    /// Creation time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Last change time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// A user with the password hash, as stores keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user.
    pub user: User,
    /// The password hash.
    pub password_hash: PasswordHash,
}

/// The rule for a change of role: an admin account stays unless another admin account
/// remains, so no one can lock every admin out (themself included). `admins` counts the
/// admin accounts, read inside the store's transaction. Gives the role to write.
pub fn decide_role_change(user: &User, admins: u64, role: Option<Role>) -> Result<Option<Role>> {
    if user.role == Role::Admin && role.is_some_and(|r| r != Role::Admin) && admins <= 1 {
        return Err(Error::conflict(format!(
            "{} is the last admin account; make another account admin first",
            user.email
        )));
    }
    Ok(role)
}

/// One stored account, as the email migration reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAccount {
    /// The email exactly as stored.
    pub email: String,
    /// When the account was created.
    pub created_at: Timestamp,
}

/// What normalizing the stored emails does to the accounts: which are renamed to
/// their normal form, and which are set aside because their normal form is taken by
/// another account (an address that differed only by invisible characters or letter
/// width) or is no address at all.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EmailPlan {
    /// (stored, normalized) for every account whose email changes.
    pub renames: Vec<(String, Email)>,
    /// Accounts taken out of use, each with why.
    pub set_aside: Vec<(String, String)>,
}

/// The email migration rule: every stored address is read as the current rules would
/// have written it ([`Email::from_stored_lossy`]). Among accounts that then share an
/// address, the one already stored in that form keeps it (else the oldest); the others
/// are set aside, for an operator to look at, never merged: they are different
/// people's passwords.
pub fn plan_email_normalization(accounts: Vec<StoredAccount>) -> EmailPlan {
    let mut plan = EmailPlan::default();
    let mut groups: std::collections::BTreeMap<Email, Vec<StoredAccount>> = std::collections::BTreeMap::new();
    for a in accounts {
        match Email::from_stored_lossy(&a.email) {
            Ok(e) => groups.entry(e).or_default().push(a),
            Err(why) => plan.set_aside.push((a.email, format!("is no longer a valid address ({why})"))),
        }
    }
    for (normal, mut group) in groups {
        group.sort_by_key(|a| (a.email != normal.as_str(), a.created_at));
        let mut group = group.into_iter();
        let keeper = group.next().expect("a group has at least one account");
        for other in group {
            let why = format!(
                "looks the same as {} once normalized, and that account keeps the address",
                keeper.email.escape_debug()
            );
            plan.set_aside.push((other.email, why));
        }
        if keeper.email != normal.as_str() {
            plan.renames.push((keeper.email, normal));
        }
    }
    plan
}

/// Where an address is stored besides the accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressColumn {
    /// `events.organizer`.
    Organizer,
    /// `bookings.customer`.
    Customer,
}

/// What the email migration needs of a store, inside one transaction.
pub trait EmailRewrite {
    /// Every account's stored email and creation time.
    fn accounts(&mut self) -> Result<Vec<StoredAccount>>;
    /// Moves the account to the set-aside table, with the reason.
    fn set_aside(&mut self, email: &str, reason: &str) -> Result<()>;
    /// Renames an account.
    fn rename_account(&mut self, from: &str, to: &Email) -> Result<()>;
    /// The distinct addresses in a column.
    fn addresses(&mut self, column: AddressColumn) -> Result<Vec<String>>;
    /// Rewrites `from` to `to` in a column. For customers, a booking of `from` whose
    /// idempotency key `to` already used loses its key (the keys are unique per
    /// customer); returns how many did.
    fn rename_address(&mut self, column: AddressColumn, from: &str, to: &Email) -> Result<u64>;
}

/// The email migration, once for every store: accounts by
/// [`plan_email_normalization`], then every organizer and customer address rewritten to
/// its normal form. Returns notes for the operator.
pub fn migrate_emails(db: &mut dyn EmailRewrite) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let plan = plan_email_normalization(db.accounts()?);
    for (email, reason) in &plan.set_aside {
        db.set_aside(email, reason)?;
        notes.push(format!("account {} was set aside (table set_aside_accounts): it {reason}", email.escape_debug()));
    }
    for (from, to) in &plan.renames {
        db.rename_account(from, to)?;
    }
    for column in [AddressColumn::Organizer, AddressColumn::Customer] {
        for raw in db.addresses(column)? {
            match Email::from_stored_lossy(&raw) {
                Ok(e) if e.as_str() == raw => {}
                Ok(e) => {
                    let dropped = db.rename_address(column, &raw, &e)?;
                    if dropped > 0 {
                        notes.push(format!(
                            "{dropped} bookings of {} lost their idempotency key to {e}'s",
                            raw.escape_debug()
                        ));
                    }
                }
                Err(why) => notes.push(format!(
                    "{column:?} address {} is not a valid address ({why}); its rows cannot be read until it is corrected",
                    raw.escape_debug()
                )),
            }
        }
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SeededEntropy;

    #[test]
    fn passwords_are_bounded_and_hidden() {
        assert!("short".parse::<Password>().is_err());
        assert!("elevenchars".parse::<Password>().is_err(), "the rule is 12");
        assert!("twelve chars".parse::<Password>().is_ok());
        assert!("x".repeat(1024).parse::<Password>().is_ok(), "1024 is the most");
        assert!("x".repeat(1025).parse::<Password>().is_err());
        let pw: Password = "correct horse\n".parse().unwrap();
        assert_eq!(format!("{pw:?}"), "Password(***)");
        assert_eq!(pw.0, "correct horse", "the newline from stdin is not part of it");
    }

    #[test]
    fn the_gate_bounds_concurrent_hashes_and_refuses_past_its_queue() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let gate = std::sync::Arc::new(HashGate::new(2, 3, std::time::Duration::from_secs(10)));
        let (now, peak, refused) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
        let (now, peak, refused) = (std::sync::Arc::new(now), std::sync::Arc::new(peak), std::sync::Arc::new(refused));
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let (gate, now, peak, refused) = (gate.clone(), now.clone(), peak.clone(), refused.clone());
                std::thread::spawn(move || {
                    let r = gate.run(|_| {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(100));
                        now.fetch_sub(1, Ordering::SeqCst);
                    });
                    if let Err(e) = r {
                        assert_eq!(e.kind(), crate::ErrorKind::Busy);
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2, "never more than the permits at once");
        let refused = refused.load(Ordering::SeqCst);
        // Two run and three wait (and are served); those that arrive while all five
        // places are taken are refused, so at most 15, and some, since all start at once.
        assert!((1..=15).contains(&refused), "past 2 running and 3 waiting, refused at once: {refused}");
        assert_eq!(gate.run(|_| 7).unwrap(), 7, "the gate is free again");
    }

    #[test]
    fn the_queue_frees_its_places() {
        let ms = std::time::Duration::from_millis;
        let gate = std::sync::Arc::new(HashGate::new(1, 1, std::time::Duration::from_secs(10)));
        for round in 0..2 {
            let g = gate.clone();
            let holder = std::thread::spawn(move || g.run(|_| std::thread::sleep(ms(200))));
            std::thread::sleep(ms(50));
            // The one place in the queue: this waits for the holder, then runs.
            assert_eq!(gate.run(|_| round).unwrap(), round, "round {round}: a waiter is served");
            holder.join().unwrap().unwrap();
        }
        // A waiter that gave up frees its place too.
        let short = std::sync::Arc::new(HashGate::new(1, 1, ms(50)));
        let g = short.clone();
        let holder = std::thread::spawn(move || g.run(|_| std::thread::sleep(ms(400))));
        std::thread::sleep(ms(50));
        assert!(short.run(|_| ()).is_err(), "gives up after 50 ms");
        let started = std::time::Instant::now();
        assert!(short.run(|_| ()).is_err());
        assert!(started.elapsed() >= ms(40), "the next one waited for a place, was not turned away at once");
        holder.join().unwrap().unwrap();
    }

    #[test]
    fn a_waiter_gives_up_after_its_wait() {
        let gate = std::sync::Arc::new(HashGate::new(1, 4, std::time::Duration::from_millis(50)));
        let g = gate.clone();
        let long = std::thread::spawn(move || g.run(|_| std::thread::sleep(std::time::Duration::from_millis(400))));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(gate.run(|_| ()).unwrap_err().kind(), crate::ErrorKind::Busy);
        long.join().unwrap().unwrap();
    }

    #[test]
    fn the_last_admin_cannot_lose_the_role() {
        let t: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let admin = User { email: "a@example.com".parse().unwrap(), role: Role::Admin, created_at: t, updated_at: t };
        let err = decide_role_change(&admin, 1, Some(Role::Customer)).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Conflict);
        assert!(err.to_string().contains("last admin"), "{err}");
        assert_eq!(decide_role_change(&admin, 2, Some(Role::Customer)).unwrap(), Some(Role::Customer));
        assert_eq!(decide_role_change(&admin, 1, Some(Role::Admin)).unwrap(), Some(Role::Admin));
        assert_eq!(decide_role_change(&admin, 1, None).unwrap(), None, "a password change alone is fine");
        let org = User { role: Role::Organizer, ..admin };
        assert_eq!(decide_role_change(&org, 0, Some(Role::Customer)).unwrap(), Some(Role::Customer));
    }

    #[test]
    fn stored_emails_normalize_and_look_alikes_are_set_aside() {
        let at = |s: &str| -> Timestamp { s.parse().unwrap() };
        let acct = |e: &str, t: &str| StoredAccount { email: e.into(), created_at: at(t) };
        let plan = plan_email_normalization(vec![
            acct("cust1@example.com\u{200B}", "2027-01-01T00:00:00Z"),
            acct("cust1@example.com", "2027-02-01T00:00:00Z"),
            acct("ｂｏｂ@example.com", "2027-01-01T00:00:00Z"),
            acct("Zoe@Example.com", "2027-01-01T00:00:00Z"),
            acct("zoe@example.com\u{2060}", "2027-03-01T00:00:00Z"),
            acct("no-at-sign", "2027-01-01T00:00:00Z"),
        ]);
        let renamed: Vec<(&str, &str)> = plan.renames.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(renamed, [("ｂｏｂ@example.com", "bob@example.com"), ("Zoe@Example.com", "zoe@example.com")]);
        let aside: Vec<&str> = plan.set_aside.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(aside, ["no-at-sign", "cust1@example.com\u{200B}", "zoe@example.com\u{2060}"]);
        assert!(plan.set_aside[1].1.contains("same as cust1@example.com once normalized"), "{}", plan.set_aside[1].1);
    }

    #[test]
    fn hashes_verify_the_right_password_only() {
        let pw: Password = "correct horse battery".parse().unwrap();
        let h = PasswordHash::new(&pw, &SeededEntropy::new(1)).unwrap();
        assert!(h.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", h.as_str());
        assert!(h.verify("correct horse battery"));
        assert!(!h.verify("correct horse batter"));
        assert!(!format!("{h:?}").contains("argon2"));
        let again = PasswordHash::new(&pw, &SeededEntropy::new(2)).unwrap();
        assert_ne!(again, h, "a fresh salt per hash");
        assert!(PasswordHash::from_stored("not a hash".into()).is_err());
    }

    #[test]
    fn hashes_in_lent_memory_match_argon2s_own() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let pw: Password = "correct horse battery".parse().unwrap();
        let gate = HashGate::default();
        let ours = gate.hash(&pw, &SeededEntropy::new(3)).unwrap();
        let mut salt = [0u8; 16];
        SeededEntropy::new(3).fill(&mut salt);
        let theirs = Argon2::default().hash_password_with_salt(b"correct horse battery", &salt).unwrap();
        assert_eq!(ours.as_str(), theirs.to_string(), "the same PHC string as argon2 writes");
        assert!(Argon2::default().verify_password(b"correct horse battery", &Phc::new(ours.as_str()).unwrap()).is_ok());
        assert!(gate.verify(&ours, "correct horse battery").unwrap());
        assert!(!gate.verify(&ours, "correct horse batterY").unwrap());
        // A hash made with other parameters is checked with those.
        let light = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(1024, 1, 1, None).unwrap(),
        );
        let other = PasswordHash(light.hash_password_with_salt(b"pw of another age", &salt).unwrap().to_string());
        assert!(gate.verify(&other, "pw of another age").unwrap());
        assert!(!gate.verify(&other, "pw of another agE").unwrap());
        let greedy =
            "$argon2id$v=19$m=4000000,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$3Jm0XJuHg6kaa6eyvpYw2Znpb4nqCOYIi0sEQkgu0VY";
        let mut memory = HashMemory::new();
        assert!(!PasswordHash(greedy.into()).verify_in("x", &mut memory), "a stored hash cannot ask for 4 GB");
        assert!(memory.is_empty(), "and nothing was allocated for it");
        let most = greedy.replace("m=4000000", &format!("m={}", MAX_HASH_BLOCKS + 4));
        assert!(!PasswordHash(most).verify_in("x", &mut memory) && memory.is_empty(), "64 MiB is the most");
    }
}
