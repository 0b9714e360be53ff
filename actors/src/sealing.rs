//! The operator's secrets key and what it does: seal a secret's value with AES-256-GCM under
//! a random nonce, bound to its record's identity (`core::secrets::sealed_with`), and open it
//! again. The key lives only in the node's memory: it is read from the operator's file or
//! environment at start and never written to the store.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes of a key.
pub const KEY_BYTES: usize = 32;

/// Why a key or a sealed value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The key text is not base64 of 32 bytes.
    #[error("a secrets key is base64 of {KEY_BYTES} random bytes (`gigafactory secrets keygen`)")]
    BadKey,
    /// The system's random source failed; nothing was sealed.
    #[error("no randomness for a nonce")]
    NoRandomness,
    /// Wrong key, or a value moved to another record, or bytes changed.
    #[error("a sealed value does not open with this key (another key, or a changed record)")]
    Unreadable,
}

/// The key values are sealed with.
pub struct SecretsKey {
    key: LessSafeKey,
    random: SystemRandom,
}

/// Never shows the key.
impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(..)")
    }
}

impl SecretsKey {
    /// A key from its base64 text (surrounding whitespace ignored, as a file's newline).
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadKey)?;
        if bytes.len() != KEY_BYTES {
            return Err(SealError::BadKey);
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadKey)?;
        Ok(SecretsKey {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        })
    }

    /// A new random key, as base64 text.
    pub fn generate() -> Result<String, SealError> {
        let mut bytes = [0u8; KEY_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SealError::NoRandomness)?;
        Ok(STANDARD.encode(bytes))
    }

    /// Seals `plain` bound to `context`: the nonce, and the ciphertext with its tag.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SealError::NoRandomness)?;
        let mut sealed = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut sealed,
            )
            .map_err(|_| SealError::NoRandomness)?;
        Ok((nonce.to_vec(), sealed))
    }

    /// Opens what [`Self::seal`] sealed with the same `context`.
    pub fn open(&self, context: &[u8], nonce: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unreadable)?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| SealError::Unreadable)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretsKey {
        SecretsKey::from_base64(&SecretsKey::generate().unwrap()).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_context_only() {
        let k = key();
        let (nonce, sealed) = k.seal(b"acme/API_KEY/v1", b"sk-live-123456").unwrap();
        assert!(
            !sealed.windows(6).any(|w| w == b"sk-liv"),
            "sealed, not copied"
        );
        assert_eq!(
            k.open(b"acme/API_KEY/v1", &nonce, &sealed).unwrap(),
            b"sk-live-123456"
        );
        assert_eq!(
            k.open(b"acme/OTHER/v1", &nonce, &sealed),
            Err(SealError::Unreadable),
            "moved to another record"
        );
        assert_eq!(
            key().open(b"acme/API_KEY/v1", &nonce, &sealed),
            Err(SealError::Unreadable),
            "another key"
        );
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert_eq!(
            k.open(b"acme/API_KEY/v1", &nonce, &flipped),
            Err(SealError::Unreadable)
        );
        assert_eq!(
            k.open(b"acme/API_KEY/v1", &nonce[..4], &sealed),
            Err(SealError::Unreadable),
            "a cut nonce is refused, not a panic"
        );
    }

    #[test]
    fn every_seal_takes_a_fresh_nonce() {
        let k = key();
        let (a, _) = k.seal(b"c", b"value").unwrap();
        let (b, _) = k.seal(b"c", b"value").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_key_is_base64_of_32_bytes() {
        assert_eq!(
            SecretsKey::from_base64("not base64!").unwrap_err(),
            SealError::BadKey
        );
        assert_eq!(
            SecretsKey::from_base64(&STANDARD.encode([0u8; 16])).unwrap_err(),
            SealError::BadKey
        );
        let text = format!("{}\n", SecretsKey::generate().unwrap());
        assert!(SecretsKey::from_base64(&text).is_ok(), "a file's newline");
        assert_eq!(format!("{:?}", key()), "SecretsKey(..)");
    }
}
