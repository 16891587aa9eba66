//! `weft admin`: bootstrap people and API tokens without a browser, and keep the master key.

use anyhow::{Context, bail};
use clap::Subcommand;
use std::io::Read;

use weft_store::{AuditEvent, DEFAULT_WORKSPACE, NewToken, Role};

use super::store_args::StoreArgs;

/// Writes what the command did to the workspace's audit log, as done by `weft admin`.
async fn audit(
    store: &weft_store::Store,
    workspace: &str,
    action: &str,
    target_id: &str,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    let mut event = AuditEvent::new(workspace, None, "weft admin", action);
    event.target_id = Some(target_id.to_owned());
    event.details = Some(details);
    store.record_audit(&event).await?;
    Ok(())
}

async fn workspace_exists(store: &weft_store::Store, id: &str) -> anyhow::Result<bool> {
    Ok(store.workspace_name(id).await?.is_some())
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text)
        .ok_or_else(|| "a role is viewer, operator, builder, admin or owner".to_owned())
}

fn parse_lifetime(text: &str) -> Result<std::time::Duration, String> {
    weft_recipe::duration::parse_duration(text)
}

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
        /// Their role in the workspace: viewer, operator, builder, admin or owner.
        #[arg(long, default_value = "owner", value_parser = parse_role)]
        role: Role,
        /// The workspace they join; a new one is made, with them as its owner.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Create a workspace with an existing user as its owner.
    CreateWorkspace {
        /// Its id, part of its webhook URLs (/w/ID/hooks/...).
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// The email of its first owner.
        #[arg(long)]
        owner: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the final report of each workspace deleted after its owner closed it, newest
    /// first, one JSON document a line.
    ClosedWorkspaces {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Change a person's role in the workspace. The last owner stays an owner.
    SetRole {
        #[arg(long)]
        email: String,
        /// viewer, operator, builder, admin or owner.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Give a workspace a plan of the plans file (`--plans`), or the default plan again with
    /// `--default`. The servers apply it within seconds: limits, holds, concurrency.
    SetPlan {
        /// The plan's name.
        #[arg(required_unless_present = "default")]
        plan: Option<String>,
        /// Back to the plans file's default plan.
        #[arg(long, conflicts_with = "plan")]
        default: bool,
        #[arg(long)]
        workspace: String,
        /// The plans file the servers use.
        #[arg(long, env = "WEFT_PLANS")]
        plans: Option<std::path::PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Run the jobs held over a workspace's task limit now (all, or those named with --job).
    /// Its new jobs are still held while it is over its limit.
    ReleaseHeld {
        #[arg(long)]
        workspace: String,
        /// A held job's id; more than one may be given.
        #[arg(long = "job")]
        jobs: Vec<String>,
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
        /// The token's role (never above the user's own); the user's role by default.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// A name that says what the token is for.
        #[arg(long, default_value = "made with weft admin")]
        name: String,
        /// How long the token lasts, such as 90d; for ever by default.
        #[arg(long, value_parser = parse_lifetime)]
        expires_in: Option<std::time::Duration>,
        /// The workspace the token acts in.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::CreateUser {
            email,
            name,
            role,
            workspace,
            store,
            ..
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            // Emails are kept in lower case, as sign-in looks them up.
            let email = email.trim().to_lowercase();
            if let Some(problem) = weft_server::sessions::password_problem(password, &email) {
                bail!("{problem}");
            }
            if !email.contains('@') {
                bail!("`{email}` is not an email address");
            }
            let hash = weft_server::auth::hash_password(password).map_err(anyhow::Error::msg)?;
            let store = store.open().await?;
            let exists = workspace_exists(&store, &workspace).await?;
            if !exists && role != Role::Owner {
                bail!("no workspace `{workspace}`: its first person is its owner (--role owner)");
            }
            let user = store.create_user(&email, &name, &hash).await?;
            if exists {
                store.set_membership(&workspace, &user.id, role).await?;
            } else {
                store
                    .create_workspace(&workspace, &workspace, &user.id)
                    .await?;
            }
            let details = serde_json::json!({ "email": user.email, "role": role.as_str() });
            audit(&store, &workspace, "member.create", &user.id, details).await?;
            println!(
                "created user {} <{}> ({role} in {workspace})",
                user.name, user.email
            );
            Ok(())
        }
        AdminCommand::CreateWorkspace {
            id,
            name,
            owner,
            store,
        } => {
            let store = store.open().await?;
            let Some(user) = store.user_by_email(&owner.trim().to_lowercase()).await? else {
                bail!("no user with email {owner}");
            };
            store.create_workspace(&id, &name, &user.id).await?;
            let details = serde_json::json!({ "after": { "name": name, "owner": user.email } });
            audit(&store, &id, "workspace.create", &id, details).await?;
            println!("created workspace {id} ({name}), owned by {}", user.email);
            Ok(())
        }
        AdminCommand::ClosedWorkspaces { store } => {
            let store = store.open().await?;
            for report in store.closed_workspaces().await? {
                println!("{report}");
            }
            Ok(())
        }
        AdminCommand::SetRole {
            email,
            role,
            workspace,
            store,
        } => {
            let store = store.open().await?;
            let Some(user) = store.user_by_email(&email).await? else {
                bail!("no user with email {email}");
            };
            let was = store.membership(&workspace, &user.id).await?;
            match was {
                None => store.set_membership(&workspace, &user.id, role).await?,
                Some(_) => match store
                    .change_membership(&workspace, &user.id, Some(role))
                    .await?
                {
                    weft_store::MembershipChange::LastOwner => {
                        bail!("{email} is the workspace's last owner: make another owner first")
                    }
                    weft_store::MembershipChange::Done
                    | weft_store::MembershipChange::NotMember => {}
                },
            }
            let details = serde_json::json!({
                "before": { "role": was.map(Role::as_str) },
                "after": { "role": role.as_str() },
            });
            audit(&store, &workspace, "member.role", &user.id, details).await?;
            println!("{email} is {role} now");
            Ok(())
        }
        AdminCommand::SetPlan {
            plan,
            default: _,
            workspace,
            plans,
            store,
        } => {
            let plans = crate::plans_file::load_or_default(plans.as_deref())?;
            if let Some(plan) = &plan
                && plans.get(plan).is_none()
            {
                let known: Vec<&str> = plans.all().map(|plan| plan.name.as_str()).collect();
                bail!(
                    "no plan `{plan}` in the plans file (plans: {})",
                    known.join(", ")
                );
            }
            let store = store.open().await?;
            if !workspace_exists(&store, &workspace).await? {
                bail!("no workspace `{workspace}`");
            }
            let was = store.workspace_plan(&workspace).await?;
            store
                .set_workspace_plan(&workspace, plan.as_deref(), "admin")
                .await?;
            let details =
                serde_json::json!({ "before": { "plan": was }, "after": { "plan": plan } });
            audit(&store, &workspace, "workspace.plan", &workspace, details).await?;
            let shown = plan.unwrap_or_else(|| format!("{} (the default)", plans.default_name()));
            println!("workspace {workspace} has the plan {shown}");
            Ok(())
        }
        AdminCommand::ReleaseHeld {
            workspace,
            jobs,
            store,
        } => {
            let store = store.open().await?;
            if !workspace_exists(&store, &workspace).await? {
                bail!("no workspace `{workspace}`");
            }
            let named = (!jobs.is_empty()).then_some(jobs.as_slice());
            let released = store.release_held_jobs(&workspace, named).await?;
            let details = serde_json::json!({ "released": released, "jobs": jobs });
            audit(&store, &workspace, "jobs.release_held", &workspace, details).await?;
            println!("released {released} held job(s) of workspace {workspace}");
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
        AdminCommand::CreateToken {
            email,
            role,
            name,
            expires_in,
            workspace,
            store,
        } => {
            let store = store.open().await?;
            let Some(user) = store.user_by_email(&email).await? else {
                bail!("no user with email {email}");
            };
            let Some(member_role) = store.membership(&workspace, &user.id).await? else {
                bail!("{email} does not belong to the workspace `{workspace}`");
            };
            let role = role.unwrap_or(member_role);
            if role > member_role {
                bail!("a token cannot have a higher role ({role}) than {email}'s ({member_role})");
            }
            let expires_at = match expires_in {
                Some(lasts) => Some(
                    chrono::Duration::from_std(lasts)
                        .ok()
                        .and_then(|lasts| chrono::Utc::now().checked_add_signed(lasts))
                        .context("--expires-in is too long")?,
                ),
                None => None,
            };
            let token = weft_server::auth::new_token();
            let new = NewToken {
                user_id: &user.id,
                workspace_id: &workspace,
                role,
                name: &name,
                expires_at,
            };
            let id = store
                .create_scoped_token(&weft_server::auth::token_hash(&token), &new)
                .await?;
            let details = serde_json::json!({
                "after": { "name": name, "role": role.as_str(), "user": email, "expires_at": expires_at },
            });
            audit(&store, &workspace, "token.create", &id, details).await?;
            println!("{token}");
            Ok(())
        }
    }
}
