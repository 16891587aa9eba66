//! Usage: what a workspace used this month and before, against its plan's limits; the
//! refusals of changes past a structural limit; and the warnings mailed to owners.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, TimeZone, Utc};
use serde_json::{Value, json};
use weft_runtime::plans::{Measure, Plan};
use weft_runtime::usage::WARN_AT;
use weft_store::{UsageMonth, UsageNotice, WorkspaceHoldings, period_of};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::ApiError;

/// This month's limited use, exact: tasks and jobs as counted and what the workspace holds
/// now. Cheap enough for every page's banner: the history's size is not measured.
async fn this_month_limited(state: &AppState, workspace: &str) -> Result<UsageMonth, ApiError> {
    let store = state.runtime.store();
    let mut month = store.usage_in(workspace, &period_of(Utc::now())).await?;
    let holdings = store.workspace_holdings(workspace).await?;
    month.active_recipes = holdings.active_recipes;
    month.connections = holdings.connections;
    month.members = holdings.members;
    Ok(month)
}

/// This month's use, exact, with the size of the history now (a scan of its ended jobs).
async fn this_month(state: &AppState, workspace: &str) -> Result<UsageMonth, ApiError> {
    let mut month = this_month_limited(state, workspace).await?;
    month.history_bytes = state.runtime.store().history_bytes(workspace).await?;
    Ok(month)
}

/// Every month the workspace used anything in, newest first, this one exact.
async fn months(state: &AppState, workspace: &str) -> Result<Vec<UsageMonth>, ApiError> {
    let current = this_month(state, workspace).await?;
    let mut months = state.runtime.store().usage_history(workspace).await?;
    months.retain(|month| month.period != current.period);
    months.insert(0, current);
    Ok(months)
}

fn used(month: &UsageMonth, measure: Measure) -> i64 {
    match measure {
        Measure::Tasks => month.tasks,
        Measure::ActiveRecipes => month.active_recipes,
        Measure::Connections => month.connections,
        Measure::Members => month.members,
    }
}

/// The highest warning level a use reaches against a limit, if any.
fn warning_level(used: i64, limit: i64) -> Option<i64> {
    WARN_AT
        .iter()
        .rev()
        .copied()
        .find(|level| used * 100 >= limit * level)
}

/// What a warning says to people.
fn warning_text(plan: &Plan, measure: Measure, used: i64, limit: i64, level: i64) -> String {
    match (measure, level >= 100) {
        (Measure::Tasks, true) => format!(
            "This workspace used all {limit} tasks of its plan `{}` this month: new jobs are held until next month, a larger plan, or an operator releases them.",
            plan.name
        ),
        (Measure::Tasks, false) => format!(
            "This workspace used {used} of the {limit} tasks of its plan `{}` this month.",
            plan.name
        ),
        (_, true) => format!(
            "This workspace has the {limit} {} its plan `{}` allows: adding more is refused.",
            measure.words_for(limit),
            plan.name
        ),
        (_, false) => format!(
            "This workspace has {used} of the {limit} {} its plan `{}` allows.",
            measure.words_for(limit),
            plan.name
        ),
    }
}

/// The first and the last moment of a month, `YYYY-MM`.
fn month_bounds(period: &str) -> Option<(chrono::DateTime<Utc>, chrono::DateTime<Utc>)> {
    let (year, month) = period.split_once('-')?;
    let (year, month): (i32, u32) = (year.parse().ok()?, month.parse().ok()?);
    let start = Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single()?;
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let end = Utc
        .with_ymd_and_hms(next_year, next_month, 1, 0, 0, 0)
        .single()?;
    Some((start, end))
}

/// Each limit of the plan with its use and percent, and a warning for each limit whose use
/// reached a warning level.
fn limits_and_warnings(
    plan: &Plan,
    month: &UsageMonth,
) -> (serde_json::Map<String, Value>, Vec<Value>) {
    let mut limits = serde_json::Map::new();
    let mut warnings = Vec::new();
    for measure in Measure::ALL {
        let used = used(month, measure);
        let limit = plan.limit(measure);
        let percent = limit.map(|limit| {
            if limit == 0 {
                100.0
            } else {
                (used as f64 * 1000.0 / limit as f64).round() / 10.0
            }
        });
        limits.insert(
            measure.as_str().to_owned(),
            json!({ "used": used, "limit": limit, "percent": percent }),
        );
        if let Some(limit) = limit
            && let Some(level) = warning_level(used, limit)
        {
            warnings.push(json!({
                "measure": measure.as_str(),
                "level": level,
                "used": used,
                "limit": limit,
                "message": warning_text(plan, measure, used, limit, level),
            }));
        }
    }
    (limits, warnings)
}

/// `GET /api/v1/usage`: this month against the plan, warnings, held jobs, and every month.
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let workspace = &caller.workspace_id;
    let plan = state.runtime.plan_of(workspace);
    let months = months(&state, workspace).await?;
    let current = months.first().cloned().unwrap_or_default();
    let (limits, warnings) = limits_and_warnings(&plan, &current);
    let (start, end) = month_bounds(&current.period).unzip();
    let held_jobs = state.runtime.store().held_jobs(workspace).await?;
    Ok(Json(json!({
        "workspace_id": workspace,
        "plan": plan,
        "period": current.period,
        "period_start": start,
        "period_end": end,
        "usage": current,
        "limits": limits,
        "held": state.runtime.is_held(workspace),
        "held_jobs": held_jobs,
        "warnings": warnings,
        "months": months,
    })))
}

/// `GET /api/v1/usage/warnings`: only the warnings and whether new jobs are held, without
/// measuring the history or listing months: what the web app's banner reads on every page.
pub async fn show_warnings(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let workspace = &caller.workspace_id;
    let plan = state.runtime.plan_of(workspace);
    let current = this_month_limited(&state, workspace).await?;
    let (_, warnings) = limits_and_warnings(&plan, &current);
    Ok(Json(json!({
        "plan": plan.name,
        "period": current.period,
        "held": state.runtime.is_held(workspace),
        "warnings": warnings,
    })))
}

/// `GET /api/v1/usage/csv`: every month's use, one line a month, newest first.
pub async fn export_csv(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Response, ApiError> {
    let months = months(&state, &caller.workspace_id).await?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    let failed = |_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "csv",
            "cannot write the CSV",
        )
    };
    writer
        .write_record([
            "period",
            "tasks",
            "jobs",
            "history_bytes",
            "active_recipes",
            "connections",
            "members",
        ])
        .map_err(failed)?;
    for month in &months {
        writer
            .write_record([
                month.period.clone(),
                month.tasks.to_string(),
                month.jobs.to_string(),
                month.history_bytes.to_string(),
                month.active_recipes.to_string(),
                month.connections.to_string(),
                month.members.to_string(),
            ])
            .map_err(failed)?;
    }
    let body = writer.into_inner().map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "csv",
            "cannot write the CSV",
        )
    })?;
    let today = Utc::now();
    let name = format!(
        "weft-usage-{}-{}{:02}{:02}.csv",
        caller.workspace_id,
        today.year(),
        today.month(),
        today.day()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Refuses a change that would take a workspace past a structural limit of its plan:
/// `adding` more of `measure` than it holds now.
pub async fn check_room(
    state: &AppState,
    workspace: &str,
    measure: Measure,
    adding: i64,
) -> Result<(), ApiError> {
    let plan = state.runtime.plan_of(workspace);
    let Some(limit) = plan.limit(measure) else {
        return Ok(());
    };
    let WorkspaceHoldings {
        active_recipes,
        connections,
        members,
    } = state.runtime.store().workspace_holdings(workspace).await?;
    let held = match measure {
        Measure::ActiveRecipes => active_recipes,
        Measure::Connections => connections,
        Measure::Members => members,
        Measure::Tasks => return Ok(()),
    };
    if held + adding <= limit {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "plan_limit",
        format!(
            "the plan `{}` allows {limit} {} (limit `{}`) and this workspace has {held}: remove one or move to a larger plan",
            plan.name,
            measure.words_for(limit),
            measure.as_str()
        ),
    ))
}

/// Mails the warnings noted since the last round to each workspace's owners; how many went.
pub async fn send_usage_notices(state: &AppState) -> Result<usize, ApiError> {
    let store = state.runtime.store();
    let notices = store.unmailed_usage_notices().await?;
    let mut sent = 0;
    for notice in &notices {
        if state.settings.mail_connection.is_some() {
            let (subject, text) = notice_mail(state, notice);
            for to in store.owner_notice_addresses(&notice.workspace_id).await? {
                crate::accounts::send_mail(state, &to, &subject, &text).await?;
            }
            sent += 1;
        }
        // Without mail, the warning still shows in the app's banner and the API.
        store.usage_notice_mailed(notice).await?;
    }
    Ok(sent)
}

fn notice_mail(state: &AppState, notice: &UsageNotice) -> (String, String) {
    let plan = state.runtime.plan_of(&notice.workspace_id);
    let measure = Measure::ALL
        .into_iter()
        .find(|measure| measure.as_str() == notice.measure)
        .unwrap_or(Measure::Tasks);
    let subject = format!(
        "Weft: workspace {} reached {}% of its {}",
        notice.workspace_id,
        notice.level,
        measure.words()
    );
    let text = format!(
        "{}\n\nUsage: {}/usage\n",
        warning_text(&plan, measure, notice.used, notice.quota, notice.level),
        state.settings.public_url
    );
    (subject, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_is_due_at_eighty_and_at_a_hundred_percent() {
        assert_eq!(warning_level(79, 100), None);
        assert_eq!(warning_level(80, 100), Some(80));
        assert_eq!(warning_level(99, 100), Some(80));
        assert_eq!(warning_level(100, 100), Some(100));
        assert_eq!(warning_level(250, 100), Some(100));
        assert_eq!(warning_level(0, 0), Some(100));
        assert_eq!(warning_level(4, 5), Some(80));
    }

    #[test]
    fn a_month_runs_from_its_first_day_to_the_next_months() {
        let (start, end) = month_bounds("2026-12").expect("a month");
        assert_eq!(start.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert!(month_bounds("December").is_none());
    }
}
