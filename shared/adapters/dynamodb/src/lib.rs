//! The state store on DynamoDB: one table (`pk`/`sk`, two sparse GSIs, a TTL attribute), conditional
//! writes with version numbers, `TransactWriteItems` for commits, leases by conditional put.
//!
//! The key design and every access pattern are in `docs/state.md`. Items keep their value as JSON in
//! `v` and their version in `ver`.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    KeysAndAttributes, Projection, ProjectionType, Put, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem,
};
use chrono::{DateTime, NaiveDate, Utc};
use optisync_domain::{
    AccountRecord, ApprovalEntry, ApprovalStatus, AssignmentId, AuditEntry, CommandId, CommandResult, Email,
    EspAccount, Link, LinkId, LinkView, MirrorEntry, OptigemCommand, RecipientState, StateWrite, TenantId,
    TenantSettings,
};
use optisync_ports::{
    ApprovalQueue, AuditLog, CommandFeed, Commit, Inbox, InboxEntry, InboxPut, ItemKey, Leases, Links, LoadedView,
    RunStore, Slice, StoreError, SyncState, Tenants,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet, HashMap};

type Item = HashMap<String, AttributeValue>;

/// Most actions one `TransactWriteItems` takes.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// Most keys one `BatchGetItem` takes.
const MAX_BATCH_GET: usize = 100;

/// Read and write capacity units consumed, by DynamoDB's sizing rules: a read unit per 4 KB read
/// consistently (half for an eventually consistent read), a write unit per 1 KB written, both doubled
/// inside a transaction. Counted here because emulators do not report them faithfully.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Read capacity units.
    pub read_units: f64,
    /// Write capacity units.
    pub write_units: f64,
    /// Requests sent.
    pub requests: u64,
}

/// The DynamoDB state store.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    page_size: Option<i32>,
    usage: std::sync::Arc<std::sync::Mutex<Usage>>,
}

impl DynamoStore {
    /// A store on an existing table.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), page_size: None, usage: Default::default() }
    }

    /// Capacity used since the store was made or [`DynamoStore::take_usage`] was last called.
    pub fn take_usage(&self) -> Usage {
        std::mem::take(&mut *self.usage.lock().expect("usage lock"))
    }

    fn meter(&self, read_units: f64, write_units: f64) {
        let mut usage = self.usage.lock().expect("usage lock");
        usage.read_units += read_units;
        usage.write_units += write_units;
        usage.requests += 1;
    }

    /// Limits every query page to `n` items (tests use it to make paging visible).
    pub fn with_page_size(mut self, n: i32) -> Self {
        self.page_size = Some(n);
        self
    }

    /// Creates the table with its indexes and TTL, as `template.yaml` does (tests and benchmarks).
    #[cfg(feature = "test-util")]
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        let index = |name: &str, pk: &str, sk: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash).map_err(permanent)?)
                .key_schema(key(sk, KeyType::Range).map_err(permanent)?)
                .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                .build()
                .map_err(permanent)
        };
        let mut request = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash).map_err(permanent)?)
            .key_schema(key("sk", KeyType::Range).map_err(permanent)?)
            .global_secondary_indexes(index("gsi1", "gsi1pk", "gsi1sk")?)
            .global_secondary_indexes(index("gsi2", "gsi2pk", "gsi2sk")?);
        for name in ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"] {
            request = request.attribute_definitions(attr(name).map_err(permanent)?);
        }
        request.send().await.map_err(classify)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("expires_at")
                    .enabled(true)
                    .build()
                    .map_err(permanent)?,
            )
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        self.meter(read_units(out.item.iter().map(item_size).sum(), true), 0.0);
        Ok(out.item)
    }

    /// Runs a query to the end (or `limit` items), following `LastEvaluatedKey`.
    async fn query_all(
        &self,
        index: Option<&str>,
        condition: &str,
        values: &[(&str, AttributeValue)],
        names: &[(&str, &str)],
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let limit = limit.unwrap_or(usize::MAX);
        let mut items = Vec::new();
        self.query_pages(index, condition, values, names, true, |page| {
            items.extend(page);
            items.truncate(limit);
            Ok(items.len() < limit)
        })
        .await?;
        Ok(items)
    }

    /// Runs a query page by page (in sort-key order, or reversed when `forward` is false), following
    /// `LastEvaluatedKey`, and hands each page to `take` until it answers `false` or the pages end. The
    /// table itself is read consistently; an index cannot be.
    async fn query_pages(
        &self,
        index: Option<&str>,
        condition: &str,
        values: &[(&str, AttributeValue)],
        names: &[(&str, &str)],
        forward: bool,
        mut take: impl FnMut(Vec<Item>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(condition)
                .scan_index_forward(forward)
                .set_exclusive_start_key(start.take())
                .set_limit(self.page_size);
            if let Some(index) = index {
                q = q.index_name(index);
            } else {
                q = q.consistent_read(true);
            }
            for (k, v) in values {
                q = q.expression_attribute_values(*k, v.clone());
            }
            for (k, v) in names {
                q = q.expression_attribute_names(*k, *v);
            }
            let out = q.send().await.map_err(classify)?;
            let page = out.items.unwrap_or_default();
            self.meter(read_units(page.iter().map(item_size).sum(), index.is_none()), 0.0);
            if !take(page)? {
                return Ok(());
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(()),
            }
        }
    }

    /// Reads items by key with consistent reads, in batches, retrying unprocessed keys.
    async fn batch_get(&self, keys: Vec<(String, String)>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let unique: BTreeSet<(String, String)> = keys.into_iter().collect();
        let keys: Vec<_> = unique.into_iter().collect();
        for chunk in keys.chunks(MAX_BATCH_GET) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]))
                .collect();
            let mut attempt = 0u32;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(permanent)?;
                let out =
                    self.client.batch_get_item().request_items(&self.table, request).send().await.map_err(classify)?;
                if let Some(mut responses) = out.responses {
                    let got = responses.remove(&self.table).unwrap_or_default();
                    self.meter(got.iter().map(|i| read_units(item_size(i), true)).sum(), 0.0);
                    items.extend(got);
                }
                pending =
                    out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).map(|k| k.keys).unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt > 8 {
                        return Err(StoreError::Transient("unprocessed keys after retries".into()));
                    }
                    tokio_sleep_ms(10 * 2u64.pow(attempt)).await;
                }
            }
        }
        Ok(items)
    }

    fn put(
        &self,
        item: Item,
        condition: Option<(&str, Vec<(&str, AttributeValue)>)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some((expression, values)) = condition {
            put = put.condition_expression(expression);
            for (k, v) in values {
                put = put.expression_attribute_values(k, v);
            }
        }
        Ok(TransactWriteItem::builder().put(put.build().map_err(permanent)?).build())
    }
}

// ------------------------------------------------------------------------------------------------
// Keys (see docs/state.md)
// ------------------------------------------------------------------------------------------------

fn tenant_pk(t: &TenantId) -> String {
    format!("TENANT#{t}")
}
fn account_pk(esp: &EspAccount) -> String {
    format!("ACCOUNT#{}#{}", esp.provider, esp.account)
}
fn link_pk(l: &LinkId) -> String {
    format!("LINK#{l}")
}
fn mirror_sk(id: &AssignmentId) -> String {
    format!("MIRROR#{id}")
}
fn recipient_sk(key: &str) -> String {
    format!("RECIPIENT#{key}")
}
fn approval_sk(key: &str) -> String {
    format!("APPROVAL#{key}")
}
fn by_email(l: &LinkId, key: &str) -> String {
    format!("LINK#{l}#EMAIL#{key}")
}
fn due_pk(l: &LinkId) -> String {
    format!("DUE#{l}")
}
fn feed_pk(t: &TenantId) -> String {
    format!("TENANT#{t}#FEED")
}
fn command_marker_pk(t: &TenantId, id: &str) -> String {
    format!("TENANT#{t}#COMMAND#{id}")
}
const SEQ_SK: &str = "COMMAND-SEQUENCE";

fn item_keys(key: &ItemKey) -> (String, String) {
    match key {
        ItemKey::Mirror(l, id) => (link_pk(l), mirror_sk(id)),
        ItemKey::Recipient(l, k) => (link_pk(l), recipient_sk(k)),
        ItemKey::Approval(l, k) => (link_pk(l), approval_sk(k)),
    }
}

/// An item's size as DynamoDB counts it: attribute names plus values.
fn item_size(item: &Item) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value(v)).sum::<usize>(),
            AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + value(v)).sum::<usize>(),
            _ => 8,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.div_ceil(4096).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}
fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn to_json<T: Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(value).map(AttributeValue::S).map_err(|e| StoreError::Permanent(format!("encode: {e}")))
}

fn from_item<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let raw =
        item.get("v").and_then(|v| v.as_s().ok()).ok_or_else(|| StoreError::Permanent("item without value".into()))?;
    serde_json::from_str(raw).map_err(|e| StoreError::Permanent(format!("decode: {e}")))
}

fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn version_of(item: &Item) -> u64 {
    item.get("ver").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The table item of a state write at a version, with its index attributes.
fn write_item(write: &StateWrite, version: u64) -> Result<Item, StoreError> {
    let (pk, sk) = item_keys(&ItemKey::of(write));
    let mut item =
        HashMap::from([("pk".to_owned(), s(&pk)), ("sk".to_owned(), s(&sk)), ("ver".to_owned(), n(version))]);
    match write {
        StateWrite::Mirror { link, entry } => {
            item.insert("v".into(), to_json(entry)?);
            if let Some(email) = &entry.email {
                item.insert("gsi1pk".into(), s(&by_email(link, email.key())));
                item.insert("gsi1sk".into(), s(&sk));
            }
            if let Some(date) = entry.next_transition {
                item.insert("gsi2pk".into(), s(&due_pk(link)));
                item.insert("gsi2sk".into(), s(&format!("{date}#{}", entry.id)));
            }
        }
        StateWrite::Recipient { email, state, .. } => {
            item.insert("v".into(), to_json(&(email, state))?);
        }
        StateWrite::Approval { entry } => {
            item.insert("v".into(), to_json(entry)?);
            if entry.status == ApprovalStatus::Pending {
                item.insert("gsi1pk".into(), s(&format!("LINK#{}#PENDING", entry.link)));
                item.insert("gsi1sk".into(), s(&entry.queue_position()));
            }
            // A decided entry is kept for the retention period, then the table's TTL removes it.
            if let Some(expires_at) = entry.expires_at() {
                item.insert("expires_at".into(), n(expires_at.timestamp().max(0) as u64));
            }
        }
    }
    Ok(item)
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

fn permanent(e: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent(e.to_string())
}

/// Tells a lost condition from throttling from a bug. Messages carry DynamoDB's codes, never item values.
fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown");
            match code {
                "ConditionalCheckFailedException" | "TransactionConflictException" => StoreError::Conflict,
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable" => StoreError::Transient(code.to_owned()),
                _ => StoreError::Permanent(code.to_owned()),
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Transient("DynamoDB did not answer".to_owned())
        }
        _ => StoreError::Permanent("request could not be built".to_owned()),
    }
}

fn classify_transaction<R: std::fmt::Debug>(err: SdkError<TransactWriteItemsError, R>) -> StoreError {
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error() {
        let codes: Vec<&str> = cancelled.cancellation_reasons().iter().filter_map(|r| r.code()).collect();
        if codes.iter().any(|c| matches!(*c, "ConditionalCheckFailed" | "TransactionConflict")) {
            return StoreError::Conflict;
        }
        if codes.iter().any(|c| matches!(*c, "ThrottlingError" | "ProvisionedThroughputExceeded")) {
            return StoreError::Transient("transaction throttled".to_owned());
        }
        return StoreError::Permanent(format!("transaction cancelled: {codes:?}"));
    }
    classify(err)
}

async fn tokio_sleep_ms(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

// ------------------------------------------------------------------------------------------------
// The port
// ------------------------------------------------------------------------------------------------

#[async_trait]
impl Tenants for DynamoStore {
    async fn tenant_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        match self.get_item(&tenant_pk(tenant), "SETTINGS").await? {
            Some(item) => from_item(&item),
            None => Ok(TenantSettings::default()),
        }
    }

    async fn put_tenant_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(&tenant_pk(tenant))),
            ("sk".to_owned(), s("SETTINGS")),
            ("v".to_owned(), to_json(settings)?),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(classify)?;
        Ok(())
    }

    async fn accounts(&self, tenant: &TenantId) -> Result<Vec<AccountRecord>, StoreError> {
        let keys = self
            .query_all(Some("gsi2"), "gsi2pk = :pk", &[(":pk", s(&format!("ACCOUNTS#{tenant}")))], &[], None)
            .await?;
        let keys: Vec<(String, String)> =
            keys.iter().filter_map(|k| Some((get_s(k, "pk")?.to_owned(), get_s(k, "sk")?.to_owned()))).collect();
        let mut accounts: Vec<AccountRecord> =
            self.batch_get(keys).await?.iter().map(from_item).collect::<Result<_, _>>()?;
        // The index is eventually consistent: the consistent read decides whose account it is.
        accounts.retain(|a| &a.tenant == tenant);
        accounts.sort_by(|a, b| a.esp.cmp(&b.esp));
        Ok(accounts)
    }

    async fn account(&self, esp: &EspAccount) -> Result<Option<AccountRecord>, StoreError> {
        match self.get_item(&account_pk(esp), "ACCOUNT").await? {
            Some(item) => Ok(Some(from_item(&item)?)),
            None => Ok(None),
        }
    }

    async fn put_account(&self, record: &AccountRecord) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(&account_pk(&record.esp))),
            ("sk".to_owned(), s("ACCOUNT")),
            ("tenant".to_owned(), s(record.tenant.as_str())),
            ("v".to_owned(), to_json(record)?),
            ("gsi2pk".to_owned(), s(&format!("ACCOUNTS#{}", record.tenant))),
            ("gsi2sk".to_owned(), s(&format!("{}#{}", record.esp.provider, record.esp.account))),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // An account id names its secrets, so it belongs to one tenant (R-H1).
            .condition_expression("attribute_not_exists(pk) OR tenant = :t")
            .expression_attribute_values(":t", s(record.tenant.as_str()))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[async_trait]
impl Links for DynamoStore {
    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(&tenant_pk(&link.tenant))),
            ("sk".to_owned(), s(&format!("LINK#{}", link.id))),
            ("v".to_owned(), to_json(link)?),
            // Every link is also in one index partition, for the scheduler's fan-out over all tenants.
            ("gsi2pk".to_owned(), s(ALL_LINKS)),
            ("gsi2sk".to_owned(), s(&format!("{}#{}", link.tenant, link.id))),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(classify)?;
        Ok(())
    }

    async fn links(&self, tenant: &TenantId) -> Result<Vec<Link>, StoreError> {
        let items = self
            .query_all(
                None,
                "pk = :pk AND begins_with(sk, :prefix)",
                &[(":pk", s(&tenant_pk(tenant))), (":prefix", s("LINK#"))],
                &[],
                None,
            )
            .await?;
        items.iter().map(from_item).collect()
    }

    async fn all_links(&self) -> Result<Vec<Link>, StoreError> {
        let keys = self.query_all(Some("gsi2"), "gsi2pk = :pk", &[(":pk", s(ALL_LINKS))], &[], None).await?;
        let keys: Vec<(String, String)> =
            keys.iter().filter_map(|k| Some((get_s(k, "pk")?.to_owned(), get_s(k, "sk")?.to_owned()))).collect();
        let mut links: Vec<Link> = self.batch_get(keys).await?.iter().map(from_item).collect::<Result<_, _>>()?;
        links.sort_by(|a, b| (&a.tenant, &a.id).cmp(&(&b.tenant, &b.id)));
        Ok(links)
    }
}

#[async_trait]
impl SyncState for DynamoStore {
    async fn load(&self, link: &Link, slice: &Slice) -> Result<LoadedView, StoreError> {
        let pk = link_pk(&link.id);
        let mut keys: Vec<(String, String)> = slice.assignments.iter().map(|id| (pk.clone(), mirror_sk(id))).collect();
        for email in &slice.emails {
            keys.push((pk.clone(), recipient_sk(email.key())));
            keys.push((pk.clone(), approval_sk(email.key())));
            // The index is eventually consistent and keys-only: it names the entries, the consistent
            // batch read below fetches them with their versions.
            let named = self
                .query_all(Some("gsi1"), "gsi1pk = :e", &[(":e", s(&by_email(&link.id, email.key())))], &[], None)
                .await?;
            keys.extend(named.iter().filter_map(|i| Some((get_s(i, "pk")?.to_owned(), get_s(i, "sk")?.to_owned()))));
        }
        let mut loaded = LoadedView { view: LinkView::new(link.clone()), versions: BTreeMap::new() };
        for item in self.batch_get(keys).await? {
            let sk = get_s(&item, "sk").unwrap_or_default();
            let version = version_of(&item);
            if sk.starts_with("MIRROR#") {
                let entry: MirrorEntry = from_item(&item)?;
                loaded.versions.insert(ItemKey::Mirror(link.id.clone(), entry.id.clone()), version);
                loaded.view.mirror.insert(entry.id.clone(), entry);
            } else if sk.starts_with("RECIPIENT#") {
                let (email, state): (Email, RecipientState) = from_item(&item)?;
                loaded.versions.insert(ItemKey::Recipient(link.id.clone(), email.key().to_owned()), version);
                loaded.view.recipients.insert(email, state);
            } else if sk.starts_with("APPROVAL#") {
                let entry: ApprovalEntry = from_item(&item)?;
                loaded.versions.insert(ItemKey::Approval(link.id.clone(), entry.email.key().to_owned()), version);
                loaded.view.approvals.insert(entry.email.clone(), entry);
            }
        }
        Ok(loaded)
    }

    async fn due(&self, link: &Link, date: NaiveDate, limit: usize) -> Result<Vec<AssignmentId>, StoreError> {
        let items = self
            .query_all(
                Some("gsi2"),
                "gsi2pk = :d AND gsi2sk <= :until",
                &[(":d", s(&due_pk(&link.id))), (":until", s(&format!("{date}#\u{10ffff}")))],
                &[],
                Some(limit),
            )
            .await?;
        Ok(items.iter().filter_map(|i| get_s(i, "sk")?.strip_prefix("MIRROR#").map(AssignmentId::new)).collect())
    }

    async fn commit(&self, tenant: &TenantId, commit: Commit) -> Result<(), StoreError> {
        let mut actions = Vec::new();
        for (write, expected) in &commit.writes {
            let item = write_item(write, expected.unwrap_or(0) + 1)?;
            let condition = match expected {
                None => ("attribute_not_exists(pk)", vec![]),
                Some(v) => ("ver = :expected", vec![(":expected", n(*v))]),
            };
            actions.push(self.put(item, Some(condition))?);
        }
        // Audit entries: one item each, forgotten by TTL (and filtered on read, as TTL deletes late).
        for entry in &commit.audit {
            let value = serde_json::to_string(entry).map_err(|e| StoreError::Permanent(format!("encode: {e}")))?;
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&value, &mut hasher);
            let sk = format!(
                "{AUDIT_PREFIX}{:013}#{:016x}",
                entry.at.timestamp_millis().max(0),
                std::hash::Hasher::finish(&hasher)
            );
            let item = HashMap::from([
                ("pk".to_owned(), s(&link_pk(&entry.link))),
                ("sk".to_owned(), s(&sk)),
                ("v".to_owned(), AttributeValue::S(value)),
                ("expires_at".to_owned(), n(entry.expires_at().timestamp().max(0) as u64)),
            ]);
            actions.push(self.put(item, None)?);
        }
        // Commands: each id once (markers), numbered by a per-tenant counter guarded by its value.
        let mut ids = BTreeSet::new();
        let fresh: Vec<&OptigemCommand> = commit.commands.iter().filter(|c| ids.insert(c.id().to_string())).collect();
        let known = self
            .batch_get(
                fresh.iter().map(|c| (command_marker_pk(tenant, c.id().as_str()), "COMMAND".to_owned())).collect(),
            )
            .await?;
        let known: BTreeSet<String> = known.iter().filter_map(|i| get_s(i, "pk").map(str::to_owned)).collect();
        let fresh: Vec<&OptigemCommand> =
            fresh.into_iter().filter(|c| !known.contains(&command_marker_pk(tenant, c.id().as_str()))).collect();
        if !fresh.is_empty() {
            let seq_item = self.get_item(&tenant_pk(tenant), SEQ_SK).await?;
            let current = seq_item.as_ref().map(version_of).unwrap_or(0);
            for (offset, command) in fresh.iter().enumerate() {
                let seq = current + offset as u64 + 1;
                let marker = HashMap::from([
                    ("pk".to_owned(), s(&command_marker_pk(tenant, command.id().as_str()))),
                    ("sk".to_owned(), s("COMMAND")),
                    ("seq".to_owned(), n(seq)),
                ]);
                actions.push(self.put(marker, Some(("attribute_not_exists(pk)", vec![])))?);
                let entry = HashMap::from([
                    ("pk".to_owned(), s(&feed_pk(tenant))),
                    ("sk".to_owned(), s(&format!("{seq:020}"))),
                    ("v".to_owned(), to_json(command)?),
                ]);
                actions.push(self.put(entry, None)?);
            }
            let counter = HashMap::from([
                ("pk".to_owned(), s(&tenant_pk(tenant))),
                ("sk".to_owned(), s(SEQ_SK)),
                ("ver".to_owned(), n(current + fresh.len() as u64)),
            ]);
            let condition = if seq_item.is_some() {
                ("ver = :expected", vec![(":expected", n(current))])
            } else {
                ("attribute_not_exists(pk)", vec![])
            };
            actions.push(self.put(counter, Some(condition))?);
        }
        if actions.is_empty() {
            return Ok(());
        }
        if actions.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Permanent(format!(
                "a commit of {} items exceeds one transaction ({MAX_TRANSACTION_ITEMS}); plan in smaller pages",
                actions.len()
            )));
        }
        let units: f64 =
            actions.iter().filter_map(|a| a.put.as_ref()).map(|p| 2.0 * write_units(item_size(&p.item))).sum();
        self.meter(0.0, units);
        self.client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
            .map_err(classify_transaction)?;
        Ok(())
    }

    async fn recipients(
        &self,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Email, RecipientState)>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        // BETWEEN is inclusive: a NUL after the last key read starts just past it.
        let from = after.map_or_else(|| recipient_sk(""), |a| recipient_sk(&format!("{a}\u{0}")));
        let condition = "pk = :pk AND sk BETWEEN :from AND :to";
        let values = [(":pk", s(&link_pk(link))), (":from", s(&from)), (":to", s(&recipient_sk("\u{10ffff}")))];
        self.query_pages(None, condition, &values, &[], true, |page| {
            for item in &page {
                out.push(from_item::<(Email, RecipientState)>(item)?);
                if out.len() >= limit {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await?;
        Ok(out)
    }
}

#[async_trait]
impl Leases for DynamoStore {
    async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(&format!("LEASE#{name}"))),
            ("sk".to_owned(), s("LEASE")),
            ("owner".to_owned(), s(owner)),
            ("until".to_owned(), n(until.timestamp_millis().max(0) as u64)),
            // Let DynamoDB drop leases long after they ran out.
            ("expires_at".to_owned(), n((until.timestamp() + 86_400).max(0) as u64)),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #owner = :me OR #until < :now")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":now", n(now.timestamp_millis().max(0) as u64))
            .send()
            .await;
        match result.map_err(classify) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        self.meter(0.0, 1.0);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&format!("LEASE#{name}")))
            .key("sk", s("LEASE"))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        match result.map_err(classify) {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl CommandFeed for DynamoStore {
    async fn commands(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OptigemCommand)>, StoreError> {
        let items = self
            .query_all(
                None,
                "pk = :pk AND sk > :after",
                &[(":pk", s(&feed_pk(tenant))), (":after", s(&format!("{after:020}")))],
                &[],
                Some(limit),
            )
            .await?;
        items
            .iter()
            .map(|i| {
                let seq = get_s(i, "sk").and_then(|s| s.parse().ok()).unwrap_or(0);
                Ok((seq, from_item(i)?))
            })
            .collect()
    }

    async fn command(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<(u64, OptigemCommand)>, StoreError> {
        let Some(marker) = self.get_item(&command_marker_pk(tenant, id.as_str()), "COMMAND").await? else {
            return Ok(None);
        };
        let seq = marker.get("seq").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let Some(entry) = self.get_item(&feed_pk(tenant), &format!("{seq:020}")).await? else { return Ok(None) };
        Ok(Some((seq, from_item(&entry)?)))
    }

    async fn record_result(&self, tenant: &TenantId, id: &CommandId, result: &CommandResult) -> Result<(), StoreError> {
        // On the command's marker: only an existing command, and never over a `done` result.
        let value = to_json(result)?;
        self.meter(0.0, write_units(256 + value.as_s().map_or(0, String::len)));
        let outcome = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&command_marker_pk(tenant, id.as_str())))
            .key("sk", s("COMMAND"))
            .update_expression("SET #result = :result, #done = :done")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(#done) OR #done = :false)")
            .expression_attribute_names("#result", "result")
            .expression_attribute_names("#done", "done")
            .expression_attribute_values(":result", value)
            .expression_attribute_values(":done", AttributeValue::Bool(result.is_done()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .send()
            .await;
        match outcome.map_err(classify) {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict) => match self.get_item(&command_marker_pk(tenant, id.as_str()), "COMMAND").await?
            {
                Some(_) => Ok(()), // already done: a later report changes nothing
                None => Err(StoreError::Permanent("no such command".into())),
            },
            Err(e) => Err(e),
        }
    }

    async fn command_result(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<CommandResult>, StoreError> {
        let Some(marker) = self.get_item(&command_marker_pk(tenant, id.as_str()), "COMMAND").await? else {
            return Ok(None);
        };
        match get_s(&marker, "result") {
            Some(raw) => serde_json::from_str(raw).map(Some).map_err(|e| StoreError::Permanent(format!("decode: {e}"))),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl RunStore for DynamoStore {
    async fn run_state(&self, link: &LinkId) -> Result<Option<(String, u64)>, StoreError> {
        let item = self.get_item(&link_pk(link), RUN_SK).await?;
        Ok(item.map(|i| (get_s(&i, "v").unwrap_or_default().to_owned(), version_of(&i))))
    }

    async fn save_run_state(&self, link: &LinkId, value: &str, expected: Option<u64>) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(&link_pk(link))),
            ("sk".to_owned(), s(RUN_SK)),
            ("ver".to_owned(), n(expected.unwrap_or(0) + 1)),
            ("v".to_owned(), s(value)),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        let request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(v) => request.condition_expression("ver = :expected").expression_attribute_values(":expected", n(v)),
        };
        request.send().await.map_err(classify)?;
        Ok(())
    }

    async fn put_run_chunk(
        &self,
        link: &LinkId,
        run: &str,
        index: u64,
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(&link_pk(link))),
            ("sk".to_owned(), s(&chunk_sk(run, index))),
            ("v".to_owned(), s(value)),
            ("expires_at".to_owned(), n(expires_at.timestamp().max(0) as u64)),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(classify)?;
        Ok(())
    }

    async fn run_chunks(
        &self,
        link: &LinkId,
        run: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let mut out = Vec::new();
        let Some(from) = after.map_or(Some(0), |a| a.checked_add(1)) else { return Ok(out) };
        if limit == 0 || from > CHUNK_INDEX_MAX {
            return Ok(out);
        }
        let condition = "pk = :pk AND sk BETWEEN :from AND :to";
        let values = [
            (":pk", s(&link_pk(link))),
            (":from", s(&chunk_sk(run, from))),
            (":to", s(&chunk_sk(run, CHUNK_INDEX_MAX))),
        ];
        self.query_pages(None, condition, &values, &[], true, |page| {
            for item in &page {
                let sk = get_s(item, "sk").unwrap_or_default();
                let index = sk.rsplit('#').next().and_then(|i| i.parse().ok()).unwrap_or(0);
                out.push((index, get_s(item, "v").unwrap_or_default().to_owned()));
                if out.len() >= limit {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await?;
        Ok(out)
    }
}

#[async_trait]
impl AuditLog for DynamoStore {
    async fn audit(&self, link: &LinkId, now: DateTime<Utc>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let mut entries = Vec::new();
        let condition = "pk = :pk AND begins_with(sk, :prefix)";
        let values = [(":pk", s(&link_pk(link))), (":prefix", s(AUDIT_PREFIX))];
        // Newest first; expired entries (TTL deletes late) are skipped and do not count.
        self.query_pages(None, condition, &values, &[], false, |page| {
            for item in &page {
                let entry: AuditEntry = from_item(item)?;
                if entry.expires_at() > now {
                    entries.push(entry);
                    if entries.len() >= limit {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        })
        .await?;
        Ok(entries)
    }
}

#[async_trait]
impl ApprovalQueue for DynamoStore {
    async fn pending_approvals(
        &self,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ApprovalEntry>, StoreError> {
        let mut position = after.map(str::to_owned);
        let mut out = Vec::new();
        while out.len() < limit {
            let (condition, mut values) = (
                if position.is_some() { "gsi1pk = :p AND gsi1sk > :after" } else { "gsi1pk = :p" },
                vec![(":p", s(&format!("LINK#{link}#PENDING")))],
            );
            if let Some(p) = &position {
                values.push((":after", s(p)));
            }
            let want = limit - out.len();
            let named = self.query_all(Some("gsi1"), condition, &values, &[], Some(want)).await?;
            let Some(last) = named.last() else { break };
            position = get_s(last, "gsi1sk").map(str::to_owned);
            let keys: Vec<(String, String)> =
                named.iter().filter_map(|k| Some((get_s(k, "pk")?.to_owned(), get_s(k, "sk")?.to_owned()))).collect();
            let entries: Vec<ApprovalEntry> =
                self.batch_get(keys).await?.iter().map(from_item).collect::<Result<_, _>>()?;
            // The index lags behind: an entry decided a moment ago may still be named in it.
            out.extend(optisync_ports::queue_page(entries, None, want));
            if named.len() < want || position.is_none() {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}

/// The highest chunk index (the sort key keeps 12 digits, so chunks sort by index).
const CHUNK_INDEX_MAX: u64 = 999_999_999_999;

/// The sort key of chunk `index` of a run's working data.
fn chunk_sk(run: &str, index: u64) -> String {
    format!("CHUNK#{run}#{:012}", index.min(CHUNK_INDEX_MAX))
}

/// The sort key of a link's run state (checkpoint and last result of the scheduled run).
const RUN_SK: &str = "RUN";

/// The index partition (gsi2) naming every link.
const ALL_LINKS: &str = "LINKS";

/// The sort key prefix of a link's audit entries (`AUDIT#{committed ms}#{hash}`).
const AUDIT_PREFIX: &str = "AUDIT#";

fn millis(at: DateTime<Utc>) -> AttributeValue {
    n(at.timestamp_millis().max(0) as u64)
}

fn inbox_pk(tenant: &TenantId, key: &str) -> String {
    format!("INBOX#{tenant}#{key}")
}

/// Inbox items: `pk = INBOX#{tenant}#{key}`, `sk = INBOX`, the entry in `v`, the body's fingerprint in
/// `fp`; while unprocessed also in the sparse index `gsi2pk = INBOX-PENDING`, `gsi2sk = {received ms}#…`.
#[async_trait]
impl Inbox for DynamoStore {
    async fn put(&self, entry: &InboxEntry) -> Result<InboxPut, StoreError> {
        let pk = inbox_pk(&entry.tenant, &entry.key);
        let item = HashMap::from([
            ("pk".to_owned(), s(&pk)),
            ("sk".to_owned(), s("INBOX")),
            ("fp".to_owned(), s(&entry.fingerprint)),
            ("v".to_owned(), to_json(entry)?),
            ("gsi2pk".to_owned(), s("INBOX-PENDING")),
            ("gsi2sk".to_owned(), s(&format!("{:020}#{pk}", entry.received_at.timestamp_millis().max(0)))),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result.map_err(classify) {
            Ok(_) => Ok(InboxPut::Stored),
            Err(StoreError::Conflict) => {
                let existing = self.get_item(&pk, "INBOX").await?;
                Ok(match existing.as_ref().and_then(|i| get_s(i, "fp")) {
                    Some(fp) if fp == entry.fingerprint => InboxPut::Duplicate,
                    _ => InboxPut::Mismatch,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<InboxEntry>, StoreError> {
        let Some(item) = self.get_item(&inbox_pk(tenant, key), "INBOX").await? else { return Ok(None) };
        Ok(Some(from_item(&item)?))
    }

    async fn mark_done(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        self.meter(0.0, 1.0);
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&inbox_pk(tenant, key)))
            .key("sk", s("INBOX"))
            .update_expression("REMOVE gsi2pk, gsi2sk SET done_at = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", millis(Utc::now()))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn pending(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<(TenantId, String)>, StoreError> {
        let keys = self
            .query_all(
                Some("gsi2"),
                "gsi2pk = :p AND gsi2sk < :before",
                &[(":p", s("INBOX-PENDING")), (":before", s(&format!("{:020}", before.timestamp_millis().max(0))))],
                &[],
                Some(limit),
            )
            .await?;
        // The index is keys-only; tenant and key are read from the items themselves.
        let mut waiting = Vec::new();
        for k in &keys {
            let (Some(pk), Some(sk)) = (get_s(k, "pk"), get_s(k, "sk")) else { continue };
            if let Some(item) = self.get_item(pk, sk).await? {
                let entry: InboxEntry = from_item(&item)?;
                waiting.push((entry.received_at, entry.tenant, entry.key));
            }
        }
        waiting.sort();
        Ok(waiting.into_iter().map(|(_, t, k)| (t, k)).collect())
    }
}
