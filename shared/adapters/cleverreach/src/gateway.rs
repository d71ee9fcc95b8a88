//! The ESP port for CleverReach: applies planned operations through [`CleverReachClient`].
//!
//! Upserts never carry `activated`/`deactivated` (R-J3: an upsert must not silently re-activate);
//! state changes go through `setactive`/`setinactive` per group (R-D1, R-D2).

use crate::{CleverReachClient, Error, ReceiverUpsert, StateChange, UpsertOutcome};
use async_trait::async_trait;
use optisync_domain::{EspAction, EspOp, ListId};
use optisync_ports::{
    Block, BlockedAddress, BlockedPage, EspError, EspGateway, EspLister, EspReader, ListPage, ListedMember, Reread,
};

/// Applies plans to one CleverReach account.
#[derive(Clone)]
pub struct CleverReachGateway {
    client: CleverReachClient,
}

impl CleverReachGateway {
    /// A gateway over an authorised client.
    pub fn new(client: CleverReachClient) -> Self {
        Self { client }
    }

    async fn upsert(&self, group: &ListId, batch: Vec<ReceiverUpsert>) -> Result<(), EspError> {
        if batch.is_empty() {
            return Ok(());
        }
        let outcomes = self.client.upsert_receivers(group.as_str(), &batch).await.map_err(to_port)?;
        if let Some(UpsertOutcome::Rejected { message, .. }) =
            outcomes.iter().find(|o| matches!(o, UpsertOutcome::Rejected { .. }))
        {
            return Err(EspError::Rejected(message.clone()));
        }
        Ok(())
    }
}

#[async_trait]
impl EspReader for CleverReachGateway {
    /// Re-reads the receiver in the group (payloads carry ids only) and turns what it finds into the
    /// observation: unsubscribed, deactivated, a signup or a field change. A receiver gone from the group
    /// has no address left to read; the reconciliation notices it missing.
    async fn reread(&self, reread: &Reread) -> Result<Vec<optisync_domain::EspEvent>, EspError> {
        let Some(kind) = crate::webhook::ReceiverEventKind::parse(&reread.event) else { return Ok(Vec::new()) };
        let receiver = self.client.get_receiver(reread.list.as_str(), &reread.receiver).await.map_err(to_port)?;
        let Some(receiver) = receiver else {
            tracing::info!(event = %reread.event, "receiver no longer in the group; left to the reconciliation");
            return Ok(Vec::new());
        };
        let Ok(email) = optisync_domain::Email::parse(&receiver.email) else {
            tracing::warn!("receiver without a valid e-mail; ignored");
            return Ok(Vec::new());
        };
        Ok(vec![crate::webhook::observation(
            kind,
            Some(&receiver),
            &email,
            &reread.list,
            &reread.esp.account,
            reread.received_at,
        )])
    }
}

/// Maps the client's errors onto the port's: retry later, refused, or re-authorise.
pub fn to_port(error: Error) -> EspError {
    match error {
        Error::RateLimited { retry_after, .. } => {
            EspError::Transient { retry_after_secs: retry_after.map(|d| d.as_secs()) }
        }
        e if e.is_transient() => EspError::Transient { retry_after_secs: None },
        Error::ReauthorizationRequired { .. } | Error::Unauthorized { .. } => EspError::Unauthorized,
        e => EspError::Rejected(e.to_string()),
    }
}

#[async_trait]
impl EspGateway for CleverReachGateway {
    /// R-D1: a receiver of the group inactive since before the assignment existed is activated when the
    /// assignment lists it; the group's receiver tells (404: not in the group).
    async fn observe(
        &self,
        link: &optisync_domain::Link,
        email: &optisync_domain::Email,
    ) -> Result<Option<optisync_domain::Observed>, EspError> {
        let receiver = self.client.get_receiver(link.list.as_str(), email.as_str()).await.map_err(to_port)?;
        Ok(receiver.map(|r| optisync_domain::Observed {
            active: r.active && r.deactivation().is_none(),
            since: r.deactivation().and_then(|d| chrono::DateTime::from_timestamp(d.at, 0)),
        }))
    }

    async fn apply(&self, actions: &[EspAction]) -> Result<(), EspError> {
        // Consecutive upserts into one group go out as one batch; everything else in order.
        let mut pending: Option<(ListId, Vec<ReceiverUpsert>)> = None;
        for action in actions {
            let upsert = match &action.op {
                EspOp::Upsert { fields } | EspOp::UpdateFields { fields } => {
                    let mut u = ReceiverUpsert::new(action.email.as_str()).with_state(StateChange::Keep);
                    for (name, value) in &fields.0 {
                        u = u.global_attribute(name.as_str(), value.expose());
                    }
                    Some(u)
                }
                // A receiver upserted into a group is in it; alone it is an upsert without fields.
                EspOp::AddToList => Some(ReceiverUpsert::new(action.email.as_str()).with_state(StateChange::Keep)),
                _ => None,
            };
            if let Some(u) = upsert {
                match &mut pending {
                    Some((group, batch)) if *group == action.list => {
                        if let Some(existing) = batch.iter_mut().find(|b| b.email.eq_ignore_ascii_case(&u.email)) {
                            existing.global_attributes.extend(u.global_attributes);
                        } else {
                            batch.push(u);
                        }
                    }
                    _ => {
                        if let Some((group, batch)) = pending.take() {
                            self.upsert(&group, batch).await?;
                        }
                        pending = Some((action.list.clone(), vec![u]));
                    }
                }
                continue;
            }
            if let Some((group, batch)) = pending.take() {
                self.upsert(&group, batch).await?;
            }
            let (group, email) = (action.list.as_str(), action.email.as_str());
            match action.op {
                EspOp::Activate => self.client.set_active(group, email).await.map_err(to_port)?,
                EspOp::Deactivate => match self.client.set_inactive(group, email).await {
                    // Not in the group (removed there, e.g. by the account's blacklist setting, R-E9): it
                    // receives nothing from it, which is the target state.
                    Ok(()) | Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(to_port(e)),
                },
                EspOp::RemoveFromList => {
                    self.client.remove_from_group(group, email).await.map_err(to_port)?;
                }
                // R-J2: the receiver is deleted from the group with its data there
                // (`DELETE /v3/groups.json/{gid}/receivers/{id}`); not there any more is done.
                EspOp::Delete => {
                    self.client.remove_from_group(group, email).await.map_err(to_port)?;
                }
                EspOp::Upsert { .. } | EspOp::UpdateFields { .. } | EspOp::AddToList => unreachable!("batched above"),
            }
        }
        if let Some((group, batch)) = pending.take() {
            self.upsert(&group, batch).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl EspLister for CleverReachGateway {
    /// The group's receivers, active and inactive, page by page (the cursor is the next page number);
    /// for a segment link the filter's receivers that are active in the group (R-G1). CleverReach has no
    /// delta, so `since` is not used.
    async fn list_page(
        &self,
        link: &optisync_domain::Link,
        _since: Option<chrono::DateTime<chrono::Utc>>,
        cursor: Option<&str>,
    ) -> Result<ListPage, EspError> {
        let page = match cursor {
            Some(c) => c.parse().map_err(|_| EspError::Rejected("a CleverReach list cursor is a page".into()))?,
            None => 0usize,
        };
        let size = self.client.page_size();
        let group = link.list.as_str();
        let receivers = match &link.segment {
            Some(filter) => {
                self.client.filter_receivers_page(group, filter.as_str(), crate::ReceiverType::Active, page, size).await
            }
            None => self.client.receivers_page(group, crate::ReceiverType::All, page, size).await,
        }
        .map_err(to_port)?;
        let time = |secs: i64| chrono::DateTime::from_timestamp(secs, 0).filter(|_| secs > 0);
        let mut members = Vec::with_capacity(receivers.len());
        for r in &receivers {
            let Ok(email) = optisync_domain::Email::parse(&r.email) else {
                tracing::warn!("a receiver without a valid e-mail; skipped");
                continue;
            };
            let active = link.segment.is_some() || (r.active && r.deactivation().is_none());
            let changed_at = match r.deactivation() {
                Some(d) if !active => time(d.at),
                _ => time(r.activated),
            };
            members.push(ListedMember {
                email,
                active,
                blacklisted: false,
                changed_at,
                signup: crate::webhook::signup_of(r),
            });
        }
        let next = crate::client::next_page(page, receivers.len(), size).map(|p| p.to_string());
        Ok(ListPage { members, next })
    }

    /// R-E9: the account's blacklist first (`GET /v3/blacklist.json`, one call), then its bounces page by
    /// page (`GET /v3/bounces.json`), of which only the hard bounces CleverReach still blocks; the cursor
    /// is `bounces:{page}`. Every link of the account reads the same; what concerns a link is decided
    /// against its recipients (`optisync_domain::drift::blocked`).
    async fn blocked_page(&self, _link: &optisync_domain::Link, cursor: Option<&str>) -> Result<BlockedPage, EspError> {
        let time = |secs: i64| chrono::DateTime::from_timestamp(secs, 0).filter(|_| secs > 0);
        let parse = |email: &str| {
            let parsed = optisync_domain::Email::parse(email);
            if parsed.is_err() {
                tracing::warn!("a blocked address that is no valid e-mail; skipped");
            }
            parsed.ok()
        };
        let Some(cursor) = cursor else {
            let entries = self.client.blacklist().await.map_err(to_port)?;
            let blocked = entries
                .iter()
                .filter_map(|e| {
                    Some(BlockedAddress { email: parse(&e.email)?, block: Block::Blacklisted, at: time(e.stamp) })
                })
                .collect();
            return Ok(BlockedPage { blocked, next: Some("bounces:0".into()) });
        };
        let page: usize = cursor
            .strip_prefix("bounces:")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| EspError::Rejected("a CleverReach blocked cursor is bounces:{page}".into()))?;
        let size = crate::client::BOUNCE_PAGE_SIZE;
        let bounces = self.client.bounces_page(page, size).await.map_err(to_port)?;
        let now = chrono::Utc::now().timestamp();
        let blocked = bounces
            .iter()
            .filter(|b| b.blocks_hard(now))
            .filter_map(|b| {
                Some(BlockedAddress { email: parse(&b.email)?, block: Block::HardBounce, at: time(b.last_update) })
            })
            .collect();
        let next = crate::client::next_page(page, bounces.len(), size).map(|p| format!("bounces:{p}"));
        Ok(BlockedPage { blocked, next })
    }

    /// `GET /v3/groups.json/{id}/receivers/{email}`: in the group. For a segment link this answers whether
    /// the receiver is active in the group only: CleverReach has no per-receiver filter lookup, so the
    /// reconciler does not ask it for segment links.
    async fn is_listed(&self, link: &optisync_domain::Link, email: &optisync_domain::Email) -> Result<bool, EspError> {
        let receiver = self.client.get_receiver(link.list.as_str(), email.as_str()).await.map_err(to_port)?;
        Ok(match (&link.segment, receiver) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(_), Some(r)) => r.active && r.deactivation().is_none(),
        })
    }
}
