//! `weft db`: the database schema.

use clap::Subcommand;

use super::store_args::StoreArgs;

#[derive(Subcommand)]
pub enum DbCommand {
    /// Bring the schema up to date (`weft serve` also does this at start).
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: DbCommand) -> anyhow::Result<()> {
    match command {
        DbCommand::Migrate { store } => {
            store.open().await?;
            println!("the schema of {} is up to date", store.describe());
            Ok(())
        }
    }
}
