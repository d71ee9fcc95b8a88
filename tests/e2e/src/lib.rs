//! The end-to-end stack: the simulated OPTIGEM with its connector, every optisync function in one process
//! behind a local HTTP server (the same routes as the HTTP API), the worker fed from an in-process bus,
//! the real Brevo and CleverReach clients against the stateful fakes, and the in-memory store.
//!
//! Tests drive it step by step: change something in OPTIGEM, [`Stack::sync`] (events → hook → inbox →
//! worker → ESP; commands → connector → OPTIGEM and back), then look at the fakes and OPTIGEM.

pub mod capture;

use optisync_connector::signature::SigningSecret;
use optisync_domain::*;
use optisync_esp::{EspRouter, EspSettings};
use optisync_fakes::brevo::FakeBrevo;
use optisync_fakes::cleverreach::FakeCleverReach;
use optisync_local::{HttpFunctions, LocalBus, invoke_worker, router};
use optisync_optigem_sim::{AssignmentDraft, Connector, PersonDraft, SimOptigem};
use optisync_ports::names::secret;
use optisync_ports::prelude::*;
use optisync_ports::{BusEvent, Clock, SecretStore, SystemClock};
use optisync_testkit::memory::{MemorySecrets, MemoryStore};
use std::sync::Arc;

/// The tenant of the stack.
pub const TENANT: &str = "gemeinde-1";
/// Its connector signing secret.
pub const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The Brevo account linked.
pub const BREVO_ACCOUNT: &str = "brevo-main";
/// The CleverReach account linked.
pub const CLEVERREACH_ACCOUNT: &str = "cr-main";
/// The bearer token Brevo's webhooks carry.
pub const BREVO_HOOK_TOKEN: &str = "brevo-hook-e2e";
/// The admin API's token in the stack.
pub const ADMIN_TOKEN: &str = "admin-e2e";
/// The call token CleverReach's webhooks carry.
pub const CLEVERREACH_CALL_TOKEN: &str = "cr-call-e2e";

/// Everything of one end-to-end run.
pub struct Stack {
    /// The tenant.
    pub tenant: TenantId,
    /// optisync's state.
    pub store: Arc<MemoryStore>,
    /// Secrets (signing secrets, ESP credentials).
    pub secrets: Arc<MemorySecrets>,
    /// The in-process bus.
    pub bus: Arc<LocalBus>,
    /// The worker as Lambda runs it.
    pub worker: worker::Deps,
    /// The scheduled runs, over the same store and ESP router as the worker.
    pub reconciler: optisync_app::reconcile::Reconciler,
    /// The local HTTP API's base URL.
    pub api: String,
    /// The fake Brevo.
    pub brevo: FakeBrevo,
    /// The fake CleverReach.
    pub cleverreach: FakeCleverReach,
    /// The simulated OPTIGEM.
    pub optigem: SimOptigem,
    /// Its connector.
    pub connector: Connector,
    /// The clock of the engine and the scheduled runs (the HTTP functions check signatures against the
    /// real time, as the connector and the fakes sign with it).
    pub clock: Arc<ShiftedClock>,
}

/// The real time, shifted: lets a test run the sync on a date of the source documents' examples.
#[derive(Default)]
pub struct ShiftedClock {
    offset: std::sync::Mutex<chrono::Duration>,
}

impl ShiftedClock {
    /// From now on, the clock reads `at` (and goes on from there).
    pub fn travel_to(&self, at: chrono::DateTime<chrono::Utc>) {
        *self.offset.lock().expect("clock lock") = at - chrono::Utc::now();
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + *self.offset.lock().expect("clock lock")
    }
}

impl Stack {
    /// Starts the fakes, the local API and the simulated OPTIGEM.
    pub async fn start() -> Stack {
        capture::install();
        let tenant = TenantId::new(TENANT);
        let store = Arc::new(MemoryStore::new());
        let secrets = Arc::new(MemorySecrets::default());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let business = Arc::new(ShiftedClock::default());
        let bus = Arc::new(LocalBus::new());
        secrets
            .put(&secret::signing_secrets(&tenant), &serde_json::to_string(&[SIGNING_SECRET]).expect("json"))
            .await
            .expect("secret");

        let brevo = FakeBrevo::start().await;
        let brevo_account = AccountId::new(BREVO_ACCOUNT);
        secrets.put(&secret::brevo_api_key(&brevo_account), &brevo.api_key()).await.expect("secret");
        secrets.put(&secret::brevo_webhook_token(&brevo_account), BREVO_HOOK_TOKEN).await.expect("secret");
        let cr_tokens = format!(r#"{{"verify_token":"verify-e2e","call_token":"{CLEVERREACH_CALL_TOKEN}"}}"#);
        secrets
            .put(&secret::cleverreach_webhook(&AccountId::new(CLEVERREACH_ACCOUNT)), &cr_tokens)
            .await
            .expect("secret");
        // The hooks accept an account only under the tenant that owns it (M2), as the admin API records it.
        for (provider, account) in [(Provider::Brevo, BREVO_ACCOUNT), (Provider::CleverReach, CLEVERREACH_ACCOUNT)] {
            let record = AccountRecord {
                tenant: tenant.clone(),
                esp: EspAccount { provider, account: AccountId::new(account) },
                status: AccountStatus::Connected,
                changed_at: chrono::Utc::now(),
            };
            store.put_account(&record).await.expect("account");
        }
        let cleverreach = FakeCleverReach::start().await;
        let tokens = serde_json::to_string(&cleverreach.issue_tokens()).expect("json");
        secrets.put(&secret::cleverreach_tokens(&AccountId::new(CLEVERREACH_ACCOUNT)), &tokens).await.expect("secret");
        let settings =
            EspSettings { brevo_base_url: brevo.base_url().to_owned(), cleverreach: cleverreach.client_config() };
        let esp = Arc::new(EspRouter::new(secrets.clone(), settings));

        let reconciler = optisync_app::reconcile::Reconciler::new(
            store.clone(),
            esp.clone(),
            esp.clone(),
            store.clone(),
            business.clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a local port");
        let api = format!("http://{}", listener.local_addr().expect("address"));
        let admin = admin_api::Deps::new(
            store.clone(),
            store.clone(),
            secrets.clone(),
            esp.clone(),
            bus.clone(),
            business.clone(),
            optisync_app::admin::AdminConfig { public_base_url: api.clone() },
            admin_api::Auth::Token(ADMIN_TOKEN.into()),
        );
        let worker = worker::Deps::new(store.clone(), store.clone(), esp.clone(), esp, business.clone());
        let functions = HttpFunctions::over(store.clone(), secrets.clone(), bus.clone(), clock.clone(), admin);
        let app = router(functions);
        tokio::spawn(async move { axum::serve(listener, app).await });

        let optigem = SimOptigem::new(chrono::Utc::now());
        let connector =
            Connector::new(&api, tenant.clone(), SigningSecret::parse(SIGNING_SECRET).expect("a valid secret"));
        let clock = business;
        Stack { tenant, store, secrets, bus, worker, reconciler, api, brevo, cleverreach, optigem, connector, clock }
    }

    /// Runs a link's scheduled run to its end (or until it waits for the connector or the guard).
    pub async fn reconcile(&self, link: &Link) -> optisync_app::reconcile::RunOutcome {
        use optisync_app::reconcile::{Budget, RunOutcome};
        loop {
            match self.reconciler.run(&link.tenant, &link.id, Budget::default()).await.expect("the run goes on") {
                RunOutcome::Continue(_) => continue,
                other => return other,
            }
        }
    }

    /// Runs a link's scheduled run to its end: when it waits for OPTIGEM's export, one exchange with the
    /// connector answers it (and executes the commands before it). Returns a held run too.
    pub async fn reconcile_to_end(&self, link: &Link) -> optisync_app::reconcile::RunOutcome {
        use optisync_app::reconcile::{Phase, RunOutcome};
        for _ in 0..5 {
            match self.reconcile(link).await {
                RunOutcome::Waiting(p) if p.phase == Phase::AwaitExport => self.sync().await,
                other => return other,
            }
        }
        panic!("the run kept waiting for an export the connector had answered");
    }

    /// Links a newsletter to a new Brevo list; returns the link.
    pub async fn link_brevo(&self, newsletter: &str, settings: LinkSettings) -> Link {
        let list = self.brevo.add_list(&format!("Liste {newsletter}"));
        self.link(newsletter, Provider::Brevo, BREVO_ACCOUNT, list.to_string(), settings).await
    }

    /// Links a newsletter to a new CleverReach group; returns the link.
    pub async fn link_cleverreach(&self, newsletter: &str, settings: LinkSettings) -> Link {
        let group = self.cleverreach.add_group(&format!("Gruppe {newsletter}"));
        self.link(newsletter, Provider::CleverReach, CLEVERREACH_ACCOUNT, group, settings).await
    }

    async fn link(
        &self,
        newsletter: &str,
        provider: Provider,
        account: &str,
        list: String,
        settings: LinkSettings,
    ) -> Link {
        let link = Link {
            id: LinkId::new(format!("{provider}-{newsletter}")),
            tenant: self.tenant.clone(),
            newsletter: NewsletterId::new(newsletter),
            esp: EspAccount { provider, account: AccountId::new(account) },
            list: ListId::new(list),
            segment: None,
            settings,
            status: LinkStatus::Linked,
        };
        self.store.put_link(&link).await.expect("link saved");
        link
    }

    /// Hands every waiting bus event to the worker, once each, until none wait; returns the inputs applied.
    pub async fn deliver(&self) -> usize {
        self.deliver_with(|events| events).await
    }

    /// Like [`Stack::deliver`], but `arrange` decides what is delivered of each round (duplicates,
    /// shuffles). Every event is still delivered at least once if `arrange` keeps it.
    pub async fn deliver_with(&self, mut arrange: impl FnMut(Vec<BusEvent>) -> Vec<BusEvent>) -> usize {
        let mut applied = 0;
        loop {
            let events = self.bus.take();
            if events.is_empty() {
                return applied;
            }
            for event in arrange(events) {
                applied += invoke_worker(&self.worker, &event).await.expect("the worker applies the entry");
            }
        }
    }

    /// One exchange with OPTIGEM: its change events go in and are applied; then its connector executes the
    /// commands, sends their results and the changes they made, which are applied too; until quiet.
    pub async fn sync(&self) {
        for _ in 0..10 {
            let pushed = self.connector.push_events(&self.optigem).await.expect("events accepted");
            self.deliver().await;
            let executed = self.connector.poll_commands(&self.optigem).await.expect("commands executed");
            if pushed == 0 && executed == 0 && self.bus.waiting() == 0 {
                return;
            }
        }
        panic!("OPTIGEM and optisync did not settle within 10 exchanges");
    }

    /// The OPTIGEM commands issued so far.
    pub async fn commands(&self) -> Vec<OptigemCommand> {
        self.store.commands(&self.tenant, 0, 10_000).await.expect("feed").into_iter().map(|(_, c)| c).collect()
    }

    /// Registers our hooks at both fakes, as linking does in production: Brevo's marketing webhook with the
    /// bearer token, and CleverReach's event hook for a group (the fake runs the verification handshake
    /// against hook-cleverreach; the call token it answers is kept in the secret store).
    pub async fn register_hooks(&self, cleverreach_group: Option<&str>) {
        use optisync_brevo::{ApiKey, BrevoClient, BrevoConfig};
        let brevo = BrevoClient::new(BrevoConfig::new(self.brevo.base_url(), ApiKey::new(self.brevo.api_key())))
            .expect("a client");
        let url = format!("{}/hooks/brevo/{}/{BREVO_ACCOUNT}", self.api, self.tenant);
        let events = [
            optisync_brevo::client::MarketingEvent::Unsubscribed,
            optisync_brevo::client::MarketingEvent::HardBounce,
            optisync_brevo::client::MarketingEvent::ListAddition,
            optisync_brevo::client::MarketingEvent::ContactUpdated,
            optisync_brevo::client::MarketingEvent::ContactDeleted,
        ];
        brevo.create_webhook(&url, &events, BREVO_HOOK_TOKEN, "optisync").await.expect("Brevo webhook");
        if let Some(group) = cleverreach_group {
            let client = optisync_cleverreach::CleverReachClient::new(
                self.cleverreach.client_config(),
                Arc::new(optisync_cleverreach::MemoryTokenStore::new()),
            );
            client.set_tokens(self.cleverreach.issue_tokens()).await;
            let url = format!("{}/hooks/cleverreach/{}/{CLEVERREACH_ACCOUNT}", self.api, self.tenant);
            let verify = optisync_cleverreach::Secret::new("verify-e2e");
            // hook-cleverreach answers the handshake only while a registration is under way (L4).
            let until = chrono::Utc::now().timestamp() + 300;
            let open = serde_json::json!({"verify_token": "verify-e2e", "registering_until": until}).to_string();
            let name = secret::cleverreach_webhook(&AccountId::new(CLEVERREACH_ACCOUNT));
            self.secrets.put(&name, &open).await.expect("secret");
            let mut call_tokens = Vec::new();
            for event in ["receiver.subscribed", "receiver.unsubscribed", "receiver.created", "receiver.updated"] {
                let registration =
                    client.register_webhook(&url, event, group, &verify).await.expect("CleverReach hook");
                call_tokens.push(registration.call_token.expose().to_owned());
            }
            let tokens = serde_json::json!({"verify_token": "verify-e2e", "call_tokens": call_tokens}).to_string();
            self.secrets
                .put(&secret::cleverreach_webhook(&AccountId::new(CLEVERREACH_ACCOUNT)), &tokens)
                .await
                .expect("secret");
        }
    }

    /// Posts a webhook body to hook-brevo as Brevo does; returns the status.
    pub async fn brevo_webhook(&self, body: &serde_json::Value) -> u16 {
        reqwest::Client::new()
            .post(format!("{}/hooks/brevo/{}/{BREVO_ACCOUNT}", self.api, self.tenant))
            .bearer_auth(BREVO_HOOK_TOKEN)
            .json(body)
            .send()
            .await
            .expect("hook reachable")
            .status()
            .as_u16()
    }

    /// The approval entry for an e-mail in a link, if any.
    pub async fn approval(&self, link: &Link, email: &Email) -> Option<ApprovalEntry> {
        let slice = optisync_ports::Slice { assignments: Vec::new(), emails: vec![email.clone()] };
        self.store.load(link, &slice).await.expect("load").view.approvals.get(email).cloned()
    }

    /// Mutating calls the two ESPs have received so far.
    pub fn esp_mutations(&self) -> usize {
        self.brevo.mutating_calls() + self.cleverreach.mutating_calls()
    }

    /// Every personal value the stack's OPTIGEM and Brevo hold: names, salutations, e-mails and the
    /// contacts' attribute texts.
    pub fn personal_data(&self) -> Vec<String> {
        let mut values = Vec::new();
        for person in self.optigem.persons() {
            for text in [&person.first_name, &person.last_name, &person.letter_salutation].into_iter().flatten() {
                values.push(text.expose().to_owned());
            }
            values.extend(person.emails.iter().map(|e| e.email.key().to_owned()));
        }
        for contact in self.brevo.contacts() {
            values.push(contact.email.clone());
            values.extend(contact.attributes.values().filter_map(|v| v.as_str().map(str::to_owned)));
        }
        values
    }
}

/// An e-mail from a literal.
pub fn email(text: &str) -> Email {
    Email::parse(text).expect("a valid address")
}

/// A person in the simulated OPTIGEM with a first name, an optional last name and one address.
pub fn person(sim: &SimOptigem, first: &str, last: Option<&str>, mail: &str) -> PersonId {
    sim.add_person(PersonDraft {
        first_name: Some(first.into()),
        last_name: last.map(Into::into),
        emails: vec![(mail.into(), 1)],
        ..Default::default()
    })
}

/// A new assignment of a person to a newsletter in the simulated OPTIGEM, with no end.
pub fn subscribe(sim: &SimOptigem, person: &PersonId, newsletter: &str) -> AssignmentId {
    sim.add_assignment(person, &NewsletterId::new(newsletter), AssignmentDraft::default())
}

impl Drop for Stack {
    fn drop(&mut self) {
        capture::finish(|| self.personal_data());
    }
}
