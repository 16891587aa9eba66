//! `weft usage`: a workspace's usage against its plan, from a server.

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::client::{Client, ServerArgs, print_json};

#[derive(Args)]
pub struct UsageArgs {
    /// Print every month as CSV (as `GET /api/v1/usage/csv` gives it).
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    /// Print the API's answer as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

pub async fn run(args: UsageArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    if args.csv {
        print!(
            "{}",
            client
                .call_for_text(Method::GET, "/usage/csv", None)
                .await?
        );
        return Ok(());
    }
    let usage = client.call(Method::GET, "/usage", None).await?;
    if args.json {
        print_json(&usage);
        return Ok(());
    }
    print!("{}", summary(&usage));
    Ok(())
}

/// The usage answer as people read it: the plan, each measure against its limit, held jobs,
/// warnings and the months before.
fn summary(usage: &Value) -> String {
    let mut text = format!(
        "workspace {}  plan {}  month {}\n",
        usage["workspace_id"].as_str().unwrap_or_default(),
        usage["plan"]["name"].as_str().unwrap_or_default(),
        usage["period"].as_str().unwrap_or_default(),
    );
    let limits = usage["limits"].as_object().cloned().unwrap_or_default();
    for (measure, state) in &limits {
        let limit = match state["limit"].as_i64() {
            Some(limit) => format!(
                "of {limit} ({}%)",
                state["percent"].as_f64().unwrap_or_default()
            ),
            None => "(no limit)".to_owned(),
        };
        text.push_str(&format!(
            "  {:<15} {:>10} {limit}\n",
            measure,
            state["used"].as_i64().unwrap_or_default()
        ));
    }
    text.push_str(&format!(
        "  {:<15} {:>10}\n  {:<15} {:>10}\n",
        "jobs",
        usage["usage"]["jobs"].as_i64().unwrap_or_default(),
        "history_bytes",
        usage["usage"]["history_bytes"].as_i64().unwrap_or_default()
    ));
    let held = usage["held_jobs"].as_i64().unwrap_or_default();
    if held > 0 {
        text.push_str(&format!("held jobs: {held}\n"));
    }
    for warning in usage["warnings"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "warning: {}\n",
            warning["message"].as_str().unwrap_or_default()
        ));
    }
    let months = usage["months"].as_array().cloned().unwrap_or_default();
    if months.len() > 1 {
        text.push_str("\nmonth        tasks       jobs\n");
        for month in &months {
            text.push_str(&format!(
                "{:<8} {:>10} {:>10}\n",
                month["period"].as_str().unwrap_or_default(),
                month["tasks"].as_i64().unwrap_or_default(),
                month["jobs"].as_i64().unwrap_or_default()
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_summary_shows_limits_held_jobs_and_warnings() {
        let text = summary(&json!({
            "workspace_id": "acme", "period": "2026-12", "plan": { "name": "free" },
            "limits": {
                "tasks": { "used": 90, "limit": 100, "percent": 90.0 },
                "connections": { "used": 2, "limit": null, "percent": null }
            },
            "usage": { "jobs": 30, "history_bytes": 2048 },
            "held_jobs": 0,
            "warnings": [{ "message": "This workspace used 90 of the 100 tasks" }],
            "months": [{ "period": "2026-12", "tasks": 90, "jobs": 30 }]
        }));
        assert!(text.contains("plan free"), "{text}");
        assert!(text.contains("90 of 100 (90%)"), "{text}");
        assert!(text.contains("(no limit)"), "{text}");
        assert!(text.contains("warning: This workspace used 90"), "{text}");
        assert!(!text.contains("held jobs"), "{text}");
    }
}
