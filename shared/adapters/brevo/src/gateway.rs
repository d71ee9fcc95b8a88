//! The ESP port for Brevo: applies planned operations through [`BrevoClient`].
//!
//! Updates never send `emailBlacklisted` (an update must not silently un-blacklist, R-J3); only an
//! `Activate` planned under the R-J3 gate removes a contact from the blacklist (R-D1). List membership
//! is add/remove only (R-D2, R-E2).

use crate::{BrevoClient, BrevoError};
use async_trait::async_trait;
use optisync_domain::rules::FieldValues;
use optisync_domain::{EspAction, EspOp, ListId};
use optisync_ports::{EspError, EspGateway, EspLister, EspReader, ListPage, ListedMember};
use serde_json::{Map, Value};

/// Applies plans to one Brevo account.
#[derive(Clone)]
pub struct BrevoGateway {
    client: BrevoClient,
}

impl BrevoGateway {
    /// A gateway over a client for the account.
    pub fn new(client: BrevoClient) -> Self {
        Self { client }
    }
}

fn list_id(list: &ListId) -> Result<i64, EspError> {
    list.as_str().parse().map_err(|_| EspError::Rejected("a Brevo list id is a number".into()))
}

fn attributes(fields: &FieldValues) -> Map<String, Value> {
    fields.0.iter().map(|(k, v)| (k.to_string(), Value::String(v.expose().to_owned()))).collect()
}

/// Whether a group only adds to or removes from lists, never both for one member of one list (so its
/// actions may go out in any order, with other groups').
fn membership_only(group: &[EspAction]) -> bool {
    group.iter().all(|a| matches!(a.op, EspOp::AddToList | EspOp::RemoveFromList))
        && group.iter().all(|a| !group.iter().any(|b| b.email == a.email && b.list == a.list && b.op != a.op))
}

/// Maps the client's errors onto the port's.
pub fn to_port(error: BrevoError) -> EspError {
    match error {
        BrevoError::RateLimited { retry_after } => {
            EspError::Transient { retry_after_secs: Some(retry_after.as_secs().max(1)) }
        }
        e if e.is_retryable() => EspError::Transient { retry_after_secs: None },
        BrevoError::Auth { .. } => EspError::Unauthorized,
        e => EspError::Rejected(e.to_string()),
    }
}

#[async_trait]
impl EspGateway for BrevoGateway {
    /// R-D1: a contact blacklisted from a list that is not linked is taken off the blacklist when a new
    /// assignment lists it; `GET /contacts/{email}` tells (404: Brevo does not know it).
    async fn observe(
        &self,
        _link: &optisync_domain::Link,
        email: &optisync_domain::Email,
    ) -> Result<Option<optisync_domain::Observed>, EspError> {
        let contact = self.client.get_contact(email.as_str()).await.map_err(to_port)?;
        Ok(contact.map(|c| optisync_domain::Observed {
            active: !c.email_blacklisted,
            since: c.email_blacklisted.then(|| c.blacklisted_since()).flatten(),
        }))
    }

    /// The groups that only add to or remove from lists go out together, per list and kind, 150
    /// addresses a call (`POST /contacts/lists/{listId}/contacts/add` and `…/remove`); every other group
    /// is applied by itself. Brevo answers which addresses it changed (`contacts.success`) and which not
    /// (`contacts.failure`), and each group gets the result of its own addresses: a removal that failed
    /// found the contact off the list or unknown, the target state; an addition that failed is looked up
    /// once (already on the list: done; unknown to Brevo: refused for that group alone). A call that
    /// fails fails the groups of its addresses only.
    async fn apply_batch(&self, groups: &[Vec<EspAction>]) -> Vec<Result<(), EspError>> {
        let mut results: Vec<Result<(), EspError>> = groups.iter().map(|_| Ok(())).collect();
        let mut batched: std::collections::BTreeMap<(bool, ListId), Vec<(usize, &str)>> = Default::default();
        // Once Brevo answers that it is rate limiting or unavailable, nothing more is sent.
        let mut unavailable: Option<EspError> = None;
        for (g, group) in groups.iter().enumerate() {
            if group.is_empty() {
                continue;
            }
            if !membership_only(group) {
                results[g] = match &unavailable {
                    Some(e) => Err(e.clone()),
                    None => self.apply(group).await,
                };
                if let Err(e @ EspError::Transient { .. }) = &results[g] {
                    unavailable = Some(e.clone());
                }
                continue;
            }
            for action in group {
                batched
                    .entry((action.op == EspOp::AddToList, action.list.clone()))
                    .or_default()
                    .push((g, action.email.as_str()));
            }
        }
        let fail = |results: &mut Vec<Result<(), EspError>>, g: usize, e: EspError| {
            if results[g].is_ok() {
                results[g] = Err(e);
            }
        };
        for ((add, list), members) in batched {
            let id = match list_id(&list) {
                Ok(id) => id,
                Err(e) => {
                    members.iter().for_each(|(g, _)| fail(&mut results, *g, e.clone()));
                    continue;
                }
            };
            for chunk in members.chunks(crate::client::MAX_LIST_BATCH) {
                if let Some(e) = &unavailable {
                    chunk.iter().for_each(|(g, _)| fail(&mut results, *g, e.clone()));
                    continue;
                }
                let emails: Vec<&str> = chunk.iter().map(|(_, e)| *e).collect();
                let answer = if add {
                    self.client.add_to_list(id, &emails).await
                } else {
                    self.client.remove_from_list(id, &emails).await
                };
                let outcome = match answer {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        let e = to_port(e);
                        if matches!(e, EspError::Transient { .. }) {
                            unavailable = Some(e.clone());
                        }
                        chunk.iter().for_each(|(g, _)| fail(&mut results, *g, e.clone()));
                        continue;
                    }
                };
                if !add {
                    continue;
                }
                for (g, email) in chunk {
                    if !outcome.failure.iter().any(|f| f.eq_ignore_ascii_case(email)) {
                        continue;
                    }
                    match self.client.get_contact(email).await {
                        Ok(Some(contact)) if contact.list_ids.contains(&id) => {}
                        Ok(_) => fail(&mut results, *g, EspError::Rejected("Brevo knows no such contact".into())),
                        Err(e) => fail(&mut results, *g, to_port(e)),
                    }
                }
            }
        }
        results
    }

    async fn apply(&self, actions: &[EspAction]) -> Result<(), EspError> {
        let mut i = 0;
        while i < actions.len() {
            let action = &actions[i];
            match &action.op {
                EspOp::Upsert { fields } => {
                    // Create-or-update, and put on the list in the same call when the plan adds it next.
                    let next_adds = actions
                        .get(i + 1)
                        .is_some_and(|n| n.op == EspOp::AddToList && n.email == action.email && n.list == action.list);
                    let lists = if next_adds { vec![list_id(&action.list)?] } else { vec![] };
                    self.client
                        .upsert_contact(action.email.as_str(), attributes(fields), &lists)
                        .await
                        .map_err(to_port)?;
                    i += if next_adds { 2 } else { 1 };
                }
                EspOp::UpdateFields { fields } => {
                    self.client
                        .upsert_contact(action.email.as_str(), attributes(fields), &[])
                        .await
                        .map_err(to_port)?;
                    i += 1;
                }
                EspOp::AddToList | EspOp::RemoveFromList => {
                    // Consecutive membership changes of one kind on one list go out together (≤150 a call).
                    let run: Vec<&EspAction> =
                        actions[i..].iter().take_while(|n| n.op == action.op && n.list == action.list).collect();
                    let emails: Vec<&str> = run.iter().map(|n| n.email.as_str()).collect();
                    let list = list_id(&action.list)?;
                    if action.op == EspOp::AddToList {
                        self.client.add_to_list(list, &emails).await.map_err(to_port)?;
                    } else {
                        self.client.remove_from_list(list, &emails).await.map_err(to_port)?;
                    }
                    i += run.len();
                }
                EspOp::Activate => {
                    self.client.set_blacklisted(action.email.as_str(), false).await.map_err(to_port)?;
                    i += 1;
                }
                EspOp::Delete => {
                    // R-J2: the contact is deleted account-wide (`DELETE /contacts/{identifier}`), with its
                    // statistics; one gone already has reached the target.
                    self.client.delete_contact(action.email.as_str()).await.map_err(to_port)?;
                    i += 1;
                }
                EspOp::Deactivate => {
                    return Err(EspError::Rejected(
                        "Brevo has no per-list deactivation; the plan removes from the list".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The names a contact holds in the attributes the link maps them to (R-E3, R-C3).
fn names(contact: &crate::BrevoContact, link: &optisync_domain::Link) -> optisync_domain::Signup {
    let name = |attribute: &Option<optisync_domain::AttributeName>| {
        let value = contact.attributes.get(attribute.as_ref()?.as_str())?.as_str()?.trim();
        (!value.is_empty()).then(|| optisync_domain::PersonalText::new(value))
    };
    let mapping = &link.settings.mapping;
    optisync_domain::Signup {
        first_name: name(&mapping.first_name),
        last_name: name(&mapping.last_name),
        ..Default::default()
    }
}

#[async_trait]
impl EspReader for BrevoGateway {
    /// Brevo's webhooks carry what they mean: nothing to re-read.
    async fn reread(&self, _: &optisync_ports::Reread) -> Result<Vec<optisync_domain::EspEvent>, EspError> {
        Ok(Vec::new())
    }

    /// `GET /contacts/{email}` (one call, through the account's rate limiter): a `list_addition` names no
    /// attribute, so the names of a signup are read back from the contact (R-E3, R-C3).
    async fn signup(
        &self,
        link: &optisync_domain::Link,
        email: &optisync_domain::Email,
    ) -> Result<Option<optisync_domain::Signup>, EspError> {
        let contact = self.client.get_contact(email.as_str()).await.map_err(to_port)?;
        Ok(contact.map(|c| names(&c, link)))
    }
}

#[async_trait]
impl EspLister for BrevoGateway {
    /// `GET /contacts/lists/{id}/contacts` page by page (the cursor is the next offset), with
    /// `modifiedSince` when asked. A member receives mail unless blacklisted or unsubscribed from this
    /// list; names come from the attributes the link maps them to.
    async fn list_page(
        &self,
        link: &optisync_domain::Link,
        since: Option<chrono::DateTime<chrono::Utc>>,
        cursor: Option<&str>,
    ) -> Result<ListPage, EspError> {
        let list = list_id(&link.list)?;
        let offset = match cursor {
            Some(c) => c.parse().map_err(|_| EspError::Rejected("a Brevo list cursor is an offset".into()))?,
            None => 0,
        };
        let (contacts, next) = self.client.list_contacts_page(list, since, offset).await.map_err(to_port)?;
        let mut members = Vec::with_capacity(contacts.len());
        for contact in &contacts {
            let Ok(email) = optisync_domain::Email::parse(&contact.email) else {
                tracing::warn!(contact = contact.id, "a list member without a valid e-mail; skipped");
                continue;
            };
            let blacklisted = contact.email_blacklisted;
            members.push(ListedMember {
                email,
                active: !blacklisted && !contact.list_unsubscribed.contains(&list),
                blacklisted,
                changed_at: contact.modified_at.map(|t| t.with_timezone(&chrono::Utc)),
                signup: optisync_domain::Signup {
                    evidence: optisync_domain::ConsentEvidence {
                        signup_at: contact.created_at.map(|t| t.with_timezone(&chrono::Utc)),
                        source: Some("brevo:list".to_owned()),
                        ..Default::default()
                    },
                    ..names(contact, link)
                },
            });
        }
        Ok(ListPage { members, next: next.map(|n| n.to_string()) })
    }

    /// `GET /contacts/{email}`: on the list when the contact exists and names the list.
    async fn is_listed(&self, link: &optisync_domain::Link, email: &optisync_domain::Email) -> Result<bool, EspError> {
        let list = list_id(&link.list)?;
        let contact = self.client.get_contact(email.as_str()).await.map_err(to_port)?;
        Ok(contact.is_some_and(|c| c.list_ids.contains(&list)))
    }
}
