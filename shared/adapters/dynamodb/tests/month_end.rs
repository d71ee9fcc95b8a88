//! H4 on DynamoDB (moto, started by `tests/run`): a month-end with many due assignments in one tenant,
//! far more than one `TransactWriteItems` (100 items) holds, runs to its end through the scheduled run.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use chrono::{TimeZone, Utc};
use optisync_app::Engine;
use optisync_app::reconcile::{Budget, Phase, Reconciler, RunOutcome};
use optisync_domain::*;
use optisync_dynamodb::DynamoStore;
use optisync_ports::prelude::*;
use optisync_ports::{Commit, Slice};
use optisync_testkit::build;
use optisync_testkit::memory::{FixedClock, MemoryEsp, MemoryStore};
use std::sync::Arc;

/// Due assignments: 300 by default, three times what one transaction holds (moto takes about 3 s a due
/// page of 20, so 5,000 would take about 15 minutes; `OPTISYNC_MONTH_END_DUE=5000` runs that). The
/// in-memory store, which refuses a commit over 100 items as DynamoDB does, runs the 5,000 case in the
/// normal suite (`shared/app/tests/it/reconcile.rs`).
fn due_count() -> usize {
    std::env::var("OPTISYNC_MONTH_END_DUE").ok().and_then(|n| n.parse().ok()).unwrap_or(300)
}

async fn table(clock: Arc<FixedClock>) -> Arc<DynamoStore> {
    let endpoint = std::env::var("OPTISYNC_TEST_DYNAMODB_ENDPOINT").expect(
        "OPTISYNC_TEST_DYNAMODB_ENDPOINT is not set: run the tests with `bash tests/run`, which starts a DynamoDB-compatible server",
    );
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("eu-central-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let store = DynamoStore::new(client, format!("month-end-{}", std::process::id())).with_clock(clock);
    store.create_table().await.expect("create table");
    Arc::new(store)
}

/// The state of `link` as the engine left it in `from`, copied into `to` in commits of 100 items (the
/// state is built through the engine in memory, where 5,000 inputs take a second, not on moto).
async fn copy_state(from: &MemoryStore, to: &DynamoStore, link: &Link, due_n: usize) {
    let tenant = &link.tenant;
    let mut writes: Vec<(StateWrite, Option<u64>)> = Vec::new();
    let mut after: Option<AssignmentId> = None;
    loop {
        let ids = from.assignments(tenant, &link.id, after.as_ref(), 500).await.unwrap();
        let Some(last) = ids.last().cloned() else { break };
        let view = from.load(link, &Slice { assignments: ids, emails: vec![] }).await.unwrap().view;
        writes.extend(
            view.mirror.into_values().map(|e| (StateWrite::Mirror { link: link.id.clone(), entry: Box::new(e) }, None)),
        );
        after = Some(last);
    }
    let mut after: Option<String> = None;
    loop {
        let page = from.recipients(tenant, &link.id, after.as_deref(), 500).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        after = Some(last.key().to_owned());
        writes.extend(
            page.into_iter()
                .map(|(email, state)| (StateWrite::Recipient { link: link.id.clone(), email, state }, None)),
        );
    }
    assert_eq!(writes.len(), 2 * due_n + 2, "a mirror entry and a recipient state per assignment");
    for chunk in writes.chunks(optisync_ports::MAX_COMMIT_ITEMS) {
        to.commit(tenant, Commit { writes: chunk.to_vec(), ..Default::default() }).await.unwrap();
    }
}

/// H4, R-A9: 300 (or `OPTISYNC_MONTH_END_DUE`) assignments of the "Rundbrief" ending "April 2024" (and Max Muster's, which goes on)
/// are all due on 1 May. The run of 2024-05-01 ends every one in pages of its own commits (each inside
/// one transaction), then lists and sweeps the list; no entry is left due, and the next run plans
/// nothing. (The connector's export fails here, so the run reconciles without OPTIGEM's snapshot.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h4_r_a9_a_month_end_with_300_due_assignments_runs_to_its_end_on_dynamodb() {
    let due_n = due_count();
    let started = std::time::Instant::now();
    let april = Utc.with_ymd_and_hms(2024, 4, 10, 10, 0, 0).unwrap();
    let clock = Arc::new(FixedClock::new(april));
    let link = build::link("rundbrief", "t1", "Rundbrief", build::esp(Provider::Brevo, "brevo-main"), "list-1");
    let esp = Arc::new(MemoryEsp::new());
    let memory = Arc::new(MemoryStore::new());
    memory.put_link(&link).await.unwrap();
    let engine = Engine::new(memory.clone(), esp.clone(), clock.clone());
    let tenant = link.tenant.clone();
    for i in 0..due_n {
        let mut a = build::assignment(&format!("a{i:05}"), "Rundbrief", &format!("leser{i:05}@example.com"), april);
        a.end = Some("2024-04".parse().unwrap());
        engine.process(&tenant, &Input::AssignmentChanged { assignment: a }).await.unwrap();
    }
    let max = build::assignment("max", "Rundbrief", "max.muster@example.com", april);
    engine.process(&tenant, &Input::AssignmentChanged { assignment: max }).await.unwrap();
    assert_eq!(esp.receiving(&link.esp, &link.list).len(), due_n + 1);

    let store = table(clock.clone()).await;
    store.put_link(&link).await.unwrap();
    copy_state(&memory, &store, &link, due_n).await;
    let built = started.elapsed();
    eprintln!("H4 month-end on moto: {due_n} due assignments, state built in {built:?}");

    // 1 May 2024, 06:00 in Berlin.
    clock.set(Utc.with_ymd_and_hms(2024, 5, 1, 4, 0, 0).unwrap());
    let reconciler = Reconciler::new(store.clone(), esp.clone(), esp.clone(), store.clone(), clock.clone());
    let run = |budget| {
        let (reconciler, tenant, id) = (&reconciler, tenant.clone(), link.id.clone());
        async move { reconciler.run(&tenant, &id, budget).await.expect("the run goes on") }
    };
    let mut invocations = 0;
    let finished = loop {
        invocations += 1;
        assert!(invocations < 1_000, "the run never finished");
        // Invocations of 40 pages each, as a Lambda's deadline would cut them.
        match run(Budget { deadline: None, max_pages: Some(40) }).await {
            RunOutcome::Finished(f) => break f,
            RunOutcome::Continue(_) => {}
            RunOutcome::Waiting(p) if p.phase == Phase::AwaitExport => {
                let export = store.commands(&tenant, 0, 10).await.unwrap().into_iter().find_map(|(_, c)| match c {
                    OptigemCommand::ExportNewsletter { id, .. } => Some(id),
                    _ => None,
                });
                let failed = CommandResult::Failed { reason: "the office connector is offline".into() };
                store.record_result(&tenant, &export.expect("an export was asked for"), &failed).await.unwrap();
            }
            other => panic!("expected the run to go on, got {other:?}"),
        }
    };
    let ran = started.elapsed() - built;
    assert_eq!(
        esp.receiving(&link.esp, &link.list).into_iter().collect::<Vec<_>>(),
        ["max.muster@example.com"],
        "every assignment ending April 2024 left the list (R-A2)"
    );
    assert!(finished.counts.deactivated >= due_n as u64, "{:?}", finished.counts);
    assert!(finished.complete, "the list was read and swept after the due step");
    let due = store.due(&link, "2024-05-01".parse().unwrap(), 10).await.unwrap();
    assert!(due.is_empty(), "nothing is left due");
    eprintln!("H4 month-end on moto: {due_n} due assignments, the run took {ran:?} in {invocations} invocations");

    let again = loop {
        match run(Budget::default()).await {
            RunOutcome::Finished(f) => break f,
            RunOutcome::Continue(_) => {}
            RunOutcome::Waiting(_) => {
                let export =
                    store.commands(&tenant, 0, 100).await.unwrap().into_iter().rev().find_map(|(_, c)| match c {
                        OptigemCommand::ExportNewsletter { id, .. } => Some(id),
                        _ => None,
                    });
                let failed = CommandResult::Failed { reason: "the office connector is offline".into() };
                store.record_result(&tenant, &export.unwrap(), &failed).await.unwrap();
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!((again.counts.esp_operations, again.counts.inputs), (0, 0), "reconciling again plans nothing");
}
