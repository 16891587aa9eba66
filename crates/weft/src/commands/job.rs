//! `weft job`: job history on a server.

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::client::{Client, ServerArgs, print_json};

#[derive(Subcommand)]
pub enum JobCommand {
    /// List jobs, newest first.
    List {
        /// A recipe, by id or name.
        #[arg(long)]
        recipe: Option<String>,
        /// queued, running, waiting, succeeded or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show a job's record.
    Show {
        job: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run a job again as a new job.
    Rerun {
        job: String,
        /// `start`, `failed` or a step id (default: the failed step of a failed job).
        #[arg(long)]
        from: Option<String>,
        /// `original` (the version that ran, the default) or `current`.
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Cancel a queued or waiting job.
    Cancel {
        job: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(command: JobCommand) -> anyhow::Result<()> {
    match command {
        JobCommand::List {
            recipe,
            status,
            limit,
            server,
        } => {
            let client = Client::new(&server)?;
            let mut query = format!("/jobs?limit={limit}");
            if let Some(recipe) = recipe {
                query.push_str(&format!("&recipe={}", client.recipe_id(&recipe).await?));
            }
            if let Some(status) = status {
                query.push_str(&format!("&status={status}"));
            }
            let listed = client.call(Method::GET, &query, None).await?;
            for job in listed["jobs"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<9}  {}  {} v{}",
                    job["id"].as_str().unwrap_or_default(),
                    job["status"].as_str().unwrap_or_default(),
                    job["created_at"].as_str().unwrap_or_default(),
                    job["recipe"].as_str().unwrap_or_default(),
                    job["recipe_version"]
                );
            }
            Ok(())
        }
        JobCommand::Show { job, server } => {
            let client = Client::new(&server)?;
            print_json(
                &client
                    .call(Method::GET, &format!("/jobs/{job}"), None)
                    .await?,
            );
            Ok(())
        }
        JobCommand::Rerun {
            job,
            from,
            version,
            server,
        } => {
            let client = Client::new(&server)?;
            let body = json!({ "from": from, "version": version }).to_string();
            let started = client
                .call(Method::POST, &format!("/jobs/{job}/rerun"), Some(body))
                .await?;
            println!("{}", started["job_id"].as_str().unwrap_or_default());
            Ok(())
        }
        JobCommand::Cancel { job, server } => {
            let client = Client::new(&server)?;
            let answer = client
                .call(Method::POST, &format!("/jobs/{job}/cancel"), None)
                .await?;
            if answer["status"] == "running" {
                println!("stopping {job}: it ends before its next step");
            } else {
                println!("cancelled {job}");
            }
            Ok(())
        }
    }
}
