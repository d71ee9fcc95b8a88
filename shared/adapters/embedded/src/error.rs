//! redb's errors mapped to the port's [`StoreError`] kinds.

use optisync_ports::StoreError;

/// Maps a redb error to the port's error. Lock and I/O conditions are worth a retry; the rest is not.
/// Messages name the condition only, never a key or a value (R-J5).
pub(crate) fn db_err(e: impl Into<redb::Error>) -> StoreError {
    let transient = |m: String| StoreError::Transient(format!("embedded store: {m}"));
    let permanent = |m: String| StoreError::Permanent(format!("embedded store: {m}"));
    match e.into() {
        redb::Error::Io(io) => transient(format!("I/O failure ({:?})", io.kind())),
        redb::Error::DatabaseAlreadyOpen => transient("the file is open in another store or process".into()),
        redb::Error::TransactionInProgress | redb::Error::WouldBlock | redb::Error::ReadTransactionStillInUse(_) => {
            transient("another transaction is in progress".into())
        }
        redb::Error::Corrupted(_) => permanent("the file is corrupted".into()),
        redb::Error::UpgradeRequired(format) => {
            permanent(format!("the file has the old format {format} and must be upgraded"))
        }
        redb::Error::ValueTooLarge(len) => permanent(format!("a value of {len} bytes is too large")),
        other => permanent(other.to_string()),
    }
}
