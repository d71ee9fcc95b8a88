//! The composition root's inputs: every setting a function reads from the environment, typed, with the
//! defaults written out, and [`Aws`]: the AWS adapters built over one SDK configuration.

use optisync_dynamodb::DynamoStore;
use optisync_esp::{EspEndpoints, EspRouter, EspSettings};
use optisync_eventbridge::EventBridgePublisher;
use optisync_ports::{SecretStore, StoreError};
use optisync_secrets::SecretsManagerStore;
use optisync_sns::SnsReports;
use std::sync::Arc;

/// What the functions read from the environment (`template.yaml` sets it; README, "Configuration").
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `TABLE_NAME`: the state table (state, inbox, command feed).
    pub table_name: String,
    /// `SECRETS_PREFIX`: where the secrets of this deployment live in Secrets Manager.
    pub secrets_prefix: String,
    /// `EVENT_BUS_NAME`: the bus that carries `inbox.ready` and `link.reconcile`.
    pub event_bus_name: String,
    /// The ESP endpoints and OAuth app (`BREVO_BASE_URL`, `CLEVERREACH_*`; the public APIs by default).
    pub esp: EspEndpoints,
    /// `GUARD_SHARE`: the share of a list whose ends hold a scheduled run (R-F8); default 0.1.
    pub guard_share: f64,
    /// `GUARD_MIN`: fewer ends than this never hold a run; default 10.
    pub guard_min: u64,
    /// `PUBLIC_BASE_URL`: the service's public address, for the webhooks it registers; default empty.
    pub public_base_url: String,
    /// `REPORT_TOPIC_ARN`: the deletion report topic (R-J2). Required by the functions that publish
    /// reports or subscribe their targets (worker, reconciler, scheduler, admin-api): [`Aws::reports`].
    pub report_topic_arn: Option<String>,
}

/// The settings that are missing or invalid, all of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// The default of `GUARD_SHARE`.
    pub const DEFAULT_GUARD_SHARE: f64 = 0.1;
    /// The default of `GUARD_MIN`.
    pub const DEFAULT_GUARD_MIN: u64 = 10;

    /// From the process environment; the error names every missing or invalid variable at once.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From any lookup of variables by name (the environment, or a test's map).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut required = |name: &str| {
            var(name).unwrap_or_else(|| {
                problems.push(format!("{name} is not set"));
                String::new()
            })
        };
        let (table_name, secrets_prefix, event_bus_name) =
            (required("TABLE_NAME"), required("SECRETS_PREFIX"), required("EVENT_BUS_NAME"));
        let or = |name: &str, default: &str| var(name).unwrap_or_else(|| default.to_owned());
        let defaults = EspEndpoints::default();
        let esp = EspEndpoints {
            brevo_base_url: or("BREVO_BASE_URL", &defaults.brevo_base_url),
            cleverreach_base_url: or("CLEVERREACH_BASE_URL", &defaults.cleverreach_base_url),
            cleverreach_client_id: or("CLEVERREACH_CLIENT_ID", &defaults.cleverreach_client_id),
            cleverreach_redirect_uri: or("CLEVERREACH_REDIRECT_URI", &defaults.cleverreach_redirect_uri),
        };
        let guard_share = match var("GUARD_SHARE").map(|v| v.parse::<f64>()) {
            None => Self::DEFAULT_GUARD_SHARE,
            Some(Ok(share)) => share,
            Some(Err(_)) => {
                problems.push("GUARD_SHARE must be a number from 0 to 1".into());
                Self::DEFAULT_GUARD_SHARE
            }
        };
        let guard_min = match var("GUARD_MIN").map(|v| v.parse::<u64>()) {
            None => Self::DEFAULT_GUARD_MIN,
            Some(Ok(min)) => min,
            Some(Err(_)) => {
                problems.push("GUARD_MIN must be a whole number".into());
                Self::DEFAULT_GUARD_MIN
            }
        };
        let public_base_url = or("PUBLIC_BASE_URL", "");
        let report_topic_arn = var("REPORT_TOPIC_ARN").filter(|v| !v.is_empty());
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Self {
            table_name,
            secrets_prefix,
            event_bus_name,
            esp,
            guard_share,
            guard_min,
            public_base_url,
            report_topic_arn,
        })
    }
}

/// The AWS adapters of one process, over one SDK configuration loaded once.
#[derive(Clone)]
pub struct Aws {
    sdk: aws_config::SdkConfig,
    config: Config,
}

impl Aws {
    /// Loads the SDK configuration (region, credentials) once for every adapter.
    pub async fn load(config: Config) -> Self {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self { sdk, config }
    }

    /// The configuration it was loaded with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The state table: state, inbox and command feed.
    pub fn store(&self) -> Arc<DynamoStore> {
        Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), self.config.table_name.clone()))
    }

    /// Secrets Manager under the deployment's prefix.
    pub fn secrets(&self) -> Arc<SecretsManagerStore> {
        Arc::new(SecretsManagerStore::new(
            aws_sdk_secretsmanager::Client::new(&self.sdk),
            self.config.secrets_prefix.clone(),
        ))
    }

    /// The event bus.
    pub fn publisher(&self) -> Arc<EventBridgePublisher> {
        Arc::new(EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(&self.sdk),
            self.config.event_bus_name.clone(),
        ))
    }

    /// The deletion report topic (R-J2): publishes reports and subscribes the tenants' targets. An error
    /// names `REPORT_TOPIC_ARN` when it is not set (the functions that use it need it).
    pub fn reports(&self) -> Result<Arc<SnsReports>, ConfigError> {
        let arn = self
            .config
            .report_topic_arn
            .clone()
            .ok_or_else(|| ConfigError(vec!["REPORT_TOPIC_ARN is not set".into()]))?;
        Ok(Arc::new(SnsReports::new(aws_sdk_sns::Client::new(&self.sdk), arn)))
    }

    /// The ESP router over the configured endpoints, with credentials from `secrets`.
    pub async fn esp(&self, secrets: Arc<dyn SecretStore>) -> Result<Arc<EspRouter>, StoreError> {
        let settings = EspSettings::load(&self.config.esp, secrets.as_ref()).await?;
        Ok(Arc::new(EspRouter::new(secrets, settings)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn every_missing_or_invalid_variable_is_named_at_once() {
        let vars: HashMap<&str, &str> = [("TABLE_NAME", "t"), ("GUARD_MIN", "ten")].into();
        let err = Config::from_lookup(|n| vars.get(n).map(|v| (*v).to_owned())).unwrap_err();
        assert_eq!(
            err.0,
            ["SECRETS_PREFIX is not set", "EVENT_BUS_NAME is not set", "GUARD_MIN must be a whole number"]
        );
    }

    #[test]
    fn unset_settings_take_their_defaults() {
        let vars: HashMap<&str, &str> = [("TABLE_NAME", "t"), ("SECRETS_PREFIX", "p/"), ("EVENT_BUS_NAME", "b")].into();
        let config = Config::from_lookup(|n| vars.get(n).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(config.esp, EspEndpoints::default());
        assert_eq!((config.guard_share, config.guard_min, config.public_base_url.as_str()), (0.1, 10, ""));
        assert_eq!(config.report_topic_arn, None);
    }
}
