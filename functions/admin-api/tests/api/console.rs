//! The admin console through its handler: sign-in (the local token, and Cognito's hosted sign-in against
//! the fake user pool), sessions, CSRF and origin checks, roles, tenants apart (R-K1), and the pages over
//! the same use cases as the API. `tests/browser` drives the same pages in a real Chromium.

use super::*;
use admin_api::console::cognito::CognitoConfig;
use admin_api::console::{Console, SignInMethod};
use optisync_fakes::cognito::{FakeCognito, FakeUser};
use std::collections::HashMap;
use std::sync::Mutex;

const ORIGIN: &str = "https://sync.example.org";

/// A browser of one user: its cookie jar, requests with the headers a browser sends.
struct Browser {
    deps: Deps,
    jar: Mutex<HashMap<String, String>>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
    headers: lambda_http::http::HeaderMap,
}

impl Browser {
    fn new(api: &Api, console: Console) -> Self {
        Self { deps: api.deps.clone().with_console(console), jar: Mutex::new(HashMap::new()) }
    }

    fn local(api: &Api) -> Self {
        Self::new(api, Console::local(TOKEN))
    }

    async fn send(&self, method: &str, path: &str, form: Option<&[(&str, &str)]>, origin: Option<&str>) -> Page {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(format!("{ORIGIN}{path}"))
            .header("host", "sync.example.org");
        let cookies: Vec<String> = self.jar.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !cookies.is_empty() {
            builder = builder.header("cookie", cookies.join("; "));
        }
        let body = match form {
            Some(fields) => {
                builder = builder.header("content-type", "application/x-www-form-urlencoded");
                if let Some(o) = origin {
                    builder = builder.header("origin", o);
                }
                Body::Text(url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish())
            }
            None => Body::Empty,
        };
        let response = handle(&self.deps, builder.body(body).unwrap()).await;
        for value in response.headers().get_all("set-cookie") {
            let value = value.to_str().unwrap();
            let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
            let (name, v) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.jar.lock().unwrap().remove(name);
            } else {
                self.jar.lock().unwrap().insert(name.to_owned(), v.to_owned());
            }
        }
        let status = response.status().as_u16();
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        let headers = response.headers().clone();
        let body = String::from_utf8(response.body().as_ref().to_vec()).unwrap();
        Page { status, location, body, headers }
    }

    async fn get(&self, path: &str) -> Page {
        self.send("GET", path, None, None).await
    }

    /// A form post from this site, with the session's CSRF token (taken from the last page).
    async fn post(&self, path: &str, csrf: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("csrf", csrf)];
        all.extend_from_slice(fields);
        self.send("POST", path, Some(&all), Some(ORIGIN)).await
    }

    /// Signs in with the local token form; returns the session's CSRF token.
    async fn sign_in(&self, tenant: &str, role: &str) -> String {
        let form = self.get("/console/").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = csrf_of(&form.body);
        let done = self.post("/console/sign-in", &csrf, &[("tenant", tenant), ("token", TOKEN), ("role", role)]).await;
        assert_eq!((done.status, done.location.as_deref()), (303, Some(format!("/console/t/{tenant}/").as_str())));
        csrf_of(&self.get(&format!("/console/t/{tenant}/accounts")).await.body)
    }

    fn has_session(&self) -> bool {
        self.jar.lock().unwrap().contains_key("__Host-optisync-session")
    }
}

fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a form with a CSRF token");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn the_local_console_signs_in_by_the_admin_token_with_a_host_only_http_only_cookie() {
    let api = Api::start().await;
    let browser = Browser::local(&api);
    let root = browser.get("/").await;
    assert_eq!((root.status, root.location.as_deref()), (303, Some("/console/")));
    let form = browser.get("/console/").await;
    assert!(form.body.contains("Anmeldung") && form.body.contains("Admin-Token"), "German first: {}", form.body);
    let csp = form.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"), "no script at all: {csp}");
    let csrf = csrf_of(&form.body);

    let wrong =
        browser.post("/console/sign-in", &csrf, &[("tenant", TENANT), ("token", "wrong"), ("role", "admin")]).await;
    assert_eq!(wrong.status, 401);
    assert!(!browser.has_session());

    let form = browser.get("/console/").await;
    let csrf = csrf_of(&form.body);
    let fields = [("csrf", csrf.as_str()), ("tenant", TENANT), ("token", TOKEN), ("role", "admin")];
    let right = browser.send("POST", "/console/sign-in", Some(&fields), Some(ORIGIN)).await;
    assert_eq!(right.status, 303);
    let cookie = right
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-optisync-session="))
        .expect("a session cookie");
    assert!(cookie.ends_with("; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=28800"), "{cookie}");
    let overview = browser.get(&format!("/console/t/{TENANT}/")).await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(overview.body.contains("Noch keine Verknüpfung"), "{}", overview.body);
}

#[tokio::test]
async fn a_session_cookie_changed_by_hand_or_expired_is_no_session() {
    let api = Api::start_with(Arc::new(FixedClock::new(chrono::Utc::now()))).await;
    let browser = Browser::local(&api);
    browser.sign_in(TENANT, "approver").await;
    let cookie = browser.jar.lock().unwrap()["__Host-optisync-session"].clone();
    let (body, mac) = cookie.split_once('.').unwrap();
    let forged = format!("{}A.{mac}", &body[..body.len() - 1]);
    browser.jar.lock().unwrap().insert("__Host-optisync-session".into(), forged);
    let page = browser.get(&format!("/console/t/{TENANT}/")).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/console/")));
}

#[tokio::test]
async fn a_session_expires_after_eight_hours() {
    let clock = Arc::new(FixedClock::new(chrono::Utc::now()));
    let api = Api::start_with(clock.clone()).await;
    let browser = Browser::local(&api);
    browser.sign_in(TENANT, "admin").await;
    assert_eq!(browser.get(&format!("/console/t/{TENANT}/")).await.status, 200);
    clock.set(clock.now() + chrono::Duration::hours(8));
    let page = browser.get(&format!("/console/t/{TENANT}/")).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/console/")));
}

#[tokio::test]
async fn form_posts_without_the_csrf_token_or_from_another_site_are_refused_and_change_nothing() {
    let api = Api::start().await;
    let browser = Browser::local(&api);
    let csrf = browser.sign_in(TENANT, "admin").await;
    let path = format!("/console/t/{TENANT}/accounts/brevo");
    let key = api.brevo.api_key().to_owned();
    let fields = [("account", "brevo-main"), ("api_key", key.as_str())];
    for (token, origin) in [("", Some(ORIGIN)), ("forged", Some(ORIGIN)), (csrf.as_str(), Some("https://evil.example"))]
    {
        let mut all = vec![("csrf", token)];
        all.extend_from_slice(&fields);
        let page = browser.send("POST", &path, Some(&all), origin).await;
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(page.body.contains("Das Formular wurde abgelehnt"), "{}", page.body);
    }
    let no_token = browser.send("POST", &path, Some(&fields), Some(ORIGIN)).await;
    assert_eq!(no_token.status, 403);
    assert!(api.store.accounts(&TenantId::new(TENANT)).await.unwrap().is_empty(), "nothing was connected");

    let page = browser.post(&path, &csrf, &fields).await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (303, Some(format!("/console/t/{TENANT}/accounts?done=connected").as_str()))
    );
    assert_eq!(api.store.accounts(&TenantId::new(TENANT)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn r_k1_another_tenants_pages_are_404_whatever_the_path() {
    let api = Api::start().await;
    api.brevo_link("rundbrief-brevo").await;
    let browser = Browser::local(&api);
    let csrf = browser.sign_in("gemeinde-2", "admin").await;
    for path in ["/", "/accounts", "/links/rundbrief-brevo", "/links/rundbrief-brevo/approvals", "/people"] {
        let page = browser.get(&format!("/console/t/{TENANT}{path}")).await;
        assert_eq!(page.status, 404, "{path}");
    }
    let page = browser.post(&format!("/console/t/{TENANT}/links/rundbrief-brevo/unlink"), &csrf, &[]).await;
    assert_eq!(page.status, 404);
    // Its own tenant has no such link either: the same id of another tenant is not found.
    assert_eq!(browser.get("/console/t/gemeinde-2/links/rundbrief-brevo").await.status, 404);
}

#[tokio::test]
async fn an_approver_sees_the_queue_and_the_lookup_but_not_the_link_settings() {
    let api = Api::start().await;
    api.brevo_link("rundbrief-brevo").await;
    let browser = Browser::local(&api);
    let csrf = browser.sign_in(TENANT, "approver").await;
    let base = format!("/console/t/{TENANT}");
    for path in ["/links/rundbrief-brevo", "/links/new", "/accounts", "/links/rundbrief-brevo/runs"] {
        let page = browser.get(&format!("{base}{path}")).await;
        assert_eq!(page.status, 403, "{path}");
        assert!(page.body.contains("Rolle „Freigabe“"), "{}", page.body);
    }
    let page = browser.post(&format!("{base}/links/rundbrief-brevo/unlink"), &csrf, &[]).await;
    assert_eq!(page.status, 403);
    assert_eq!(
        api.store.link(&TenantId::new(TENANT), &LinkId::new("rundbrief-brevo")).await.unwrap().unwrap().status,
        LinkStatus::NotLinked
    );
    for path in ["/", "/links/rundbrief-brevo/approvals", "/people"] {
        assert_eq!(browser.get(&format!("{base}{path}")).await.status, 200, "{path}");
    }
    let overview = browser.get(&format!("{base}/")).await.body;
    assert!(!overview.contains("/accounts") && !overview.contains("/links/new"), "no admin navigation");
}

#[tokio::test]
async fn a_new_brevo_link_is_made_in_two_steps_and_its_preview_is_started() {
    let api = Api::start().await;
    api.connect_brevo().await;
    let list = api.brevo.add_list("Rundbrief");
    let browser = Browser::local(&api);
    let csrf = browser.sign_in(TENANT, "admin").await;
    let base = format!("/console/t/{TENANT}");
    let step1 = browser.get(&format!("{base}/links/new")).await;
    assert!(step1.body.contains(r#"value="brevo:brevo-main""#), "{}", step1.body);
    let step2 = browser
        .get(&format!("{base}/links/new?id=rundbrief-brevo&newsletter=rundbrief&account=brevo:brevo-main"))
        .await;
    assert_eq!(step2.status, 200, "{}", step2.body);
    assert!(step2.body.contains("Rundbrief") && step2.body.contains("Weitere Datenfelder"), "{}", step2.body);
    assert!(step2.body.contains("Datenschutz-Bereich „E-Mail“"), "the seed's warning: {}", step2.body);

    let list = list.to_string();
    let saved = browser
        .post(
            &format!("{base}/links/rundbrief-brevo"),
            &csrf,
            &[
                ("newsletter", "rundbrief"),
                ("provider", "brevo"),
                ("account", "brevo-main"),
                ("list", &list),
                ("map_first_name", "FIRSTNAME"),
                ("map_last_name", "LASTNAME"),
                ("blocks", ""),
                ("privacy", ""),
                ("unsubscribe_mode", "classic"),
                ("action", "preview"),
            ],
        )
        .await;
    assert_eq!(
        (saved.status, saved.location.as_deref()),
        (303, Some(format!("{base}/links/rundbrief-brevo/preview").as_str())),
        "{}",
        saved.body
    );
    let link = api.store.link(&TenantId::new(TENANT), &LinkId::new("rundbrief-brevo")).await.unwrap().unwrap();
    assert_eq!(link.settings.mapping.first_name.as_ref().map(|a| a.as_str()), Some("FIRSTNAME"));
    assert_eq!(link.status, LinkStatus::NotLinked, "a preview changes nothing at the ESP");
    assert!(api.bus.drain().iter().any(|e| matches!(e, BusEvent::ReconcileLink { .. })), "the dry run was announced");
    let preview = browser.get(&format!("{base}/links/rundbrief-brevo/preview")).await;
    assert_eq!(preview.status, 200);
    assert!(
        preview.body.contains("Die Vorschau wird erstellt") && preview.body.contains(r#"http-equiv="refresh""#),
        "{}",
        preview.body
    );

    // A mapping onto an attribute the account does not have is refused in words, naming the field.
    let refused = browser
        .post(
            &format!("{base}/links/rundbrief-brevo"),
            &csrf,
            &[
                ("newsletter", "rundbrief"),
                ("provider", "brevo"),
                ("account", "brevo-main"),
                ("list", &list),
                ("map_first_name", "VORNAME"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("Weitere Datenfelder"), "{}", refused.body);
}

#[tokio::test]
async fn r_j5_r_a1_the_lookup_says_why_max_is_not_receiving_and_no_url_holds_his_address() {
    let api = Api::start().await;
    max_on_rundbrief(&api).await;
    let browser = Browser::local(&api);
    let csrf = browser.sign_in(TENANT, "approver").await;
    let page = browser.post(&format!("/console/t/{TENANT}/people"), &csrf, &[("email", "max@example.org")]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Der Endemonat 2024-04 ist vorbei."), "the reason in words: {}", page.body);
    for attribute in ["href=\"", "action=\""] {
        for part in page.body.split(attribute).skip(1) {
            let url = &part[..part.find('"').unwrap()];
            assert!(!url.contains("max") && !url.contains("%40"), "an address in a URL: {url}");
        }
    }
    // An approver exports but does not erase.
    assert!(!page.body.contains("/people/erase"));
    let export =
        browser.post(&format!("/console/t/{TENANT}/people/export"), &csrf, &[("email", "max@example.org")]).await;
    assert_eq!(export.status, 200);
    assert!(export.headers["content-disposition"].to_str().unwrap().starts_with("attachment"));
    assert!(export.body.contains("\"end_passed\""));
    let erase = browser
        .post(&format!("/console/t/{TENANT}/people/erase"), &csrf, &[("email", "max@example.org"), ("confirm", "yes")])
        .await;
    assert_eq!(erase.status, 403);
}

#[tokio::test]
async fn r_j7_an_erasure_from_the_console_asks_for_confirmation_first() {
    let api = Api::start().await;
    max_on_rundbrief(&api).await;
    let browser = Browser::local(&api);
    let csrf = browser.sign_in(TENANT, "admin").await;
    let path = format!("/console/t/{TENANT}/people/erase");
    let ask = browser.post(&path, &csrf, &[("email", "max@example.org")]).await;
    assert_eq!(ask.status, 200);
    assert!(
        ask.body.contains("Endgültig löschen") && ask.body.contains(r#"name="confirm" value="yes""#),
        "{}",
        ask.body
    );
    let email = Email::parse("max@example.org").unwrap();
    let still = api
        .store
        .load(
            &api.store.link(&TenantId::new(TENANT), &LinkId::new("rundbrief-brevo")).await.unwrap().unwrap(),
            &optisync_ports::Slice { emails: vec![email.clone()], ..Default::default() },
        )
        .await
        .unwrap();
    assert!(still.view.recipients.contains_key(&email), "nothing erased before the confirmation");
    let done = browser.post(&path, &csrf, &[("email", "max@example.org"), ("confirm", "yes")]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Gelöscht."), "{}", done.body);
    let lookup = api
        .call("POST", &format!("/admin/tenants/{TENANT}/subjects/lookup"), Some(json!({"email": "max@example.org"})))
        .await
        .1;
    assert_ne!(lookup["erased"], Value::Null, "{lookup}");
}

#[tokio::test]
async fn the_language_switch_keeps_the_page_and_goes_nowhere_else() {
    let api = Api::start().await;
    let browser = Browser::local(&api);
    browser.sign_in(TENANT, "admin").await;
    let back = format!("/console/t/{TENANT}/accounts");
    let switch = browser.get(&format!("/console/lang/en?back={}", urlencoding::encode(&back))).await;
    assert_eq!((switch.status, switch.location.as_deref()), (303, Some(back.as_str())));
    let page = browser.get(&back).await;
    assert!(page.body.contains("Connect Brevo") && page.body.contains(r#"lang="en""#), "{}", page.body);
    for evil in ["//evil.example/", "https://evil.example/", "/console/..//evil"] {
        let switch = browser.get(&format!("/console/lang/de?back={}", urlencoding::encode(evil))).await;
        assert_eq!(switch.location.as_deref(), Some("/console/"), "{evil}");
    }
}

#[tokio::test]
async fn the_count_report_explains_the_difference_and_the_overview_shows_it() {
    let api = Api::start().await;
    max_on_rundbrief(&api).await;
    let link = LinkId::new("rundbrief-brevo");
    let at = chrono::Utc::now() - chrono::Duration::days(10);
    let mut writes = Vec::new();
    for (id, email, reasons, listed) in [
        ("A-2", "erika@example.org", vec![], true),
        (
            "A-3",
            "paul@example.org",
            vec![rules::InactiveReason::DeliveryBlocked { kind: DeliveryBlockType::new("Postsperre") }],
            false,
        ),
    ] {
        let snapshot = optisync_testkit::build::assignment(id, "rundbrief", email, at);
        let email = Email::parse(email).unwrap();
        let entry = mirror_entry(snapshot, &email, reasons, at);
        writes.push((StateWrite::Mirror { link: link.clone(), entry: Box::new(entry) }, None));
        let state = RecipientState { listed, active: listed, linked: true, ..Default::default() };
        writes.push((StateWrite::Recipient { link: link.clone(), email, state }, None));
    }
    api.store.commit(&TenantId::new(TENANT), Commit { writes, ..Commit::default() }).await.unwrap();
    let (status, counts) =
        api.call("GET", &format!("/admin/tenants/{TENANT}/links/rundbrief-brevo/counts"), None).await;
    assert_eq!(status, 200, "{counts}");
    // A-1 ended (April 2024) is not OPTIGEM's active; A-2 syncs; A-3 is blocked. Max is still listed.
    assert_eq!(counts["optigem_active"], 2, "{counts}");
    assert_eq!(counts["syncing"], 1, "{counts}");
    assert_eq!(counts["inactive"]["delivery_blocked"], 1, "{counts}");
    assert_eq!(counts["receiving"], 2, "{counts}");
    assert_eq!(counts["complete"], true);

    let browser = Browser::local(&api);
    browser.sign_in(TENANT, "admin").await;
    let overview = browser.get(&format!("/console/t/{TENANT}/")).await.body;
    assert!(overview.contains("inaktiv wegen: Liefersperre"), "{overview}");
    assert!(overview.contains("Zählung OPTIGEM / Liste: 2 / 2"), "{overview}");
}

fn cognito_console(fake: &FakeCognito) -> Console {
    Console::new(SignInMethod::Cognito(CognitoConfig {
        domain: fake.base_url().to_owned(),
        client_id: "console-client".into(),
        issuer: fake.issuer().to_owned(),
        redirect_uri: format!("{ORIGIN}/console/callback"),
    }))
}

/// Follows the console's redirect to the fake hosted sign-in; returns the callback path it sends back.
async fn hosted_sign_in(location: &str) -> String {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = http.get(location).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303, "{}", response.text().await.unwrap());
    let back = response.headers()["location"].to_str().unwrap().to_owned();
    back.strip_prefix(ORIGIN).expect("back to the console").to_owned()
}

#[tokio::test]
async fn cognito_sign_in_uses_the_code_with_pkce_once_and_takes_tenant_and_role_from_the_user() {
    let fake = FakeCognito::start().await;
    let api = Api::start().await;
    let browser = Browser::new(&api, cognito_console(&fake));
    fake.sign_in_as(FakeUser {
        sub: "u-1".into(),
        groups: vec!["optisync-approver".into()],
        tenant: Some(TENANT.into()),
    });
    let start = browser.get("/console/sign-in").await;
    assert_eq!(start.status, 303);
    let location = start.location.unwrap();
    assert!(location.starts_with(fake.base_url()) && location.contains("code_challenge_method=S256"), "{location}");
    let callback = hosted_sign_in(&location).await;
    let done = browser.get(&callback).await;
    assert_eq!(
        (done.status, done.location.as_deref()),
        (303, Some(format!("/console/t/{TENANT}/").as_str())),
        "{}",
        done.body
    );
    assert!(browser.has_session());
    assert_eq!(browser.get(&format!("/console/t/{TENANT}/accounts")).await.status, 403, "an approver");
    assert_eq!(fake.exchanges(), 1);

    // The same code again (a replayed callback) is refused: the sign-in cookie is gone, and so is the code.
    let other = Browser::new(&api, cognito_console(&fake));
    let replay = other.get(&callback).await;
    assert_eq!(replay.status, 401);
    assert!(!other.has_session());
}

#[tokio::test]
async fn cognito_sign_in_refuses_another_state_and_users_without_group_or_tenant() {
    let fake = FakeCognito::start().await;
    let api = Api::start().await;
    let browser = Browser::new(&api, cognito_console(&fake));
    fake.sign_in_as(FakeUser { sub: "u-2".into(), groups: vec!["optisync-admin".into()], tenant: Some(TENANT.into()) });
    let location = browser.get("/console/sign-in").await.location.unwrap();
    let callback = hosted_sign_in(&location).await;
    let forged = callback.replace("state=", "state=x");
    assert_eq!(browser.get(&forged).await.status, 401);
    assert!(!browser.has_session());

    for user in [
        FakeUser { sub: "u-3".into(), groups: vec![], tenant: Some(TENANT.into()) },
        FakeUser { sub: "u-4".into(), groups: vec!["optisync-admin".into()], tenant: None },
    ] {
        fake.sign_in_as(user);
        let location = browser.get("/console/sign-in").await.location.unwrap();
        let page = browser.get(&hosted_sign_in(&location).await).await;
        assert_eq!(page.status, 401, "{}", page.body);
        assert!(page.body.contains("keiner optisync-Gruppe"), "{}", page.body);
        assert!(!browser.has_session());
    }
}

#[tokio::test]
async fn r_a10_saving_a_syncing_links_privacy_categories_leads_to_the_settings_runs_preview() {
    let api = Api::start().await;
    let list = api.brevo_link("rundbrief-brevo").await.to_string();
    let tenant = TenantId::new(TENANT);
    let link = api.store.link(&tenant, &LinkId::new("rundbrief-brevo")).await.unwrap().unwrap();
    api.store.put_link(&Link { status: LinkStatus::Linked, ..link }).await.unwrap();
    let browser = Browser::local(&api);
    let csrf = browser.sign_in(TENANT, "admin").await;
    let base = format!("/console/t/{TENANT}/links/rundbrief-brevo");
    let form = browser.get(&base).await;
    assert!(
        form.body.contains(r#"name="list-shown""#) && form.body.contains("disabled"),
        "the list stays: {}",
        form.body
    );
    assert!(!form.body.contains(">Vorschau</button>"), "a syncing link saves; its settings run previews");
    let saved = browser
        .post(
            &base,
            &csrf,
            &[
                ("newsletter", "rundbrief"),
                ("provider", "brevo"),
                ("account", "brevo-main"),
                ("list", &list),
                ("privacy", "E-Mail"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(
        (saved.status, saved.location.as_deref()),
        (303, Some(format!("{base}/preview?done=saved").as_str())),
        "{}",
        saved.body
    );
    let saved_link = api.store.link(&tenant, &LinkId::new("rundbrief-brevo")).await.unwrap().unwrap();
    assert!(saved_link.settings.relevant_privacy.contains(&PrivacyCategory::new("E-Mail")));
    assert!(
        api.bus.drain().iter().any(|e| matches!(e, BusEvent::ReconcileLink { .. })),
        "the settings run was announced"
    );
    let page = browser.get(&format!("{base}/preview?done=saved")).await;
    assert!(
        page.body.contains("werden auf alle Zuordnungen angewandt") && page.body.contains(r#"http-equiv="refresh""#),
        "{}",
        page.body
    );
    assert!(!page.body.contains("Vorschau erstellen"), "no first-sync dry run for a syncing link");
}
