//! Tenant settings and the connector signing secrets (several valid during a rotation).

use super::{Admin, AdminError, MAX_SIGNING_SECRETS, Replan, signing_secret_id};
use base64::Engine as _;
use optisync_domain::{LinkStatus, TenantId, TenantSettings, UnsubscribeMode};
use optisync_ports::StoreError;
use optisync_ports::names::secret;
use serde::Serialize;

/// A tenant as the admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantView {
    /// The tenant.
    pub tenant: TenantId,
    /// Its settings (R-A6, R-B3).
    pub settings: TenantSettings,
    /// The ids of the connector signing secrets valid now, oldest first (never the secrets).
    pub signing_secrets: Vec<String>,
    /// R-A10: the re-plans saving the settings started, one per syncing link (none when the R-A6 setting
    /// stayed as it was).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replan: Vec<Replan>,
}

/// A new connector signing secret: shown once, to be configured in the connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewSigningSecret {
    /// Its id.
    pub id: String,
    /// The secret (`whsec_…`).
    pub secret: String,
    /// The ids valid now, oldest first.
    pub valid: Vec<String>,
}

impl Admin {
    async fn signing_secrets(&self, tenant: &TenantId) -> Result<Vec<String>, AdminError> {
        match self.secrets.get(&secret::signing_secrets(tenant)).await? {
            None => Ok(Vec::new()),
            Some(raw) => serde_json::from_str(&raw)
                .map_err(|_| StoreError::Permanent("signing secrets are not a JSON list".into()).into()),
        }
    }

    /// A tenant's settings and signing-secret ids.
    pub async fn tenant(&self, tenant: &TenantId) -> Result<TenantView, AdminError> {
        let settings = self.store.tenant_settings(tenant).await?;
        let signing_secrets = self.signing_secrets(tenant).await?.iter().map(|s| signing_secret_id(s)).collect();
        Ok(TenantView { tenant: tenant.clone(), settings, signing_secrets, replan: Vec::new() })
    }

    /// Saves a tenant's settings (R-A6, R-B3, R-J6). A retention period out of its range is refused naming
    /// its field, and nothing is saved. A change of the R-A6 setting re-plans the assignments of every
    /// syncing link of the tenant (R-A10).
    pub async fn put_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> Result<TenantView, AdminError> {
        if let Err(e) = settings.retention.validate() {
            return Err(AdminError::invalid(&e.field, e.to_string()));
        }
        self.check_erasure_target_kept(tenant, settings).await?;
        let before = self.store.tenant_settings(tenant).await?;
        self.store.put_tenant_settings(tenant, settings).await?;
        // R-J2: the deletion reports' target is subscribed (the admin confirms the provider's mail); the
        // subscription of the previous address goes when it was confirmed. Saving again repeats it safely.
        if let (Some(subscriptions), Some(email)) = (&self.subscriptions, &settings.deletion_report_email) {
            let previous = before.deletion_report_email.as_ref().filter(|p| *p != email);
            subscriptions
                .subscribe(tenant, email, previous)
                .await
                .map_err(|e| AdminError::from(StoreError::Transient(e.to_string())))?;
        }
        let mut replan = Vec::new();
        if before.no_statement_blocks != settings.no_statement_blocks {
            let mut links = self.store.links(tenant).await?;
            links.sort_by(|a, b| a.id.cmp(&b.id));
            for link in links.iter().filter(|l| l.status != LinkStatus::NotLinked) {
                replan.push(self.replan(link, "tenant setting no_statement_blocks").await?);
            }
        }
        Ok(TenantView { replan, ..self.tenant(tenant).await? })
    }

    /// R-J2: the deletion reports' target cannot be removed while a link of the tenant is in erasure mode.
    async fn check_erasure_target_kept(&self, tenant: &TenantId, settings: &TenantSettings) -> Result<(), AdminError> {
        if settings.deletion_report_email.is_some() {
            return Ok(());
        }
        let erasing = self
            .store
            .links(tenant)
            .await?
            .into_iter()
            .any(|l| l.settings.unsubscribe_mode == UnsubscribeMode::Erasure);
        if erasing {
            return Err(AdminError::invalid(
                "deletion_report_email",
                "a link of the tenant is in erasure mode, which needs the deletion reports' target (R-J2)",
            ));
        }
        Ok(())
    }

    /// Adds a new connector signing secret; the old ones stay valid until retired, so the connector can
    /// switch without a gap.
    pub async fn rotate_signing_secret(&self, tenant: &TenantId) -> Result<NewSigningSecret, AdminError> {
        let mut secrets = self.signing_secrets(tenant).await?;
        if secrets.len() >= MAX_SIGNING_SECRETS {
            return Err(AdminError::Conflict(format!(
                "{MAX_SIGNING_SECRETS} signing secrets are valid already: retire an old one first"
            )));
        }
        let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>()));
        secrets.push(secret.clone());
        self.save_signing_secrets(tenant, &secrets).await?;
        let valid = secrets.iter().map(|s| signing_secret_id(s)).collect();
        Ok(NewSigningSecret { id: signing_secret_id(&secret), secret, valid })
    }

    /// Retires a signing secret; the last one cannot be retired (the connector would be locked out).
    pub async fn retire_signing_secret(&self, tenant: &TenantId, id: &str) -> Result<TenantView, AdminError> {
        let mut secrets = self.signing_secrets(tenant).await?;
        let Some(at) = secrets.iter().position(|s| signing_secret_id(s) == id) else {
            return Err(AdminError::NotFound("signing secret"));
        };
        if secrets.len() == 1 {
            return Err(AdminError::Conflict("the last signing secret cannot be retired: rotate first".into()));
        }
        secrets.remove(at);
        self.save_signing_secrets(tenant, &secrets).await?;
        self.tenant(tenant).await
    }

    async fn save_signing_secrets(&self, tenant: &TenantId, secrets: &[String]) -> Result<(), AdminError> {
        let raw = serde_json::to_string(secrets).map_err(|e| StoreError::Permanent(e.to_string()))?;
        Ok(self.secrets.put(&secret::signing_secrets(tenant), &raw).await?)
    }
}
