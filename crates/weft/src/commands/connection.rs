//! `weft connection`: connections on a server. `push` takes the same file as
//! `weft run --connections`, with secrets from the environment, so that the file itself can
//! be committed.

use anyhow::bail;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;

use super::client::{Client, ServerArgs, print_json};
use crate::connections_file::ConnectionsFile;

#[derive(Subcommand)]
pub enum ConnectionCommand {
    /// Save the connections of a file on the server: new names are created, known ones
    /// replaced. `${NAME}` in a value is read from the environment.
    Push {
        file: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the server's connections.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show a connection (by id or name); secrets show as "********".
    Show {
        connection: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Test a connection: exit 0 when it works, 1 with the reason when not.
    Test {
        connection: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    Delete {
        connection: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(command: ConnectionCommand) -> anyhow::Result<()> {
    match command {
        ConnectionCommand::Push { file, server } => {
            let client = Client::new(&server)?;
            let connections = ConnectionsFile::load(&file)?.resolve_all()?;
            let listed = client.call(Method::GET, "/connections", None).await?;
            for connection in connections {
                let body = json!({
                    "name": connection.name,
                    "connector": connection.connector,
                    "fields": connection.fields,
                    "limits": connection.limits.as_ref().map(|limits| limits.to_json()),
                })
                .to_string();
                match id_in(&listed, &connection.name) {
                    Some(id) => {
                        client
                            .call(Method::PUT, &format!("/connections/{id}"), Some(body))
                            .await?;
                        println!("updated {}", connection.name);
                    }
                    None => {
                        client
                            .call(Method::POST, "/connections", Some(body))
                            .await?;
                        println!("created {}", connection.name);
                    }
                }
            }
            Ok(())
        }
        ConnectionCommand::List { server } => {
            let client = Client::new(&server)?;
            let listed = client.call(Method::GET, "/connections", None).await?;
            for connection in listed["connections"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<10}  {}",
                    connection["id"].as_str().unwrap_or_default(),
                    connection["connector"].as_str().unwrap_or_default(),
                    connection["name"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
        ConnectionCommand::Show { connection, server } => {
            let client = Client::new(&server)?;
            let id = connection_id(&client, &connection).await?;
            print_json(
                &client
                    .call(Method::GET, &format!("/connections/{id}"), None)
                    .await?,
            );
            Ok(())
        }
        ConnectionCommand::Test { connection, server } => {
            let client = Client::new(&server)?;
            let id = connection_id(&client, &connection).await?;
            let outcome = client
                .call(Method::POST, &format!("/connections/{id}/test"), None)
                .await?;
            if outcome["ok"] == true {
                println!("{connection}: ok");
                return Ok(());
            }
            bail!(
                "{connection}: {}",
                outcome["message"].as_str().unwrap_or("the test failed")
            )
        }
        ConnectionCommand::Delete { connection, server } => {
            let client = Client::new(&server)?;
            let id = connection_id(&client, &connection).await?;
            client
                .call(Method::DELETE, &format!("/connections/{id}"), None)
                .await?;
            println!("deleted {connection}");
            Ok(())
        }
    }
}

fn id_in(listed: &Value, id_or_name: &str) -> Option<String> {
    listed["connections"]
        .as_array()?
        .iter()
        .find(|connection| connection["id"] == id_or_name || connection["name"] == id_or_name)
        .and_then(|connection| connection["id"].as_str().map(str::to_owned))
}

/// The id of a connection named by id or by name (names may hold characters a path cannot).
async fn connection_id(client: &Client, id_or_name: &str) -> anyhow::Result<String> {
    let listed = client.call(Method::GET, "/connections", None).await?;
    id_in(&listed, id_or_name).ok_or_else(|| {
        anyhow::anyhow!("no connection with the id or name `{id_or_name}` on the server")
    })
}
