//! `weft admin`: bootstrap people and API tokens without a browser, and keep the master key.

use anyhow::{Context, bail};
use clap::Subcommand;
use std::io::Read;

use super::store_args::StoreArgs;

/// Shortest password accepted.
const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create a user; the password is read from standard input.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Read the password from standard input (so it is not in the shell history).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print a new random master key (for WEFT_MASTER_KEY or WEFT_NEW_MASTER_KEY).
    GenerateKey,
    /// Re-seal every data key with a new master key. Stop the servers of this store first.
    /// With a key file, a new key replaces it; with WEFT_MASTER_KEY, the new key is read from
    /// WEFT_NEW_MASTER_KEY.
    RotateKey {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Create an API token for a user and print it. It is shown this once.
    CreateToken {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::CreateUser {
            email, name, store, ..
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.chars().count() < MIN_PASSWORD_CHARS {
                bail!("the password must have at least {MIN_PASSWORD_CHARS} characters");
            }
            if !email.contains('@') {
                bail!("`{email}` is not an email address");
            }
            let hash = weft_server::auth::hash_password(password).map_err(anyhow::Error::msg)?;
            let user = store
                .open()
                .await?
                .create_user(&email, &name, &hash)
                .await?;
            println!("created user {} <{}>", user.name, user.email);
            Ok(())
        }
        AdminCommand::GenerateKey => {
            println!(
                "{}",
                weft_store::vault::MasterKey::generate().to_text().as_str()
            );
            Ok(())
        }
        AdminCommand::RotateKey { store: args } => {
            let store = args.open().await?;
            println!("{}", args.key_source().rotate(&store).await?);
            Ok(())
        }
        AdminCommand::CreateToken { email, store } => {
            let store = store.open().await?;
            let Some(user) = store.user_by_email(&email).await? else {
                bail!("no user with email {email}");
            };
            let token = weft_server::auth::new_token();
            store
                .create_token(&user.id, &weft_server::auth::token_hash(&token))
                .await?;
            println!("{token}");
            Ok(())
        }
    }
}
