//! Each workspace's masking rules: kept in the store, applied by the engine from memory, and
//! read again from the store every few seconds so that every process of the platform applies
//! what any of them saved.

use std::time::Duration;

use tokio::sync::watch;
use weft_engine::mask::{DEFAULT_MASKED_FIELDS, WorkspaceMasks};
use weft_store::MaskSettings;

use crate::Runtime;

/// How often the rules are read again from the store.
const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// The rules the engine applies for these settings.
pub fn workspace_masks(settings: &MaskSettings) -> WorkspaceMasks {
    match &settings.fields {
        Some(fields) => WorkspaceMasks::new(fields, settings.detect),
        None => WorkspaceMasks::new(DEFAULT_MASKED_FIELDS.iter().copied(), settings.detect),
    }
}

impl Runtime {
    /// Saves a workspace's masking rules; this process applies them to the next record it
    /// writes, the others within seconds.
    pub async fn set_mask_settings(
        &self,
        workspace: &str,
        settings: &MaskSettings,
    ) -> weft_store::Result<()> {
        self.store().set_mask_settings(workspace, settings).await?;
        self.engine()
            .masks()
            .set(workspace, workspace_masks(settings));
        Ok(())
    }

    /// An error's text as it may be logged: what looks like a card number or a credential
    /// masked, by the workspace's rules.
    pub fn loggable(&self, workspace: &str, text: &str) -> String {
        self.engine().masks().for_workspace(workspace).text(text)
    }

    /// Reads every workspace's masking rules from the store into the engine.
    pub async fn load_masks(&self) -> weft_store::Result<()> {
        let changes = self.engine().masks().changes();
        let all = self.store().mask_settings().await?;
        self.engine().masks().replace_all(
            changes,
            all.iter()
                .map(|(workspace, settings)| (workspace.clone(), workspace_masks(settings))),
        );
        Ok(())
    }

    /// Reads the masking rules again every few seconds, until `shutdown` turns true.
    pub fn spawn_mask_refresh(
        &self,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let runtime = self.clone();
        tokio::spawn(async move {
            while !*shutdown.borrow() {
                tokio::select! {
                    _ = tokio::time::sleep(REFRESH_EVERY) => {}
                    _ = shutdown.changed() => {}
                }
                if let Err(error) = runtime.load_masks().await {
                    tracing::warn!(%error, "cannot read the masking rules; keeping the ones known");
                }
            }
        })
    }
}
