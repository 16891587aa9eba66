//! Where the master key comes from: `WEFT_MASTER_KEY`, or a key file (by default
//! `DATA/master.key`) created with mode 0600 on first start. The key is never written to the
//! database or the logs.

use anyhow::{Context, bail};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use weft_store::Store;
use weft_store::vault::{MasterKey, rotate_master_key, sealing_key_id};

/// The environment variable that holds the master key, in base64.
pub const MASTER_KEY_VARIABLE: &str = "WEFT_MASTER_KEY";
/// The new key of a rotation when the current one comes from the environment.
pub const NEW_MASTER_KEY_VARIABLE: &str = "WEFT_NEW_MASTER_KEY";

/// Where this process finds its master key.
pub enum KeySource {
    Environment(String),
    File(PathBuf),
}

impl KeySource {
    pub fn new(file: PathBuf) -> KeySource {
        match std::env::var(MASTER_KEY_VARIABLE) {
            Ok(text) if !text.trim().is_empty() => KeySource::Environment(text),
            _ => KeySource::File(file),
        }
    }

    /// The master key for `store`: from the environment, or the key file (made on first
    /// start, when the store holds no sealed data yet). A rotation that stopped between
    /// re-sealing and swapping the key file is finished here.
    pub async fn load(&self, store: &Store) -> anyhow::Result<MasterKey> {
        let sealed_by = sealing_key_id(store).await?;
        let key = match self {
            KeySource::Environment(text) => MasterKey::from_text(text)
                .with_context(|| format!("in the environment variable {MASTER_KEY_VARIABLE}"))?,
            KeySource::File(path) => {
                finish_rotation(path, sealed_by.as_deref())?;
                match read_key_file(path)? {
                    Some(key) => key,
                    None if sealed_by.is_some() => bail!(
                        "this store holds secrets sealed by master key {}, and there is no key \
                         file at {}: set {MASTER_KEY_VARIABLE}, or --master-key-file to the file that holds it",
                        sealed_by.as_deref().unwrap_or_default(),
                        path.display()
                    ),
                    None => create_key_file(path)?,
                }
            }
        };
        if let Some(sealed_by) = sealed_by
            && sealed_by != key.id()
        {
            bail!(
                "the master key given (id {}) is not the one that sealed this store's secrets \
                 (id {sealed_by})",
                key.id()
            );
        }
        Ok(key)
    }

    /// Re-seals every data key with a new master key. With a key file, the new key replaces
    /// it; with the environment, the new key is taken from `WEFT_NEW_MASTER_KEY` and the
    /// operator swaps the variables. Returns a line for the operator.
    pub async fn rotate(&self, store: &Store) -> anyhow::Result<String> {
        let old = self.load(store).await?;
        match self {
            KeySource::Environment(_) => {
                let text = std::env::var(NEW_MASTER_KEY_VARIABLE).map_err(|_| {
                    anyhow::anyhow!(
                        "the master key comes from {MASTER_KEY_VARIABLE}: put the new one in \
                         {NEW_MASTER_KEY_VARIABLE} (`weft admin generate-key` makes one)"
                    )
                })?;
                let new = MasterKey::from_text(&text)
                    .with_context(|| format!("in {NEW_MASTER_KEY_VARIABLE}"))?;
                let count = rotate_master_key(store, &old, &new).await?;
                Ok(format!(
                    "re-sealed {count} data key(s) with master key {}: set {MASTER_KEY_VARIABLE} \
                     to the value of {NEW_MASTER_KEY_VARIABLE} for every process",
                    new.id()
                ))
            }
            KeySource::File(path) => {
                let new = MasterKey::generate();
                let next = next_path(path);
                write_new_key_file(&next, &new)?;
                let count = rotate_master_key(store, &old, &new).await?;
                std::fs::rename(&next, path).with_context(|| {
                    format!("cannot move {} to {}", next.display(), path.display())
                })?;
                sync_folder(path);
                Ok(format!(
                    "re-sealed {count} data key(s) with master key {}, now in {}",
                    new.id(),
                    path.display()
                ))
            }
        }
    }
}

/// The file a rotation writes its new key to before it re-seals.
fn next_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".next");
    path.with_file_name(name)
}

/// When a rotation re-sealed the data keys but stopped before its new key file took the old
/// one's place, the new file is the key in use: it is moved into place. When it stopped
/// before re-sealing, the new file is dropped.
fn finish_rotation(path: &Path, sealed_by: Option<&str>) -> anyhow::Result<()> {
    let next = next_path(path);
    let Some(new) = read_key_file(&next)? else {
        return Ok(());
    };
    if sealed_by == Some(new.id()) {
        std::fs::rename(&next, path).with_context(|| {
            format!(
                "cannot finish a key rotation: move {} to {}",
                next.display(),
                path.display()
            )
        })?;
        tracing::warn!(
            key = new.id(),
            "finished an interrupted master key rotation"
        );
    } else {
        std::fs::remove_file(&next).with_context(|| format!("cannot remove {}", next.display()))?;
    }
    Ok(())
}

fn read_key_file(path: &Path) -> anyhow::Result<Option<MasterKey>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the key file {}", path.display()));
        }
    };
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "the key file {} can be read by others (mode {:o}): `chmod 600` it",
            path.display(),
            mode & 0o777
        );
    }
    let key = MasterKey::from_text(&text)
        .with_context(|| format!("in the key file {}", path.display()))?;
    Ok(Some(key))
}

fn create_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    let key = MasterKey::generate();
    write_new_key_file(path, &key)?;
    tracing::info!(file = %path.display(), key = key.id(), "created a master key file; back it up apart from the database");
    Ok(key)
}

/// Writes a key to a file that must not exist yet, readable by its owner only, synced.
fn write_new_key_file(path: &Path, key: &MasterKey) -> anyhow::Result<()> {
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create the folder {}", folder.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the key file {}", path.display()))?;
    file.write_all(key.to_text().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the key file {}", path.display()))?;
    sync_folder(path);
    Ok(())
}

/// Makes a file's creation or rename durable.
fn sync_folder(path: &Path) {
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
        && let Ok(folder) = std::fs::File::open(folder)
    {
        let _ = folder.sync_all();
    }
}
