//! Error classification: DynamoDB's answers mapped to the port's [`StoreError`] kinds.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use optisync_ports::StoreError;

pub(crate) fn permanent(e: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent(e.to_string())
}

/// Tells a lost condition from throttling from a bug. Messages carry DynamoDB's codes, never item values.
pub(crate) fn classify<E, R>(err: SdkError<E, R>) -> StoreError
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

pub(crate) fn classify_transaction<R: std::fmt::Debug>(err: SdkError<TransactWriteItemsError, R>) -> StoreError {
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
