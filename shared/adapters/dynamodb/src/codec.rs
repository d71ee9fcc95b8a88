//! The item codec: attribute values, the JSON value in `v`, the version in `ver`, and the table item of
//! a state write with its index attributes.

use crate::keys::{by_email, due_pk, due_sk, item_keys, pending_pk};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use optisync_domain::{ApprovalStatus, StateWrite, TenantId};
use optisync_ports::{ItemKey, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

use crate::Item;

pub(crate) fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}
pub(crate) fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(value).map(AttributeValue::S).map_err(|e| StoreError::Permanent(format!("encode: {e}")))
}

pub(crate) fn from_item<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let raw =
        item.get("v").and_then(|v| v.as_s().ok()).ok_or_else(|| StoreError::Permanent("item without value".into()))?;
    serde_json::from_str(raw).map_err(|e| StoreError::Permanent(format!("decode: {e}")))
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// The keys (`pk`, `sk`) an index query named, for the consistent read that follows.
pub(crate) fn key_pairs(items: &[Item]) -> Vec<(String, String)> {
    items.iter().filter_map(|i| Some((get_s(i, "pk")?.to_owned(), get_s(i, "sk")?.to_owned()))).collect()
}

pub(crate) fn version_of(item: &Item) -> u64 {
    item.get("ver").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The table item of a state write at a version, with its index attributes.
pub(crate) fn write_item(tenant: &TenantId, write: &StateWrite, version: u64) -> Result<Item, StoreError> {
    let (pk, sk) = item_keys(tenant, &ItemKey::of(write));
    let mut item =
        HashMap::from([("pk".to_owned(), s(&pk)), ("sk".to_owned(), s(&sk)), ("ver".to_owned(), n(version))]);
    match write {
        StateWrite::Mirror { link, entry } => {
            item.insert("v".into(), to_json(entry)?);
            if let Some(email) = &entry.email {
                item.insert("gsi1pk".into(), s(&by_email(tenant, link, email.key())));
                item.insert("gsi1sk".into(), s(&sk));
            }
            if let Some(date) = entry.next_transition {
                item.insert("gsi2pk".into(), s(&due_pk(tenant, link)));
                item.insert("gsi2sk".into(), s(&due_sk(date, &entry.id)));
            }
        }
        StateWrite::Recipient { email, state, .. } => {
            item.insert("v".into(), to_json(&(email, state))?);
        }
        StateWrite::Approval { entry } => {
            item.insert("v".into(), to_json(entry)?);
            if entry.status == ApprovalStatus::Pending {
                item.insert("gsi1pk".into(), s(&pending_pk(tenant, &entry.link)));
                item.insert("gsi1sk".into(), s(&entry.queue_position()));
            }
        }
    }
    Ok(item)
}

pub(crate) fn millis(at: DateTime<Utc>) -> AttributeValue {
    n(at.timestamp_millis().max(0) as u64)
}
