//! Prints how many records a local runner's state file holds (state items, inbox entries, commands with
//! an expiry, tombstones), after `bench/retention-growth` stopped the runner (R-J6). A benchmark helper.
//!   cargo run -p optisync-bench --bin state_counts -- target/retention-growth/speed-1/state.redb

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: state_counts STATE_FILE")?;
    let store = optisync_embedded::EmbeddedStore::open(&path)?;
    let [items, inbox, commands, tombstones] = store.retention_counts().await?;
    println!("state items {items}, inbox entries {inbox}, commands with an expiry {commands}, tombstones {tombstones}");
    Ok(())
}
