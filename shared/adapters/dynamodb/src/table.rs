//! The request shapes every capability builds on: a consistent get, a paged query, a batch get and a
//! conditional put inside a transaction.

use crate::codec::s;
use crate::error::{classify, permanent};
use crate::{DynamoStore, Item, MAX_BATCH_GET, item_size, read_units};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use optisync_ports::StoreError;
use std::collections::{BTreeSet, HashMap};

impl DynamoStore {
    pub(crate) async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
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
    pub(crate) async fn query_all(
        &self,
        index: Option<&str>,
        condition: &str,
        values: &[(&str, AttributeValue)],
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let limit = limit.unwrap_or(usize::MAX);
        let mut items = Vec::new();
        self.query_pages(index, condition, values, true, |page| {
            items.extend(page);
            items.truncate(limit);
            Ok(items.len() < limit)
        })
        .await?;
        Ok(items)
    }

    /// Runs a query on the table (in sort-key order, or reversed when `forward` is false) and keeps what
    /// `keep` makes of each item (`None`: skipped, not counted) until `limit` are kept or the pages end.
    /// Each item is counted as it is kept, so a caller that wants none returns before asking.
    pub(crate) async fn query_until<T>(
        &self,
        condition: &str,
        values: &[(&str, AttributeValue)],
        forward: bool,
        limit: usize,
        mut keep: impl FnMut(&Item) -> Result<Option<T>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.query_pages(None, condition, values, forward, |page| {
            for item in &page {
                if let Some(kept) = keep(item)? {
                    out.push(kept);
                    if out.len() >= limit {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        })
        .await?;
        Ok(out)
    }

    /// Runs a query page by page (in sort-key order, or reversed when `forward` is false), following
    /// `LastEvaluatedKey`, and hands each page to `take` until it answers `false` or the pages end. The
    /// table itself is read consistently; an index cannot be.
    pub(crate) async fn query_pages(
        &self,
        index: Option<&str>,
        condition: &str,
        values: &[(&str, AttributeValue)],
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
    pub(crate) async fn batch_get(&self, keys: Vec<(String, String)>) -> Result<Vec<Item>, StoreError> {
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

    pub(crate) fn put(
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

pub(crate) async fn tokio_sleep_ms(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}
