//! `weft serve`: the platform in one process — HTTP, workers, store.

use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use weft_engine::{Engine, JqRunner, Limits};
use weft_runtime::tables::TableBook;
use weft_runtime::{ConnectionBook, RecipeCache, Runtime, StoreLibrary};
use weft_server::{AppState, Settings};

use super::registry;
use super::store_args::StoreArgs;

/// Jobs run at once per core, by default.
const JOBS_PER_CORE: usize = 64;

/// What one process of the platform does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Everything: the API and webhooks, jobs, subscriptions, schedules and housekeeping.
    All,
    /// The API, the web app and webhooks: events become queued jobs for the workers.
    Web,
    /// Runs queued jobs and consumes the subscribe triggers.
    Worker,
    /// Schedules, polls, retention, housekeeping and failure notices (one process at a time
    /// leads; others stand by).
    Scheduler,
}

impl Role {
    fn serves_api(self) -> bool {
        matches!(self, Role::All | Role::Web)
    }

    fn runs_jobs(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }

    fn schedules(self) -> bool {
        matches!(self, Role::All | Role::Scheduler)
    }
}

/// The connections of a process's PostgreSQL pool, by default: two for its claims, leases
/// and housekeeping, four per core when it serves the API (a request holds one for a
/// millisecond or two), and one per 16 job slots when it runs jobs (a job holds one only
/// while it writes a step). `docs/scaling.md` has the reasoning and the sum to check against
/// PostgreSQL's `max_connections`.
pub fn default_pool(role: Role, job_slots: usize, cores: usize) -> u32 {
    let api = if role.serves_api() { 4 * cores } else { 0 };
    let jobs = if role.runs_jobs() {
        job_slots.div_ceil(16)
    } else {
        0
    };
    u32::try_from(2 + api + jobs).unwrap_or(u32::MAX)
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// What this process does: `all` of it, or its part of a platform of several processes
    /// on one PostgreSQL: `web` (API, web app, webhooks), `worker` (runs jobs, consumes
    /// subscriptions; serves only /healthz, /readyz and /metrics), `scheduler` (schedules,
    /// polls, housekeeping; one leads at a time; serves only the same three).
    #[arg(long, env = "WEFT_ROLE", value_enum, default_value_t = Role::All)]
    role: Role,
    /// The most connections this process opens to PostgreSQL. Default: 2, plus 4 per core
    /// when it serves the API, plus 1 per 16 job slots when it runs jobs.
    #[arg(long, env = "WEFT_DATABASE_POOL", value_parser = clap::value_parser!(u32).range(1..))]
    database_pool: Option<u32>,
    /// The address to listen on.
    #[arg(long, env = "WEFT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Jobs run at once by this process. Default: 64 per core (most of a job's time is spent
    /// waiting for other systems, and a waiting job costs a few kilobytes).
    #[arg(long, env = "WEFT_WORKERS")]
    workers: Option<usize>,
    /// Largest webhook body, in bytes.
    #[arg(long, env = "WEFT_MAX_PAYLOAD", default_value_t = 1024 * 1024)]
    max_payload: usize,
    /// Largest value a job record keeps (the trigger, the output, a step's input or output),
    /// in bytes of JSON; a larger one is stored cut, as a marker with a preview.
    #[arg(long, env = "WEFT_MAX_STORED_VALUE", default_value_t = weft_engine::mask::MAX_STORED_VALUE_BYTES)]
    max_stored_value: usize,
    /// How long a sync webhook waits for its job's answer; then it answers 202 with the job's
    /// id, and the job goes on.
    #[arg(long, env = "WEFT_SYNC_WAIT", default_value = "30s", value_parser = parse_grace)]
    sync_wait: Duration,
    /// How long a job claimed by this process stays its own without a renewal: after a
    /// crash, its jobs are taken over this long after their last renewal.
    #[arg(long, env = "WEFT_JOB_LEASE", default_value = "30s", value_parser = parse_lease)]
    job_lease: Duration,
    /// How far back schedule ticks missed while Weft was down are still fired at the next
    /// start, one job each; older ones are skipped.
    #[arg(long, env = "WEFT_SCHEDULE_CATCH_UP", default_value = "1h", value_parser = parse_grace)]
    schedule_catch_up: Duration,
    /// The stored `email` connection Weft sends its own mail through: invitations,
    /// password resets, email checks.
    #[arg(long, env = "WEFT_MAIL_CONNECTION")]
    mail_connection: Option<String>,
    /// A browser session ends when unused this long.
    #[arg(long, env = "WEFT_SESSION_IDLE", default_value = "8h", value_parser = parse_lease)]
    session_idle: Duration,
    /// A browser session ends this long after its sign-in, used or not.
    #[arg(long, env = "WEFT_SESSION_MAX", default_value = "7d", value_parser = parse_lease)]
    session_max: Duration,
    /// Let anyone sign up (POST /api/v1/sign-up) with a workspace of their own; off, people
    /// join by invitation.
    #[arg(long, env = "WEFT_SIGN_UP", value_parser = clap::builder::BoolishValueParser::new())]
    sign_up: bool,
    /// A reverse proxy in front of the server whose X-Forwarded-For is believed (repeat the
    /// option, or separate addresses by commas): sign-in limits and the audit log then see
    /// the clients' addresses, not the proxy's.
    #[arg(
        long = "trusted-proxy",
        env = "WEFT_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// How long job history is kept when neither its recipe (`retention.keep`) nor its
    /// workspace (PUT /api/v1/privacy/retention) says.
    #[arg(long, env = "WEFT_HISTORY_KEEP", default_value = "30d", value_parser = parse_lease)]
    history_keep: Duration,
    /// How often history past its keep, or over its workspace's cap, is deleted.
    #[arg(long, env = "WEFT_RETENTION_EVERY", default_value = "10m", value_parser = parse_lease)]
    retention_every: Duration,
    /// How long an account whose person asked for its deletion stays (they may sign in and
    /// cancel); then their personal data is erased.
    #[arg(long, env = "WEFT_ACCOUNT_DELETION_GRACE", default_value = "30d", value_parser = parse_lease)]
    account_deletion_grace: Duration,
    /// How long a workspace closed by its owner stays (they may reopen it) before all of it
    /// is deleted.
    #[arg(long, env = "WEFT_WORKSPACE_CLOSE_GRACE", default_value = "30d", value_parser = parse_lease)]
    workspace_close_grace: Duration,
    /// How often the notices of failed jobs are mailed, one digest per address for all the
    /// failures since the last (needs --mail-connection).
    #[arg(long, env = "WEFT_NOTIFY_EVERY", default_value = "1m", value_parser = parse_lease)]
    notify_every: Duration,
    /// How long the audit log keeps an event; older ones are deleted every hour.
    #[arg(long, env = "WEFT_AUDIT_RETENTION", default_value = "365d", value_parser = parse_lease)]
    audit_retention: Duration,
    /// How long a stopping server (SIGTERM, SIGINT) lets running jobs finish; the ones still
    /// running then are handed back to the queue, each to resume after its last finished step.
    #[arg(long, env = "WEFT_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_grace)]
    shutdown_grace: Duration,
    /// Let outbound HTTP reach loopback and private addresses (off by default).
    #[arg(long, env = "WEFT_ALLOW_PRIVATE_NETWORK", value_parser = clap::builder::BoolishValueParser::new())]
    allow_private_network: bool,
    /// The URL people reach this server at (behind a proxy, the proxy's), for the OAuth 2
    /// callback. Default: http:// and the listening address.
    #[arg(long, env = "WEFT_PUBLIC_URL")]
    public_url: Option<String>,
    /// A YAML file of the plans workspaces may have, with their limits (docs/billing.md).
    /// Without it there is one plan, `unlimited`, and nothing is limited.
    #[arg(long, env = "WEFT_PLANS")]
    plans: Option<std::path::PathBuf>,
    /// The secret the billing provider signs its webhook events with (`POST /billing/stripe`);
    /// without it that endpoint is off.
    #[arg(long, env = "WEFT_BILLING_WEBHOOK_SECRET", hide_env_values = true)]
    billing_webhook_secret: Option<String>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let role = args.role;
    if role != Role::All && !args.store.is_postgres() {
        anyhow::bail!(
            "--role {} needs PostgreSQL (--database postgres://…): processes in roles share one database. On SQLite one process does everything: leave --role out",
            format!("{role:?}").to_lowercase()
        );
    }
    let cores = std::thread::available_parallelism().map_or(2, |cores| cores.get());
    let job_slots = if role.runs_jobs() {
        args.workers.unwrap_or(JOBS_PER_CORE * cores).max(1)
    } else {
        0
    };
    let pool = args
        .database_pool
        .unwrap_or_else(|| default_pool(role, job_slots, cores));
    let plans = crate::plans_file::load_or_default(args.plans.as_deref())?;
    let store = args.store.open_with_pool(pool).await?;
    let vault = Arc::new(args.store.vault(&store).await?);
    let options = super::connector_options(
        args.allow_private_network,
        Some(&args.store.data.join("connectors")),
    )?;
    let mut registry = registry(&options)?;
    // Lookup tables live in memory, for the tables connector and the `lookup` function.
    let tables = Arc::new(TableBook::load(store.clone()).await?);
    registry.add(Arc::new(weft_connectors::tables::TablesConnector::new(
        tables.clone(),
    )));
    let lookups = Arc::clone(&tables);
    weft_recipe::lookup::install_lookup_source(Arc::new(move |workspace, table, column, value| {
        lookups.lookup(workspace, table, column, value)
    }));
    let connections = Arc::new(ConnectionBook::new(
        store.clone(),
        vault.clone(),
        registry.clone(),
        weft_connectors::http::token_client(&options.http)?,
    ));
    let recipes = RecipeCache::new(store.clone(), registry.clone());
    let jq = std::env::current_exe()
        .map(JqRunner::isolated)
        .unwrap_or_default();
    let library = StoreLibrary {
        recipes: recipes.clone(),
    };
    let engine = Engine::new(
        registry,
        connections.clone(),
        Arc::new(library),
        Limits {
            max_stored_value_bytes: args.max_stored_value,
            ..Limits::default()
        },
    )
    .with_jq_runner(jq);
    let runtime = Runtime::new(store, Arc::new(engine), recipes)
        .with_plans(plans)
        .with_lease(args.job_lease)
        .with_catch_up(args.schedule_catch_up);
    runtime
        .load_masks()
        .await
        .context("cannot read the workspaces' masking rules")?;
    runtime
        .refresh_plans()
        .await
        .context("cannot read the workspaces' plans")?;
    let stopping_runtime = runtime.clone();

    let (stop, stopping) = watch::channel(false);
    let mut workers = vec![
        runtime.spawn_mask_refresh(stopping.clone()),
        spawn_table_refresh(tables.clone(), stopping.clone()),
        runtime.spawn_metering(stopping.clone()),
    ];
    if role.runs_jobs() {
        workers.extend([
            runtime.spawn_workers(job_slots, stopping.clone()),
            runtime.spawn_subscriptions(stopping.clone()),
            runtime.spawn_membership(stopping.clone()),
        ]);
    }
    if role.schedules() {
        // Retention and housekeeping run where the scheduler leads: once per platform.
        workers.extend([
            runtime.spawn_scheduler(stopping.clone()),
            spawn_retention(
                stopping_runtime.clone(),
                args.history_keep,
                args.retention_every,
                stopping.clone(),
            ),
            spawn_housekeeping(
                stopping_runtime.clone(),
                args.audit_retention,
                args.session_idle,
                stopping.clone(),
            ),
        ]);
    }
    let listening = weft_store::Listening {
        jobs: role.runs_jobs(),
        answers: role.serves_api(),
        polls: role.schedules(),
    };
    // Listening waits for nothing at shutdown: it is not among the workers.
    let _listener = runtime.spawn_listener(listening, stopping.clone());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}"))
        .trim_end_matches('/')
        .to_owned();
    weft_server::auth::trust_proxies(args.trusted_proxies.clone());
    let state = AppState {
        metrics: weft_server::install_metrics(),
        runtime,
        connections,
        tables: tables.clone(),
        settings: Settings {
            max_payload_bytes: args.max_payload,
            sync_wait: args.sync_wait,
            public_url: public_url.clone(),
            session_idle: args.session_idle,
            mail_connection: args.mail_connection.clone(),
            session_max: args.session_max,
            sign_up: args.sign_up,
            history_keep: args.history_keep,
            account_deletion_grace: args.account_deletion_grace,
            workspace_close_grace: args.workspace_close_grace,
            billing_webhook_secret: args
                .billing_webhook_secret
                .clone()
                .map(weft_server::SigningSecret::new),
        },
        sign_in_failures: Default::default(),
        vault: vault.clone(),
    };
    let role_name = format!("{role:?}").to_lowercase();
    tracing::info!(%address, store = %args.store.describe(), role = %role_name, pool, job_slots, "weft is serving");
    eprintln!(
        "weft is serving on http://{address} (store: {}, role: {role_name})",
        args.store.describe()
    );
    // Nobody can sign in yet: a link, printed this once (not logged), makes the owner.
    if role.serves_api()
        && let Some(link) =
            weft_server::accounts::setup_link(stopping_runtime.store(), &public_url).await?
    {
        eprintln!(
            "weft: nobody can sign in yet. Within 24 hours, make the owner with this link (used once): {link}"
        );
    }

    // Mailing notices waits for nothing the workers do: it is not among them at shutdown.
    let _notices = weft_server::notices::spawn_failure_notices(
        state.clone(),
        args.notify_every,
        stopping.clone(),
    );
    let mut shutdown = stopping.clone();
    let routes = if role.serves_api() {
        weft_server::router(state)
    } else {
        weft_server::health_router(state)
    };
    let server = axum::serve(
        listener,
        routes.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|stopped| *stopped).await;
    });
    let signals = tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping: no new work; running jobs may finish");
        let _ = stop.send(true);
    });
    server.await.context("the HTTP server failed")?;
    signals.abort();
    let drained =
        tokio::time::timeout(args.shutdown_grace, futures::future::join_all(workers)).await;
    if drained.is_err() {
        match stopping_runtime.release_running().await {
            Ok(released) => tracing::warn!(
                released,
                "jobs still running at shutdown go back to the queue, each to resume after its last finished step"
            ),
            Err(error) => tracing::warn!(
                %error,
                "cannot hand running jobs back; they are taken over when their leases run out"
            ),
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// How often lookup tables are compared with the store, to see other processes' writes.
const TABLE_REFRESH: Duration = Duration::from_secs(2);

fn spawn_table_refresh(
    tables: Arc<TableBook>,
    mut stopping: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !*stopping.borrow() {
            if let Err(error) = tables.refresh().await {
                tracing::warn!(%error, "cannot refresh the lookup tables; trying again");
            }
            tokio::select! {
                _ = tokio::time::sleep(TABLE_REFRESH) => {}
                _ = stopping.changed() => {}
            }
        }
    })
}

/// Deletes job history past its keep or over its workspace's cap, at the start and then
/// every `every`.
fn spawn_retention(
    runtime: Runtime,
    default_keep: Duration,
    every: Duration,
    mut stopping: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut leading = runtime.leading();
    tokio::spawn(async move {
        while wait_to_lead(&mut leading, &mut stopping).await {
            match weft_runtime::retention::apply_retention(&runtime, default_keep).await {
                Ok(pass) if pass.expired + pass.over_cap > 0 => tracing::info!(
                    expired = pass.expired,
                    over_cap = pass.over_cap,
                    "job history deleted"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "cannot delete old job history; trying again"),
            }
            close_due_workspaces(runtime.store()).await;
            match runtime.store().erase_due_accounts(chrono::Utc::now()).await {
                Ok(erased) if !erased.is_empty() => {
                    tracing::info!(
                        accounts = erased.len(),
                        "accounts past their deletion grace erased"
                    )
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot erase the accounts due for deletion; trying again")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopping.changed() => {}
            }
        }
    })
}

/// Deletes the workspaces whose owners closed them, once their grace period is over, and logs
/// each one's final report.
async fn close_due_workspaces(store: &weft_store::Store) {
    let due = match store.workspaces_due_to_close(chrono::Utc::now()).await {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, "cannot look for workspaces to delete; trying again");
            return;
        }
    };
    for workspace in due {
        match store.delete_workspace(&workspace).await {
            Ok(Some(report)) => {
                tracing::info!(%workspace, %report, "a closed workspace was deleted")
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%workspace, %error, "cannot delete a closed workspace; trying again")
            }
        }
    }
}

/// How often old audit events and ended sessions are deleted.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// Deletes the audit events past their retention, the sessions that ended and the account
/// links that expired, at the start and every hour.
fn spawn_housekeeping(
    runtime: Runtime,
    audit_retention: Duration,
    session_idle: Duration,
    mut stopping: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut leading = runtime.leading();
    tokio::spawn(async move {
        let store = runtime.store();
        let keep =
            chrono::Duration::from_std(audit_retention).unwrap_or(chrono::Duration::days(365));
        let idle = chrono::Duration::from_std(session_idle).unwrap_or(chrono::Duration::hours(8));
        while wait_to_lead(&mut leading, &mut stopping).await {
            match store.forget_audit_before(chrono::Utc::now() - keep).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "old audit events deleted"),
                Err(error) => {
                    tracing::warn!(%error, "cannot delete old audit events; trying again")
                }
            }
            if let Err(error) = store.forget_old_sessions(chrono::Utc::now() - idle).await {
                tracing::warn!(%error, "cannot delete ended sessions; trying again");
            }
            if let Err(error) = store.forget_expired_links().await {
                tracing::warn!(%error, "cannot delete expired account links; trying again");
            }
            tokio::select! {
                _ = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
                _ = stopping.changed() => {}
            }
        }
    })
}

/// Waits until this process leads the platform's once-only work; false when it stops first.
async fn wait_to_lead(
    leading: &mut watch::Receiver<bool>,
    stopping: &mut watch::Receiver<bool>,
) -> bool {
    let led = tokio::select! {
        led = leading.wait_for(|leads| *leads) => led.is_ok(),
        _ = stopping.wait_for(|stopped| *stopped) => false,
    };
    led && !*stopping.borrow()
}

fn parse_lease(text: &str) -> Result<Duration, String> {
    let lease = weft_recipe::duration::parse_duration(text)?;
    if lease < Duration::from_secs(1) {
        return Err("the job lease must be at least 1s".to_owned());
    }
    Ok(lease)
}

/// A duration that may be zero (`0s`): a grace or a wait.
fn parse_grace(text: &str) -> Result<Duration, String> {
    weft_recipe::duration::parse_duration(text)
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(terminate) => terminate,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[cfg(test)]
mod tests {
    use super::{Role, default_pool};

    /// The pool follows the formula `docs/scaling.md` gives: 2, plus 4 per core for the API,
    /// plus one per 16 job slots for jobs.
    #[test]
    fn the_default_pool_follows_the_documented_formula() {
        assert_eq!(default_pool(Role::All, 128, 2), 2 + 8 + 8);
        assert_eq!(default_pool(Role::Web, 0, 2), 2 + 8);
        assert_eq!(default_pool(Role::Worker, 128, 2), 2 + 8);
        assert_eq!(default_pool(Role::Worker, 17, 2), 2 + 2);
        assert_eq!(default_pool(Role::Scheduler, 0, 2), 2);
    }
}
