//! User accounts: an email, a role and an argon2id password hash. Passwords never
//! leave this module in clear, are never logged, and are never compared by hand.

use std::fmt;
use std::str::FromStr;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash as Phc;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use jiff::Timestamp;
use serde::Serialize;

use crate::auth::Role;
use crate::clock::Entropy;
use crate::error::{Error, Result};
use crate::types::Email;

/// A password as typed: 10 to 1024 characters. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The shortest password accepted.
    pub const MIN_CHARS: usize = 10;

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
        if n > 1024 {
            return Err(Error::validation("password", "must be at most 1024 characters"));
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

impl PasswordHash {
    /// Hashes `password` with argon2id (OWASP's parameters: 19 MiB, 2 passes) and a
    /// 16-byte salt from `entropy`.
    pub fn new(password: &Password, entropy: &dyn Entropy) -> Result<Self> {
        let mut salt = [0u8; 16];
        entropy.fill(&mut salt);
        let hash = Argon2::default()
            .hash_password_with_salt(password.bytes(), &salt)
            .map_err(|e| Error::validation("password", format!("cannot be hashed: {e}")))?;
        Ok(PasswordHash(hash.to_string()))
    }

    /// Whether `password` matches (argon2's own comparison, in constant time).
    pub fn verify(&self, password: &str) -> bool {
        Phc::new(&self.0).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SeededEntropy;

    #[test]
    fn passwords_are_bounded_and_hidden() {
        assert!("short".parse::<Password>().is_err());
        assert!("x".repeat(1025).parse::<Password>().is_err());
        let pw: Password = "correct horse\n".parse().unwrap();
        assert_eq!(format!("{pw:?}"), "Password(***)");
        assert_eq!(pw.0, "correct horse", "the newline from stdin is not part of it");
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
}
