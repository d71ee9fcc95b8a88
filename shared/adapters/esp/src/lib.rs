//! [`EspRouter`]: one [`EspGateway`], [`EspReader`] and [`EspLister`] for every account of both
//! providers. Actions, re-reads and list pages go to the gateway of their account, built once per process
//! with the account's credentials from the secret store: a Brevo API key at `brevo/{account}/api-key`,
//! CleverReach OAuth tokens at `cleverreach/{account}/tokens` (kept there again on every refresh, R-H1).
//! One client per account serves all three, so a CleverReach refresh token rotated by one is the one the
//! others use. Other processes share the credentials through the secret store (M5): the CleverReach client
//! reads the kept tokens again around a refresh, and a Brevo key refused here is read again once, in case
//! another process (the admin API connecting the account anew) replaced it.

pub mod directory;

use async_trait::async_trait;
use optisync_brevo::{ApiKey, BrevoClient, BrevoConfig, BrevoGateway};
use optisync_cleverreach::{CleverReachClient, CleverReachGateway, ClientConfig, SecretTokenStore};
use optisync_domain::{EspAccount, EspAction, Provider};
use optisync_ports::names::secret;
use optisync_ports::{EspError, EspGateway, EspLister, EspReader, ListPage, Reread, SecretStore};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

/// The secret store could not be read: retry later.
fn unavailable(_: optisync_ports::StoreError) -> EspError {
    EspError::Transient { retry_after_secs: None }
}

/// Where the providers are and how to reach them (every base URL configurable, so tests and the local
/// sandbox point the real clients at local servers).
#[derive(Clone)]
pub struct EspSettings {
    /// Brevo's API base, including `/v3`.
    pub brevo_base_url: String,
    /// CleverReach's client settings (OAuth app, base URLs, limits); per-account tokens come from secrets.
    pub cleverreach: ClientConfig,
}

/// Where the providers' APIs are and which OAuth app we are: the settings read from the environment, with
/// the public APIs as defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspEndpoints {
    /// `BREVO_BASE_URL`: Brevo's API base, including `/v3`.
    pub brevo_base_url: String,
    /// `CLEVERREACH_BASE_URL`: CleverReach's REST API.
    pub cleverreach_base_url: String,
    /// `CLEVERREACH_CLIENT_ID`: our CleverReach OAuth app (empty until one is configured).
    pub cleverreach_client_id: String,
    /// `CLEVERREACH_REDIRECT_URI`: where CleverReach sends the admin back (empty until configured).
    pub cleverreach_redirect_uri: String,
}

impl EspEndpoints {
    /// Brevo's public API.
    pub const DEFAULT_BREVO_BASE_URL: &str = "https://api.brevo.com/v3";
    /// CleverReach's public API.
    pub const DEFAULT_CLEVERREACH_BASE_URL: &str = "https://rest.cleverreach.com";

    /// From the environment; an unset variable takes its default.
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        Self {
            brevo_base_url: var("BREVO_BASE_URL", Self::DEFAULT_BREVO_BASE_URL),
            cleverreach_base_url: var("CLEVERREACH_BASE_URL", Self::DEFAULT_CLEVERREACH_BASE_URL),
            cleverreach_client_id: var("CLEVERREACH_CLIENT_ID", ""),
            cleverreach_redirect_uri: var("CLEVERREACH_REDIRECT_URI", ""),
        }
    }
}

impl Default for EspEndpoints {
    /// The public APIs, no OAuth app.
    fn default() -> Self {
        Self {
            brevo_base_url: Self::DEFAULT_BREVO_BASE_URL.to_owned(),
            cleverreach_base_url: Self::DEFAULT_CLEVERREACH_BASE_URL.to_owned(),
            cleverreach_client_id: String::new(),
            cleverreach_redirect_uri: String::new(),
        }
    }
}

impl EspSettings {
    /// The settings over these endpoints, with the OAuth app's client secret from the secret store
    /// (`cleverreach/app/client-secret`).
    pub async fn load(endpoints: &EspEndpoints, secrets: &dyn SecretStore) -> Result<Self, optisync_ports::StoreError> {
        let client_secret = secrets.get(secret::CLEVERREACH_CLIENT_SECRET).await?.unwrap_or_default();
        let cleverreach = ClientConfig::new(
            endpoints.cleverreach_client_id.clone(),
            optisync_cleverreach::Secret::new(client_secret),
            endpoints.cleverreach_redirect_uri.clone(),
        )
        .with_base_url(&endpoints.cleverreach_base_url);
        Ok(Self { brevo_base_url: endpoints.brevo_base_url.clone(), cleverreach })
    }

    /// The settings a process runs with: [`EspEndpoints::from_env`], then [`EspSettings::load`].
    pub async fn from_env(secrets: &dyn SecretStore) -> Result<Self, optisync_ports::StoreError> {
        Self::load(&EspEndpoints::from_env(), secrets).await
    }
}

/// Routes actions, re-reads and list pages to per-account gateways.
pub struct EspRouter {
    secrets: Arc<dyn SecretStore>,
    settings: EspSettings,
    accounts: Mutex<HashMap<EspAccount, Account>>,
}

/// One account's gateway over its one client: as a gateway, a reader and a lister. A Brevo gateway keeps
/// the key it was built with, to tell whether the key kept in the secret store is another (M5).
#[derive(Clone)]
enum Account {
    Brevo(Arc<BrevoGateway>, Arc<str>),
    CleverReach(Arc<CleverReachGateway>),
}

impl Account {
    fn gateway(&self) -> Arc<dyn EspGateway> {
        match self {
            Self::Brevo(g, _) => g.clone(),
            Self::CleverReach(g) => g.clone(),
        }
    }

    fn lister(&self) -> Arc<dyn EspLister> {
        match self {
            Self::Brevo(g, _) => g.clone(),
            Self::CleverReach(g) => g.clone(),
        }
    }
}

impl EspRouter {
    /// A router over the secret store.
    pub fn new(secrets: Arc<dyn SecretStore>, settings: EspSettings) -> Self {
        Self { secrets, settings, accounts: Mutex::new(HashMap::new()) }
    }

    /// A Brevo client with this API key.
    fn brevo_client_with(&self, key: &str) -> Result<BrevoClient, EspError> {
        BrevoClient::new(BrevoConfig::new(&self.settings.brevo_base_url, ApiKey::new(key)))
            .map_err(|e| EspError::Rejected(e.to_string()))
    }

    /// The account's Brevo API key from the secret store.
    async fn brevo_key(&self, account: &optisync_domain::AccountId) -> Result<String, EspError> {
        self.secrets.get(&secret::brevo_api_key(account)).await.map_err(unavailable)?.ok_or(EspError::Unauthorized)
    }

    /// A Brevo client with the account's API key from the secret store.
    async fn brevo_client(&self, account: &optisync_domain::AccountId) -> Result<BrevoClient, EspError> {
        self.brevo_client_with(&self.brevo_key(account).await?)
    }

    /// A Brevo account's gateway with this key.
    fn brevo_account(&self, key: &str) -> Result<Account, EspError> {
        Ok(Account::Brevo(Arc::new(BrevoGateway::new(self.brevo_client_with(key)?)), Arc::from(key)))
    }

    /// A CleverReach client with the account's tokens from the secret store (kept there on refresh).
    async fn cleverreach_client(&self, account: &optisync_domain::AccountId) -> Result<CleverReachClient, EspError> {
        let store = SecretTokenStore::new(self.secrets.clone(), secret::cleverreach_tokens(account));
        let tokens = store.load().await.map_err(|_| EspError::Transient { retry_after_secs: None })?;
        let tokens = tokens.ok_or(EspError::Unauthorized)?;
        let client = CleverReachClient::new(self.settings.cleverreach.clone(), Arc::new(store));
        client.set_tokens(tokens).await;
        Ok(client)
    }

    async fn account(&self, esp: &EspAccount) -> Result<Account, EspError> {
        let mut accounts = self.accounts.lock().await;
        if let Some(a) = accounts.get(esp) {
            return Ok(a.clone());
        }
        let account = match esp.provider {
            Provider::Brevo => self.brevo_account(&self.brevo_key(&esp.account).await?)?,
            Provider::CleverReach => {
                Account::CleverReach(Arc::new(CleverReachGateway::new(self.cleverreach_client(&esp.account).await?)))
            }
        };
        accounts.insert(esp.clone(), account.clone());
        Ok(account)
    }

    /// Drops the account's cached client, so the next call reads its new credentials.
    pub async fn forget(&self, esp: &EspAccount) {
        self.accounts.lock().await.remove(esp);
    }

    /// The account's gateway built anew when its Brevo key was refused but the secret store holds another
    /// (M5: another process connected the account with a new key); `None` when there is nothing newer.
    async fn renewed(&self, esp: &EspAccount, held: &Account) -> Result<Option<Account>, EspError> {
        let Account::Brevo(_, used) = held else { return Ok(None) };
        let Some(key) = self.secrets.get(&secret::brevo_api_key(&esp.account)).await.map_err(unavailable)? else {
            return Ok(None);
        };
        if *key == **used {
            return Ok(None);
        }
        let account = self.brevo_account(&key)?;
        self.accounts.lock().await.insert(esp.clone(), account.clone());
        Ok(Some(account))
    }

    /// Runs `call` with the account's gateway, and once more with a renewed one after a refused Brevo key
    /// (M5). Every call it runs sets target states, so running one again does no harm.
    async fn with_account<T, F, Fut>(&self, esp: &EspAccount, call: F) -> Result<T, EspError>
    where
        F: Fn(Account) -> Fut,
        Fut: std::future::Future<Output = Result<T, EspError>>,
    {
        let account = self.account(esp).await?;
        match call(account.clone()).await {
            Err(EspError::Unauthorized) => match self.renewed(esp, &account).await? {
                Some(renewed) => call(renewed).await,
                None => Err(EspError::Unauthorized),
            },
            other => other,
        }
    }
}

#[async_trait]
impl EspLister for EspRouter {
    /// The link's list through its account's client.
    async fn list_page(
        &self,
        link: &optisync_domain::Link,
        since: Option<chrono::DateTime<chrono::Utc>>,
        cursor: Option<&str>,
    ) -> Result<ListPage, EspError> {
        self.with_account(&link.esp, |a| async move { a.lister().list_page(link, since, cursor).await }).await
    }

    async fn is_listed(&self, link: &optisync_domain::Link, email: &optisync_domain::Email) -> Result<bool, EspError> {
        self.with_account(&link.esp, |a| async move { a.lister().is_listed(link, email).await }).await
    }

    /// R-E9: what the link's account blocks for every list, through its account's client.
    async fn blocked_page(
        &self,
        link: &optisync_domain::Link,
        cursor: Option<&str>,
    ) -> Result<optisync_ports::BlockedPage, EspError> {
        self.with_account(&link.esp, |a| async move { a.lister().blocked_page(link, cursor).await }).await
    }
}

#[async_trait]
impl EspReader for EspRouter {
    /// CleverReach events are re-read through the account's client; Brevo's carry what they mean.
    async fn reread(&self, reread: &Reread) -> Result<Vec<optisync_domain::EspEvent>, EspError> {
        if reread.esp.provider != Provider::CleverReach {
            return Ok(Vec::new());
        }
        match self.account(&reread.esp).await? {
            Account::CleverReach(gateway) => gateway.reread(reread).await,
            Account::Brevo(..) => Ok(Vec::new()),
        }
    }

    /// A Brevo signup's names, read back through the account's client (and its rate limiter, R-E3).
    async fn signup(
        &self,
        link: &optisync_domain::Link,
        email: &optisync_domain::Email,
    ) -> Result<Option<optisync_domain::Signup>, EspError> {
        if link.esp.provider != Provider::Brevo {
            return Ok(None);
        }
        self.with_account(&link.esp, |a| async move {
            match a {
                Account::Brevo(gateway, _) => gateway.signup(link, email).await,
                Account::CleverReach(_) => Ok(None),
            }
        })
        .await
    }
}

#[async_trait]
impl EspGateway for EspRouter {
    async fn apply(&self, actions: &[EspAction]) -> Result<(), EspError> {
        // Consecutive actions of one account go to its gateway together (it batches them).
        let mut start = 0;
        while start < actions.len() {
            let esp = &actions[start].esp;
            let end = start + actions[start..].iter().take_while(|a| &a.esp == esp).count();
            let batch = &actions[start..end];
            self.with_account(esp, |a| async move { a.gateway().apply(batch).await }).await?;
            count_recipients(esp.provider, &actions[start..end]);
            start = end;
        }
        Ok(())
    }

    /// The groups of one account go to its gateway's batch together (Brevo: list removals 150 a call);
    /// a group naming several accounts is applied by itself. After a refused Brevo key the groups it
    /// refused are tried once more with a renewed gateway (M5).
    async fn apply_batch(&self, groups: &[Vec<EspAction>]) -> Vec<Result<(), EspError>> {
        let mut results: Vec<Result<(), EspError>> = groups.iter().map(|_| Ok(())).collect();
        let mut by_account: Vec<(EspAccount, Vec<usize>)> = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            let Some(first) = group.first() else { continue };
            if group.iter().any(|a| a.esp != first.esp) {
                results[g] = self.apply(group).await;
                continue;
            }
            match by_account.iter_mut().find(|(esp, _)| *esp == first.esp) {
                Some((_, members)) => members.push(g),
                None => by_account.push((first.esp.clone(), vec![g])),
            }
        }
        for (esp, members) in by_account {
            let account = match self.account(&esp).await {
                Ok(a) => a,
                Err(e) => {
                    members.iter().for_each(|g| results[*g] = Err(e.clone()));
                    continue;
                }
            };
            let batch: Vec<Vec<EspAction>> = members.iter().map(|g| groups[*g].clone()).collect();
            let mut answers = account.gateway().apply_batch(&batch).await;
            let refused: Vec<usize> =
                (0..answers.len()).filter(|k| answers[*k] == Err(EspError::Unauthorized)).collect();
            if !refused.is_empty()
                && let Ok(Some(renewed)) = self.renewed(&esp, &account).await
            {
                let again: Vec<Vec<EspAction>> = refused.iter().map(|k| batch[*k].clone()).collect();
                for (k, answer) in refused.into_iter().zip(renewed.gateway().apply_batch(&again).await) {
                    answers[k] = answer;
                }
            }
            for (g, answer) in members.into_iter().zip(answers) {
                if answer.is_ok() {
                    count_recipients(esp.provider, &groups[g]);
                }
                results[g] = answer;
            }
        }
        results
    }

    async fn observe(
        &self,
        link: &optisync_domain::Link,
        email: &optisync_domain::Email,
    ) -> Result<Option<optisync_domain::Observed>, EspError> {
        self.with_account(&link.esp, |a| async move { a.gateway().observe(link, email).await }).await
    }
}

/// Counts the recipients a batch of applied actions activated and deactivated (metrics).
fn count_recipients(provider: Provider, actions: &[EspAction]) {
    use optisync_domain::EspOp;
    let name = provider.as_str();
    let (mut on, mut off) = (0, 0);
    for action in actions {
        match action.op {
            EspOp::AddToList | EspOp::Activate => on += 1,
            EspOp::RemoveFromList | EspOp::Deactivate | EspOp::Delete => off += 1,
            EspOp::Upsert { .. } | EspOp::UpdateFields { .. } => {}
        }
    }
    optisync_ports::metrics::recipients(name, true, on);
    optisync_ports::metrics::recipients(name, false, off);
}
