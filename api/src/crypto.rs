//! Secrets at rest: AES-256-GCM envelopes under a keyring.
//!
//! An envelope is `v1.<key id>.<base64url(nonce ‖ ciphertext)>`. It names the key that
//! sealed it, so keys can be rotated: every key of the ring opens, only the active (first)
//! one seals, and `api secrets rotate` re-seals old envelopes. The associated data binds
//! the ciphertext to its account, table, row and column: an envelope copied to another row
//! or account does not open.

use std::{collections::HashMap, fmt, path::Path};

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Key, Nonce,
};
use base64::{engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::RngCore;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("malformed keyring: {0}")]
    Keyring(String),
    #[error("malformed secret envelope")]
    Envelope,
    #[error("secret sealed with unknown key {0:?}")]
    UnknownKey(String),
    #[error("secret does not open for this row (tampered, moved, or wrong key)")]
    Open,
    #[error("cannot read or write the key file: {0}")]
    KeyFile(#[from] std::io::Error),
}

/// Where a secret lives; the cipher's associated data, so envelopes cannot be moved.
#[derive(Clone, Copy, Debug)]
pub struct SecretSlot<'a> {
    pub account_id: Uuid,
    pub table: &'a str,
    pub row_id: Uuid,
    pub column: &'a str,
}

impl SecretSlot<'_> {
    fn associated_data(&self) -> Vec<u8> {
        format!("herald.v1|{}|{}|{}|{}", self.account_id, self.table, self.row_id, self.column).into_bytes()
    }
}

/// A decrypted secret; its `Debug` never shows the value.
pub struct Plaintext(String);

impl Plaintext {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Plaintext(<redacted>)")
    }
}

#[derive(Clone)]
pub struct Keyring {
    active: String,
    keys: HashMap<String, Aes256Gcm>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("active", &self.active).field("keys", &self.keys.len()).finish()
    }
}

impl Keyring {
    /// Parses `id:base64key[,id:base64key…]`; the first key is the active one.
    pub fn parse(spec: &str) -> Result<Self, CryptoError> {
        let mut keys = HashMap::new();
        let mut active = None;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, b64) = part.split_once(':').ok_or_else(|| CryptoError::Keyring("each key is id:base64".into()))?;
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(CryptoError::Keyring(format!("key id {id:?} must be letters, digits, - or _")));
            }
            let bytes = STANDARD.decode(b64).map_err(|e| CryptoError::Keyring(format!("key {id:?} is not base64: {e}")))?;
            if bytes.len() != 32 {
                return Err(CryptoError::Keyring(format!("key {id:?} must be 32 bytes, got {}", bytes.len())));
            }
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes));
            if keys.insert(id.to_string(), cipher).is_some() {
                return Err(CryptoError::Keyring(format!("key id {id:?} appears twice")));
            }
            active.get_or_insert_with(|| id.to_string());
        }
        let active = active.ok_or_else(|| CryptoError::Keyring("no key given".into()))?;
        Ok(Self { active, keys })
    }

    /// A new random key spec `id:base64key`, for key files and rotation.
    pub fn generate_spec(id: &str) -> String {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        format!("{id}:{}", STANDARD.encode(key))
    }

    /// Reads the embedded key file, creating it (mode 0600) with a fresh key if missing.
    pub fn load_or_create_file(path: &Path) -> Result<Self, CryptoError> {
        let spec = read_or_create_secret_file(path, || Self::generate_spec("k1"))?;
        Self::parse(&spec)
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    pub fn seal(&self, slot: SecretSlot<'_>, plaintext: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = slot.associated_data();
        let ciphertext = self.keys[&self.active]
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: &aad })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut body = nonce.to_vec();
        body.extend_from_slice(&ciphertext);
        format!("v1.{}.{}", self.active, URL_SAFE_NO_PAD.encode(body))
    }

    pub fn open(&self, slot: SecretSlot<'_>, envelope: &str) -> Result<Plaintext, CryptoError> {
        let (key_id, body) = parse_envelope(envelope)?;
        let cipher = self.keys.get(key_id).ok_or_else(|| CryptoError::UnknownKey(key_id.to_string()))?;
        if body.len() < 12 + 16 {
            return Err(CryptoError::Envelope);
        }
        let (nonce, ciphertext) = body.split_at(12);
        let aad = slot.associated_data();
        let plain = cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad }).map_err(|_| CryptoError::Open)?;
        String::from_utf8(plain).map(Plaintext).map_err(|_| CryptoError::Open)
    }

    /// Whether an envelope was sealed with another key than the active one.
    pub fn needs_rotation(&self, envelope: &str) -> Result<bool, CryptoError> {
        Ok(parse_envelope(envelope)?.0 != self.active)
    }

    /// Opens with whichever key sealed it and seals again with the active key.
    pub fn reseal(&self, slot: SecretSlot<'_>, envelope: &str) -> Result<String, CryptoError> {
        let plain = self.open(slot, envelope)?;
        Ok(self.seal(slot, plain.expose()))
    }
}

fn parse_envelope(envelope: &str) -> Result<(&str, Vec<u8>), CryptoError> {
    let mut parts = envelope.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some(key_id), Some(body)) => Ok((key_id, URL_SAFE_NO_PAD.decode(body).map_err(|_| CryptoError::Envelope)?)),
        _ => Err(CryptoError::Envelope),
    }
}

/// Reads a generated secret from `path`, or creates it with owner-only permissions.
pub fn read_or_create_secret_file(path: &Path, generate: impl FnOnce() -> String) -> Result<String, CryptoError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = generate();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(path) {
                Ok(mut file) => {
                    use std::io::Write;
                    file.write_all(value.as_bytes())?;
                    file.sync_all()?;
                    Ok(value)
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(std::fs::read_to_string(path)?.trim().to_string()),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(account: Uuid, row: Uuid) -> SecretSlot<'static> {
        SecretSlot { account_id: account, table: "smtp_settings", row_id: row, column: "password" }
    }

    #[test]
    fn sealed_secret_opens_only_in_its_own_slot() {
        let ring = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
        let (a, b, row) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let env = ring.seal(slot(a, row), "hunter2");
        assert!(!env.contains("hunter2"));
        assert_eq!(ring.open(slot(a, row), &env).unwrap().expose(), "hunter2");
        assert!(matches!(ring.open(slot(b, row), &env), Err(CryptoError::Open)), "another account");
        assert!(matches!(ring.open(slot(a, Uuid::now_v7()), &env), Err(CryptoError::Open)), "another row");
        let other_column = SecretSlot { column: "username", ..slot(a, row) };
        assert!(matches!(ring.open(other_column, &env), Err(CryptoError::Open)));
    }

    #[test]
    fn tampered_envelope_is_refused() {
        let ring = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
        let (a, row) = (Uuid::now_v7(), Uuid::now_v7());
        let env = ring.seal(slot(a, row), "secret");
        let mut bytes = env.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(ring.open(slot(a, row), &tampered).is_err());
        assert!(matches!(ring.open(slot(a, row), "plain"), Err(CryptoError::Envelope)));
    }

    #[test]
    fn rotation_keeps_old_keys_readable_and_reseals_with_the_new_one() {
        let old_spec = Keyring::generate_spec("k1");
        let old = Keyring::parse(&old_spec).unwrap();
        let (a, row) = (Uuid::now_v7(), Uuid::now_v7());
        let env = old.seal(slot(a, row), "pw");

        let rotated = Keyring::parse(&format!("{},{old_spec}", Keyring::generate_spec("k2"))).unwrap();
        assert_eq!(rotated.active_key_id(), "k2");
        assert!(rotated.needs_rotation(&env).unwrap());
        assert_eq!(rotated.open(slot(a, row), &env).unwrap().expose(), "pw");
        let resealed = rotated.reseal(slot(a, row), &env).unwrap();
        assert!(resealed.starts_with("v1.k2."));
        assert!(!rotated.needs_rotation(&resealed).unwrap());
        assert!(matches!(old.open(slot(a, row), &resealed), Err(CryptoError::UnknownKey(k)) if k == "k2"));
    }

    #[test]
    fn keyring_spec_errors_are_explicit() {
        assert!(Keyring::parse("").is_err());
        assert!(Keyring::parse("k1:notbase64!").is_err());
        assert!(Keyring::parse(&format!("k1:{}", STANDARD.encode([0u8; 16]))).is_err());
        let spec = Keyring::generate_spec("k1");
        assert!(Keyring::parse(&format!("{spec},{spec}")).is_err());
    }

    #[test]
    fn key_file_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.key");
        let first = Keyring::load_or_create_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let second = Keyring::load_or_create_file(&path).unwrap();
        let (a, row) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(second.open(slot(a, row), &first.seal(slot(a, row), "x")).unwrap().expose(), "x");
    }
}
