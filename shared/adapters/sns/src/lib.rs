//! Deletion reports on Amazon SNS (R-J2, issue #21): one topic per deployment (`DeletionReportTopic` in
//! `template.yaml`). [`SnsReports`] publishes each report as a JSON message with the message attribute
//! `tenant`, so each tenant's e-mail subscription (filter policy `{"tenant": ["<t>"]}`) gets only its own
//! reports; and it manages that subscription for the admin API ([`ReportSubscriptions`]).
//!
//! The message is personal data (it names the erased address): it goes only to the topic. The subject
//! line carries no address, and no error or log names one (R-J5).

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use optisync_domain::{Email, TenantId};
use optisync_ports::{ErasureReportRecord, NotifyError, ReportNotifier, ReportSubscriptions};
use serde::Serialize;

/// The name of the message attribute the per-tenant subscriptions filter on.
pub const TENANT_ATTRIBUTE: &str = "tenant";

/// The JSON message of one report: the tenant, the link, the address, what was deleted where, what was
/// kept and why, and when.
#[derive(Debug, Clone, Serialize)]
pub struct ReportMessage<'a> {
    /// Always `erasure_report`.
    pub kind: &'static str,
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The report id (its `erasure_report` command on the connector's feed).
    pub report: &'a optisync_domain::CommandId,
    /// The link in erasure mode and its newsletter.
    pub link: &'a optisync_domain::LinkId,
    /// The newsletter.
    pub newsletter: &'a optisync_domain::NewsletterId,
    /// The erased address.
    pub email: &'a str,
    /// The `end_assignment` whose confirmation started the erasure.
    pub ended: &'a optisync_domain::CommandId,
    /// What was deleted where.
    pub deleted: &'a [optisync_domain::ErasedItem],
    /// What was kept, and why.
    pub kept: &'a [optisync_domain::KeptItem],
    /// When the erasure was carried out.
    pub at: chrono::DateTime<chrono::Utc>,
}

impl<'a> ReportMessage<'a> {
    /// The message of a report.
    pub fn of(report: &'a ErasureReportRecord) -> Self {
        Self {
            kind: "erasure_report",
            tenant: &report.tenant,
            report: &report.id,
            link: &report.link,
            newsletter: &report.newsletter,
            email: report.email.as_str(),
            ended: &report.ended,
            deleted: &report.deleted,
            kept: &report.kept,
            at: report.at,
        }
    }
}

/// The subject of a report's mail: the tenant, the link and the date, never the address (R-J5).
pub fn subject(report: &ErasureReportRecord) -> String {
    format!(
        "optisync deletion report: tenant {}, link {}, {}",
        report.tenant,
        report.link,
        report.at.format("%Y-%m-%d")
    )
}

/// The deployment's deletion report topic.
#[derive(Debug, Clone)]
pub struct SnsReports {
    client: Client,
    topic_arn: String,
}

impl SnsReports {
    /// Over the topic with this ARN (`REPORT_TOPIC_ARN`).
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self { client, topic_arn: topic_arn.into() }
    }

    /// The topic's e-mail subscriptions: (subscription ARN, or `PendingConfirmation`; endpoint).
    async fn email_subscriptions(&self) -> Result<Vec<(String, String)>, NotifyError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .list_subscriptions_by_topic()
                .topic_arn(&self.topic_arn)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify("list subscriptions", &e))?;
            for sub in page.subscriptions() {
                if sub.protocol() == Some("email")
                    && let (Some(arn), Some(endpoint)) = (sub.subscription_arn(), sub.endpoint())
                {
                    out.push((arn.to_owned(), endpoint.to_owned()));
                }
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// The tenants a confirmed subscription's filter policy lets through.
    async fn policy_tenants(&self, arn: &str) -> Result<Vec<String>, NotifyError> {
        let attributes = self
            .client
            .get_subscription_attributes()
            .subscription_arn(arn)
            .send()
            .await
            .map_err(|e| classify("read a subscription", &e))?;
        let policy = attributes.attributes().and_then(|a| a.get("FilterPolicy")).cloned().unwrap_or_default();
        Ok(parse_policy(&policy))
    }

    async fn set_policy(&self, arn: &str, tenants: &[String]) -> Result<(), NotifyError> {
        self.client
            .set_subscription_attributes()
            .subscription_arn(arn)
            .attribute_name("FilterPolicy")
            .attribute_value(policy(tenants))
            .send()
            .await
            .map_err(|e| classify("update a subscription", &e))?;
        Ok(())
    }
}

/// The filter policy that lets the reports of these tenants through.
pub fn policy(tenants: &[String]) -> String {
    serde_json::json!({ TENANT_ATTRIBUTE: tenants }).to_string()
}

fn parse_policy(policy: &str) -> Vec<String> {
    serde_json::from_str::<serde_json::Value>(policy)
        .ok()
        .and_then(|v| v.get(TENANT_ATTRIBUTE).and_then(|t| t.as_array()).cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect()
}

fn confirmed(arn: &str) -> bool {
    arn.starts_with("arn:")
}

fn classify<E: ProvideErrorMetadata, R>(what: &str, err: &SdkError<E, R>) -> NotifyError {
    // The SDK's own message may quote the request: only the error code is told (R-J5).
    let code = match err {
        SdkError::ServiceError(e) => e.err().code().unwrap_or("unknown error").to_owned(),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => "no answer".to_owned(),
        _ => "request not built".to_owned(),
    };
    NotifyError::Unavailable(format!("sns: {what}: {code}"))
}

#[async_trait]
impl ReportNotifier for SnsReports {
    async fn publish(&self, tenant: &TenantId, report: &ErasureReportRecord) -> Result<(), NotifyError> {
        let message = serde_json::to_string(&ReportMessage::of(report))
            .map_err(|_| NotifyError::Unavailable("sns: the report could not be encoded".into()))?;
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(tenant.as_str())
            .build()
            .map_err(|_| NotifyError::Unavailable("sns: the tenant attribute could not be built".into()))?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject(report))
            .message(message)
            .message_attributes(TENANT_ATTRIBUTE, attribute)
            .send()
            .await
            .map_err(|e| classify("publish", &e))?;
        Ok(())
    }
}

#[async_trait]
impl ReportSubscriptions for SnsReports {
    /// Subscribes `email` for the tenant (protocol `email`, filter policy on the tenant) unless it is
    /// subscribed for it already; a confirmed subscription of the address for other tenants gets the
    /// tenant added to its policy. The previous address's confirmed subscription loses the tenant (and
    /// goes when no tenant is left); a pending one cannot be removed through the API and lapses after
    /// three days unconfirmed.
    async fn subscribe(&self, tenant: &TenantId, email: &Email, previous: Option<&Email>) -> Result<(), NotifyError> {
        let subscriptions = self.email_subscriptions().await?;
        let same = |endpoint: &str, e: &Email| endpoint.eq_ignore_ascii_case(e.key());
        if let Some(previous) = previous {
            for (arn, _) in subscriptions.iter().filter(|(arn, ep)| confirmed(arn) && same(ep, previous)) {
                let mut tenants = self.policy_tenants(arn).await?;
                tenants.retain(|t| t != tenant.as_str());
                if tenants.is_empty() {
                    self.client
                        .unsubscribe()
                        .subscription_arn(arn)
                        .send()
                        .await
                        .map_err(|e| classify("unsubscribe", &e))?;
                } else {
                    self.set_policy(arn, &tenants).await?;
                }
            }
        }
        match subscriptions.iter().find(|(_, ep)| same(ep, email)) {
            // Waiting for the admin's confirmation already.
            Some((arn, _)) if !confirmed(arn) => Ok(()),
            Some((arn, _)) => {
                let mut tenants = self.policy_tenants(arn).await?;
                if !tenants.iter().any(|t| t == tenant.as_str()) {
                    tenants.push(tenant.to_string());
                    self.set_policy(arn, &tenants).await?;
                }
                Ok(())
            }
            None => {
                self.client
                    .subscribe()
                    .topic_arn(&self.topic_arn)
                    .protocol("email")
                    .endpoint(email.as_str())
                    .attributes("FilterPolicy", policy(&[tenant.to_string()]))
                    .send()
                    .await
                    .map_err(|e| classify("subscribe", &e))?;
                Ok(())
            }
        }
    }
}
