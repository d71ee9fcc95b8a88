//! R-A10: saving a link's settings (relevant privacy categories, relevant delivery-block types, field
//! mapping) or the tenant's "no statement" setting (R-A6) re-plans the assignments already linked, with no
//! OPTIGEM change, through the engine, the dry run and the mass-deactivation guard (R-F8). Over the
//! in-memory ports, with the admin's use cases as the admin API calls them.

use async_trait::async_trait;
use optisync_app::admin::{Admin, AdminConfig, LinkRequest};
use optisync_app::reconcile::{Budget, Phase, PreviewAction, RunOutcome};
use optisync_domain::rules::{AttributeInfo, AttributeScope};
use optisync_domain::*;
use optisync_ports::prelude::*;
use optisync_ports::{BusEvent, EspCatalog, EspDirectory, EspError, EspList};
use optisync_testkit::memory::{MemoryBus, MemorySecrets};
use std::sync::Arc;

use crate::common::*;

/// The account's catalog as the admin's checks read it: the list "Rundbrief" (`list-1`) and a second list,
/// with the global attributes FIRSTNAME and LASTNAME; webhooks register without a word.
struct Directory;

#[async_trait]
impl EspDirectory for Directory {
    async fn connect_brevo(&self, _: &AccountId, _: &str) -> Result<(), EspError> {
        Ok(())
    }
    fn cleverreach_authorize_url(&self, _: &str) -> Result<String, EspError> {
        Ok("https://rest.cleverreach.com/oauth/authorize.php".into())
    }
    async fn connect_cleverreach(&self, _: &AccountId, _: &str) -> Result<(), EspError> {
        Ok(())
    }
    async fn catalog(&self, _: &EspAccount) -> Result<EspCatalog, EspError> {
        let list = |id: &str, name: &str| EspList { id: ListId::new(id), name: name.into(), segments: vec![] };
        let global = |name: &str| AttributeInfo { name: AttributeName::new(name), scope: AttributeScope::Global };
        Ok(EspCatalog {
            lists: vec![list("list-1", "Rundbrief"), list("list-2", "Gemeindebrief")],
            attributes: vec![global("FIRSTNAME"), global("LASTNAME")],
        })
    }
    async fn register_hooks(&self, _: &Link, _: &str) -> Result<(), EspError> {
        Ok(())
    }
    async fn unregister_hooks(&self, _: &Link, _: &str, _: &[Link]) -> Result<(), EspError> {
        Ok(())
    }
    async fn set_brevo_hook_token(&self, _: &AccountId, _: &str, _: &str) -> Result<usize, EspError> {
        Ok(0)
    }
}

struct Setup {
    h: Harness,
    admin: Admin,
    bus: Arc<MemoryBus>,
}

async fn setup(provider: Provider) -> Setup {
    let h = harness(provider, berlin(2024, 4, 10, 12)).await;
    let record = AccountRecord {
        tenant: tenant(),
        esp: h.link.esp.clone(),
        status: AccountStatus::Connected,
        changed_at: berlin(2024, 4, 1, 12),
    };
    h.store.put_account(&record).await.unwrap();
    let bus = Arc::new(MemoryBus::default());
    let admin = Admin::new(
        h.store.clone(),
        Arc::new(MemorySecrets::default()),
        Arc::new(Directory),
        bus.clone(),
        h.reconciler.clone(),
        h.clock.clone(),
        AdminConfig { public_base_url: "https://sync.example.org".into() },
    );
    Setup { h, admin, bus }
}

fn e_mail() -> PrivacyCategory {
    PrivacyCategory::new("E-Mail")
}

/// Max Muster, whose person has the privacy block "E-Mail" (and a last name), on the newsletter.
fn max_muster(id: &str, mail: &str) -> Assignment {
    let mut a = named(id, mail, "Max", berlin(2024, 4, 10, 12));
    a.person.last_name = Some(PersonalText::new("Muster"));
    a.person.privacy.insert(e_mail(), PrivacyStatus::Blocked);
    a
}

/// Erika Mustermann, who allows e-mail.
fn erika(id: &str, mail: &str) -> Assignment {
    let mut a = named(id, mail, "Erika", berlin(2024, 4, 10, 12));
    a.person.last_name = Some(PersonalText::new("Mustermann"));
    a.person.privacy.insert(e_mail(), PrivacyStatus::Allowed);
    a
}

fn request(link: &Link, settings: LinkSettings) -> LinkRequest {
    LinkRequest {
        newsletter: link.newsletter.to_string(),
        provider: link.esp.provider,
        account: link.esp.account.to_string(),
        list: link.list.to_string(),
        segment: None,
        settings,
    }
}

fn relevant_email() -> LinkSettings {
    LinkSettings { relevant_privacy: [e_mail()].into(), ..Default::default() }
}

impl Setup {
    /// What the admin API's save does, then what the bus delivers: the link's run, invocation after
    /// invocation, until it finishes or is held (an export it asks for is answered with OPTIGEM's data).
    async fn save(&self, settings: LinkSettings) -> RunOutcome {
        self.admin.put_link(&tenant(), &self.h.link.id, request(&self.h.link, settings)).await.unwrap();
        self.deliver().await
    }

    /// The runs the bus announced; without any, the scheduler's next tick runs the link.
    async fn deliver(&self) -> RunOutcome {
        let announced: Vec<(TenantId, LinkId)> = self
            .bus
            .drain()
            .into_iter()
            .filter_map(|e| match e {
                BusEvent::ReconcileLink { tenant, link } => Some((tenant, link)),
                _ => None,
            })
            .collect();
        if announced.is_empty() {
            return self.run_link(&tenant(), &self.h.link.id).await;
        }
        let mut last = RunOutcome::Skipped;
        for (tenant, link) in announced {
            last = self.run_link(&tenant, &link).await;
        }
        last
    }

    async fn run_link(&self, tenant: &TenantId, link: &LinkId) -> RunOutcome {
        for _ in 0..20 {
            match self.h.reconciler.run(tenant, link, Budget::default()).await.unwrap() {
                RunOutcome::Continue(_) => {}
                RunOutcome::Waiting(p) if p.phase == Phase::AwaitExport => {
                    self.h.answer_with_optigem().await;
                }
                other => return other,
            }
        }
        panic!("the run did not come to rest");
    }

    fn ends(&self, feed: &[OptigemCommand]) -> usize {
        feed.iter().filter(|c| matches!(c, OptigemCommand::EndAssignment { .. })).count()
    }
}

#[tokio::test]
async fn r_a10_ticking_the_privacy_category_e_mail_deactivates_max_muster_without_any_optigem_change() {
    for provider in [Provider::Brevo, Provider::CleverReach] {
        let s = setup(provider).await;
        s.h.change(max_muster("a1", "max.muster@example.com")).await;
        s.h.change(erika("a2", "erika@example.com")).await;
        assert_eq!(s.h.receiving(), ["erika@example.com", "max.muster@example.com"], "no category is relevant (R-A8)");

        // The admin ticks "E-Mail"; OPTIGEM changes nothing.
        let outcome = s.save(relevant_email()).await;
        assert!(matches!(outcome, RunOutcome::Finished(_)), "{provider}: {outcome:?}");
        assert_eq!(s.h.receiving(), ["erika@example.com"], "{provider}: Max's privacy block now counts (R-A6, R-A10)");
        if provider == Provider::Brevo {
            let max = s.h.esp.contact(&s.h.link.esp, "max.muster@example.com").unwrap();
            assert!(!max.blacklisted, "taken off the list, never blacklisted (R-D2)");
        }
        assert_eq!(s.ends(&s.h.feed().await), 0, "a deactivation by the rules is no unsubscribe: OPTIGEM keeps it");

        // Saving the same settings again re-plans nothing.
        let calls = s.h.esp.mutating_calls();
        s.save(relevant_email()).await;
        assert_eq!(s.h.esp.mutating_calls(), calls, "{provider}: nothing changed, nothing sent");
    }
}

#[tokio::test]
async fn r_a10_unticking_e_mail_again_reactivates_max_muster() {
    for provider in [Provider::Brevo, Provider::CleverReach] {
        let s = setup(provider).await;
        s.h.change(max_muster("a1", "max.muster@example.com")).await;
        s.h.change(erika("a2", "erika@example.com")).await;
        s.save(relevant_email()).await;
        assert_eq!(s.h.receiving(), ["erika@example.com"]);

        let outcome = s.save(LinkSettings::default()).await;
        assert!(matches!(outcome, RunOutcome::Finished(_)), "{provider}: {outcome:?}");
        assert_eq!(s.h.receiving(), ["erika@example.com", "max.muster@example.com"], "{provider}: active again");
        assert_eq!(s.ends(&s.h.feed().await), 0);
    }
}

#[tokio::test]
async fn r_a10_a_mapping_change_sends_the_newly_mapped_last_name() {
    for provider in [Provider::Brevo, Provider::CleverReach] {
        let s = setup(provider).await;
        let first_only =
            LinkSettings { mapping: optisync_testkit::build::mapping("FIRSTNAME", None), ..Default::default() };
        s.save(first_only).await;
        s.h.change(max_muster("a1", "max.muster@example.com")).await;
        let fields = |s: &Setup| s.h.esp.contact(&s.h.link.esp, "max.muster@example.com").unwrap().fields;
        assert_eq!(fields(&s).get("FIRSTNAME").map(String::as_str), Some("Max"));
        assert_eq!(fields(&s).get("LASTNAME"), None);

        let both = LinkSettings {
            mapping: optisync_testkit::build::mapping("FIRSTNAME", Some("LASTNAME")),
            ..Default::default()
        };
        let outcome = s.save(both).await;
        assert!(matches!(outcome, RunOutcome::Finished(_)), "{provider}: {outcome:?}");
        assert_eq!(fields(&s).get("LASTNAME").map(String::as_str), Some("Muster"), "{provider}: R-D3 after R-A10");
        assert_eq!(s.h.receiving(), ["max.muster@example.com"]);
    }
}

#[tokio::test]
async fn r_a10_the_tenant_no_statement_setting_re_evaluates_every_link_of_the_tenant() {
    let s = setup(Provider::Brevo).await;
    // A second link of the tenant, on another newsletter and list.
    let second = Link {
        id: LinkId::new("gemeindebrief"),
        newsletter: NewsletterId::new("NL-2"),
        list: ListId::new("list-2"),
        ..s.h.link.clone()
    };
    s.h.store.put_link(&second).await.unwrap();
    for link in [&s.h.link, &second] {
        s.admin.put_link(&tenant(), &link.id, request(link, relevant_email())).await.unwrap();
    }
    s.deliver().await;
    // Lena made no statement on "E-Mail": without the tenant setting that is no block (R-A6).
    let mut lena = named("a1", "lena@example.com", "Lena", berlin(2024, 4, 10, 12));
    lena.person.privacy.clear();
    s.h.change(lena.clone()).await;
    s.h.change(Assignment { id: AssignmentId::new("a2"), newsletter: NewsletterId::new("NL-2"), ..lena }).await;
    s.h.change(erika("a3", "erika@example.com")).await;
    let receiving = |list: &Link| s.h.esp.receiving(&list.esp, &list.list).into_iter().collect::<Vec<_>>();
    assert_eq!(receiving(&s.h.link), ["erika@example.com", "lena@example.com"]);
    assert_eq!(receiving(&second), ["lena@example.com"]);

    let settings = TenantSettings { no_statement_blocks: true, ..Default::default() };
    s.admin.put_settings(&tenant(), &settings).await.unwrap();
    let runs: Vec<LinkId> = s
        .bus
        .drain()
        .into_iter()
        .filter_map(|e| match e {
            BusEvent::ReconcileLink { link, .. } => Some(link),
            _ => None,
        })
        .collect();
    assert_eq!(runs.len(), 2, "a re-plan of each syncing link is announced: {runs:?}");
    for link in &runs {
        let outcome = s.run_link(&tenant(), link).await;
        assert!(matches!(outcome, RunOutcome::Finished(_)), "{outcome:?}");
    }
    assert_eq!(receiving(&s.h.link), ["erika@example.com"], "\"no statement\" now counts as a block");
    assert!(receiving(&second).is_empty());
    assert_eq!(s.ends(&s.h.feed().await), 0);
}

#[tokio::test]
async fn r_a10_r_f8_above_the_guard_the_settings_run_is_held_until_confirmed_and_the_preview_shows_it() {
    let s = setup(Provider::Brevo).await;
    for i in 0..12 {
        s.h.change(max_muster(&format!("a{i:02}"), &format!("m{i:02}@example.com"))).await;
    }
    s.h.change(erika("b1", "erika@example.com")).await;
    assert_eq!(s.h.receiving().len(), 13);
    let calls = s.h.esp.mutating_calls();

    let outcome = s.save(relevant_email()).await;
    let RunOutcome::Held(progress) = outcome else { panic!("12 of 13 would be deactivated: held, got {outcome:?}") };
    assert_eq!(progress.counts.deferred, 12, "the deactivations the re-plan would make");
    assert_eq!(s.h.receiving().len(), 13, "nothing deactivated while held");
    assert_eq!(s.h.esp.mutating_calls(), calls, "nothing sent to the ESP");

    // The preview lists what would be deactivated, and only that.
    let preview = s.admin.preview(&tenant(), &s.h.link.id, 100).await.unwrap();
    let mut deactivated: Vec<String> = preview
        .lines
        .iter()
        .filter(|l| l.action == PreviewAction::Deactivate)
        .filter_map(|l| l.email.as_ref().map(|e| e.key().to_owned()))
        .collect();
    deactivated.sort();
    let expected: Vec<String> = (0..12).map(|i| format!("m{i:02}@example.com")).collect();
    assert_eq!(deactivated, expected);
    assert!(preview.lines.iter().all(|l| l.action == PreviewAction::Deactivate), "{:?}", preview.lines);

    // The admin confirms: the deactivations are carried out, Erika stays.
    assert!(s.admin.confirm(&tenant(), &s.h.link.id).await.unwrap());
    let outcome = s.deliver().await;
    assert!(matches!(outcome, RunOutcome::Finished(_)), "{outcome:?}");
    assert_eq!(s.h.receiving(), ["erika@example.com"]);
    assert_eq!(s.ends(&s.h.feed().await), 0);
}
