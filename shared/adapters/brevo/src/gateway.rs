//! The ESP port for Brevo: applies planned operations through [`BrevoClient`].
//!
//! Updates never send `emailBlacklisted` (an update must not silently un-blacklist, R-J3); only an
//! `Activate` planned under the R-J3 gate removes a contact from the blacklist (R-D1). List membership
//! is add/remove only (R-D2, R-E2).

use crate::{BrevoClient, BrevoError};
use async_trait::async_trait;
use optisync_domain::rules::FieldValues;
use optisync_domain::{EspAction, EspOp, ListId};
use optisync_ports::{EspError, EspGateway};
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

/// Maps the client's errors onto the port's.
fn to_port(error: BrevoError) -> EspError {
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
