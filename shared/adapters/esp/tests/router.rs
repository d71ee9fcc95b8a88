//! The router sends each account's actions to its provider, with the account's credentials.

use optisync_domain::rules::FieldValues;
use optisync_domain::*;
use optisync_esp::{EspRouter, EspSettings};
use optisync_fakes::brevo::{FAKE_API_KEY, FakeBrevo};
use optisync_fakes::cleverreach::FakeCleverReach;
use optisync_ports::names::secret;
use optisync_ports::{EspError, EspGateway, EspLister, EspReader, ListPage, Reread, SecretStore};
use optisync_testkit::build;
use optisync_testkit::memory::MemorySecrets;
use serde_json::Map;
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
    secrets.put(&secret::brevo_api_key(&AccountId::new("b1")), FAKE_API_KEY).await.unwrap();
    let tokens = serde_json::to_string(&cr.issue_tokens()).unwrap();
    secrets.put(&secret::cleverreach_tokens(&AccountId::new("c1")), &tokens).await.unwrap();
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

/// A router holding credentials for Brevo account `b1` and CleverReach account `c1`, listing CleverReach
/// groups 2 receivers a page.
async fn router(brevo: &FakeBrevo, cr: &FakeCleverReach) -> EspRouter {
    let secrets = Arc::new(MemorySecrets::default());
    secrets.put(&secret::brevo_api_key(&AccountId::new("b1")), FAKE_API_KEY).await.unwrap();
    let tokens = serde_json::to_string(&cr.issue_tokens()).unwrap();
    secrets.put(&secret::cleverreach_tokens(&AccountId::new("c1")), &tokens).await.unwrap();
    let mut cleverreach = cr.client_config();
    cleverreach.page_size = 2;
    EspRouter::new(secrets, EspSettings { brevo_base_url: brevo.base_url().to_owned(), cleverreach })
}

fn link(provider: Provider, account: &str, list: &str) -> Link {
    build::link("l", "t", "nl", build::esp(provider, account), list)
}

/// Every member of the link as (address, receives mail), and the number of pages read.
async fn list_all(router: &EspRouter, link: &Link) -> (Vec<(String, bool)>, usize) {
    let (mut members, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let ListPage { members: page, next } = router.list_page(link, None, cursor.as_deref()).await.unwrap();
        pages += 1;
        members.extend(page.into_iter().map(|m| (m.email.key().to_owned(), m.active)));
        cursor = next;
        if cursor.is_none() {
            return (members, pages);
        }
    }
}

#[tokio::test]
async fn a_brevo_link_and_a_cleverreach_link_are_listed_through_the_router_from_their_own_provider() {
    let brevo = FakeBrevo::start().await;
    let list = brevo.add_list("Rundbrief");
    brevo.add_contact("max@example.com", Map::new(), &[list]);
    brevo.add_contact("moritz@example.com", Map::new(), &[list]);
    brevo.blacklist("moritz@example.com");
    let cr = FakeCleverReach::start().await;
    let group = cr.add_group("Newsletter");
    let t = chrono::Utc::now().timestamp() - 3600;
    for (email, deactivated) in [("erika@example.com", 0), ("hans@example.com", t + 60), ("ida@example.com", 0)] {
        cr.add_receiver(&group, email, t, deactivated, &[]);
    }
    let router = router(&brevo, &cr).await;

    let (from_brevo, _) = list_all(&router, &link(Provider::Brevo, "b1", &list.to_string())).await;
    let (from_cleverreach, pages) = list_all(&router, &link(Provider::CleverReach, "c1", &group)).await;

    let owned = |v: &[(&str, bool)]| v.iter().map(|(e, a)| (e.to_string(), *a)).collect::<Vec<_>>();
    assert_eq!(from_brevo, owned(&[("max@example.com", true), ("moritz@example.com", false)]));
    assert_eq!(
        from_cleverreach,
        owned(&[("erika@example.com", true), ("hans@example.com", false), ("ida@example.com", true)])
    );
    assert_eq!(pages, 2, "the CleverReach page size of the router's settings");
    let unknown = router.list_page(&link(Provider::Brevo, "nobody", "1"), None, None).await;
    assert_eq!(unknown, Err(EspError::Unauthorized), "no credentials: re-link the account");
}

#[tokio::test]
async fn r_h1_one_client_per_account_serves_apply_reread_and_list_so_a_rotated_refresh_token_stays_valid() {
    let brevo = FakeBrevo::start().await;
    let cr = FakeCleverReach::start().await;
    let group = cr.add_group("Newsletter");
    let pool_id = cr.add_receiver(&group, "erika@example.com", chrono::Utc::now().timestamp() - 60, 0, &[]);
    let router = router(&brevo, &cr).await;
    let esp = EspAccount { provider: Provider::CleverReach, account: AccountId::new("c1") };
    let reread = Reread {
        esp: esp.clone(),
        list: ListId::new(group.as_str()),
        receiver: pool_id,
        event: "receiver.updated".into(),
        received_at: chrono::Utc::now(),
    };
    let fields = FieldValues([(AttributeName::new("firstname"), PersonalText::new("Erika"))].into_iter().collect());
    let rename = action(Provider::CleverReach, "c1", &group, "erika@example.com", EspOp::UpdateFields { fields });

    assert_eq!(router.reread(&reread).await.unwrap().len(), 1);
    // Each step finds the access token expired and refreshes; CleverReach rotates the refresh token, so a
    // second client for the account would still hold the one the first refresh made void.
    cr.expire_access_tokens();
    list_all(&router, &link(Provider::CleverReach, "c1", &group)).await;
    cr.expire_access_tokens();
    assert_eq!(router.reread(&reread).await.unwrap().len(), 1, "the reader knows the rotated refresh token");
    cr.expire_access_tokens();
    router.apply(&[rename]).await.unwrap();

    assert_eq!(cr.refresh_count(), 3);
    let receiver = cr.receiver(&group, "erika@example.com").unwrap();
    assert_eq!(receiver.global_attributes.get("firstname").map(String::as_str), Some("Erika"));
    assert!(brevo.request_log().is_empty(), "nothing went to Brevo");
}

#[tokio::test]
async fn m5_a_brevo_key_replaced_by_another_process_is_read_again_after_a_401() {
    let brevo = FakeBrevo::start().await;
    let list = brevo.add_list("Rundbrief").to_string();
    let cr = FakeCleverReach::start().await;
    let secrets = Arc::new(MemorySecrets::default());
    let name = secret::brevo_api_key(&AccountId::new("b1"));
    secrets.put(&name, FAKE_API_KEY).await.unwrap();
    let router = EspRouter::new(
        secrets.clone(),
        EspSettings { brevo_base_url: brevo.base_url().to_owned(), cleverreach: cr.client_config() },
    );
    let add = |mail: &str| action(Provider::Brevo, "b1", &list, mail, EspOp::Upsert { fields: FieldValues::default() });
    router.apply(&[add("max@example.com")]).await.unwrap();

    // The admin API (another process) connects the account with a new key; the old one is revoked.
    brevo.set_api_key("xkeysib-rotated-1111111111111111");
    secrets.put(&name, "xkeysib-rotated-1111111111111111").await.unwrap();
    router.apply(&[add("erika@example.com")]).await.unwrap();
    assert!(brevo.contact("erika@example.com").is_some(), "sent with the key read again");
    let link = link(Provider::Brevo, "b1", &list);
    assert!(router.is_listed(&link, &Email::parse("erika@example.com").unwrap()).await.is_ok());

    // A key refused while the secret still holds it stays refused: no loop, the account must be re-linked.
    brevo.set_api_key("xkeysib-elsewhere-2222222222222222");
    let refused = router.apply(&[add("lena@example.com")]).await;
    assert_eq!(refused, Err(EspError::Unauthorized));
}
