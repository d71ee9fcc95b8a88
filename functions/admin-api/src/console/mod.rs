//! The admin console: server-rendered pages for people over the same use cases as the admin API
//! ([`optisync_app::admin::Admin`]; no rule is decided here). German first, English selectable; works
//! without JavaScript (no script at all: the content security policy allows none).
//!
//! Routes (`docs/admin-console.md` lists the pages and who may see them):
//! - `GET /`: to `/console/`, which leads to the signed-in user's overview, or is the sign-in page;
//! - `GET /console/sign-in`, `GET /console/callback`: Cognito's hosted sign-in (code + PKCE) in AWS;
//!   `POST /console/sign-in`: the local runner's sign-in by the admin token;
//! - `POST /console/sign-out`, `GET /console/lang/{de|en}`, `GET /console/style.css`;
//! - `/console/t/{tenant}/…`: the pages of the session's tenant; any other tenant is a 404 (R-K1).
//!
//! Every POST carries the session's CSRF token and must not come from another origin; page URLs hold no
//! personal data (R-J5): e-mail addresses travel only in form bodies.

pub mod cognito;
pub mod pages;
pub mod session;
pub mod texts;

use crate::Deps;
use cognito::{CognitoConfig, SignInError};
use lambda_http::http::HeaderValue;
use lambda_http::{Body, Request, Response};
use maud::Markup;
use optisync_app::admin::{AdminError, DecisionRequest, LinkRequest, SubjectRequest};
use optisync_domain::{
    AccountId, AttributeName, DeliveryBlockType, EspAccount, FieldMapping, LinkId, LinkSettings, LinkStatus,
    PrivacyCategory, Provider, TenantId, UnsubscribeMode,
};
use optisync_ports::names::secret::CONSOLE_SESSION_KEY;
use optisync_ports::{SecretStore, StoreError};
use session::{LANG_COOKIE, Role, SESSION_COOKIE, SESSION_HOURS, SIGN_IN_COOKIE, Session, SignIn, Signer};
use texts::Texts;
use tokio::sync::OnceCell;

/// The largest form accepted.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// Approval entries per page.
pub const QUEUE_PAGE: usize = 25;
/// Dry-run lines a preview page shows.
pub const PREVIEW_LINES: usize = 200;
/// Deletion reports the overview shows.
pub const OVERVIEW_REPORTS: usize = 5;

/// How users sign in.
#[derive(Debug, Clone)]
pub enum SignInMethod {
    /// The local runner: the admin token, with a tenant and a role chosen in the form.
    Token(String),
    /// AWS: Cognito's hosted sign-in.
    Cognito(CognitoConfig),
}

/// The console of one process.
pub struct Console {
    method: SignInMethod,
    http: reqwest::Client,
    signer: OnceCell<Signer>,
}

impl Console {
    /// The local runner's console: sign-in by the admin token.
    pub fn local(token: impl Into<String>) -> Self {
        Self::new(SignInMethod::Token(token.into()))
    }

    /// A console signing in by `method`.
    pub fn new(method: SignInMethod) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("a client with a timeout builds");
        Self { method, http, signer: OnceCell::new() }
    }

    /// The deployed console from the environment the template sets: `CONSOLE_COGNITO_DOMAIN`,
    /// `CONSOLE_CLIENT_ID`, `CONSOLE_ISSUER`, and the public base URL the callback is under. `None` (the
    /// console answers 404) when the template made no console (no public URL or domain prefix).
    pub fn from_env(public_base_url: &str) -> Result<Option<Self>, String> {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let (domain, client_id, issuer) =
            (var("CONSOLE_COGNITO_DOMAIN"), var("CONSOLE_CLIENT_ID"), var("CONSOLE_ISSUER"));
        if domain.is_empty() || client_id.is_empty() || public_base_url.is_empty() {
            return Ok(None);
        }
        for (name, value) in [("CONSOLE_COGNITO_DOMAIN", &domain), ("CONSOLE_ISSUER", &issuer)] {
            if !value.starts_with("https://") || url::Url::parse(value).is_err() {
                return Err(format!("{name} must be an https URL"));
            }
        }
        let redirect_uri = format!("{}/console/callback", public_base_url.trim_end_matches('/'));
        Ok(Some(Self::new(SignInMethod::Cognito(CognitoConfig { domain, client_id, issuer, redirect_uri }))))
    }

    /// The key that signs cookies: read from the secret store, made there on first use.
    async fn signer(&self, secrets: &dyn SecretStore) -> Result<&Signer, StoreError> {
        self.signer
            .get_or_try_init(|| async {
                if let Some(key) = secrets.get(CONSOLE_SESSION_KEY).await? {
                    return Ok(Signer::new(key.into_bytes()));
                }
                secrets.put(CONSOLE_SESSION_KEY, &hex::encode(rand::random::<[u8; 32]>())).await?;
                // Two processes may have made one at once: use the one that was stored last.
                let key = secrets.get(CONSOLE_SESSION_KEY).await?.ok_or(StoreError::Transient("no key".into()))?;
                Ok(Signer::new(key.into_bytes()))
            })
            .await
    }

    fn form_action(&self) -> String {
        match &self.method {
            SignInMethod::Token(_) => "'self'".into(),
            SignInMethod::Cognito(c) => format!("'self' {}", c.domain),
        }
    }
}

/// What every page of a signed-in user knows.
pub struct Ctx<'a> {
    /// The catalogue of the user's language.
    pub t: &'static Texts,
    /// The session.
    pub session: &'a Session,
    /// `/console/t/{tenant}`.
    pub base: String,
    /// The page's path (for the language switch's way back).
    pub path: String,
}

struct Page {
    status: u16,
    body: Markup,
    cookies: Vec<String>,
}

fn html(console: &Console, page: Page) -> Response<Body> {
    let mut builder = Response::builder()
        .status(page.status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header(
            "content-security-policy",
            format!(
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action {}; frame-ancestors 'none'; \
                 base-uri 'none'",
                console.form_action()
            ),
        )
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "same-origin");
    for c in page.cookies {
        builder = builder.header("set-cookie", c);
    }
    builder.body(Body::Text(page.body.into_string())).expect("a status and headers always make a valid response")
}

fn redirect(to: &str, cookies: &[String]) -> Response<Body> {
    let mut builder = Response::builder().status(303).header("location", to).header("cache-control", "no-store");
    for c in cookies {
        builder = builder.header("set-cookie", c.as_str());
    }
    builder.body(Body::Empty).expect("a status and headers always make a valid response")
}

fn language(req: &Request) -> &'static Texts {
    match session::cookie(req.headers(), LANG_COOKIE).as_deref() {
        Some("en") => &texts::EN,
        _ => &texts::DE,
    }
}

/// The form fields of a POST body (`application/x-www-form-urlencoded`), or None when it is not one.
fn form(req: &Request) -> Option<Vec<(String, String)>> {
    let bytes: &[u8] = req.body().as_ref();
    let kind = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if bytes.len() > MAX_FORM_BYTES || !kind.starts_with("application/x-www-form-urlencoded") {
        return None;
    }
    Some(url::form_urlencoded::parse(bytes).into_owned().collect())
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Whether a form post comes from this site: the browser's `Sec-Fetch-Site` and `Origin` must not name
/// another one (a browser sends at least one of them with every form post).
fn same_origin(req: &Request) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (header("origin"), header("host")) {
        (Some(origin), Some(host)) => url::Url::parse(origin).ok().is_some_and(|o| {
            let authority = match o.port() {
                Some(port) => format!("{}:{port}", o.host_str().unwrap_or("")),
                None => o.host_str().unwrap_or("").to_owned(),
            };
            authority.eq_ignore_ascii_case(host)
        }),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn tokens_match(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

/// Serves a console request.
pub async fn handle(deps: &Deps, console: &Console, req: Request) -> Response<Body> {
    let t = language(&req);
    let signer = match console.signer(deps.secrets.as_ref()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "console session key unavailable");
            return busy(console, t);
        }
    };
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let now = deps.admin.now();
    let session = session::cookie(req.headers(), SESSION_COOKIE)
        .and_then(|c| signer.open::<Session>("session", &c))
        .filter(|s| s.expires > now);
    let method = req.method().as_str().to_owned();
    match (method.as_str(), segments.as_slice()) {
        ("GET", [""]) => redirect("/console/", &[]),
        ("GET", ["console"]) => match &session {
            Some(s) => redirect(&format!("/console/t/{}/", s.tenant), &[]),
            None => sign_in_page(console, signer, t, now, None),
        },
        ("GET", ["console", "style.css"]) => Response::builder()
            .status(200)
            .header("content-type", "text/css; charset=utf-8")
            .header("cache-control", "max-age=3600")
            .body(Body::Text(pages::STYLE.to_owned()))
            .expect("static response"),
        ("GET", ["console", "lang", lang @ ("de" | "en")]) => {
            let back = optisync_lambda::query(&req, "back")
                .filter(|b| b.starts_with("/console/") && !b.contains("//") && !b.contains('\\'))
                .unwrap_or_else(|| "/console/".into());
            let cookie = format!("{LANG_COOKIE}={lang}; Path=/; Secure; SameSite=Lax; Max-Age=31536000");
            redirect(&back, &[cookie])
        }
        ("GET", ["console", "sign-in"]) => match &console.method {
            SignInMethod::Cognito(cognito) => {
                let sign_in = SignIn::new(now);
                let cookie = session::host_cookie(SIGN_IN_COOKIE, &signer.seal("sign-in", &sign_in), 600);
                redirect(&cognito.authorize_url(&sign_in), &[cookie])
            }
            SignInMethod::Token(_) => redirect("/console/", &[]),
        },
        ("POST", ["console", "sign-in"]) => local_sign_in(console, signer, &req, t, now),
        ("GET", ["console", "callback"]) => callback(console, signer, &req, t, now).await,
        ("POST", ["console", "sign-out"]) => {
            let Some(s) = &session else { return redirect("/console/", &[]) };
            let ok = same_origin(&req)
                && form(&req).is_some_and(|f| field(&f, "csrf").is_some_and(|c| tokens_match(c, &s.csrf)));
            if !ok {
                return forbidden_form(console, t);
            }
            let clear = session::host_cookie(SESSION_COOKIE, "", 0);
            match &console.method {
                SignInMethod::Cognito(c) => {
                    let back = c.redirect_uri.trim_end_matches("/callback").to_owned();
                    redirect(&c.logout_url(&back), &[clear])
                }
                SignInMethod::Token(_) => redirect("/console/", &[clear]),
            }
        }
        (_, ["console", "t", tenant, rest @ ..]) => {
            let Some(session) = session else { return redirect("/console/", &[]) };
            // R-K1: another tenant's pages do not exist for this user.
            if *tenant != session.tenant.as_str() {
                return not_found(console, t);
            }
            let ctx = Ctx { t, base: format!("/console/t/{}", session.tenant), path: path.clone(), session: &session };
            let posted = if method == "POST" {
                let Some(f) = form(&req) else { return bad_form(console, &ctx) };
                if !same_origin(&req) || !field(&f, "csrf").is_some_and(|c| tokens_match(c, &session.csrf)) {
                    return forbidden_form(console, t);
                }
                Some(f)
            } else {
                None
            };
            tenant_page(deps, console, &ctx, &req, &method, rest, posted.as_deref()).await
        }
        _ => not_found(console, t),
    }
}

fn sign_in_page(
    console: &Console,
    signer: &Signer,
    t: &'static Texts,
    now: chrono::DateTime<chrono::Utc>,
    problem: Option<&str>,
) -> Response<Body> {
    match &console.method {
        SignInMethod::Token(_) => {
            // The form's CSRF token travels in a sign-in cookie of its own (there is no session yet).
            let sign_in = SignIn::new(now);
            let cookie = session::host_cookie(SIGN_IN_COOKIE, &signer.seal("sign-in", &sign_in), 600);
            let body = pages::sign_in(t, Some(&sign_in.state), problem);
            html(console, Page { status: if problem.is_some() { 401 } else { 200 }, body, cookies: vec![cookie] })
        }
        SignInMethod::Cognito(_) => html(
            console,
            Page {
                status: if problem.is_some() { 401 } else { 200 },
                body: pages::sign_in(t, None, problem),
                cookies: vec![],
            },
        ),
    }
}

fn start_session(
    signer: &Signer,
    tenant: TenantId,
    role: Role,
    sub: String,
    now: chrono::DateTime<chrono::Utc>,
) -> Response<Body> {
    let session = Session {
        tenant: tenant.clone(),
        role,
        sub,
        csrf: session::random_token(),
        expires: now + chrono::Duration::hours(SESSION_HOURS),
    };
    let cookie = session::host_cookie(SESSION_COOKIE, &signer.seal("session", &session), SESSION_HOURS * 3600);
    let clear = session::host_cookie(SIGN_IN_COOKIE, "", 0);
    redirect(&format!("/console/t/{tenant}/"), &[cookie, clear])
}

/// The sign-in under way in this browser, if its cookie is genuine and not expired.
fn pending_sign_in(signer: &Signer, req: &Request, now: chrono::DateTime<chrono::Utc>) -> Option<SignIn> {
    session::cookie(req.headers(), SIGN_IN_COOKIE)
        .and_then(|c| signer.open::<SignIn>("sign-in", &c))
        .filter(|s| s.expires > now)
}

fn local_sign_in(
    console: &Console,
    signer: &Signer,
    req: &Request,
    t: &'static Texts,
    now: chrono::DateTime<chrono::Utc>,
) -> Response<Body> {
    let SignInMethod::Token(token) = &console.method else { return not_found(console, t) };
    let pending = pending_sign_in(signer, req, now);
    let Some(f) = form(req) else { return sign_in_page(console, signer, t, now, Some(t.sign_in_failed)) };
    let csrf_ok = pending.is_some_and(|p| field(&f, "csrf").is_some_and(|c| tokens_match(c, &p.state)));
    if !same_origin(req) || !csrf_ok {
        return forbidden_form(console, t);
    }
    let token_ok = field(&f, "token").is_some_and(|given| tokens_match(given, token));
    let tenant = field(&f, "tenant").and_then(|v| TenantId::parse(v.trim()).ok());
    let role = match field(&f, "role") {
        Some("approver") => Role::Approver,
        _ => Role::Admin,
    };
    match (token_ok, tenant) {
        (true, Some(tenant)) => start_session(signer, tenant, role, "local".into(), now),
        _ => sign_in_page(console, signer, t, now, Some(t.sign_in_failed)),
    }
}

async fn callback(
    console: &Console,
    signer: &Signer,
    req: &Request,
    t: &'static Texts,
    now: chrono::DateTime<chrono::Utc>,
) -> Response<Body> {
    let SignInMethod::Cognito(cognito) = &console.method else { return not_found(console, t) };
    let pending = pending_sign_in(signer, req, now);
    let (Some(code), Some(state), Some(pending)) =
        (optisync_lambda::query(req, "code"), optisync_lambda::query(req, "state"), pending)
    else {
        return sign_in_page(console, signer, t, now, Some(t.sign_in_failed));
    };
    if !tokens_match(&state, &pending.state) {
        return sign_in_page(console, signer, t, now, Some(t.sign_in_failed));
    }
    match cognito.exchange(&console.http, &code, &pending, now).await {
        Ok(id) => start_session(signer, id.tenant, id.role, id.sub, now),
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in refused");
            let problem = match e {
                SignInError::NoRole | SignInError::NoTenant => t.sign_in_no_role,
                _ => t.sign_in_failed,
            };
            sign_in_page(console, signer, t, now, Some(problem))
        }
    }
}

fn simple(console: &Console, t: &'static Texts, status: u16, title: &str, message: &str) -> Response<Body> {
    html(console, Page { status, body: pages::refusal(None, t, title, message, &[]), cookies: vec![] })
}

fn not_found(console: &Console, t: &'static Texts) -> Response<Body> {
    simple(console, t, 404, t.not_found_title, t.not_found)
}

fn forbidden_form(console: &Console, t: &'static Texts) -> Response<Body> {
    simple(console, t, 403, t.refused_title, t.csrf_refused)
}

fn busy(console: &Console, t: &'static Texts) -> Response<Body> {
    let mut response = simple(console, t, 429, t.busy_title, t.busy);
    response.headers_mut().insert("retry-after", HeaderValue::from_static("5"));
    response
}

fn bad_form(console: &Console, ctx: &Ctx) -> Response<Body> {
    html(
        console,
        Page {
            status: 400,
            body: pages::refusal(Some(ctx), ctx.t, ctx.t.refused_title, ctx.t.bad_form, &[]),
            cookies: vec![],
        },
    )
}

/// The page for a refused use case, in words.
fn refused(console: &Console, ctx: &Ctx, e: &AdminError) -> Response<Body> {
    let t = ctx.t;
    let (status, message, fields): (u16, String, Vec<(String, String)>) = match e {
        AdminError::Invalid(problems) => {
            (422, t.invalid.into(), problems.iter().map(|p| (p.field.clone(), p.problem.clone())).collect())
        }
        AdminError::NotFound(_) => return not_found(console, t),
        AdminError::Conflict(why) => (409, format!("{}: {why}", t.conflict), vec![]),
        AdminError::EspBusy { .. } | AdminError::Store(StoreError::Transient(_)) => return busy(console, t),
        AdminError::EspRefused(_) => (502, t.esp_refused.into(), vec![]),
        AdminError::Store(StoreError::Conflict) => (409, t.changed_meanwhile.into(), vec![]),
        AdminError::Store(StoreError::Permanent(e)) => {
            tracing::error!(error = %e, "store failure");
            (500, t.internal.into(), vec![])
        }
    };
    html(
        console,
        Page { status, body: pages::refusal(Some(ctx), t, t.refused_title, &message, &fields), cookies: vec![] },
    )
}

fn ok(console: &Console, body: Markup) -> Response<Body> {
    html(console, Page { status: 200, body, cookies: vec![] })
}

/// The pages an approver may open: the overview (the queues), the queues themselves, the person lookup.
fn approver_may(method: &str, rest: &[&str]) -> bool {
    matches!(
        (method, rest),
        ("GET", [] | [""])
            | ("GET" | "POST", ["links", _, "approvals"])
            | ("POST", ["links", _, "approvals", "page"])
            | ("GET" | "POST", ["people"])
            | ("POST", ["people", "export"])
    )
}

async fn tenant_page(
    deps: &Deps,
    console: &Console,
    ctx: &Ctx<'_>,
    req: &Request,
    method: &str,
    rest: &[&str],
    form: Option<&[(String, String)]>,
) -> Response<Body> {
    if ctx.session.role == Role::Approver && !approver_may(method, rest) {
        return html(
            console,
            Page {
                status: 403,
                body: pages::refusal(Some(ctx), ctx.t, ctx.t.refused_title, ctx.t.approver_refused, &[]),
                cookies: vec![],
            },
        );
    }
    let admin = &deps.admin;
    let tenant = &ctx.session.tenant;
    let done = optisync_lambda::query(req, "done");
    let done = done.as_deref();
    let f = form.unwrap_or(&[]);
    let back = |page: &str, code: &str| redirect(&format!("{}/{page}?done={code}", ctx.base), &[]);
    macro_rules! tri {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return refused(console, ctx, &e),
            }
        };
    }
    match (method, rest) {
        ("GET", [] | [""]) => {
            let links = tri!(admin.links(tenant).await);
            let mut rows = Vec::with_capacity(links.len());
            for link in links {
                let status = tri!(admin.status(tenant, &link.id).await);
                let counts = tri!(admin.count_report(tenant, &link.id).await);
                let oldest =
                    tri!(admin.approvals(tenant, &link.id, None, 1).await).entries.first().map(|v| v.entry.first_seen);
                rows.push(pages::LinkOverview { status, counts, oldest_signup: oldest });
            }
            let reports = if ctx.session.role == Role::Admin {
                tri!(admin.erasure_reports(tenant, None, OVERVIEW_REPORTS).await).reports
            } else {
                Vec::new()
            };
            ok(console, pages::overview(ctx, &rows, &reports, done))
        }
        ("GET", ["accounts"]) => ok(console, pages::accounts(ctx, &tri!(admin.accounts(tenant).await), done)),
        ("POST", ["accounts", "brevo"]) => {
            let (account, key) = (field(f, "account").unwrap_or("").trim(), field(f, "api_key").unwrap_or(""));
            tri!(admin.connect_brevo(tenant, account, key).await);
            back("accounts", "connected")
        }
        ("POST", ["accounts", "cleverreach"]) => {
            let url = tri!(admin.start_cleverreach(tenant, field(f, "account").unwrap_or("").trim()).await);
            ok(console, pages::cleverreach_continue(ctx, &url))
        }
        ("GET", ["links", "new"]) => {
            let (id, newsletter, account) = (
                optisync_lambda::query(req, "id"),
                optisync_lambda::query(req, "newsletter"),
                optisync_lambda::query(req, "account"),
            );
            let (Some(id), Some(newsletter), Some(account)) = (id, newsletter, account) else {
                return ok(console, pages::new_link(ctx, &tri!(admin.accounts(tenant).await)));
            };
            let Some(esp) = parse_account(&account) else {
                return refused(console, ctx, &AdminError::invalid("account", ctx.t.choose_account));
            };
            let mut problems = Vec::new();
            for (name, value) in [("id", &id), ("newsletter", &newsletter)] {
                if !optisync_app::admin::valid_id(value.trim()) {
                    problems.push(optisync_app::admin::FieldProblem::new(name, optisync_app::admin::ID_GRAMMAR));
                }
            }
            if !problems.is_empty() {
                return refused(console, ctx, &AdminError::Invalid(problems));
            }
            let link_id = LinkId::new(id.trim());
            if tri!(admin.links(tenant).await).iter().any(|l| l.id == link_id) {
                return refused(console, ctx, &AdminError::Conflict(ctx.t.link_exists.into()));
            }
            let catalog = tri!(admin.catalog(tenant, &esp).await);
            ok(
                console,
                pages::link_form(
                    ctx,
                    &pages::LinkForm {
                        id: id.trim(),
                        newsletter: newsletter.trim(),
                        provider: esp.provider,
                        account: esp.account.as_str(),
                        existing: None,
                        catalog: &catalog,
                    },
                ),
            )
        }
        ("GET", ["links", link]) => {
            let link = tri!(admin.status(tenant, &LinkId::new(*link)).await).link;
            let catalog = tri!(admin.catalog(tenant, &link.esp).await);
            ok(
                console,
                pages::link_form(
                    ctx,
                    &pages::LinkForm {
                        id: link.id.as_str(),
                        newsletter: link.newsletter.as_str(),
                        provider: link.esp.provider,
                        account: link.esp.account.as_str(),
                        existing: Some(&link),
                        catalog: &catalog,
                    },
                ),
            )
        }
        ("POST", ["links", link]) => {
            let request = match link_request(f) {
                Ok(r) => r,
                Err(problems) => return refused(console, ctx, &AdminError::Invalid(problems)),
            };
            let id = LinkId::new(*link);
            let saved = tri!(admin.put_link(tenant, &id, request).await);
            if field(f, "action") == Some("preview") && saved.link.status == LinkStatus::NotLinked {
                tri!(admin.start_preview(tenant, &id).await);
                return redirect(&format!("{}/links/{}/preview", ctx.base, id), &[]);
            }
            if saved.replan.is_some() {
                // R-A10: the settings run's dry run is the link's preview (held there above the guard).
                return back(&format!("links/{id}/preview"), "saved");
            }
            back("", "saved")
        }
        ("GET", ["links", link, "preview"]) => {
            let status = tri!(admin.status(tenant, &LinkId::new(*link)).await);
            let preview = match admin.preview(tenant, &status.link.id, PREVIEW_LINES).await {
                Ok(p) => Some(p),
                Err(AdminError::NotFound(_)) => None,
                Err(e) => return refused(console, ctx, &e),
            };
            ok(console, pages::preview(ctx, &status.link, &status.run, preview.as_ref(), done))
        }
        ("POST", ["links", link, "preview"]) => {
            tri!(admin.start_preview(tenant, &LinkId::new(*link)).await);
            redirect(&format!("{}/links/{link}/preview", ctx.base), &[])
        }
        ("POST", ["links", link, "sync"]) => {
            tri!(admin.start_sync(tenant, &LinkId::new(*link)).await);
            back("", "sync")
        }
        ("POST", ["links", link, "confirm"]) => {
            if !tri!(admin.confirm(tenant, &LinkId::new(*link)).await) {
                return refused(console, ctx, &AdminError::Conflict(ctx.t.nothing_to_confirm.into()));
            }
            back(&format!("links/{link}/runs"), "confirmed")
        }
        ("POST", ["links", link, "reconcile"]) => {
            if !tri!(admin.reconcile_now(tenant, &LinkId::new(*link)).await) {
                return refused(console, ctx, &AdminError::Conflict(ctx.t.not_syncing.into()));
            }
            back(&format!("links/{link}/runs"), "reconcile")
        }
        ("POST", ["links", link, "unlink"]) => {
            tri!(admin.unlink(tenant, &LinkId::new(*link)).await);
            back("", "unlinked")
        }
        ("GET", ["links", link, "runs"]) => {
            let status = tri!(admin.status(tenant, &LinkId::new(*link)).await);
            ok(console, pages::runs(ctx, &status.link, &status.run, done))
        }
        ("GET", ["links", link, "approvals"]) => {
            let id = LinkId::new(*link);
            let link = tri!(admin.status(tenant, &id).await).link;
            let page = tri!(admin.approvals(tenant, &id, None, QUEUE_PAGE).await);
            ok(console, pages::approvals(ctx, &link, &page, done))
        }
        ("POST", ["links", link, "approvals", "page"]) => {
            let id = LinkId::new(*link);
            let link = tri!(admin.status(tenant, &id).await).link;
            let page = tri!(admin.approvals(tenant, &id, field(f, "after"), QUEUE_PAGE).await);
            ok(console, pages::approvals(ctx, &link, &page, None))
        }
        ("POST", ["links", link, "approvals"]) => {
            let id = LinkId::new(*link);
            let decisions: Vec<DecisionRequest> = if field(f, "decision") == Some("bulk_create") {
                f.iter()
                    .filter(|(k, _)| k == "select")
                    .map(|(_, email)| DecisionRequest::Create { email: email.clone() })
                    .collect()
            } else {
                let email = field(f, "email").unwrap_or("").to_owned();
                match field(f, "choice") {
                    Some("create") => vec![DecisionRequest::Create { email }],
                    Some("reject") => vec![DecisionRequest::Reject { email }],
                    Some(choice) if choice.starts_with("link:") => {
                        vec![DecisionRequest::Link { email, person: choice["link:".len()..].to_owned() }]
                    }
                    _ => return refused(console, ctx, &AdminError::invalid("choice", ctx.t.choose_decision)),
                }
            };
            if decisions.is_empty() {
                return refused(console, ctx, &AdminError::invalid("select", ctx.t.choose_entries));
            }
            for decision in decisions {
                tri!(admin.decide(tenant, &id, decision).await);
            }
            back(&format!("links/{id}/approvals"), "decided")
        }
        ("GET", ["people"]) => ok(console, pages::people(ctx, None, "")),
        ("POST", ["people"]) => {
            let email = field(f, "email").unwrap_or("").trim().to_owned();
            let export = tri!(admin.subject_lookup(tenant, &SubjectRequest { email: email.clone() }).await);
            ok(console, pages::people(ctx, Some(&export), &email))
        }
        ("POST", ["people", "export"]) => {
            let email = field(f, "email").unwrap_or("").trim().to_owned();
            let export = tri!(admin.subject_lookup(tenant, &SubjectRequest { email }).await);
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("content-disposition", "attachment; filename=\"auskunft.json\"")
                .header("cache-control", "no-store")
                .body(Body::Text(serde_json::to_string_pretty(&export).unwrap_or_default()))
                .expect("a status and headers always make a valid response")
        }
        ("POST", ["people", "erase"]) => {
            let email = field(f, "email").unwrap_or("").trim().to_owned();
            if field(f, "confirm") != Some("yes") {
                return ok(console, pages::confirm_erasure(ctx, &email));
            }
            let erasure = tri!(admin.subject_erase(tenant, &SubjectRequest { email }).await);
            ok(console, pages::erased(ctx, &erasure))
        }
        _ => not_found(console, ctx.t),
    }
}

fn parse_account(raw: &str) -> Option<EspAccount> {
    let (provider, account) = raw.split_once(':')?;
    let provider = match provider {
        "brevo" => Provider::Brevo,
        "cleverreach" => Provider::CleverReach,
        _ => return None,
    };
    Some(EspAccount { provider, account: AccountId::new(account) })
}

/// Comma-separated ids of a form field.
fn ids<T>(
    raw: Option<&str>,
    field_name: &str,
    problems: &mut Vec<optisync_app::admin::FieldProblem>,
    make: impl Fn(&str) -> T,
) -> std::collections::BTreeSet<T>
where
    T: Ord,
{
    let mut out = std::collections::BTreeSet::new();
    for part in raw.unwrap_or("").split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if optisync_app::admin::valid_id(part) {
            out.insert(make(part));
        } else {
            problems.push(optisync_app::admin::FieldProblem::new(field_name, optisync_app::admin::ID_GRAMMAR));
        }
    }
    out
}

/// The link form as the admin use case takes it.
fn link_request(f: &[(String, String)]) -> Result<LinkRequest, Vec<optisync_app::admin::FieldProblem>> {
    let mut problems = Vec::new();
    let provider = match field(f, "provider") {
        Some("brevo") => Provider::Brevo,
        Some("cleverreach") => Provider::CleverReach,
        _ => {
            problems.push(optisync_app::admin::FieldProblem::new("provider", "brevo or cleverreach"));
            Provider::Brevo
        }
    };
    let attribute = |name: &str| field(f, name).map(str::trim).filter(|v| !v.is_empty()).map(AttributeName::new);
    let unsubscribe_mode = match field(f, "unsubscribe_mode") {
        Some("erasure") => UnsubscribeMode::Erasure,
        _ => UnsubscribeMode::Classic,
    };
    let settings = LinkSettings {
        relevant_privacy: ids(field(f, "privacy"), "privacy", &mut problems, |s| PrivacyCategory::new(s)),
        relevant_blocks: ids(field(f, "blocks"), "blocks", &mut problems, |s| DeliveryBlockType::new(s)),
        mapping: FieldMapping {
            first_name: attribute("map_first_name"),
            last_name: attribute("map_last_name"),
            letter_salutation: attribute("map_letter_salutation"),
        },
        unsubscribe_mode,
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(LinkRequest {
        newsletter: field(f, "newsletter").unwrap_or("").trim().to_owned(),
        provider,
        account: field(f, "account").unwrap_or("").trim().to_owned(),
        list: field(f, "list").unwrap_or("").trim().to_owned(),
        segment: field(f, "segment").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned),
        settings,
    })
}
