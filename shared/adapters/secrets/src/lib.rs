//! [`SecretStore`] on AWS Secrets Manager. Values never appear in errors or logs.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use optisync_ports::{SecretStore, StoreError};

/// Secrets under a name prefix (e.g. `optisync/prod/`), so one deployment's secrets stay together and
/// IAM can grant exactly that prefix.
#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: Client,
    prefix: String,
}

impl SecretsManagerStore {
    /// A store whose secret names all start with `prefix`.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self { client, prefix: prefix.into() }
    }

    fn id(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> StoreError {
    match err {
        SdkError::ServiceError(e) => match e.err().code() {
            Some("ThrottlingException" | "InternalServiceError") => {
                StoreError::Transient("secrets manager busy".into())
            }
            code => StoreError::Permanent(format!("secrets manager: {}", code.unwrap_or("unknown error"))),
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Transient("secrets manager did not answer".into())
        }
        _ => StoreError::Permanent("secrets manager request could not be built".into()),
    }
}

fn not_found<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    matches!(err, SdkError::ServiceError(e) if e.err().code() == Some("ResourceNotFoundException"))
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self.client.get_secret_value().secret_id(self.id(name)).send().await {
            Ok(out) => Ok(out.secret_string),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(classify(&e)),
        }
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), StoreError> {
        match self.client.put_secret_value().secret_id(self.id(name)).secret_string(value).send().await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => {
                self.client
                    .create_secret()
                    .name(self.id(name))
                    .secret_string(value)
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
                Ok(())
            }
            Err(e) => Err(classify(&e)),
        }
    }
}
