//! Each workspace's masking rules for its job records.

use chrono::Utc;
use sqlx::Row;

use crate::Store;
use crate::db::{Backend, Result, on_pool};

/// A workspace's masking rules as stored; `fields: None` means the built-in list.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskSettings {
    pub fields: Option<Vec<String>>,
    pub detect: bool,
}

impl Default for MaskSettings {
    fn default() -> Self {
        MaskSettings {
            fields: None,
            detect: true,
        }
    }
}

impl Store {
    /// Every workspace that has chosen its masking rules, with them.
    pub async fn mask_settings(&self) -> Result<Vec<(String, MaskSettings)>> {
        self.mask_settings_where(None).await
    }

    /// A workspace's masking rules as stored (the defaults when it chose none).
    pub async fn mask_settings_of(&self, workspace_id: &str) -> Result<MaskSettings> {
        Ok(self
            .mask_settings_where(Some(workspace_id))
            .await?
            .pop()
            .map(|(_, settings)| settings)
            .unwrap_or_default())
    }

    async fn mask_settings_where(
        &self,
        workspace_id: Option<&str>,
    ) -> Result<Vec<(String, MaskSettings)>> {
        let sql = "SELECT workspace_id, fields, detect FROM mask_settings \
                   WHERE ($1 IS NULL OR workspace_id = $1) ORDER BY workspace_id";
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).fetch_all(pool).await?.iter()
            .map(|row| {
                let fields: Option<String> = row.try_get(1)?;
                Ok((row.try_get(0)?, MaskSettings {
                    fields: fields.and_then(|text| serde_json::from_str(&text).ok()),
                    detect: row.try_get(2)?,
                }))
            })
            .collect())
    }

    pub async fn set_mask_settings(
        &self,
        workspace_id: &str,
        settings: &MaskSettings,
    ) -> Result<()> {
        let sql = "INSERT INTO mask_settings (workspace_id, fields, detect, updated_at) \
                   VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id) DO UPDATE SET \
                   fields = excluded.fields, detect = excluded.detect, updated_at = excluded.updated_at";
        let fields = settings
            .fields
            .as_ref()
            .map(|fields| serde_json::Value::from(fields.clone()).to_string());
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).bind(fields).bind(settings.detect)
            .bind(Utc::now()).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}
