//! The ESP side: applying operations, re-reading one recipient, listing a list, and the administrative
//! directory of accounts, lists and webhooks.

use crate::Reread;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{Email, EspAccount, EspAction, EspEvent, Link, ListId, Signup};

/// Why an ESP call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    /// Rate limited or temporarily unavailable: retry later.
    #[error("the ESP is rate limiting or unavailable; retry after {retry_after_secs:?} s")]
    Transient {
        /// When to try again, if the ESP said.
        retry_after_secs: Option<u64>,
    },
    /// The ESP refused the request: retrying the same will not help.
    #[error("the ESP refused the request: {0}")]
    Rejected(String),
    /// The credentials were refused (CleverReach: re-authorisation needed).
    #[error("the ESP refused the credentials")]
    Unauthorized,
}

/// Reads an ESP's current view of one recipient, for events whose payload carries ids only.
#[async_trait]
pub trait EspReader: Send + Sync {
    /// The observations a re-read yields: none when there is nothing to apply (a receiver gone without a
    /// known address is left to the reconciliation).
    async fn reread(&self, reread: &Reread) -> Result<Vec<EspEvent>, EspError>;

    /// What the ESP holds of one recipient for a signup on `link`'s list whose report carried none of it
    /// (Brevo's `list_addition` has no attributes): the names the link maps, by one lookup, so that the
    /// approval entry and OPTIGEM's suggestions have them (R-E3, R-C3). `None` when the ESP does not know
    /// the address, or when the provider's reports carry what they mean (the default).
    async fn signup(&self, link: &Link, email: &Email) -> Result<Option<Signup>, EspError> {
        let _ = (link, email);
        Ok(None)
    }
}

pub use optisync_domain::ListedMember;
pub use optisync_domain::drift::{Block, BlockedAddress};

/// One page of what an ESP account blocks for every list (R-E9), and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockedPage {
    /// The blocked addresses on this page.
    pub blocked: Vec<BlockedAddress>,
    /// The cursor of the next page; `None` after the last.
    pub next: Option<String>,
}

/// One page of a list, and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// The members on this page.
    pub members: Vec<ListedMember>,
    /// The cursor of the next page; `None` after the last.
    pub next: Option<String>,
}

/// Reads a link's list page by page (reconciliation, first sync).
///
/// A link restricted to a CleverReach segment (R-G1) lists the segment's members: the receivers of the
/// filter, active in the group.
#[async_trait]
pub trait EspLister: Send + Sync {
    /// The page of the link's list that starts at `cursor` (`None`: the first page). Cursors are opaque
    /// and survive a restart, so a run can continue from a checkpoint. With `since`, the lister may leave
    /// out members the ESP has not changed since then (Brevo's `modifiedSince`); a lister without such a
    /// delta lists everyone, and the caller treats a listing with `since` as incomplete either way.
    async fn list_page(
        &self,
        link: &Link,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<ListPage, EspError>;

    /// Whether the address is on the link's list (a segment link: in the group and active) right now, by
    /// a lookup of that one member. Paged listings can miss a member when the list changes between two
    /// pages, so nothing is taken as gone from the list before this confirms it.
    async fn is_listed(&self, link: &Link, email: &Email) -> Result<bool, EspError>;

    /// R-E9: the page of what the link's ESP account blocks for every list that starts at `cursor`
    /// (`None`: the first page): CleverReach's blacklist and the hard bounces it blocks. Read once per run;
    /// cursors are opaque and survive a restart. An ESP whose listing shows its blocks itself (Brevo's
    /// blacklist, R-E2) has none to give.
    async fn blocked_page(&self, link: &Link, cursor: Option<&str>) -> Result<BlockedPage, EspError> {
        let _ = (link, cursor);
        Ok(BlockedPage::default())
    }
}

/// The ESP side: applies planned operations, each a target state and so safe to repeat.
#[async_trait]
pub trait EspGateway: Send + Sync {
    /// Applies the actions in order.
    async fn apply(&self, actions: &[EspAction]) -> Result<(), EspError>;

    /// Applies the plans of several inputs, each a group of actions for recipients no other group names,
    /// and answers one result per group, in order: a group is applied only when every one of its actions
    /// reached its target state. A gateway with batch endpoints sends the groups' list additions and
    /// removals together (Brevo: 150 addresses a call) and maps the ESP's per-address answer back to each
    /// group. Once the ESP answers that it is rate limiting or unavailable, the groups not yet sent get
    /// that answer without a call. The default applies the groups one by one.
    async fn apply_batch(&self, groups: &[Vec<EspAction>]) -> Vec<Result<(), EspError>> {
        let mut results = Vec::with_capacity(groups.len());
        let mut unavailable: Option<EspError> = None;
        for group in groups {
            let result = match &unavailable {
                _ if group.is_empty() => Ok(()),
                Some(e) => Err(e.clone()),
                None => self.apply(group).await,
            };
            if let Err(e @ EspError::Transient { .. }) = &result {
                unavailable = Some(e.clone());
            }
            results.push(result);
        }
        results
    }

    /// What the ESP shows now of a recipient optisync holds no state of in this link (R-D1): whether it
    /// may receive (CleverReach: active in the group; Brevo: not on the account-wide blacklist), or
    /// `None` when the ESP does not know it. One read, made only before optisync first lists a recipient.
    async fn observe(
        &self,
        link: &optisync_domain::Link,
        email: &optisync_domain::Email,
    ) -> Result<Option<optisync_domain::Observed>, EspError>;
}

/// A segment of a list (a CleverReach filter, R-G1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EspSegment {
    /// Its id.
    pub id: optisync_domain::SegmentId,
    /// Its name in the ESP.
    pub name: String,
}

/// A list of an ESP account (Brevo list, CleverReach group) with its segments.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EspList {
    /// Its id.
    pub id: ListId,
    /// Its name in the ESP.
    pub name: String,
    /// Its segments (CleverReach filters; none at Brevo).
    pub segments: Vec<EspSegment>,
}

/// What an account offers a link: its lists and the attributes a field mapping may target (R-D6, R-H2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspCatalog {
    /// The lists.
    pub lists: Vec<EspList>,
    /// The attributes, with their scope.
    pub attributes: Vec<optisync_domain::rules::AttributeInfo>,
}

/// The administrative side of the ESPs: connecting accounts (R-H1), what an account offers, and the
/// webhooks a syncing link needs. Credentials go to the secret store and never come back out.
#[async_trait]
pub trait EspDirectory: Send + Sync {
    /// Checks a Brevo API key with a call to Brevo and, if Brevo accepts it, keeps it as the account's.
    /// [`EspError::Unauthorized`] when Brevo refuses it (nothing is kept then).
    async fn connect_brevo(&self, account: &optisync_domain::AccountId, api_key: &str) -> Result<(), EspError>;
    /// Where to send the admin to authorise CleverReach access; `state` comes back with the callback.
    fn cleverreach_authorize_url(&self, state: &str) -> Result<String, EspError>;
    /// Exchanges the callback's code for tokens and keeps them as the account's.
    async fn connect_cleverreach(&self, account: &optisync_domain::AccountId, code: &str) -> Result<(), EspError>;
    /// The account's lists (with segments) and attributes.
    async fn catalog(&self, esp: &EspAccount) -> Result<EspCatalog, EspError>;
    /// Registers the webhooks the link needs at `hook_url` (safe to repeat).
    async fn register_hooks(&self, link: &Link, hook_url: &str) -> Result<(), EspError>;
    /// Removes the link's webhooks at `hook_url` unless one of `still_syncing` (the account's other
    /// syncing links) needs them.
    async fn unregister_hooks(&self, link: &Link, hook_url: &str, still_syncing: &[Link]) -> Result<(), EspError>;
    /// Gives the Brevo account's webhooks at `hook_url` this bearer token (M3: a rotation, after the
    /// secret already accepts it); how many it updated (none when no link syncs).
    async fn set_brevo_hook_token(
        &self,
        account: &optisync_domain::AccountId,
        hook_url: &str,
        token: &str,
    ) -> Result<usize, EspError>;
}
