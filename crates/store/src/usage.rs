//! Usage metering, plans and quota holds.
//!
//! Every write of a job's steps adds what it charges to its workspace's month in the write's
//! own transaction (see `METER_JOB` in `db.rs`). On PostgreSQL the addition is appended to
//! `usage_entries`: appends never wait on each other, where jobs committing at once would
//! queue on one counter row. The leader folds the entries into `usage_months` and deletes them
//! in one statement, so each is counted once even when two processes fold at once, and reads
//! add the entries not folded yet, so the counts they show are exact at any moment. On SQLite,
//! whose one writer commits one transaction at a time anyway, the addition goes straight into
//! `usage_months`: nothing to fold, and no second writer taking the lock every two seconds.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;

use crate::Store;
use crate::db::{Backend, Result, on_pool};

/// Entries folded in one statement; more wait for the next fold.
const FOLD_BATCH: i64 = 50_000;

/// The calendar month (UTC) a moment falls in, as `YYYY-MM`: the period usage is counted by.
pub fn period_of(time: DateTime<Utc>) -> String {
    time.format("%Y-%m").to_string()
}

/// A workspace's use in one month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageMonth {
    pub period: String,
    /// Action steps run.
    pub tasks: i64,
    /// Jobs that ran (a job is counted once, when it first writes its steps).
    pub jobs: i64,
    /// The stored size of the workspace's ended jobs, highest measured in the month.
    pub history_bytes: i64,
    /// Highest seen in the month.
    pub active_recipes: i64,
    pub connections: i64,
    pub members: i64,
}

/// What a workspace holds now: the measures a plan limits besides tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkspaceHoldings {
    pub active_recipes: i64,
    pub connections: i64,
    pub members: i64,
}

/// A warning that a workspace neared (80) or reached (100) a limit of its plan in a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageNotice {
    pub workspace_id: String,
    pub period: String,
    pub measure: String,
    pub level: i64,
    pub used: i64,
    pub quota: i64,
}

impl Store {
    /// Folds the entries not folded yet into the months' counters and deletes them, at most
    /// [`FOLD_BATCH`] at a time; how many (workspace, month) counters changed. On SQLite there
    /// are entries only when an older release wrote them.
    pub async fn fold_usage(&self) -> Result<u64> {
        let fold = "WITH taken AS (DELETE FROM usage_entries WHERE id IN (SELECT id FROM usage_entries ORDER BY id LIMIT $1) \
                    RETURNING workspace_id, period, tasks, jobs) \
                    INSERT INTO usage_months (workspace_id, period, tasks, jobs) \
                    SELECT workspace_id, period, SUM(tasks), SUM(jobs) FROM taken GROUP BY workspace_id, period \
                    ON CONFLICT (workspace_id, period) DO UPDATE SET tasks = usage_months.tasks + excluded.tasks, \
                    jobs = usage_months.jobs + excluded.jobs";
        let add_sqlite = "INSERT INTO usage_months (workspace_id, period, tasks, jobs) \
                          SELECT workspace_id, period, SUM(tasks), SUM(jobs) FROM usage_entries WHERE id <= $1 GROUP BY workspace_id, period \
                          ON CONFLICT (workspace_id, period) DO UPDATE SET tasks = usage_months.tasks + excluded.tasks, \
                          jobs = usage_months.jobs + excluded.jobs";
        match &*self.backend {
            Backend::Postgres(pool) => Ok(sqlx::query(fold)
                .bind(FOLD_BATCH)
                .execute(pool)
                .await?
                .rows_affected()),
            Backend::Sqlite(pool) => {
                // A read first: the usual answer is none, and it must not take the write lock.
                let last: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM usage_entries")
                    .fetch_one(pool)
                    .await?;
                let Some(last) = last else { return Ok(0) };
                let mut tx = pool.begin().await?;
                let folded = sqlx::query(add_sqlite)
                    .bind(last)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("DELETE FROM usage_entries WHERE id <= $1")
                    .bind(last)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(folded)
            }
        }
    }

    /// A workspace's use in `period`, exact: the folded counters and the entries not folded,
    /// read in one statement, so a fold committing between two reads cannot hide entries.
    pub async fn usage_in(&self, workspace_id: &str, period: &str) -> Result<UsageMonth> {
        let sql = "SELECT $2, CAST(COALESCE(m.tasks, 0) + p.tasks AS BIGINT), CAST(COALESCE(m.jobs, 0) + p.jobs AS BIGINT), \
                   COALESCE(m.history_bytes, 0), COALESCE(m.active_recipes, 0), COALESCE(m.connections, 0), COALESCE(m.members, 0) \
                   FROM (SELECT CAST(COALESCE(SUM(tasks), 0) AS BIGINT) AS tasks, CAST(COALESCE(SUM(jobs), 0) AS BIGINT) AS jobs \
                         FROM usage_entries WHERE workspace_id = $1 AND period = $2) p \
                   LEFT JOIN usage_months m ON m.workspace_id = $1 AND m.period = $2";
        on_pool!(self, pool => {
            let row = sqlx::query(sql).bind(workspace_id).bind(period).fetch_one(pool).await?;
            month_from(&row)
        })
    }

    /// A workspace's use month by month, newest first, as folded (the current month may lack
    /// its last seconds: see [`Store::usage_in`]).
    pub async fn usage_history(&self, workspace_id: &str) -> Result<Vec<UsageMonth>> {
        let sql = "SELECT period, tasks, jobs, history_bytes, active_recipes, connections, members \
                   FROM usage_months WHERE workspace_id = $1 ORDER BY period DESC";
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).fetch_all(pool).await?
            .iter().map(month_from).collect())
    }

    /// The tasks of every workspace in `period`, as folded.
    pub async fn tasks_in(&self, period: &str) -> Result<BTreeMap<String, i64>> {
        let sql = "SELECT workspace_id, tasks FROM usage_months WHERE period = $1";
        on_pool!(self, pool => {
            let mut tasks = BTreeMap::new();
            for row in sqlx::query(sql).bind(period).fetch_all(pool).await? {
                tasks.insert(row.try_get(0)?, row.try_get(1)?);
            }
            Ok(tasks)
        })
    }

    /// Every workspace's id.
    pub async fn workspace_ids(&self) -> Result<Vec<String>> {
        on_pool!(self, pool => sqlx::query_scalar("SELECT id FROM workspaces ORDER BY id")
            .fetch_all(pool).await.map_err(Into::into))
    }

    /// How many recipes a workspace has on, connections, and members.
    pub async fn workspace_holdings(&self, workspace_id: &str) -> Result<WorkspaceHoldings> {
        let sql = "SELECT (SELECT COUNT(*) FROM recipes WHERE workspace_id = $1 AND enabled), \
                   (SELECT COUNT(*) FROM connections WHERE workspace_id = $1), \
                   (SELECT COUNT(*) FROM memberships WHERE workspace_id = $1)";
        on_pool!(self, pool => {
            let row = sqlx::query(sql).bind(workspace_id).fetch_one(pool).await?;
            Ok(WorkspaceHoldings {
                active_recipes: row.try_get(0)?,
                connections: row.try_get(1)?,
                members: row.try_get(2)?,
            })
        })
    }

    /// Notes what a workspace holds and its history's size in `period`'s counters, keeping the
    /// month's highest.
    pub async fn note_holdings(
        &self,
        workspace_id: &str,
        period: &str,
        holdings: WorkspaceHoldings,
        history_bytes: i64,
    ) -> Result<()> {
        let sql = "INSERT INTO usage_months (workspace_id, period, history_bytes, active_recipes, connections, members) \
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace_id, period) DO UPDATE SET \
                   history_bytes = CASE WHEN excluded.history_bytes > usage_months.history_bytes THEN excluded.history_bytes ELSE usage_months.history_bytes END, \
                   active_recipes = CASE WHEN excluded.active_recipes > usage_months.active_recipes THEN excluded.active_recipes ELSE usage_months.active_recipes END, \
                   connections = CASE WHEN excluded.connections > usage_months.connections THEN excluded.connections ELSE usage_months.connections END, \
                   members = CASE WHEN excluded.members > usage_months.members THEN excluded.members ELSE usage_months.members END";
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).bind(period).bind(history_bytes)
            .bind(holdings.active_recipes).bind(holdings.connections).bind(holdings.members)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// The plan set for a workspace, if one was (else the default plan applies).
    pub async fn workspace_plan(&self, workspace_id: &str) -> Result<Option<String>> {
        let sql = "SELECT plan FROM workspace_plans WHERE workspace_id = $1";
        on_pool!(self, pool => sqlx::query_scalar(sql).bind(workspace_id).fetch_optional(pool)
            .await.map_err(Into::into))
    }

    /// Every workspace whose plan was set, with its plan.
    pub async fn workspace_plans(&self) -> Result<BTreeMap<String, String>> {
        let sql = "SELECT workspace_id, plan FROM workspace_plans";
        on_pool!(self, pool => {
            let mut plans = BTreeMap::new();
            for row in sqlx::query(sql).fetch_all(pool).await? {
                plans.insert(row.try_get(0)?, row.try_get(1)?);
            }
            Ok(plans)
        })
    }

    /// Sets a workspace's plan (`None`: back to the default), noting who set it (`admin`,
    /// `billing`).
    pub async fn set_workspace_plan(
        &self,
        workspace_id: &str,
        plan: Option<&str>,
        set_by: &str,
    ) -> Result<()> {
        let set = "INSERT INTO workspace_plans (workspace_id, plan, set_by, set_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (workspace_id) DO UPDATE SET plan = excluded.plan, set_by = excluded.set_by, set_at = excluded.set_at";
        let unset = "DELETE FROM workspace_plans WHERE workspace_id = $1";
        on_pool!(self, pool => match plan {
            Some(plan) => sqlx::query(set).bind(workspace_id).bind(plan).bind(set_by).bind(Utc::now())
                .execute(pool).await.map(|_| ()),
            None => sqlx::query(unset).bind(workspace_id).execute(pool).await.map(|_| ()),
        })?;
        Ok(())
    }

    /// The workspaces whose new jobs are held, with the month they went over in.
    pub async fn quota_holds(&self) -> Result<BTreeMap<String, String>> {
        let sql = "SELECT workspace_id, period FROM quota_holds";
        on_pool!(self, pool => {
            let mut holds = BTreeMap::new();
            for row in sqlx::query(sql).fetch_all(pool).await? {
                holds.insert(row.try_get(0)?, row.try_get(1)?);
            }
            Ok(holds)
        })
    }

    /// Holds a workspace's new jobs from now, and those queued that have not started; how many
    /// queued jobs it held.
    pub async fn hold_workspace(&self, workspace_id: &str, period: &str) -> Result<u64> {
        let hold = "INSERT INTO quota_holds (workspace_id, period, since) VALUES ($1, $2, $3) \
                    ON CONFLICT (workspace_id) DO UPDATE SET period = excluded.period";
        // Jobs that started (a retry waiting for its next attempt) go on: they were taken.
        let queued = "UPDATE jobs SET status = 'held' WHERE workspace_id = $1 AND status = 'queued' \
                      AND started_at IS NULL AND status IN ('queued', 'waiting', 'running')";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(hold).bind(workspace_id).bind(period).bind(Utc::now()).execute(&mut *tx).await?;
            let held = sqlx::query(queued).bind(workspace_id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(held)
        })
    }

    /// Ends a workspace's hold and queues the jobs it held; how many were queued.
    pub async fn end_hold(&self, workspace_id: &str) -> Result<u64> {
        let unhold = "DELETE FROM quota_holds WHERE workspace_id = $1";
        let release =
            "UPDATE jobs SET status = 'queued' WHERE workspace_id = $1 AND status = 'held'";
        let released = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(unhold).bind(workspace_id).execute(&mut *tx).await?;
            let released = sqlx::query(release).bind(workspace_id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            released
        });
        if released > 0 {
            self.announce_jobs();
        }
        Ok(released)
    }

    /// Queues the held jobs of a workspace (all, or those of `job_ids`) while the hold stays:
    /// an operator's release. How many were queued.
    pub async fn release_held_jobs(
        &self,
        workspace_id: &str,
        job_ids: Option<&[String]>,
    ) -> Result<u64> {
        let all = "UPDATE jobs SET status = 'queued' WHERE workspace_id = $1 AND status = 'held'";
        let one = "UPDATE jobs SET status = 'queued' WHERE workspace_id = $1 AND status = 'held' AND id = $2";
        let released = on_pool!(self, pool => match job_ids {
            None => sqlx::query(all).bind(workspace_id).execute(pool).await?.rows_affected(),
            Some(ids) => {
                let mut tx = pool.begin().await?;
                let mut released = 0;
                for id in ids {
                    released += sqlx::query(one).bind(workspace_id).bind(id).execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                released
            }
        });
        if released > 0 {
            self.announce_jobs();
        }
        Ok(released)
    }

    /// Notes a warning unless it was noted this month; true when it is new (to be mailed).
    pub async fn note_usage_notice(&self, notice: &UsageNotice) -> Result<bool> {
        let sql = "INSERT INTO usage_notices (workspace_id, period, measure, level, used, quota, noted_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (workspace_id, period, measure, level) DO NOTHING";
        let noted = on_pool!(self, pool => sqlx::query(sql).bind(&notice.workspace_id).bind(&notice.period)
            .bind(&notice.measure).bind(notice.level).bind(notice.used).bind(notice.quota).bind(Utc::now())
            .execute(pool).await?.rows_affected());
        Ok(noted > 0)
    }

    /// Warnings not mailed yet, oldest first.
    pub async fn unmailed_usage_notices(&self) -> Result<Vec<UsageNotice>> {
        let sql = "SELECT workspace_id, period, measure, level, used, quota FROM usage_notices \
                   WHERE mailed_at IS NULL ORDER BY noted_at LIMIT 1000";
        on_pool!(self, pool => sqlx::query(sql).fetch_all(pool).await?.iter().map(notice_from).collect())
    }

    /// Notes a warning as mailed (or as not to be mailed: no mail is set up).
    pub async fn usage_notice_mailed(&self, notice: &UsageNotice) -> Result<()> {
        let sql = "UPDATE usage_notices SET mailed_at = $5 WHERE workspace_id = $1 AND period = $2 AND measure = $3 AND level = $4";
        on_pool!(self, pool => sqlx::query(sql).bind(&notice.workspace_id).bind(&notice.period)
            .bind(&notice.measure).bind(notice.level).bind(Utc::now()).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// How many of a workspace's jobs are held.
    pub async fn held_jobs(&self, workspace_id: &str) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM jobs WHERE workspace_id = $1 AND status = 'held'";
        on_pool!(self, pool => sqlx::query_scalar(sql).bind(workspace_id).fetch_one(pool)
            .await.map_err(Into::into))
    }
}

fn month_from<R: Row>(row: &R) -> Result<UsageMonth>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(UsageMonth {
        period: row.try_get(0)?,
        tasks: row.try_get(1)?,
        jobs: row.try_get(2)?,
        history_bytes: row.try_get(3)?,
        active_recipes: row.try_get(4)?,
        connections: row.try_get(5)?,
        members: row.try_get(6)?,
    })
}

fn notice_from<R: Row>(row: &R) -> Result<UsageNotice>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(UsageNotice {
        workspace_id: row.try_get(0)?,
        period: row.try_get(1)?,
        measure: row.try_get(2)?,
        level: row.try_get(3)?,
        used: row.try_get(4)?,
        quota: row.try_get(5)?,
    })
}
