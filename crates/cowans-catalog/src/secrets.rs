//! Shop secrets at rest: access tokens and webhook secrets are sealed with AES-256-GCM under a
//! key from the settings (`catalog.secret_keys.<id>`, base64 of 32 random bytes), with the key's
//! id stored beside each ciphertext so `secrets rotate` can re-seal under a new key. The shop's
//! domain and the secret's purpose are the associated data, so a ciphertext moved to another
//! shop or field does not open.

use std::collections::BTreeMap;

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, KeyInit, Payload},
};
use base64::Engine as _;
use cowans_store::catalog::Sealed;
use secrecy::{ExposeSecret, SecretString};

/// Which secret of a shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    AccessToken,
    WebhookSecret,
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Purpose::AccessToken => "access_token",
            Purpose::WebhookSecret => "webhook_secret",
        }
    }
}

/// Why a secret could not be sealed or opened; never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "catalog.secret_keys is empty: set one key (e.g. COWANS__CATALOG__SECRET_KEYS__K1=<base64 of 32 random bytes>)"
    )]
    NoKeys,
    #[error(
        "catalog.secret_keys.{0}: not the base64 of 32 bytes (make one with: openssl rand -base64 32)"
    )]
    BadKey(String),
    #[error("catalog.active_key {0:?} is not one of catalog.secret_keys")]
    UnknownActiveKey(String),
    #[error("catalog.active_key is required when catalog.secret_keys holds more than one key")]
    NoActiveKey,
    #[error("a secret was sealed with key {0:?}, which catalog.secret_keys does not hold")]
    MissingKey(String),
    #[error(
        "a secret sealed with key {0:?} does not open with that key: the key is wrong, or the data was altered"
    )]
    WrongKey(String),
}

/// The keys secrets are sealed with, by id, and the one new secrets use.
#[derive(Clone)]
pub struct KeyRing {
    keys: BTreeMap<String, Aes256Gcm>,
    active: String,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish()
    }
}

impl KeyRing {
    /// The ring from the settings' keys (id → base64) and active key id.
    pub fn new(
        keys: &BTreeMap<String, SecretString>,
        active: Option<&str>,
    ) -> Result<KeyRing, SecretError> {
        let mut ring = BTreeMap::new();
        for (id, encoded) in keys {
            let cipher = base64::engine::general_purpose::STANDARD
                .decode(encoded.expose_secret().trim())
                .ok()
                .filter(|b| b.len() == 32)
                .and_then(|b| Aes256Gcm::new_from_slice(&b).ok())
                .ok_or_else(|| SecretError::BadKey(id.clone()))?;
            ring.insert(id.clone(), cipher);
        }
        let active = match active {
            Some(a) if ring.contains_key(a) => a.to_owned(),
            Some(a) => return Err(SecretError::UnknownActiveKey(a.to_owned())),
            None if ring.len() == 1 => ring.keys().next().cloned().unwrap_or_default(),
            None if ring.is_empty() => return Err(SecretError::NoKeys),
            None => return Err(SecretError::NoActiveKey),
        };
        Ok(KeyRing { keys: ring, active })
    }

    pub fn active_key(&self) -> &str {
        &self.active
    }

    /// Seals `secret` of `shop_domain` under the active key.
    pub fn seal(&self, shop_domain: &str, purpose: Purpose, secret: &SecretString) -> Sealed {
        let cipher = &self.keys[&self.active];
        let nonce: [u8; 12] = rand::random();
        let aad = aad(shop_domain, purpose);
        // Encryption with a valid key and a 12-byte nonce cannot fail.
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret.expose_secret().as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        Sealed {
            key: self.active.clone(),
            nonce: nonce.to_vec(),
            sealed,
        }
    }

    /// Opens a sealed secret of `shop_domain`.
    pub fn open(
        &self,
        shop_domain: &str,
        purpose: Purpose,
        sealed: &Sealed,
    ) -> Result<SecretString, SecretError> {
        let cipher = self
            .keys
            .get(&sealed.key)
            .ok_or_else(|| SecretError::MissingKey(sealed.key.clone()))?;
        let nonce: [u8; 12] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::WrongKey(sealed.key.clone()))?;
        let aad = aad(shop_domain, purpose);
        let plain = cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed.sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretError::WrongKey(sealed.key.clone()))?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| SecretError::WrongKey(sealed.key.clone()))
    }
}

fn aad(shop_domain: &str, purpose: Purpose) -> String {
    format!("cowans:shop:{shop_domain}:{}", purpose.name())
}

/// The last four characters of a secret, to tell secrets apart without showing them.
pub fn last4(secret: &SecretString) -> String {
    let s = secret.expose_secret();
    let n = s.chars().count();
    s.chars().skip(n.saturating_sub(4)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretString {
        let bytes: [u8; 32] = rand::random();
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into()
    }

    fn ring(ids: &[&str], active: Option<&str>) -> KeyRing {
        let keys = ids.iter().map(|id| ((*id).to_owned(), key())).collect();
        KeyRing::new(&keys, active).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_shop_and_purpose() {
        let r = ring(&["k1"], None);
        let token: SecretString = "shpat_0123456789abcdef".into();
        let sealed = r.seal("a.myshopify.com", Purpose::AccessToken, &token);
        assert!(
            !sealed.sealed.windows(8).any(|w| w == b"shpat_01"),
            "not in clear"
        );
        let opened = r
            .open("a.myshopify.com", Purpose::AccessToken, &sealed)
            .unwrap();
        assert_eq!(opened.expose_secret(), token.expose_secret());
        assert_eq!(
            r.open("b.myshopify.com", Purpose::AccessToken, &sealed)
                .unwrap_err(),
            SecretError::WrongKey("k1".into()),
            "moved to another shop"
        );
        assert!(
            r.open("a.myshopify.com", Purpose::WebhookSecret, &sealed)
                .is_err()
        );
        let again = r.seal("a.myshopify.com", Purpose::AccessToken, &token);
        assert_ne!(again.nonce, sealed.nonce, "a fresh nonce each time");
        assert_eq!(last4(&token), "cdef");
    }

    #[test]
    fn keys_are_checked_and_rotation_keeps_old_secrets_readable() {
        let old = ring(&["k1"], None);
        let sealed = old.seal("s", Purpose::AccessToken, &"t0k3n".into());
        let mut keys: BTreeMap<String, SecretString> = BTreeMap::new();
        keys.insert("k1".into(), key());
        assert_eq!(
            KeyRing::new(&keys, None)
                .unwrap()
                .open("s", Purpose::AccessToken, &sealed)
                .unwrap_err(),
            SecretError::WrongKey("k1".into()),
            "a different key under the same id"
        );
        keys.insert("k2".into(), key());
        assert_eq!(
            KeyRing::new(&keys, None).unwrap_err(),
            SecretError::NoActiveKey
        );
        assert_eq!(
            KeyRing::new(&keys, Some("k9")).unwrap_err(),
            SecretError::UnknownActiveKey("k9".into())
        );
        keys.insert("bad".into(), "bm90IDMyIGJ5dGVz".into());
        assert_eq!(
            KeyRing::new(&keys, Some("k2")).unwrap_err(),
            SecretError::BadKey("bad".into())
        );
        assert_eq!(
            KeyRing::new(&BTreeMap::new(), None).unwrap_err(),
            SecretError::NoKeys
        );
        let missing = ring(&["k2"], None);
        assert_eq!(
            missing
                .open("s", Purpose::AccessToken, &sealed)
                .unwrap_err(),
            SecretError::MissingKey("k1".into())
        );
    }
}
