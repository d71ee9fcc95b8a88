//! The value codec: JSON values with errors that name no data, and the envelope of a versioned state
//! item.

use crate::error::db_err;
use chrono::{DateTime, Utc};
use optisync_ports::StoreError;
use redb::ReadableTable;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A JSON error without its text: serde messages can quote the offending value.
pub(crate) fn json_err(what: &str, e: &serde_json::Error) -> StoreError {
    StoreError::Permanent(format!(
        "embedded store: a {what} does not (de)serialise ({:?} error at line {}, column {})",
        e.classify(),
        e.line(),
        e.column()
    ))
}

pub(crate) fn encode<T: Serialize + ?Sized>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| json_err(what, &e))
}

pub(crate) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| json_err(what, &e))
}

/// A state item as written: its version, the e-mail key a mirror entry is indexed under, the value.
#[derive(Serialize)]
pub(crate) struct PutItem<'a, T: Serialize> {
    pub(crate) version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<&'a str>,
    pub(crate) value: T,
}

/// A state item as read.
#[derive(Deserialize)]
pub(crate) struct GotItem<T> {
    pub(crate) version: u64,
    pub(crate) value: T,
}

/// The part of a state item a commit needs: the version to check and the index entry to drop.
#[derive(Deserialize)]
pub(crate) struct ItemHeader {
    pub(crate) version: u64,
    #[serde(default)]
    pub(crate) email: Option<String>,
}

/// Reads one state item with its version.
pub(crate) fn get_item<T: DeserializeOwned>(
    table: &impl ReadableTable<(&'static str, u8, &'static str), &'static [u8]>,
    key: (&str, u8, &str),
    what: &str,
) -> Result<Option<GotItem<T>>, StoreError> {
    match table.get(key).map_err(db_err)? {
        Some(bytes) => Ok(Some(decode(what, bytes.value())?)),
        None => Ok(None),
    }
}

pub(crate) fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
    what: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(key).map_err(db_err)? {
        Some(bytes) => Ok(Some(decode(what, bytes.value())?)),
        None => Ok(None),
    }
}

/// Milliseconds since the epoch (0 before it), the order of the audit trail.
pub(crate) fn epoch_ms(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}
