//! A recipe's flow as the web app draws it: its trigger, then its steps in order, with the
//! nested lists of branches, loops and error handlers. Each step names the line it starts on,
//! so that the diagram and the editor point at the same place.

use serde_json::{Value, json};
use weft_recipe::Recipe;
use weft_recipe::model::{Step, StepKind, Trigger, WebhookMode};

/// The outline of a compiled recipe.
pub fn outline(recipe: &Recipe) -> Value {
    json!({
        "name": recipe.name,
        "trigger": trigger(&recipe.trigger),
        "steps": steps(&recipe.steps),
    })
}

fn trigger(trigger: &Trigger) -> Value {
    let summary = match trigger {
        // The path alone: the URL depends on the workspace (`/w/{id}/hooks/…` outside
        // `default`), which the page knows.
        Trigger::Webhook(webhook) => format!(
            "{} webhook {}{}",
            webhook.method,
            webhook.path.trim_start_matches('/'),
            match webhook.mode {
                WebhookMode::Sync => " (answers with the job's result)",
                WebhookMode::Async => "",
            }
        ),
        Trigger::Schedule(schedule) => format!("cron `{}` ({})", schedule.cron, schedule.timezone),
        Trigger::Poll(poll) => format!(
            "{} every {}",
            poll.action,
            weft_recipe::duration::format_duration(poll.every)
        ),
        Trigger::Subscribe(subscribe) => {
            let options: Vec<String> = subscribe
                .options
                .iter()
                .map(|(key, value)| match value {
                    Value::String(text) => format!("{key} {text}"),
                    other => format!("{key} {other}"),
                })
                .collect();
            format!("{} {}", subscribe.connector, options.join(", "))
        }
        Trigger::Manual(_) => "run by hand".to_owned(),
    };
    json!({ "kind": trigger.kind(), "summary": summary })
}

fn steps(steps: &[Step]) -> Vec<Value> {
    steps.iter().map(step).collect()
}

fn step(step: &Step) -> Value {
    let mut branches = Vec::new();
    let summary = match &step.kind {
        StepKind::Action {
            action, connection, ..
        } => match connection {
            Some(connection) => format!("{action} with {connection}"),
            None => action.to_string(),
        },
        StepKind::Transform { .. } => "jq program".to_owned(),
        StepKind::Set(names) => {
            let names: Vec<&str> = names.iter().map(|(name, _)| name.as_str()).collect();
            format!("sets {}", names.join(", "))
        }
        StepKind::If {
            condition,
            then,
            otherwise,
        } => {
            branches.push(json!({ "label": "then", "steps": steps(then) }));
            branches.push(json!({ "label": "else", "steps": steps(otherwise) }));
            format!("if {}", condition.source())
        }
        StepKind::ForEach {
            over,
            item_name,
            steps: body,
            concurrency,
        } => {
            branches.push(json!({ "label": "each", "steps": steps(body), "loop": true }));
            let parallel = if *concurrency > 1 {
                format!(", {concurrency} at a time")
            } else {
                String::new()
            };
            format!("for each {item_name} in {}{parallel}", over.source())
        }
        StepKind::Call { recipe, .. } => format!("calls recipe {recipe}"),
        StepKind::Respond(_) => "answers the webhook".to_owned(),
        StepKind::Wait(duration) => format!(
            "waits {}",
            weft_recipe::duration::format_duration(*duration)
        ),
        StepKind::Stop { failed, .. } => {
            if *failed {
                "stops the job as failed".to_owned()
            } else {
                "stops the job".to_owned()
            }
        }
    };
    if let Some(handler) = &step.on_error {
        branches.push(json!({ "label": "on error", "steps": steps(handler) }));
    }
    json!({
        "id": step.id,
        "kind": step.kind.name(),
        "summary": summary,
        "line": step.span.line,
        "branches": branches,
    })
}
