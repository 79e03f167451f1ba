//! Token signing keys: a shared HMAC secret (HS256), or an Ed25519 key pair (EdDSA)
//! whose public half is published at `/.well-known/jwks.json`, so other services (a
//! door scanner, a gateway) can verify tokens without being able to mint them.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use goticket_core::Error;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Shortest HMAC secret accepted: 256 bits, HS256's own size.
pub const MIN_SECRET_BYTES: usize = 32;

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// How tokens are signed and checked: the keys, the one algorithm accepted, and the
/// public keys to publish, all made once at start-up.
#[derive(Clone)]
pub struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    jwks: Jwks,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        write!(f, "Signer {{ alg: {:?}, kid: {:?} }}", self.header.alg, self.header.kid)
    }
}

impl Signer {
    fn new(algorithm: Algorithm, encoding: EncodingKey, decoding: DecodingKey, jwks: Jwks) -> Self {
        let mut header = Header::new(algorithm);
        header.kid = jwks.keys.first().map(|k| k.kid.clone());
        let mut validation = Validation::new(algorithm);
        // No leeway: a token is refused the second its `exp` passes.
        validation.leeway = 0;
        Signer { encoding, decoding, header, validation, jwks }
    }

    /// HS256 with `secret`, refused if shorter than [`MIN_SECRET_BYTES`].
    pub fn hmac(secret: Vec<u8>) -> Result<Self, Error> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(Error::validation(
                "jwt secret",
                format!("must be at least {MIN_SECRET_BYTES} bytes, got {}", secret.len()),
            ));
        }
        let (encoding, decoding) = (EncodingKey::from_secret(&secret), DecodingKey::from_secret(&secret));
        Ok(Signer::new(Algorithm::HS256, encoding, decoding, Jwks { keys: Vec::new() }))
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
        let public = pair.public_key().as_ref();
        // The key's id: the start of the public key's SHA-256, so a new key gets a new id.
        let digest = ring::digest::digest(&ring::digest::SHA256, public);
        let jwk = Jwk {
            kty: "OKP",
            crv: "Ed25519",
            x: URL_SAFE_NO_PAD.encode(public),
            alg: "EdDSA",
            key_use: "sig",
            kid: URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]),
        };
        let (encoding, decoding) = (EncodingKey::from_ed_der(&pkcs8), DecodingKey::from_ed_der(public));
        Ok(Signer::new(Algorithm::EdDSA, encoding, decoding, Jwks { keys: vec![jwk] }))
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

    /// A signed token of `claims`, with the key's id in its header.
    pub(super) fn sign<T: Serialize>(&self, claims: &T) -> jsonwebtoken::errors::Result<String> {
        jsonwebtoken::encode(&self.header, claims, &self.encoding)
    }

    /// The claims of `token`, if this server signed it, in its algorithm, and it has not
    /// expired.
    pub(super) fn verify<T: DeserializeOwned>(&self, token: &str) -> jsonwebtoken::errors::Result<T> {
        jsonwebtoken::decode::<T>(token, &self.decoding, &self.validation).map(|data| data.claims)
    }

    /// The public keys (RFC 7517): the Ed25519 one, or none for a shared secret.
    pub(super) fn jwks(&self) -> &Jwks {
        &self.jwks
    }
}

/// A JSON Web Key Set.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(super) struct Jwks {
    /// The keys tokens are signed with now; empty when tokens use a shared secret.
    keys: Vec<Jwk>,
}

/// An Ed25519 public key as a JSON Web Key (RFC 8037).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

    fn claims() -> serde_json::Value {
        serde_json::json!({ "sub": "a@example.com", "exp": 4_000_000_000u64 })
    }

    #[test]
    fn a_generated_key_reads_back_and_signs_what_its_published_key_verifies() {
        let signer = Signer::ed25519_pem(&Signer::generate_ed25519_pem().unwrap()).unwrap();
        let token = signer.sign(&claims()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::EdDSA, Some(signer.jwks().keys[0].kid.as_str())));
        let published = DecodingKey::from_ed_components(&signer.jwks().keys[0].x).unwrap();
        jsonwebtoken::decode::<serde_json::Value>(&token, &published, &Validation::new(Algorithm::EdDSA)).unwrap();
        assert_eq!(signer.verify::<serde_json::Value>(&token).unwrap(), claims());
        // Another key does not verify it, and has another id.
        let other = Signer::ed25519_pem(&Signer::generate_ed25519_pem().unwrap()).unwrap();
        assert!(other.verify::<serde_json::Value>(&token).is_err());
        assert_ne!(other.jwks().keys[0].kid, signer.jwks().keys[0].kid);
        assert!(!format!("{signer:?}").contains(&signer.jwks().keys[0].x), "Debug never shows key material");
    }

    /// A key from `openssl genpkey -algorithm ed25519` (PKCS#8 v1, no public key in it).
    #[test]
    fn reads_an_openssl_key() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIO+6x766SANTg3B8ElT9Icu4j74zjjN7WtXXKZgJtqQ4\n-----END PRIVATE KEY-----\n";
        let signer = Signer::ed25519_pem(pem).unwrap();
        // `openssl pkey -pubout -outform DER | tail -c 32`, base64url.
        assert_eq!(signer.jwks().keys[0].x, "44ZEn9InuhD7W2aL4NBPcC-GMYc6VkDLGcMAAu1mqZw");
    }

    /// Each server accepts its own algorithm only, and never an expired token.
    #[test]
    fn only_the_servers_algorithm_and_only_unexpired() {
        let hmac = Signer::hmac(vec![7; 32]).unwrap();
        let ed = Signer::ed25519_pem(&Signer::generate_ed25519_pem().unwrap()).unwrap();
        assert!(ed.verify::<serde_json::Value>(&hmac.sign(&claims()).unwrap()).is_err());
        assert!(hmac.verify::<serde_json::Value>(&ed.sign(&claims()).unwrap()).is_err());
        let expired = serde_json::json!({ "sub": "a@example.com", "exp": jsonwebtoken::get_current_timestamp() - 1 });
        assert!(hmac.verify::<serde_json::Value>(&hmac.sign(&expired).unwrap()).is_err(), "no leeway");
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
        assert!(Signer::hmac(vec![7; 32]).unwrap().jwks().keys.is_empty(), "a secret is never published");
    }
}
