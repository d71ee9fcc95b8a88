//! The router sends each account's actions to its provider, with the account's credentials.

use optisync_brevo::fake::{FAKE_API_KEY, FakeBrevo};
use optisync_cleverreach::fake::FakeCleverReach;
use optisync_domain::rules::FieldValues;
use optisync_domain::*;
use optisync_esp::{EspRouter, EspSettings, brevo_key_name, cleverreach_tokens_name};
use optisync_ports::memory::MemorySecrets;
use optisync_ports::{EspError, EspGateway, SecretStore};
use std::sync::Arc;

fn action(provider: Provider, account: &str, list: &str, mail: &str, op: EspOp) -> EspAction {
    EspAction {
        link: LinkId::new("l"),
        esp: EspAccount { provider, account: AccountId::new(account) },
        list: ListId::new(list),
        email: Email::parse(mail).unwrap(),
        op,
    }
}

#[tokio::test]
async fn actions_reach_the_provider_of_their_account_and_an_unknown_account_is_unauthorized() {
    let brevo = FakeBrevo::start().await;
    let list = brevo.add_list("Rundbrief");
    let cr = FakeCleverReach::start().await;
    let group = cr.add_group("Newsletter");
    let secrets = Arc::new(MemorySecrets::default());
    secrets.put(&brevo_key_name(&AccountId::new("b1")), FAKE_API_KEY).await.unwrap();
    let tokens = serde_json::to_string(&cr.issue_tokens()).unwrap();
    secrets.put(&cleverreach_tokens_name(&AccountId::new("c1")), &tokens).await.unwrap();
    let router = EspRouter::new(
        secrets,
        EspSettings { brevo_base_url: brevo.base_url().to_owned(), cleverreach: cr.client_config() },
    );
    let upsert = || EspOp::Upsert { fields: FieldValues::default() };
    router
        .apply(&[
            action(Provider::Brevo, "b1", &list.to_string(), "max@example.com", upsert()),
            action(Provider::Brevo, "b1", &list.to_string(), "max@example.com", EspOp::AddToList),
            action(Provider::CleverReach, "c1", &group, "erika@example.com", upsert()),
            action(Provider::CleverReach, "c1", &group, "erika@example.com", EspOp::AddToList),
        ])
        .await
        .unwrap();
    assert!(brevo.contact("max@example.com").unwrap().list_ids.contains(&list));
    assert!(cr.receiver(&group, "erika@example.com").is_some());
    let unknown = router.apply(&[action(Provider::Brevo, "nobody", "1", "x@example.com", EspOp::AddToList)]).await;
    assert_eq!(unknown, Err(EspError::Unauthorized), "no credentials: re-link the account");
}
