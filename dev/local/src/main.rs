//! The local runner: `cargo run -p optisync-local`. Every HTTP function on one local server with the HTTP
//! API's routes, the worker and the reconciler fed from an in-process bus, the scheduler on a timer, state
//! in one file (the embedded store) that survives restarts. Unless real endpoints are configured, it also
//! starts the fake Brevo and CleverReach and a simulated OPTIGEM whose connector syncs every few seconds.
//!
//! Configuration comes from the environment; the README's "Configuration" section lists every variable
//! (address, state file, admin token, tick, the simulated OPTIGEM, real or fake ESP endpoints, metrics).
//! The fakes and the simulated OPTIGEM live in memory and start empty (but for the fake Brevo's list
//! "Rundbrief") at every start, while optisync's own state stays in the state file.

use optisync_app::admin::AdminConfig;
use optisync_app::reconcile::Guard;
use optisync_connector::signature::SigningSecret;
use optisync_domain::TenantId;
use optisync_embedded::EmbeddedStore;
use optisync_esp::{EspRouter, EspSettings};
use optisync_local::{HttpFunctions, LocalBus, lambda_event, router};
use optisync_ports::names::secret;
use optisync_ports::{BusEvent, Clock, SecretStore, SystemClock};
use std::sync::Arc;
use std::time::Duration;

fn var(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    lambda_http::tracing::init_default_subscriber();
    if let Ok(secs) = std::env::var("OPTISYNC_METRICS_SECS") {
        let every = Duration::from_secs(secs.parse().map_err(|_| "OPTISYNC_METRICS_SECS: seconds")?);
        let builder = metrics_cloudwatch_embedded::Builder::new().with_auto_flush_interval(every);
        optisync_lambda::telemetry::collector(builder, optisync_lambda::telemetry::DEFAULT_NAMESPACE)
            .map_err(|e| e.to_string())?;
    }
    let addr = var("OPTISYNC_ADDR", "127.0.0.1:8080");
    let data = var("OPTISYNC_DATA", "target/optisync-local/state.redb");
    let token = var("OPTISYNC_ADMIN_TOKEN", "local-admin-token");
    let tick = Duration::from_secs(var("OPTISYNC_TICK_SECS", "60").parse().map_err(|_| "OPTISYNC_TICK_SECS: seconds")?);
    if let Some(dir) = std::path::Path::new(&data).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let api = format!("http://{}", listener.local_addr()?);
    let public = var("OPTISYNC_PUBLIC_URL", &api);

    // R-J6: the store dates and checks expiries by its own clock; OPTISYNC_RETENTION_SPEED makes that one
    // run faster (measurements of the state file's growth only; everything else keeps real time).
    let retention_speed: f64 =
        var("OPTISYNC_RETENTION_SPEED", "1").parse().map_err(|_| "OPTISYNC_RETENTION_SPEED: a factor")?;
    let store = EmbeddedStore::open(&data)?;
    let store = Arc::new(if retention_speed == 1.0 {
        store
    } else {
        store.with_clock(Arc::new(optisync_local::FastClock::new(retention_speed)))
    });
    let secrets: Arc<dyn SecretStore> = store.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let bus = Arc::new(LocalBus::new());

    // The ESPs: the real ones when configured, else the fakes.
    if let Ok(client_secret) = std::env::var("CLEVERREACH_CLIENT_SECRET") {
        secrets.put(secret::CLEVERREACH_CLIENT_SECRET, &client_secret).await?;
    }
    let mut settings = EspSettings::from_env(secrets.as_ref()).await?;
    let fake_brevo = if std::env::var("BREVO_BASE_URL").is_err() {
        let port = var("OPTISYNC_FAKE_BREVO_PORT", "8082").parse().map_err(|_| "OPTISYNC_FAKE_BREVO_PORT: a port")?;
        let fake = optisync_fakes::brevo::FakeBrevo::start_on(port).await;
        fake.add_list("Rundbrief");
        settings.brevo_base_url = fake.base_url().to_owned();
        Some(fake)
    } else {
        None
    };
    let fake_cleverreach = if std::env::var("CLEVERREACH_BASE_URL").is_err() {
        let fake = optisync_fakes::cleverreach::FakeCleverReach::start().await;
        settings.cleverreach = fake.client_config();
        Some(fake)
    } else {
        None
    };
    // CleverReach sends the admin's browser back to our callback.
    settings.cleverreach.redirect_uri = format!("{public}/oauth/cleverreach/callback");
    let esp = Arc::new(EspRouter::new(secrets.clone(), settings));

    let admin = admin_api::Deps::new(
        store.clone(),
        store.clone(),
        secrets.clone(),
        esp.clone(),
        bus.clone(),
        clock.clone(),
        AdminConfig { public_base_url: public.clone() },
        admin_api::Auth::Token(token.clone()),
    )
    // The console at http://127.0.0.1:8080/, signed in by the same admin token.
    .with_console(admin_api::console::Console::local(token.clone()));
    let functions = HttpFunctions::over(store.clone(), secrets.clone(), bus.clone(), clock.clone(), admin);
    // R-J2: no mail locally; the reports are read through the admin API.
    let notifier = Arc::new(optisync_local::CountingNotifier::default());
    let worker = worker::Deps::new(store.clone(), store.clone(), esp.clone(), esp.clone(), clock.clone())
        .with_notifier(notifier.clone());
    let mut reconciler = reconciler::Deps::new(
        store.clone(),
        store.clone(),
        esp.clone(),
        esp.clone(),
        bus.clone(),
        clock.clone(),
        Guard::default(),
    );
    // One process delivers the bus's events one after another: waiting a held run lease out (M9) would
    // stall the worker's events too. A lease left by a stopped runner runs out within RUN_LEASE, and the
    // next tick continues that run.
    reconciler.busy_wait = Duration::ZERO;
    let scheduler =
        scheduler::Deps::new(store.clone(), store.clone(), bus.clone(), clock.clone()).with_notifier(notifier);
    let due = reconciler.clone();
    let purging = store.clone();

    // The bus: inbox.ready to the worker, link.reconcile to the reconciler, as EventBridge would.
    let deliver = bus.clone();
    tokio::spawn(async move {
        loop {
            for event in deliver.take() {
                let outcome = match lambda_event(&event) {
                    Ok(e) if matches!(event, BusEvent::InboxReady { .. }) => {
                        worker::handle(&worker, e).await.map(|_| ())
                    }
                    Ok(e) => reconciler::handle(&reconciler, e).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                if let Err(e) = outcome {
                    // Lambda would retry; the scheduler's next tick re-drives what stayed pending.
                    tracing::warn!(error = %e, "event failed; the next tick retries it");
                }
            }
            tokio::select! {
                _ = deliver.published() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    });
    let due_clock = clock.clone();
    tokio::spawn(async move {
        let mut due_on = None;
        loop {
            // R-A11: the daily due tick when the Berlin date changed since the last tick.
            let today = optisync_domain::berlin_date(due_clock.now());
            if due_on != Some(today) {
                match optisync_local::due_event() {
                    Ok(event) => match reconciler::handle(&due, event).await {
                        Ok(_) => due_on = Some(today),
                        Err(e) => tracing::warn!(error = %e, "due tick failed; the next tick retries it"),
                    },
                    Err(e) => tracing::warn!(error = %e, "no due tick"),
                }
            }
            match optisync_local::scheduled_event() {
                Ok(event) => {
                    if let Err(e) = scheduler::handle(&scheduler, event).await {
                        tracing::warn!(error = %e, "scheduled tick failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "no tick"),
            }
            // R-J6: what expired leaves the file on every tick (DynamoDB's TTL does this in AWS).
            match purging.purge_expired().await {
                Ok(0) => {}
                Ok(records) => tracing::info!(records, "expired records purged"),
                Err(e) => tracing::warn!(error = %e, "purge failed; the next tick tries again"),
            }
            tokio::time::sleep(tick).await;
        }
    });

    // The simulated OPTIGEM with its connector, signing with the tenant's first secret.
    let sim_addr = var("OPTIGEM_SIM_ADDR", "127.0.0.1:8081");
    let tenant = TenantId::new(var("OPTISYNC_TENANT", "demo"));
    let mut sim_url = None;
    if sim_addr != "off" {
        let name = secret::signing_secrets(&tenant);
        let secret = match secrets.get(&name).await? {
            Some(raw) => serde_json::from_str::<Vec<String>>(&raw)?.into_iter().next().unwrap_or_default(),
            None => {
                let secret = "whsec_bG9jYWwtc2FuZGJveC1zaWduaW5nLXNlY3JldA==".to_owned();
                secrets.put(&name, &serde_json::to_string(&[&secret])?).await?;
                secret
            }
        };
        let sim = optisync_optigem_sim::SimOptigem::new(clock.now());
        let (bound, _) = optisync_optigem_sim::server::start(sim.clone(), sim_addr.parse()?).await?;
        sim_url = Some(format!("http://{bound}"));
        let connector = optisync_optigem_sim::Connector::new(&api, tenant.clone(), SigningSecret::parse(&secret)?);
        tokio::spawn(async move {
            loop {
                if let Err(e) = connector.sync(&sim).await {
                    tracing::warn!(error = %e, "connector sync failed; retrying");
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }

    println!("optisync runs locally");
    println!("  API (hooks, connector, admin)  {api}   admin token: {token}");
    println!("  admin console                  {api}/   (sign in with the admin token)");
    println!("  state                          {data}");
    if let Some(url) = &sim_url {
        println!("  simulated OPTIGEM (tenant {tenant})  {url}");
    }
    if let Some(fake) = &fake_brevo {
        println!("  fake Brevo                     {}   API key: {}", fake.base_url(), fake.api_key());
    }
    if let Some(fake) = &fake_cleverreach {
        println!("  fake CleverReach               {}", fake.base_url());
    }
    axum::serve(listener, router(functions)).await?;
    Ok(())
}
