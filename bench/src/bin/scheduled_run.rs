//! Benchmark: one scheduled run of a link with 10,000 and 100,000 recipients, in step (no change) and
//! with 1 % changed in the ESP without a webhook (0.5 % unsubscribed, 0.5 % new signups), through the
//! real engine, reconciler, ESP router and clients against the stateful fakes with their rate limits
//! (Brevo: 10 contact requests a second; CleverReach: the client's 5 a second). Prints ESP calls against
//! the lower bound, state store writes (counted as DynamoDB requests and items, the connector's snapshot
//! uploads included), the peak heap of the run in the process (the fakes' share included) and its run
//! time after the export was answered.
//! Two tables: the first run of a link in step (no run state yet, so a complete listing), and for Brevo the
//! next scheduled run 6 h after a complete one (R-E7: every run lists the whole list).
//! A benchmark, not a test: it asserts nothing. Run: `bash bench/scheduled-run`.

use chrono::Utc;
use optisync_app::Engine;
use optisync_app::reconcile::{Budget, Reconciler, RunOutcome};
use optisync_domain::*;
use optisync_esp::{EspRouter, EspSettings};
use optisync_fakes::brevo::{FakeBrevo, FakeRateLimit};
use optisync_fakes::cleverreach::FakeCleverReach;
use optisync_ports::SecretStore;
use optisync_ports::names::secret;
use optisync_ports::prelude::*;
use optisync_testkit::build;
use optisync_testkit::memory::{FixedClock, MemoryEsp, MemorySecrets, MemoryStore};
use peak_alloc::PeakAlloc;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// Brevo: members per list page, list members per add/remove call.
const BREVO_PAGE: usize = 500;
const BREVO_BATCH: usize = 150;
/// CleverReach: receivers per page, receivers per upsert.
const CLEVERREACH_PAGE: usize = 5000;
const CLEVERREACH_BATCH: usize = 1000;
/// The client's pace for CleverReach (no documented limit) and Brevo's limit for contact requests.
const CLEVERREACH_RPS: f64 = 5.0;
const BREVO_RPS: f64 = 10.0;

fn mail(i: usize) -> String {
    format!("user{i:06}@example.org")
}

fn assignment(i: usize, at: chrono::DateTime<Utc>) -> Assignment {
    build::assignment(&format!("a{i:06}"), "NL-1", &mail(i), at)
}

struct Figures {
    list_reads: usize,
    esp_writes: usize,
    other_calls: usize,
    rate_limited: usize,
    read_bound: usize,
    write_bound: usize,
    store_requests: u64,
    store_items: u64,
    peak_heap: usize,
    run_time: Duration,
    rate_floor: Duration,
    invocations: u64,
    inputs: u64,
    held: bool,
}

/// Which run of the link is measured.
#[derive(Clone, Copy, PartialEq)]
enum Measured {
    /// The link's first run after linking in step (no run state yet).
    First,
    /// The next scheduled run, 6 h after a complete run in step, with the ESP's changes since then.
    Next,
}

async fn scenario(provider: Provider, n: usize, changed: bool, measured: Measured) -> Figures {
    let now = Utc::now();
    let tenant = TenantId::new("t1");
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(FixedClock::new(now));
    let secrets = Arc::new(MemorySecrets::default());
    let brevo = FakeBrevo::start().await;
    brevo.set_rate_limit(FakeRateLimit { contacts_per_second: Some(10), others_per_hour: None });
    let cr = FakeCleverReach::start().await;
    secrets.put(&secret::brevo_api_key(&AccountId::new("acc")), &brevo.api_key()).await.expect("secret");
    let tokens = serde_json::to_string(&cr.issue_tokens()).expect("tokens");
    secrets.put(&secret::cleverreach_tokens(&AccountId::new("acc")), &tokens).await.expect("secret");
    let mut cleverreach = cr.client_config();
    cleverreach.requests_per_second = CLEVERREACH_RPS;
    let router =
        Arc::new(EspRouter::new(secrets, EspSettings { brevo_base_url: brevo.base_url().to_owned(), cleverreach }));
    let list = match provider {
        Provider::Brevo => brevo.add_list("Rundbrief").to_string(),
        Provider::CleverReach => cr.add_group("Rundbrief"),
    };
    let link = Link {
        id: LinkId::new("L1"),
        tenant: tenant.clone(),
        newsletter: NewsletterId::new("NL-1"),
        esp: EspAccount { provider, account: AccountId::new("acc") },
        list: ListId::new(list.clone()),
        segment: None,
        settings: LinkSettings::default(),
        status: LinkStatus::Linked,
    };
    store.put_link(&link).await.expect("link");

    // The state of a link in step: every assignment applied (to an ESP in memory), every recipient on
    // the fake's list.
    let seeding = Engine::new(store.clone(), Arc::new(MemoryEsp::new()), clock.clone());
    let assignments: Vec<Assignment> = (0..n).map(|i| assignment(i, now)).collect();
    for a in &assignments {
        seeding.process(&tenant, &Input::AssignmentChanged { assignment: a.clone() }).await.expect("seed");
    }
    let emails: Vec<String> = (0..n).map(mail).collect();
    match provider {
        Provider::Brevo => {
            let id: i64 = list.parse().expect("list id");
            for e in &emails {
                brevo.add_contact(e, Default::default(), &[id]);
            }
        }
        Provider::CleverReach => cr.add_new_receivers(&list, &emails),
    }
    let reconciler = Reconciler::new(store.clone(), router.clone(), router, store.clone(), clock.clone());
    if measured == Measured::Next {
        // A complete run 6 h ago found the list in step; the members were last changed in Brevo a day ago.
        if provider == Provider::Brevo {
            for e in &emails {
                brevo.set_modified_at(e, now - chrono::Duration::days(1));
            }
        }
        clock.set(now - chrono::Duration::hours(6));
        run_to_end(&reconciler, store.as_ref(), &tenant, &link, &assignments).await;
        clock.set(now);
    }
    // 1 %: every 200th unsubscribes in the ESP, and as many new addresses sign up there.
    let changes = if changed { n / 200 } else { 0 };
    for k in 0..changes {
        let (gone, new) = (mail(k * 200), format!("new{k:06}@example.org"));
        match provider {
            Provider::Brevo => {
                brevo.blacklist(&gone);
                brevo.add_contact(&new, Default::default(), &[list.parse().expect("list id")]);
            }
            Provider::CleverReach => {
                cr.unsubscribe_via_link(&list, &gone);
                cr.add_new_receivers(&list, &[new]);
            }
        }
    }
    brevo.clear_request_log();
    cr.clear_log();

    let writes = store.writes();
    // The run asks for OPTIGEM's snapshot; the connector uploads it (into the store: DynamoDB's memory, not
    // the function's, so before the heap is measured).
    let budget = Budget::default();
    let waiting = reconciler.run(&tenant, &link.id, budget).await.expect("the run starts");
    assert!(matches!(waiting, RunOutcome::Waiting(_)), "{waiting:?}");
    answer_export(store.as_ref(), &tenant, &assignments).await;
    HEAP.reset_peak_usage();
    let base_heap = HEAP.current_usage();
    let started = Instant::now();
    let mut invocations = 1;
    let mut held = false;
    let finished = loop {
        invocations += 1;
        let budget = Budget { deadline: Some(Instant::now() + Duration::from_secs(14 * 60)), ..Default::default() };
        match reconciler.run(&tenant, &link.id, budget).await.expect("the run goes on") {
            RunOutcome::Finished(f) => break f,
            RunOutcome::Continue(_) => {}
            RunOutcome::Held(_) => {
                // The guard (R-F8) waits for an admin; the benchmark confirms at once, as an admin would.
                held = true;
                assert!(reconciler.confirm(&tenant, &link.id).await.expect("confirm"));
            }
            other => panic!("{other:?}"),
        }
    };
    let run_time = started.elapsed();
    let peak_heap = HEAP.peak_usage().saturating_sub(base_heap);
    let store_writes = store.writes();

    let (reads, writes_made, total, rate_limited, page, batch, rps) = match provider {
        Provider::Brevo => {
            let log = brevo.request_log();
            let reads = log.iter().filter(|r| r.method == "GET" && r.path.ends_with("/contacts")).count();
            let writes = log.iter().filter(|r| r.is_mutating()).count();
            let limited = log.iter().filter(|r| r.status == 429).count();
            (reads, writes, log.len(), limited, BREVO_PAGE, BREVO_BATCH, BREVO_RPS)
        }
        Provider::CleverReach => {
            let log = cr.requests();
            let reads = log.iter().filter(|r| r.method == "GET" && r.path.ends_with("/receivers")).count();
            let limited = log.iter().filter(|r| r.status == 429).count();
            (reads, cr.mutating_calls(), log.len(), limited, CLEVERREACH_PAGE, CLEVERREACH_BATCH, CLEVERREACH_RPS)
        }
    };
    let members = n + changes;
    let read_bound = members.div_ceil(page);
    let write_bound = (finished.counts.esp_operations as usize).div_ceil(batch);
    Figures {
        list_reads: reads,
        esp_writes: writes_made,
        other_calls: total - reads - writes_made,
        rate_limited,
        read_bound,
        write_bound,
        store_requests: store_writes.requests - writes.requests,
        store_items: store_writes.items - writes.items,
        peak_heap,
        run_time,
        rate_floor: Duration::from_secs_f64(total as f64 / rps),
        invocations,
        inputs: finished.counts.inputs,
        held,
    }
}

/// A whole run, the connector answering its export.
async fn run_to_end(
    reconciler: &Reconciler,
    store: &MemoryStore,
    tenant: &TenantId,
    link: &Link,
    assignments: &[Assignment],
) {
    let waiting = reconciler.run(tenant, &link.id, Budget::default()).await.expect("the run starts");
    assert!(matches!(waiting, RunOutcome::Waiting(_)), "{waiting:?}");
    answer_export(store, tenant, assignments).await;
    loop {
        match reconciler.run(tenant, &link.id, Budget::default()).await.expect("the run goes on") {
            RunOutcome::Finished(_) => return,
            RunOutcome::Continue(_) => {}
            other => panic!("{other:?}"),
        }
    }
}

/// The connector's answer to the export: the snapshot in pages of 200 (the contract's most), then the result.
async fn answer_export(store: &MemoryStore, tenant: &TenantId, assignments: &[Assignment]) {
    let feed = store.commands(tenant, 0, 100).await.expect("feed");
    let export = feed
        .iter()
        .rev()
        .find_map(|(_, c)| match c {
            OptigemCommand::ExportNewsletter { id, .. } => Some(id.clone()),
            _ => None,
        })
        .expect("an export");
    let pages: Vec<&[Assignment]> = assignments.chunks(200).collect();
    for (k, page) in pages.iter().enumerate() {
        let body = serde_json::json!({"newsletter": "NL-1", "last": k + 1 == pages.len(), "assignments": page});
        let body = serde_json::to_vec(&body).expect("json");
        optisync_app::optigem::accept_snapshot_page(store, store, tenant, &export, k as u32 + 1, &body, Utc::now())
            .await
            .expect("page");
    }
    store.record_result(tenant, &export, &CommandResult::done()).await.expect("result");
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = match std::env::args().nth(1) {
        Some(s) => s.split(',').map(|n| n.parse().expect("sizes: 10000,100000")).collect(),
        None => vec![10_000, 100_000],
    };
    println!("The first run after linking in step (no run state yet):\n");
    table(&sizes, &[Provider::Brevo, Provider::CleverReach], Measured::First).await;
    println!("\nThe next scheduled run, 6 h after a complete one (R-E7):\n");
    table(&sizes, &[Provider::Brevo], Measured::Next).await;
}

async fn table(sizes: &[usize], providers: &[Provider], measured: Measured) {
    println!(
        "| provider | recipients | changed | list reads (bound) | ESP writes (bound) | other calls | 429 answers (all calls) | inputs | store writes (items) | peak heap | run time | rate-limit floor | invocations | held by the guard |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for &provider in providers {
        for &n in sizes {
            for changed in [false, true] {
                let f = scenario(provider, n, changed, measured).await;
                println!(
                    "| {provider} | {n} | {} | {} ({}) | {} ({}) | {} | {} | {} | {} ({}) | {:.1} MB | {:.1} s | {:.1} s | {} | {} |",
                    if changed { "1 %" } else { "0 %" },
                    f.list_reads,
                    f.read_bound,
                    f.esp_writes,
                    f.write_bound,
                    f.other_calls,
                    f.rate_limited,
                    f.inputs,
                    f.store_requests,
                    f.store_items,
                    f.peak_heap as f64 / 1e6,
                    f.run_time.as_secs_f64(),
                    f.rate_floor.as_secs_f64(),
                    f.invocations,
                    if f.held { "yes" } else { "no" },
                );
            }
        }
    }
}
