//! Token signing keys: a shared HMAC secret (HS256), or an Ed25519 key pair (EdDSA)
//! whose public half is published at `/.well-known/jwks.json`, so other services (a
//! door scanner, a gateway) can verify tokens without being able to mint them.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use goticket_core::Error;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::signature::{Ed25519KeyPair, KeyPair as _};

/// Shortest HMAC secret accepted: 256 bits, HS256's own size.
pub const MIN_SECRET_BYTES: usize = 32;

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// How tokens are signed and checked.
#[derive(Clone)]
pub enum Signer {
    /// HS256 with a shared secret; nothing is published.
    Hmac(Vec<u8>),
    /// EdDSA (Ed25519): signed with the private key, checked with the public one.
    Ed25519 {
        /// The private key, PKCS#8 DER.
        pkcs8: Vec<u8>,
        /// The public key, 32 bytes.
        public: Vec<u8>,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        match self {
            Signer::Hmac(_) => f.write_str("Signer::Hmac(..)"),
            Signer::Ed25519 { .. } => write!(f, "Signer::Ed25519 {{ kid: {} }}", self.key_id()),
        }
    }
}

impl Signer {
    /// HS256 with `secret`, refused if shorter than [`MIN_SECRET_BYTES`].
    pub fn hmac(secret: Vec<u8>) -> Result<Self, Error> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(Error::validation(
                "jwt secret",
                format!("must be at least {MIN_SECRET_BYTES} bytes, got {}", secret.len()),
            ));
        }
        Ok(Signer::Hmac(secret))
    }

    /// EdDSA with the Ed25519 private key in `pem` (PKCS#8, `BEGIN PRIVATE KEY`, as
    /// `openssl genpkey -algorithm ed25519` and `goticket keygen` write it).
    pub fn ed25519_pem(pem: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::validation("jwt key", why.to_owned());
        let body = pem
            .trim()
            .strip_prefix(PEM_BEGIN)
            .and_then(|rest| rest.strip_suffix(PEM_END))
            .ok_or_else(|| bad("is not a PEM private key (BEGIN PRIVATE KEY ... END PRIVATE KEY)"))?;
        let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let pkcs8 = STANDARD.decode(base64).map_err(|e| bad(&format!("has a malformed PEM body: {e}")))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|e| bad(&format!("is not an Ed25519 private key ({e})")))?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Signer::Ed25519 { pkcs8, public })
    }

    /// A new Ed25519 private key, as PEM.
    pub fn generate_ed25519_pem() -> anyhow::Result<String> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
        let body = STANDARD.encode(pkcs8.as_ref());
        let lines: Vec<&str> =
            body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
        Ok(format!("{PEM_BEGIN}\n{}\n{PEM_END}\n", lines.join("\n")))
    }

    /// The algorithm tokens carry; no other is accepted.
    pub(super) fn algorithm(&self) -> Algorithm {
        match self {
            Signer::Hmac(_) => Algorithm::HS256,
            Signer::Ed25519 { .. } => Algorithm::EdDSA,
        }
    }

    pub(super) fn encoding_key(&self) -> EncodingKey {
        match self {
            Signer::Hmac(secret) => EncodingKey::from_secret(secret),
            Signer::Ed25519 { pkcs8, .. } => EncodingKey::from_ed_der(pkcs8),
        }
    }

    pub(super) fn decoding_key(&self) -> DecodingKey {
        match self {
            Signer::Hmac(secret) => DecodingKey::from_secret(secret),
            Signer::Ed25519 { public, .. } => DecodingKey::from_ed_der(public),
        }
    }

    /// The key's id in token headers and the JWKS: the start of the public key's
    /// SHA-256, so a new key gets a new id. Empty for HMAC.
    pub(super) fn key_id(&self) -> String {
        match self {
            Signer::Hmac(_) => String::new(),
            Signer::Ed25519 { public, .. } => {
                let digest = ring::digest::digest(&ring::digest::SHA256, public);
                URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12])
            }
        }
    }

    /// The public keys (RFC 7517): the Ed25519 one, or none for a shared secret.
    pub(super) fn jwks(&self) -> Jwks {
        let keys = match self {
            Signer::Hmac(_) => Vec::new(),
            Signer::Ed25519 { public, .. } => vec![Jwk {
                kty: "OKP",
                crv: "Ed25519",
                x: URL_SAFE_NO_PAD.encode(public),
                alg: "EdDSA",
                key_use: "sig",
                kid: self.key_id(),
            }],
        };
        Jwks { keys }
    }
}

/// A JSON Web Key Set.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct Jwks {
    /// The keys tokens are signed with now; empty when tokens use a shared secret.
    keys: Vec<Jwk>,
}

/// An Ed25519 public key as a JSON Web Key (RFC 8037).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct Jwk {
    /// Always `OKP`.
    kty: &'static str,
    /// Always `Ed25519`.
    crv: &'static str,
    /// The public key, base64url without padding.
    x: String,
    /// Always `EdDSA`.
    alg: &'static str,
    /// Always `sig`.
    #[serde(rename = "use")]
    key_use: &'static str,
    /// The key's id, as in the tokens' `kid` header.
    kid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_reads_back_and_signs_what_its_public_half_verifies() {
        let pem = Signer::generate_ed25519_pem().unwrap();
        let signer = Signer::ed25519_pem(&pem).unwrap();
        assert_eq!(signer.algorithm(), Algorithm::EdDSA);
        let claims = serde_json::json!({ "sub": "a@example.com", "exp": 4_000_000_000u64 });
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = Some(signer.key_id());
        let token = jsonwebtoken::encode(&header, &claims, &signer.encoding_key()).unwrap();
        let jwks = serde_json::to_value(signer.jwks()).unwrap();
        let x = jwks["keys"][0]["x"].as_str().unwrap();
        let published = DecodingKey::from_ed_components(x).unwrap();
        let validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        jsonwebtoken::decode::<serde_json::Value>(&token, &published, &validation).unwrap();
        // Another key's public half does not verify it.
        let other = Signer::ed25519_pem(&Signer::generate_ed25519_pem().unwrap()).unwrap();
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &other.decoding_key(), &validation).is_err());
        assert_ne!(other.key_id(), signer.key_id());
        assert!(!format!("{signer:?}").contains(x), "Debug never shows key material");
    }

    /// A key from `openssl genpkey -algorithm ed25519` (PKCS#8 v1, no public key in it).
    #[test]
    fn reads_an_openssl_key() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIO+6x766SANTg3B8ElT9Icu4j74zjjN7WtXXKZgJtqQ4\n-----END PRIVATE KEY-----\n";
        let signer = Signer::ed25519_pem(pem).unwrap();
        // `openssl pkey -pubout -outform DER | tail -c 32`, base64url.
        assert_eq!(signer.jwks().keys[0].x, "44ZEn9InuhD7W2aL4NBPcC-GMYc6VkDLGcMAAu1mqZw");
    }

    #[test]
    fn bad_keys_and_short_secrets_are_refused_with_a_reason() {
        for (pem, why) in [
            ("", "is not a PEM private key"),
            ("-----BEGIN PRIVATE KEY-----\n@@@\n-----END PRIVATE KEY-----", "malformed PEM body"),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "is not an Ed25519 private key"),
        ] {
            let err = Signer::ed25519_pem(pem).unwrap_err().to_string();
            assert!(err.contains("jwt key") && err.contains(why), "{err}");
        }
        assert!(Signer::hmac(vec![7; 31]).unwrap_err().to_string().contains("at least 32 bytes"));
        assert_eq!(Signer::hmac(vec![7; 32]).unwrap().jwks().keys.len(), 0, "a secret is never published");
    }
}
