//! Conformance cases: tenant settings and ESP accounts.

use super::*;

/// Tenant settings and ESP accounts are saved per tenant; an account id belongs to one tenant.
pub async fn tenant_settings_and_accounts_are_kept_per_tenant(store: Arc<dyn StateStore>) {
    let settings = TenantSettings {
        no_statement_blocks: true,
        approved_email_target: EmailTarget::StandardCommunication,
        deletion_report_email: Some(optisync_domain::Email::parse("datenschutz@example.org").unwrap()),
        retention: Retention { inbox_days: 3, recipients_days: 60, ..Retention::default() },
    };
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

/// A pending OAuth authorisation is taken once (M4): a second take, or one of many concurrent takes,
/// finds nothing; another tenant cannot take it by the same nonce hash (R-K1).
pub async fn pending_authorisations_are_taken_once(store: Arc<dyn StateStore>) {
    let pending = |t: &str, hash: &str| PendingAuthorisation {
        tenant: TenantId::new(t),
        account: EspAccount { provider: Provider::CleverReach, account: AccountId::new("main") },
        nonce_hash: hash.to_owned(),
        expires_at: at(3),
    };
    let mine = pending("t-conformance", "aa11");
    store.put_authorisation(&mine).await.unwrap();
    store.put_authorisation(&pending("t-conformance", "bb22")).await.unwrap();
    assert_eq!(store.take_authorisation(&TenantId::new("other"), "aa11").await.unwrap(), None);
    assert_eq!(store.take_authorisation(&tenant(), "cc33").await.unwrap(), None);
    assert_eq!(store.take_authorisation(&tenant(), "aa11").await.unwrap(), Some(mine.clone()));
    assert_eq!(store.take_authorisation(&tenant(), "aa11").await.unwrap(), None);
    // The other one is still there, and so is the same nonce hash of another tenant.
    let theirs = pending("other", "bb22");
    store.put_authorisation(&theirs).await.unwrap();
    assert_eq!(store.take_authorisation(&tenant(), "bb22").await.unwrap(), Some(pending("t-conformance", "bb22")));
    assert_eq!(store.take_authorisation(&TenantId::new("other"), "bb22").await.unwrap(), Some(theirs));

    // Many callbacks with one state at once: exactly one takes it.
    store.put_authorisation(&mine).await.unwrap();
    let takes = (0..10).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.take_authorisation(&tenant(), "aa11").await.unwrap() })
    });
    let mut won = 0;
    for take in takes.collect::<Vec<_>>() {
        if let Some(taken) = take.await.unwrap() {
            assert_eq!(taken, mine);
            won += 1;
        }
    }
    assert_eq!(won, 1);
}
