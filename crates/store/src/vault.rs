//! Secrets at rest: envelope encryption with XChaCha20-Poly1305.
//!
//! A *master key* (from `WEFT_MASTER_KEY` or a key file, never in the database) seals one
//! *data key* per workspace; data keys seal secret values. Rotating the master key re-seals
//! the data keys only, so it is quick whatever the number of secrets. Every sealed value is
//! bound to its row by the cipher's additional data: a value copied to another row does not
//! open there.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

use crate::{Store, StoreError};

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
/// The workspace whose data key seals everything until workspaces exist.
pub use crate::access::DEFAULT_WORKSPACE;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "the master key must be {KEY_BYTES} random bytes written in base64 (44 characters), \
         as `weft admin generate-key` prints"
    )]
    BadMasterKey,
    #[error(
        "the master key given (id {given}) is not the one that sealed this store's data keys \
         (id {sealed_by}); start with the key in use, or finish a rotation with `weft admin rotate-key`"
    )]
    WrongMasterKey { given: String, sealed_by: String },
    /// A sealed value failed to open: tampered with, moved to another row, or sealed by
    /// another key. The message never holds the value.
    #[error("a sealed value in the store does not open: {0}")]
    Unopenable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key that seals the data keys. Its bytes are wiped when it is dropped and never printed.
#[derive(Clone)]
pub struct MasterKey {
    key: Arc<Zeroizing<[u8; KEY_BYTES]>>,
    id: String,
}

impl MasterKey {
    pub fn generate() -> MasterKey {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        rand::rng().fill_bytes(key.as_mut());
        MasterKey::from_bytes(key)
    }

    /// A key as `to_text` writes it: base64 of 32 bytes, surrounding blanks ignored.
    pub fn from_text(text: &str) -> Result<MasterKey, VaultError> {
        let bytes = Zeroizing::new(
            BASE64
                .decode(text.trim())
                .map_err(|_| VaultError::BadMasterKey)?,
        );
        let key: [u8; KEY_BYTES] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::BadMasterKey)?;
        Ok(MasterKey::from_bytes(Zeroizing::new(key)))
    }

    fn from_bytes(key: Zeroizing<[u8; KEY_BYTES]>) -> MasterKey {
        // A short fingerprint that names the key in the store and in messages; it reveals
        // nothing usable about the key.
        let digest = Sha256::new()
            .chain_update(b"weft master key id\0")
            .chain_update(key.as_ref())
            .finalize();
        MasterKey {
            id: hex::encode(&digest[..8]),
            key: Arc::new(key),
        }
    }

    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.key.as_ref()))
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

/// Encrypts `plain` under `key`, bound to `aad`: base64 of the nonce and the ciphertext.
fn seal(key: &[u8; KEY_BYTES], aad: &str, plain: &[u8]) -> String {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rng().fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    // Encryption fails only for inputs of many gigabytes, which no secret is.
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: aad.as_bytes(),
            },
        )
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    BASE64.encode(out)
}

fn open(key: &[u8; KEY_BYTES], aad: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let bytes = BASE64
        .decode(sealed)
        .map_err(|_| VaultError::Unopenable(format!("{aad}: not base64")))?;
    if bytes.len() < NONCE_BYTES {
        return Err(VaultError::Unopenable(format!("{aad}: too short")));
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| {
            VaultError::Unopenable(format!("{aad}: the authentication tag does not match"))
        })
}

/// A data key as stored: sealed by the master key named by `master_key_id`.
#[derive(Debug, Clone)]
pub struct StoredDataKey {
    pub id: String,
    pub workspace: String,
    pub master_key_id: String,
    pub sealed: String,
}

fn data_key_aad(id: &str, workspace: &str) -> String {
    format!("weft data key {id} of workspace {workspace}")
}

/// A value sealed by a data key, with the key's id.
#[derive(Debug, Clone, PartialEq)]
pub struct Sealed {
    pub data_key_id: String,
    pub text: String,
}

type DataKey = Arc<Zeroizing<[u8; KEY_BYTES]>>;

/// Seals and opens secrets for one process. Opened data keys are kept in memory (wiped when
/// dropped), so a secret costs one decryption, not a database read.
pub struct Vault {
    store: Store,
    master: MasterKey,
    data_keys: Mutex<HashMap<String, DataKey>>,
}

impl Vault {
    /// A vault over the store; fails when the store's data keys were sealed by another key.
    pub async fn open(store: Store, master: MasterKey) -> Result<Vault, VaultError> {
        for stored in store.data_keys().await? {
            if stored.master_key_id != master.id() {
                return Err(VaultError::WrongMasterKey {
                    given: master.id().to_owned(),
                    sealed_by: stored.master_key_id,
                });
            }
        }
        Ok(Vault {
            store,
            master,
            data_keys: Mutex::new(HashMap::new()),
        })
    }

    /// Seals `plain` for a row; `row` names it (such as `connection ID`) and binds the result
    /// to it.
    pub async fn seal(&self, row: &str, plain: &[u8]) -> Result<Sealed, VaultError> {
        let (id, key) = self.workspace_key(DEFAULT_WORKSPACE).await?;
        Ok(Sealed {
            text: seal(&key, row, plain),
            data_key_id: id,
        })
    }

    /// Opens what `seal` sealed for the same row.
    pub async fn open_sealed(
        &self,
        row: &str,
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let key = self.data_key(&sealed.data_key_id).await?;
        open(&key, row, &sealed.text)
    }

    async fn workspace_key(&self, workspace: &str) -> Result<(String, DataKey), VaultError> {
        if let Some(stored) = self.store.data_key_of_workspace(workspace).await? {
            let key = self.data_key(&stored.id).await?;
            return Ok((stored.id, key));
        }
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        rand::rng().fill_bytes(key.as_mut());
        let id = crate::new_id();
        let stored = StoredDataKey {
            sealed: seal(
                &self.master.key,
                &data_key_aad(&id, workspace),
                key.as_ref(),
            ),
            id,
            workspace: workspace.to_owned(),
            master_key_id: self.master.id().to_owned(),
        };
        // Two callers may race to make the first key: the store keeps one per workspace, and
        // the loser uses the winner's.
        match self.store.create_data_key(&stored).await {
            Ok(()) => {
                let key: DataKey = Arc::new(key);
                self.remember(&stored.id, &key);
                Ok((stored.id, key))
            }
            Err(StoreError::Conflict(_)) => {
                let stored = self
                    .store
                    .data_key_of_workspace(workspace)
                    .await?
                    .ok_or_else(|| VaultError::Unopenable("the workspace's data key".into()))?;
                let key = self.data_key(&stored.id).await?;
                Ok((stored.id, key))
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn data_key(&self, id: &str) -> Result<DataKey, VaultError> {
        if let Some(key) = self
            .data_keys
            .lock()
            .ok()
            .and_then(|keys| keys.get(id).cloned())
        {
            return Ok(key);
        }
        let stored =
            self.store.data_key(id).await?.ok_or_else(|| {
                VaultError::Unopenable(format!("data key {id} is not in the store"))
            })?;
        let key = open_data_key(&self.master, &stored)?;
        self.remember(id, &key);
        Ok(key)
    }

    fn remember(&self, id: &str, key: &DataKey) {
        if let Ok(mut keys) = self.data_keys.lock() {
            keys.insert(id.to_owned(), Arc::clone(key));
        }
    }
}

fn open_data_key(master: &MasterKey, stored: &StoredDataKey) -> Result<DataKey, VaultError> {
    if stored.master_key_id != master.id() {
        return Err(VaultError::WrongMasterKey {
            given: master.id().to_owned(),
            sealed_by: stored.master_key_id.clone(),
        });
    }
    let plain = open(
        &master.key,
        &data_key_aad(&stored.id, &stored.workspace),
        &stored.sealed,
    )?;
    let key: [u8; KEY_BYTES] = plain
        .as_slice()
        .try_into()
        .map_err(|_| VaultError::Unopenable(format!("data key {}: wrong length", stored.id)))?;
    Ok(Arc::new(Zeroizing::new(key)))
}

/// Re-seals every data key of the store from `old` to `new`, in one transaction: after it,
/// only `new` opens the store's secrets. Data keys already sealed by `new` (a rotation that
/// stopped before its key file was swapped) are left as they are. Returns how many changed.
pub async fn rotate_master_key(
    store: &Store,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<usize, VaultError> {
    let mut resealed = Vec::new();
    for stored in store.data_keys().await? {
        if stored.master_key_id == new.id() {
            continue;
        }
        let key = open_data_key(old, &stored)?;
        resealed.push(StoredDataKey {
            sealed: seal(
                &new.key,
                &data_key_aad(&stored.id, &stored.workspace),
                &key[..],
            ),
            master_key_id: new.id().to_owned(),
            ..stored
        });
    }
    store.reseal_data_keys(&resealed).await?;
    Ok(resealed.len())
}

/// The master key that sealed the store's data keys, if there are any.
pub async fn sealing_key_id(store: &Store) -> Result<Option<String>, StoreError> {
    Ok(store
        .data_keys()
        .await?
        .into_iter()
        .next()
        .map(|stored| stored.master_key_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_row() {
        let key = [7u8; KEY_BYTES];
        let sealed = seal(&key, "connection 1", b"hunter2");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            open(&key, "connection 1", &sealed).unwrap().as_slice(),
            b"hunter2"
        );
        assert!(
            open(&key, "connection 2", &sealed).is_err(),
            "moved to another row"
        );
        assert!(
            open(&[8u8; KEY_BYTES], "connection 1", &sealed).is_err(),
            "another key"
        );
        let mut tampered = BASE64.decode(&sealed).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(open(&key, "connection 1", &BASE64.encode(tampered)).is_err());
    }

    #[test]
    fn sealing_twice_gives_different_text() {
        let key = [7u8; KEY_BYTES];
        assert_ne!(seal(&key, "row", b"same"), seal(&key, "row", b"same"));
    }

    #[test]
    fn master_keys_read_back_and_bad_ones_are_refused() {
        let key = MasterKey::generate();
        let again = MasterKey::from_text(&format!(" {}\n", key.to_text().as_str())).unwrap();
        assert_eq!(key.id(), again.id());
        assert_ne!(key.id(), MasterKey::generate().id());
        assert!(!format!("{key:?}").contains(key.to_text().as_str()));
        for bad in ["", "not base64!", "c2hvcnQ="] {
            assert!(matches!(
                MasterKey::from_text(bad),
                Err(VaultError::BadMasterKey)
            ));
        }
    }
}
