//! Conformance cases: tenant settings and ESP accounts.

use super::*;

/// Tenant settings and ESP accounts are saved per tenant; an account id belongs to one tenant.
pub async fn tenant_settings_and_accounts_are_kept_per_tenant(store: Arc<dyn StateStore>) {
    let settings =
        TenantSettings { no_statement_blocks: true, approved_email_target: EmailTarget::StandardCommunication };
    store.put_tenant_settings(&tenant(), &settings).await.unwrap();
    assert_eq!(store.tenant_settings(&tenant()).await.unwrap(), settings);
    assert_eq!(store.tenant_settings(&TenantId::new("other")).await.unwrap(), TenantSettings::default());

    let record = |t: &str, provider, id: &str, status| AccountRecord {
        tenant: TenantId::new(t),
        esp: EspAccount { provider, account: AccountId::new(id) },
        status,
        changed_at: at(3),
    };
    let cr = record("t-conformance", Provider::CleverReach, "main", AccountStatus::AwaitingAuthorisation);
    let brevo = record("t-conformance", Provider::Brevo, "main", AccountStatus::Connected);
    store.put_account(&cr).await.unwrap();
    store.put_account(&brevo).await.unwrap();
    let connected = AccountRecord { status: AccountStatus::Connected, ..cr.clone() };
    store.put_account(&connected).await.unwrap(); // replaced by its own tenant
    assert_eq!(store.accounts(&tenant()).await.unwrap(), vec![brevo.clone(), connected.clone()]);
    // Another tenant cannot take the id (its secrets are named by it), but may use it at the other provider.
    let taken = record("other", Provider::Brevo, "main", AccountStatus::Connected);
    assert_eq!(store.put_account(&taken).await, Err(StoreError::Conflict));
    assert!(store.accounts(&TenantId::new("other")).await.unwrap().is_empty());
    assert_eq!(store.account(&taken.esp).await.unwrap().map(|a| a.tenant), Some(tenant()));
    let unknown = EspAccount { provider: Provider::Brevo, account: AccountId::new("none") };
    assert_eq!(store.account(&unknown).await.unwrap(), None);
    assert_eq!(store.accounts(&tenant()).await.unwrap(), vec![brevo, connected]);
}
