//! Where the store is: `--data DIR` (SQLite, the default) or `--database URL`.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use weft_store::vault::Vault;
use weft_store::{Durability, Store};

use crate::master_key::KeySource;

/// The PostgreSQL pool of a command that is not `weft serve`: it does one thing at a time.
const COMMAND_POOL: u32 = 4;

#[derive(Args, Clone)]
pub struct StoreArgs {
    /// The data folder: SQLite database and files. Created on first start.
    #[arg(long, env = "WEFT_DATA", default_value = "weft-data")]
    pub data: PathBuf,
    /// A database URL instead of the data folder's SQLite, e.g. postgres://user@host/db.
    #[arg(long, env = "WEFT_DATABASE_URL")]
    pub database: Option<String>,
    /// SQLite only: `normal` (a commit survives the process being killed; a power loss may
    /// take back the last ones) or `full` (every commit synced to disk first).
    #[arg(long, env = "WEFT_SQLITE_SYNC", default_value = "normal", value_parser = parse_durability)]
    pub sqlite_sync: Durability,
    /// The file of the master key that seals connection secrets, made on first start
    /// (default: master.key in the data folder). WEFT_MASTER_KEY, when set, is used instead.
    #[arg(long, env = "WEFT_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

fn parse_durability(text: &str) -> Result<Durability, String> {
    match text {
        "normal" => Ok(Durability::Normal),
        "full" => Ok(Durability::Full),
        other => Err(format!("`{other}` is not `normal` or `full`")),
    }
}

impl StoreArgs {
    /// Opens the store and brings its schema up to date.
    pub async fn open(&self) -> anyhow::Result<Store> {
        self.open_with_pool(COMMAND_POOL).await
    }

    /// Opens the store with a PostgreSQL pool of at most `pool` connections, and brings its
    /// schema up to date.
    pub async fn open_with_pool(&self, pool: u32) -> anyhow::Result<Store> {
        let store = match &self.database {
            Some(url) => Store::connect_with_pool(url, pool).await.with_context(|| {
                format!("cannot connect to the database {}", redact_password(url))
            })?,
            None => Store::open_data_folder_with(&self.data, self.sqlite_sync)
                .await
                .with_context(|| format!("cannot open the data folder {}", self.data.display()))?,
        };
        store
            .migrate()
            .await
            .context("cannot bring the database schema up to date")?;
        Ok(store)
    }

    /// True when the store is PostgreSQL, which several processes can share.
    pub fn is_postgres(&self) -> bool {
        self.database
            .as_deref()
            .is_some_and(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
    }

    /// Where this process finds the master key.
    pub fn key_source(&self) -> KeySource {
        KeySource::new(
            self.master_key_file
                .clone()
                .unwrap_or_else(|| self.data.join("master.key")),
        )
    }

    /// The vault that seals and opens secrets in this store.
    pub async fn vault(&self, store: &Store) -> anyhow::Result<Vault> {
        let key = self.key_source().load(store).await?;
        Ok(Vault::open(store.clone(), key).await?)
    }

    /// Where the store is, for messages.
    pub fn describe(&self) -> String {
        match &self.database {
            Some(url) => redact_password(url),
            None => format!("{} (SQLite)", self.data.display()),
        }
    }
}

/// A database URL without its password, for messages and logs.
pub fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:****{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn passwords_are_hidden_in_database_urls() {
        assert_eq!(
            redact_password("postgres://ann:s3cret@db:5432/weft"),
            "postgres://ann:****@db:5432/weft"
        );
        assert_eq!(
            redact_password("postgres://ann@db/weft"),
            "postgres://ann@db/weft"
        );
    }
}
