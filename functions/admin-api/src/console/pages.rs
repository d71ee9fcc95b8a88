//! The console's pages: plain HTML forms that work without JavaScript, every text from the catalogue of
//! the user's language ([`super::texts`]). Each function renders one page from what the admin use cases
//! returned; none decides anything itself.

use super::Ctx;
use super::session::Role;
use super::texts::Texts;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use optisync_app::admin::{ApprovalPage, CountReport, LinkStatusView, SubjectErasure, SubjectExport};
use optisync_app::approvals::ApprovalView;
use optisync_app::reconcile::{Finished, Phase, Preview, PreviewAction, RunCounts, RunKind, RunState};
use optisync_domain::rules::AttributeScope;
use optisync_domain::suggest::Reason;
use optisync_domain::{AccountRecord, AccountStatus, Link, LinkStatus, Provider, UnsubscribeMode};
use optisync_ports::{ErasureReportRecord, EspCatalog};

/// A date and time as the user reads it: Europe/Berlin, in the language's format.
pub fn when(ctx: &Ctx, at: &DateTime<Utc>) -> String {
    at.with_timezone(&chrono_tz::Europe::Berlin).format(ctx.t.datetime_format).to_string()
}

fn opt_when(ctx: &Ctx, at: Option<&DateTime<Utc>>) -> String {
    at.map(|a| when(ctx, a)).unwrap_or_else(|| ctx.t.none.to_owned())
}

/// A text of the catalogue with `{}` filled in.
pub fn fill(text: &str, value: impl std::fmt::Display) -> String {
    text.replacen("{}", &value.to_string(), 1)
}

/// The frame of every page: header with the navigation for the role, language switch and sign-out,
/// an optional banner, the page's title and body.
pub fn layout(ctx: Option<&Ctx>, t: &Texts, title: &str, banner: Option<Markup>, body: Markup) -> Markup {
    let back = ctx.map(|c| c.path.as_str()).unwrap_or("/console/");
    html! {
        (DOCTYPE)
        html lang=(t.lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – optisync" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                a.skip href="#main" { (t.skip_to_content) }
                header {
                    p.brand { a href="/console/" { "optisync" } }
                    @if let Some(c) = ctx {
                        nav aria-label=(t.nav_label) {
                            ul {
                                li { a href=(c.base.clone() + "/") { (t.nav_overview) } }
                                @if c.session.role == Role::Admin {
                                    li { a href=(c.base.clone() + "/accounts") { (t.nav_accounts) } }
                                    li { a href=(c.base.clone() + "/links/new") { (t.nav_new_link) } }
                                }
                                li { a href=(c.base.clone() + "/people") { (t.nav_people) } }
                            }
                        }
                        p.who { (fill(t.signed_in_as, &c.session.tenant)) " · " (role_name(t, c.session.role)) }
                        form method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(c.session.csrf);
                            button type="submit" { (t.sign_out) }
                        }
                    }
                    p.lang {
                        @if t.lang == "de" { strong { "Deutsch" } } @else { a href=(lang_href("de", back)) lang="de" { "Deutsch" } }
                        " · "
                        @if t.lang == "en" { strong { "English" } } @else { a href=(lang_href("en", back)) lang="en" { "English" } }
                    }
                }
                @if let Some(b) = banner { (b) }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn lang_href(lang: &str, back: &str) -> String {
    format!("/console/lang/{lang}?back={}", urlencoding::encode(back))
}

fn role_name(t: &Texts, role: Role) -> &'static str {
    match role {
        Role::Admin => t.role_admin,
        Role::Approver => t.role_approver,
    }
}

/// A form's hidden CSRF field.
fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.session.csrf); }
}

/// A button that posts to `action` (a small form of its own).
fn post_button(ctx: &Ctx, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(ctx))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// The message for a `?done=` code after a form went through.
pub fn notice(t: &Texts, done: Option<&str>) -> Option<Markup> {
    let text = match done? {
        "saved" => t.done_saved,
        "sync" => t.done_sync,
        "confirmed" => t.done_confirmed,
        "unlinked" => t.done_unlinked,
        "reconcile" => t.done_reconcile,
        "decided" => t.done_decided,
        "connected" => t.done_connected,
        "preview" => t.done_preview,
        _ => return None,
    };
    Some(html! { p.notice role="status" { (text) } })
}

fn status_name(t: &Texts, status: LinkStatus) -> &'static str {
    match status {
        LinkStatus::NotLinked => t.status_not_linked,
        LinkStatus::Linking => t.status_linking,
        LinkStatus::Linked => t.status_linked,
    }
}

fn provider_name(p: Provider) -> &'static str {
    match p {
        Provider::Brevo => "Brevo",
        Provider::CleverReach => "CleverReach",
    }
}

fn phase_name(t: &Texts, phase: Phase) -> &'static str {
    match phase {
        Phase::Export | Phase::AwaitExport => t.phase_export,
        Phase::Import => t.phase_import,
        Phase::Due => t.phase_due,
        Phase::Blocked | Phase::List | Phase::Sweep => t.phase_list,
        Phase::Replan => t.phase_replan,
        Phase::Held => t.phase_held,
        Phase::Apply => t.phase_apply,
    }
}

fn kind_name(t: &Texts, kind: RunKind) -> &'static str {
    match kind {
        RunKind::Sync => t.run_kind_sync,
        RunKind::Settings => t.run_kind_settings,
    }
}

/// A reason of a verdict in the user's language (R-A1…A7), from its code and what it names.
pub fn reason_text(t: &Texts, code: &str, detail: Option<&str>) -> String {
    let d = detail.unwrap_or("?");
    match code {
        "end_passed" => fill(t.reason_end_passed, d),
        "no_email" => t.reason_no_email.to_owned(),
        "count_zero" => t.reason_count_zero.to_owned(),
        "person_deletion_marked" => t.reason_person_deletion_marked.to_owned(),
        "deleted" => t.reason_deleted.to_owned(),
        "privacy_blocked" => fill(t.reason_privacy_blocked, d),
        "privacy_no_statement" => fill(t.reason_privacy_no_statement, d),
        "delivery_blocked" => fill(t.reason_delivery_blocked, d),
        other => other.to_owned(),
    }
}

fn counts_summary(t: &Texts, c: &RunCounts) -> String {
    format!(
        "{} {} · {} {} · {} {} · {} {} · {} {}",
        c.created,
        t.count_created,
        c.updated,
        t.count_updated,
        c.deactivated,
        t.count_deactivated,
        c.ended,
        t.count_ended,
        c.failed,
        t.count_failed
    )
}

/// One link's row data on the overview.
pub struct LinkOverview {
    /// The link with its run state.
    pub status: LinkStatusView,
    /// Its count report.
    pub counts: CountReport,
    /// When the oldest pending signup came.
    pub oldest_signup: Option<DateTime<Utc>>,
}

/// What needs a person, for the banner.
fn attention(t: &Texts, links: &[LinkOverview]) -> Vec<String> {
    let mut items = Vec::new();
    for l in links {
        let name = l.status.link.newsletter.as_str();
        let run = &l.status.run;
        if run.current.as_ref().is_some_and(|p| p.phase == Phase::Held) {
            items.push(fill(t.attention_held, name));
        }
        if let Some(last) = &run.last {
            if last.error.is_some() {
                items.push(fill(t.attention_run_failed, name));
            } else if !last.failures.is_empty() {
                items.push(fill(t.attention_failures, name));
            }
        }
        if l.counts.waiting_for_approval > 0 {
            items.push(fill(t.attention_approvals, name));
        }
    }
    items
}

/// The overview: every link with status, last run, held runs, backlog and count report; deletion reports.
pub fn overview(ctx: &Ctx, links: &[LinkOverview], reports: &[ErasureReportRecord], done: Option<&str>) -> Markup {
    let t = ctx.t;
    let needs = attention(t, links);
    let banner = (!needs.is_empty()).then(|| {
        html! {
            section.banner role="alert" aria-labelledby="attention" {
                h2 id="attention" { (t.attention_title) }
                ul { @for n in &needs { li { (n) } } }
            }
        }
    });
    let admin = ctx.session.role == Role::Admin;
    let body = html! {
        @if let Some(n) = notice(t, done) { (n) }
        @if links.is_empty() {
            p { (t.no_links) }
            @if admin { p { a href=(ctx.base.clone() + "/links/new") { (t.nav_new_link) } } }
        }
        @for l in links {
            @let link = &l.status.link;
            @let run = &l.status.run;
            @let href = format!("{}/links/{}", ctx.base, link.id);
            section.link aria-labelledby=(format!("link-{}", link.id)) {
                h2 id=(format!("link-{}", link.id)) {
                    (fill(t.newsletter_named, &link.newsletter))
                    " "
                    span class=(format!("status status-{}", serde_plain(link.status))) { (status_name(t, link.status)) }
                }
                p { (provider_name(link.esp.provider)) " · " (t.account) " " (link.esp.account) " · " (t.list) " " (link.list)
                    @if let Some(s) = &link.segment { " · " (t.segment) " " (s) } }
                @if admin {
                    @if let Some(current) = &run.current {
                        p { (t.run_in_progress) ": " (kind_name(t, current.kind)) ", " (phase_name(t, current.phase))
                            " (" (fill(t.since, when(ctx, &current.started_at))) ")" }
                        @if current.phase == Phase::Held {
                            p.warning { (fill(t.held_explained, current.counts.deactivated + current.counts.ended)) }
                            (post_button(ctx, &format!("{href}/confirm"), t.confirm, "primary"))
                        }
                    }
                    @match &run.last {
                        Some(last) => { p { (t.last_run) ": " (when(ctx, &last.finished_at)) " – " (counts_summary(t, &last.counts))
                            @if let Some(_) = &last.error { " – " strong { (t.run_failed) } } } }
                        None => { p { (t.last_run) ": " (t.none) } }
                    }
                    (count_report(ctx, &l.counts))
                }
                p {
                    @if l.counts.waiting_for_approval == 1 {
                        (t.backlog_one)
                        @if let Some(oldest) = &l.oldest_signup { " " (fill(t.oldest_one, when(ctx, oldest))) }
                    } @else if l.counts.waiting_for_approval > 1 {
                        (fill(t.backlog, l.counts.waiting_for_approval))
                        @if let Some(oldest) = &l.oldest_signup { " " (fill(t.oldest, when(ctx, oldest))) }
                    } @else { (t.backlog_empty) }
                }
                ul.actions {
                    li { a href=(format!("{href}/approvals")) { (t.nav_approvals) } }
                    @if admin {
                        li { a href=(href.clone()) { (t.settings) } }
                        li { a href=(format!("{href}/runs")) { (t.runs) } }
                        @if link.status == LinkStatus::NotLinked { li { a href=(format!("{href}/preview")) { (t.preview) } } }
                    }
                }
            }
        }
        @if admin {
            section aria-labelledby="reports" {
                h2 id="reports" { (t.deletion_reports) }
                @if reports.is_empty() { p { (t.no_deletion_reports) } }
                @else {
                    table {
                        thead { tr { th scope="col" { (t.when) } th scope="col" { (t.newsletter) } th scope="col" { (t.deleted) } th scope="col" { (t.kept) } } }
                        tbody { @for r in reports { tr {
                            td { (when(ctx, &r.at)) }
                            td { (r.newsletter) }
                            td { @for d in &r.deleted { (d.system) ": " (d.item) br; } }
                            td { @for k in &r.kept { (k.system) ": " (k.item) " – " (k.reason) br; } }
                        } } }
                    }
                }
            }
        }
    };
    layout(Some(ctx), t, t.overview_title, banner, body)
}

fn serde_plain<T: serde::Serialize>(value: T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The count report of one link: both sides and the difference by reason.
fn count_report(ctx: &Ctx, c: &CountReport) -> Markup {
    let t = ctx.t;
    let difference = c.optigem_active as i64 - c.receiving as i64;
    html! {
        details.counts open {
            summary { (fill(t.counts_summary, format!("{} / {}", c.optigem_active, c.receiving))) }
            table {
                caption { (t.counts_caption) }
                tbody {
                    tr { th scope="row" { (t.counts_optigem_active) } td { (c.optigem_active) } }
                    tr { th scope="row" { (t.counts_receiving) } td { (c.receiving) } }
                    tr { th scope="row" { (t.counts_difference) } td { (difference) } }
                    tr { th scope="row" { (t.counts_syncing) } td { (c.syncing) } }
                    tr { th scope="row" { (t.counts_waiting) } td { (c.waiting_for_approval) } }
                    tr { th scope="row" { (t.counts_unsubscribed) } td { (c.ended_by_unsubscribe) } }
                    @for (code, n) in &c.inactive {
                        tr { th scope="row" { (fill(t.counts_inactive_because, reason_label(t, code))) } td { (n) } }
                    }
                    tr { th scope="row" { (t.counts_listed_inactive) } td { (c.listed_inactive) } }
                    tr { th scope="row" { (t.counts_failed) } td { (c.failed) } }
                }
            }
            @if !c.complete { p.warning { (t.counts_partial) } }
        }
    }
}

fn reason_label(t: &Texts, code: &str) -> &'static str {
    match code {
        "no_email" => t.label_no_email,
        "count_zero" => t.label_count_zero,
        "person_deletion_marked" => t.label_person_deletion_marked,
        "privacy_blocked" | "privacy_no_statement" => t.label_privacy,
        "delivery_blocked" => t.label_delivery_block,
        _ => t.label_other,
    }
}

/// The accounts page: connected accounts, connecting Brevo by API key and CleverReach by OAuth.
pub fn accounts(ctx: &Ctx, accounts: &[AccountRecord], done: Option<&str>) -> Markup {
    let t = ctx.t;
    let body = html! {
        @if let Some(n) = notice(t, done) { (n) }
        @if accounts.is_empty() { p { (t.no_accounts) } } @else {
            table {
                thead { tr { th scope="col" { (t.provider) } th scope="col" { (t.account) } th scope="col" { (t.state) } th scope="col" { (t.changed) } } }
                tbody { @for a in accounts { tr {
                    td { (provider_name(a.esp.provider)) } td { (a.esp.account) }
                    td { @if a.status == AccountStatus::Connected { (t.account_connected) } @else { (t.account_pending) } }
                    td { (when(ctx, &a.changed_at)) }
                } } }
            }
        }
        section aria-labelledby="brevo" {
            h2 id="brevo" { (t.connect_brevo) }
            p { (t.connect_brevo_help) }
            form method="post" action=(ctx.base.clone() + "/accounts/brevo") {
                (csrf(ctx))
                label for="brevo-account" { (t.account_id) }
                input id="brevo-account" name="account" required pattern="[A-Za-z0-9][A-Za-z0-9._-]{0,63}" autocomplete="off";
                label for="brevo-key" { (t.api_key) }
                input id="brevo-key" name="api_key" type="password" required autocomplete="off";
                button type="submit" class="primary" { (t.connect) }
            }
        }
        section aria-labelledby="cleverreach" {
            h2 id="cleverreach" { (t.connect_cleverreach) }
            p { (t.connect_cleverreach_help) }
            form method="post" action=(ctx.base.clone() + "/accounts/cleverreach") {
                (csrf(ctx))
                label for="cr-account" { (t.account_id) }
                input id="cr-account" name="account" required pattern="[A-Za-z0-9][A-Za-z0-9._-]{0,63}" autocomplete="off";
                button type="submit" class="primary" { (t.connect) }
            }
        }
    };
    layout(Some(ctx), t, t.accounts_title, None, body)
}

/// After starting a CleverReach authorisation: the link to CleverReach (a plain link, so that the
/// browser leaves the console by a navigation of its own).
pub fn cleverreach_continue(ctx: &Ctx, url: &str) -> Markup {
    let t = ctx.t;
    layout(
        Some(ctx),
        t,
        t.connect_cleverreach,
        None,
        html! {
            p { (t.cleverreach_continue_help) }
            p { a.button.primary href=(url) { (t.cleverreach_continue) } }
        },
    )
}

/// Step 1 of a new link: its id, the OPTIGEM newsletter and the account (a GET form: nothing personal).
pub fn new_link(ctx: &Ctx, accounts: &[AccountRecord]) -> Markup {
    let t = ctx.t;
    let connected: Vec<&AccountRecord> = accounts.iter().filter(|a| a.status == AccountStatus::Connected).collect();
    let body = html! {
        p { (t.new_link_help) }
        @if connected.is_empty() {
            p.warning { (t.no_connected_accounts) " " a href=(ctx.base.clone() + "/accounts") { (t.nav_accounts) } }
        } @else {
            form method="get" action=(ctx.base.clone() + "/links/new") {
                label for="id" { (t.link_id) }
                input id="id" name="id" required pattern="[A-Za-z0-9][A-Za-z0-9._-]{0,63}" aria-describedby="id-help";
                p.help id="id-help" { (t.link_id_help) }
                label for="newsletter" { (t.newsletter_id) }
                input id="newsletter" name="newsletter" required pattern="[A-Za-z0-9][A-Za-z0-9._-]{0,63}";
                label for="account" { (t.provider_and_account) }
                select id="account" name="account" required {
                    @for a in &connected {
                        option value=(format!("{}:{}", a.esp.provider, a.esp.account)) { (provider_name(a.esp.provider)) " – " (a.esp.account) }
                    }
                }
                button type="submit" class="primary" { (t.next) }
            }
        }
    };
    layout(Some(ctx), t, t.new_link_title, None, body)
}

/// What the link form is filled with.
pub struct LinkForm<'a> {
    /// The link id.
    pub id: &'a str,
    /// The newsletter.
    pub newsletter: &'a str,
    /// The ESP.
    pub provider: Provider,
    /// The account.
    pub account: &'a str,
    /// The saved link, when it exists.
    pub existing: Option<&'a Link>,
    /// What the account offers.
    pub catalog: &'a EspCatalog,
}

fn joined<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// Step 2 (and editing): list, segment, "Weitere Datenfelder", "Liefersperren und Datenschutz",
/// unsubscribe mode; "Vorschau" for a link that does not sync yet, "Speichern" for one that does.
pub fn link_form(ctx: &Ctx, f: &LinkForm) -> Markup {
    let t = ctx.t;
    let settings = f.existing.map(|l| l.settings.clone()).unwrap_or_default();
    let syncing = f.existing.is_some_and(|l| l.status != LinkStatus::NotLinked);
    let selected_list = f.existing.map(|l| l.list.as_str().to_owned());
    let selected_segment = f.existing.and_then(|l| l.segment.as_ref().map(|s| s.as_str().to_owned()));
    let globals: Vec<&str> =
        f.catalog.attributes.iter().filter(|a| a.scope == AttributeScope::Global).map(|a| a.name.as_str()).collect();
    let mapping = [
        ("first_name", t.field_first_name, settings.mapping.first_name.as_ref().map(|a| a.as_str().to_owned())),
        ("last_name", t.field_last_name, settings.mapping.last_name.as_ref().map(|a| a.as_str().to_owned())),
        (
            "letter_salutation",
            t.field_letter_salutation,
            settings.mapping.letter_salutation.as_ref().map(|a| a.as_str().to_owned()),
        ),
    ];
    let action = format!("{}/links/{}", ctx.base, f.id);
    let body = html! {
        p { (fill(t.newsletter_named, f.newsletter)) " · " (provider_name(f.provider)) " · " (t.account) " " (f.account) }
        @if let Some(l) = f.existing { p { (t.state) ": " (status_name(t, l.status)) } }
        form method="post" action=(action) {
            (csrf(ctx))
            input type="hidden" name="newsletter" value=(f.newsletter);
            input type="hidden" name="provider" value=(f.provider.as_str());
            input type="hidden" name="account" value=(f.account);
            fieldset {
                legend { (t.list_and_segment) }
                @if syncing {
                    p.help { (t.list_fixed_while_syncing) }
                    input type="hidden" name="list" value=[selected_list.as_deref()];
                    @if let Some(s) = &selected_segment { input type="hidden" name="segment" value=(s); }
                }
                label for="list" { (t.list) }
                select id="list" name=(if syncing { "list-shown" } else { "list" }) required disabled[syncing] {
                    @for list in &f.catalog.lists {
                        option value=(list.id) selected[selected_list.as_deref() == Some(list.id.as_str())] { (list.name) " (" (list.id) ")" }
                    }
                }
                @if f.provider == Provider::CleverReach {
                    label for="segment" { (t.segment) }
                    select id="segment" name=(if syncing { "segment-shown" } else { "segment" }) disabled[syncing] {
                        option value="" { (t.no_segment) }
                        @for list in &f.catalog.lists { @for s in &list.segments {
                            option value=(s.id) selected[selected_segment.as_deref() == Some(s.id.as_str())] { (list.name) " / " (s.name) }
                        } }
                    }
                    p.help { (t.segment_help) }
                }
            }
            fieldset {
                legend { (t.more_fields) }
                p.help { (t.more_fields_help) }
                @for (name, label, current) in &mapping {
                    label for=(format!("map-{name}")) { (label) }
                    select id=(format!("map-{name}")) name=(format!("map_{name}")) {
                        option value="" { (t.not_mapped) }
                        @for g in &globals { option value=(g) selected[current.as_deref() == Some(*g)] { (g) } }
                    }
                }
            }
            fieldset {
                legend { (t.blocks_and_privacy) }
                p.warning { (t.blocks_warning) }
                label for="blocks" { (t.relevant_blocks) }
                input id="blocks" name="blocks" value=(joined(settings.relevant_blocks.iter().map(|b| b.as_str()))) aria-describedby="blocks-help";
                p.help id="blocks-help" { (t.relevant_blocks_help) }
                label for="privacy" { (t.relevant_privacy) }
                input id="privacy" name="privacy" value=(joined(settings.relevant_privacy.iter().map(|c| c.as_str()))) aria-describedby="privacy-help";
                p.help id="privacy-help" { (t.relevant_privacy_help) }
            }
            fieldset {
                legend { (t.unsubscribe_mode) }
                label.choice { input type="radio" name="unsubscribe_mode" value="classic" checked[settings.unsubscribe_mode == UnsubscribeMode::Classic]; " " (t.mode_classic) }
                label.choice { input type="radio" name="unsubscribe_mode" value="erasure" checked[settings.unsubscribe_mode == UnsubscribeMode::Erasure]; " " (t.mode_erasure) }
            }
            @if syncing {
                p.help { (t.save_syncing_help) }
                button type="submit" name="action" value="save" class="primary" { (t.save) }
            } @else {
                p.help { (t.preview_help) }
                button type="submit" name="action" value="preview" class="primary" { (t.preview) }
            }
        }
        @if syncing {
            section aria-labelledby="unlink" {
                h2 id="unlink" { (t.unlink) }
                p { (t.unlink_help) }
                (post_button(ctx, &format!("{action}/unlink"), t.unlink, "danger"))
            }
        }
    };
    let title = if f.existing.is_some() { t.link_settings_title } else { t.new_link_title };
    layout(Some(ctx), t, title, None, body)
}

fn action_name(t: &Texts, a: PreviewAction) -> &'static str {
    match a {
        PreviewAction::Create => t.action_create,
        PreviewAction::Update => t.action_update,
        PreviewAction::Deactivate => t.action_deactivate,
        PreviewAction::Reactivate => t.action_reactivate,
        PreviewAction::Queue => t.action_queue,
        PreviewAction::End => t.action_end,
    }
}

/// The dry run's report (R-F8): what the first sync would create, update, deactivate, queue and end,
/// and "Speichern und synchronisieren"; reloads itself while the dry run goes on.
pub fn preview(ctx: &Ctx, link: &Link, run: &RunState, preview: Option<&Preview>, done: Option<&str>) -> Markup {
    let t = ctx.t;
    let held = run.current.as_ref().filter(|p| p.phase == Phase::Held);
    let href = format!("{}/links/{}", ctx.base, link.id);
    let syncing = link.status != LinkStatus::NotLinked;
    // A syncing link's preview is that of its settings runs (R-A10); its first sync's dry run is history.
    let preview = preview.filter(|p| !syncing || p.state.last.as_ref().is_some_and(|l| l.kind == RunKind::Settings));
    // Right after saving, the settings run is announced but may not have started yet.
    let settings_running = run.current.as_ref().is_some_and(|p| p.kind == RunKind::Settings && p.phase != Phase::Held)
        || (syncing && done == Some("saved") && preview.is_none() && held.is_none());
    let finished = preview.and_then(|p| p.state.last.as_ref());
    let running = (preview.is_some() && finished.is_none()) || settings_running;
    let body = html! {
        @if running { meta http-equiv="refresh" content="2"; }
        @if let Some(n) = notice(t, done) { (n) }
        p { (fill(t.newsletter_named, &link.newsletter)) " · " (provider_name(link.esp.provider)) " · " (t.list) " " (link.list) }
        @if syncing && settings_running { p role="status" { (t.settings_run_running) } }
        @match (preview, finished) {
            (None, _) if syncing => {
                @if !settings_running { p { (t.no_settings_preview) } }
            }
            (None, _) => {
                p { (t.no_preview) }
                (post_button(ctx, &format!("{href}/preview"), t.start_preview, "primary"))
            }
            (Some(_), None) => { p role="status" { (t.preview_running) } }
            (Some(p), Some(done)) => {
                (report_counts(ctx, done))
                @if let Some(e) = &done.error { p.warning { (t.run_failed) ": " (e) } }
                @for w in &done.warnings { p.warning { (w) } }
                @if !p.lines.is_empty() {
                    table {
                        caption { (fill(t.preview_lines, p.lines.len())) }
                        thead { tr { th scope="col" { (t.what) } th scope="col" { (t.email) } th scope="col" { (t.assignment) } } }
                        tbody { @for line in &p.lines { tr {
                            td { (action_name(t, line.action)) }
                            td { @if let Some(e) = &line.email { (e.as_str()) } }
                            td { @if let Some(a) = &line.assignment { (a) } }
                        } } }
                    }
                }
                @if let Some(h) = held {
                    p.warning { (fill(t.held_explained, h.counts.deactivated + h.counts.ended)) }
                    (post_button(ctx, &format!("{href}/confirm"), t.confirm, "primary"))
                }
                @if link.status == LinkStatus::NotLinked {
                    p { (t.sync_warning) }
                    (post_button(ctx, &format!("{href}/sync"), t.save_and_sync, "primary"))
                    " "
                    a href=(href.clone()) { (t.change_settings) }
                }
            }
        }
    };
    layout(Some(ctx), t, t.preview_title, None, body)
}

fn report_counts(ctx: &Ctx, run: &Finished) -> Markup {
    let t = ctx.t;
    let c = &run.counts;
    html! {
        table.counts {
            caption { (fill(t.report_of, when(ctx, &run.finished_at))) }
            tbody {
                tr { th scope="row" { (t.count_created) } td { (c.created) } }
                tr { th scope="row" { (t.count_updated) } td { (c.updated) } }
                tr { th scope="row" { (t.count_deactivated) } td { (c.deactivated) } }
                tr { th scope="row" { (t.count_queued) } td { (c.queued) } }
                tr { th scope="row" { (t.count_ended) } td { (c.ended) } }
                tr { th scope="row" { (t.count_failed) } td { (c.failed) } }
            }
        }
    }
}

/// A link's runs: the one in progress, the recent finished ones, and the last one's failures (masked)
/// with "erneut versuchen" and "jetzt abgleichen".
pub fn runs(ctx: &Ctx, link: &Link, run: &RunState, done: Option<&str>) -> Markup {
    let t = ctx.t;
    let href = format!("{}/links/{}", ctx.base, link.id);
    let syncing = link.status != LinkStatus::NotLinked;
    let body = html! {
        @if let Some(n) = notice(t, done) { (n) }
        p { (fill(t.newsletter_named, &link.newsletter)) " · " (status_name(t, link.status)) }
        @if let Some(current) = &run.current {
            section aria-labelledby="current" {
                h2 id="current" { (t.run_in_progress) }
                p { (kind_name(t, current.kind)) ", " (phase_name(t, current.phase)) " (" (fill(t.since, when(ctx, &current.started_at))) ")" }
                p { (counts_summary(t, &current.counts)) }
                @if current.phase == Phase::Held {
                    p.warning { (fill(t.held_explained, current.counts.deactivated + current.counts.ended)) }
                    (post_button(ctx, &format!("{href}/confirm"), t.confirm, "primary"))
                }
            }
        }
        @if syncing { (post_button(ctx, &format!("{href}/reconcile"), t.reconcile_now, "")) }
        section aria-labelledby="history" {
            h2 id="history" { (t.recent_runs) }
            @if run.history.is_empty() { p { (t.no_runs) } } @else {
                table {
                    thead { tr {
                        th scope="col" { (t.finished) } th scope="col" { (t.kind) } th scope="col" { (t.count_created) }
                        th scope="col" { (t.count_updated) } th scope="col" { (t.count_deactivated) } th scope="col" { (t.count_ended) }
                        th scope="col" { (t.count_failed) } th scope="col" { (t.outcome) }
                    } }
                    tbody { @for h in &run.history { tr {
                        td { (when(ctx, &h.finished_at)) } td { (kind_name(t, h.kind)) }
                        td { (h.counts.created) } td { (h.counts.updated) } td { (h.counts.deactivated) } td { (h.counts.ended) }
                        td { (h.failed) }
                        td { @if let Some(e) = &h.error { (t.run_failed) ": " (e) } @else if h.complete { (t.run_complete) } @else { (t.run_partial) } }
                    } } }
                }
            }
        }
        section aria-labelledby="failures" {
            h2 id="failures" { (t.failures) }
            @match run.last.as_ref().filter(|l| !l.failures.is_empty()) {
                None => { p { (t.no_failures) } }
                Some(last) => {
                    p { (t.failures_help) }
                    table {
                        thead { tr { th scope="col" { (t.recipient_masked) } th scope="col" { (t.input) } th scope="col" { (t.reason) } th scope="col" { span.visually-hidden { (t.retry) } } } }
                        tbody { @for f in &last.failures { tr {
                            td { (f.recipient) } td { (f.input) } td { (f.reason) }
                            td { @if syncing { (post_button(ctx, &format!("{href}/reconcile"), t.retry, "")) } }
                        } } }
                    }
                }
            }
        }
    };
    layout(Some(ctx), t, t.runs_title, None, body)
}

fn suggestion_reason(t: &Texts, r: &Reason) -> String {
    match r {
        Reason::SameEmail => t.suggest_same_email.to_owned(),
        Reason::SimilarName { similarity } => fill(t.suggest_similar_name, similarity),
        Reason::OfferedByOptigem => t.suggest_offered.to_owned(),
    }
}

fn entry_name(v: &ApprovalView) -> String {
    let s = &v.entry.signup;
    let parts: Vec<&str> =
        [s.first_name.as_ref(), s.last_name.as_ref()].into_iter().flatten().map(|n| n.expose()).collect();
    parts.join(" ")
}

/// The approval queue ("Anmeldungen freigeben"): oldest first, each with the ESP's names, the consent
/// evidence and the ranked suggestions with their reasons; one decision per entry, and a bulk decision.
pub fn approvals(ctx: &Ctx, link: &Link, page: &ApprovalPage, done: Option<&str>) -> Markup {
    let t = ctx.t;
    let action = format!("{}/links/{}/approvals", ctx.base, link.id);
    let body = html! {
        @if let Some(n) = notice(t, done) { (n) }
        p { (fill(t.newsletter_named, &link.newsletter)) " · " (provider_name(link.esp.provider)) " · " (t.list) " " (link.list) }
        @if page.entries.is_empty() { p { (t.queue_empty) } } @else {
            p { (t.queue_help) }
            form id="bulk" method="post" action=(action.clone()) {
                (csrf(ctx))
                input type="hidden" name="decision" value="bulk_create";
                p { (t.bulk_help) " " button type="submit" { (t.bulk_create) } }
            }
            ol.queue {
                @for (i, v) in page.entries.iter().enumerate() {
                    @let e = &v.entry;
                    @let id = format!("entry-{i}");
                    li {
                        form method="post" action=(action.clone()) aria-labelledby=(id.clone()) {
                            (csrf(ctx))
                            input type="hidden" name="email" value=(e.email.as_str());
                            h2 id=(id.clone()) { (e.email.as_str()) @let n = entry_name(v); @if !n.is_empty() { " – " (n) } }
                            p.select { label { input type="checkbox" form="bulk" name="select" value=(e.email.as_str()); " " (t.select_for_bulk) } }
                            dl {
                                dt { (t.first_seen) } dd { (when(ctx, &e.first_seen)) }
                                @if e.signups > 1 { dt { (t.signups) } dd { (e.signups) } }
                                dt { (t.consent_signup) } dd { (opt_when(ctx, e.signup.evidence.signup_at.as_ref())) }
                                dt { (t.consent_confirmed) } dd { (opt_when(ctx, e.signup.evidence.confirmed_at.as_ref())) }
                                dt { (t.consent_source) } dd { (e.signup.evidence.source.as_deref().unwrap_or(t.none)) }
                                dt { (t.consent_ip) } dd { (e.signup.evidence.ip.as_ref().map(|i| i.expose()).unwrap_or(t.none)) }
                            }
                            fieldset {
                                legend { (t.decision) }
                                @if !v.matched { p.help { (t.waiting_for_suggestions) } }
                                @for (n, s) in v.suggestions.iter().enumerate() {
                                    @let sid = format!("{id}-s{n}");
                                    div.choice {
                                        input type="radio" id=(sid.clone()) name="choice" value=(format!("link:{}", s.person)) checked[n == 0];
                                        label for=(sid) {
                                            (fill(t.link_to_person, &s.person))
                                            @let name = [s.first_name.as_ref(), s.last_name.as_ref()].into_iter().flatten().map(|x| x.expose()).collect::<Vec<_>>().join(" ");
                                            @if !name.is_empty() { " – " (name) }
                                            " (" (s.reasons.iter().map(|r| suggestion_reason(t, r)).collect::<Vec<_>>().join("; ")) ")"
                                        }
                                    }
                                }
                                div.choice {
                                    input type="radio" id=(format!("{id}-new")) name="choice" value="create" checked[v.suggestions.is_empty()];
                                    label for=(format!("{id}-new")) { (t.create_person) }
                                }
                                div.choice {
                                    input type="radio" id=(format!("{id}-reject")) name="choice" value="reject";
                                    label for=(format!("{id}-reject")) { (t.reject) }
                                }
                            }
                            button type="submit" class="primary" { (t.decide) }
                        }
                    }
                }
            }
            @if let Some(next) = &page.next {
                form method="post" action=(format!("{action}/page")) {
                    (csrf(ctx))
                    input type="hidden" name="after" value=(next);
                    button type="submit" { (t.next_page) }
                }
            }
        }
    };
    layout(Some(ctx), t, t.approvals_title, None, body)
}

/// The person lookup form (the address goes in the form's body, never in a URL: R-J5).
pub fn people(ctx: &Ctx, result: Option<&SubjectExport>, email: &str) -> Markup {
    let t = ctx.t;
    let action = format!("{}/people", ctx.base);
    let body = html! {
        p { (t.people_help) }
        form method="post" action=(action.clone()) {
            (csrf(ctx))
            label for="email" { (t.email) }
            input id="email" name="email" type="email" required value=(email) autocomplete="off";
            button type="submit" class="primary" { (t.look_up) }
        }
        @if let Some(export) = result { (person(ctx, export, &action)) }
    };
    layout(Some(ctx), t, t.people_title, None, body)
}

fn person(ctx: &Ctx, export: &SubjectExport, action: &str) -> Markup {
    let t = ctx.t;
    html! {
        section aria-labelledby="result" {
            h2 id="result" { (fill(t.result_for, export.email.as_str())) }
            @if let Some(marker) = &export.erased {
                p.warning { (fill(t.erased_marker, opt_when(ctx, marker.unsubscribe.at.as_ref()))) }
            }
            @if !export.holds_anything() && export.erased.is_none() { p { (t.nothing_held) } }
            @for l in &export.links {
                section.link {
                    h3 { (fill(t.newsletter_named, &l.newsletter)) " · " (provider_name(l.esp.provider)) " · " (t.list) " " (l.list) }
                    p.verdict {
                        @match &l.recipient {
                            Some(r) if r.listed && r.active => { strong { (t.on_list_active) } }
                            Some(r) if r.listed => { strong { (t.on_list_inactive) } }
                            _ => { strong { (t.not_on_list) } }
                        }
                    }
                    @if l.assignments.is_empty() { p { (t.no_assignment) } }
                    @for a in &l.assignments {
                        p { (fill(t.assignment_named, &a.id)) ": "
                            @if a.end_requested { (t.assignment_end_requested) }
                            @else if a.active { (t.assignment_active) }
                            @else { (t.assignment_inactive) } }
                        @if !a.reasons.is_empty() {
                            ul.reasons { @for r in &a.reasons { li { (reason_text(t, &r.code, r.detail.as_deref())) } } }
                        }
                    }
                    @if let Some(p) = &l.pending_approval { p { (fill(t.pending_since, when(ctx, &p.first_seen))) } }
                    @if !l.consent.is_empty() {
                        h4 { (t.consent) }
                        ul { @for c in &l.consent { li {
                            (if c.kind == "esp_signup" { t.consent_esp } else { t.consent_optigem }) ": "
                            (t.consent_signup) " " (opt_when(ctx, c.evidence.signup_at.as_ref())) ", "
                            (t.consent_confirmed) " " (opt_when(ctx, c.evidence.confirmed_at.as_ref())) ", "
                            (t.consent_source) " " (c.evidence.source.as_deref().unwrap_or(t.none)) ", "
                            (t.consent_ip) " " (c.evidence.ip.as_ref().map(|i| i.expose()).unwrap_or(t.none))
                        } } }
                    }
                    @if !l.unsubscribes.is_empty() {
                        h4 { (t.unsubscribes) }
                        ul { @for u in &l.unsubscribes { li {
                            @if let Some(at) = &u.at { (when(ctx, at)) } @else if let Some(d) = &u.date { (d.format(t.date_format).to_string()) }
                            " – " (u.provider) " – " (serde_plain(u.cause))
                            @if u.kind == "handed_to_optigem" { " – " (t.handed_to_optigem) }
                        } } }
                    }
                    @if !l.audit.is_empty() {
                        details {
                            summary { (fill(t.audit_entries, l.audit.len())) }
                            ul { @for a in &l.audit { li { (when(ctx, &a.at)) " – " (a.input)
                                @for op in &a.esp { " – " (format!("{:?}", op.op)) } } } }
                        }
                    }
                }
            }
            form method="post" action=(format!("{action}/export")) {
                (csrf(ctx))
                input type="hidden" name="email" value=(export.email.as_str());
                button type="submit" { (t.export) }
            }
            @if ctx.session.role == Role::Admin && export.holds_anything() {
                form method="post" action=(format!("{action}/erase")) {
                    (csrf(ctx))
                    input type="hidden" name="email" value=(export.email.as_str());
                    button type="submit" class="danger" { (t.erase) }
                }
            }
        }
    }
}

/// R-J7: the erasure asks for confirmation first.
pub fn confirm_erasure(ctx: &Ctx, email: &str) -> Markup {
    let t = ctx.t;
    layout(
        Some(ctx),
        t,
        t.erase_title,
        None,
        html! {
            p.warning { (fill(t.erase_warning, email)) }
            form method="post" action=(format!("{}/people/erase", ctx.base)) {
                (csrf(ctx))
                input type="hidden" name="email" value=(email);
                input type="hidden" name="confirm" value="yes";
                button type="submit" class="danger" { (t.erase_confirm) }
                " "
                a href=(format!("{}/people", ctx.base)) { (t.cancel) }
            }
        },
    )
}

/// What the erasure did, per link: deleted where, kept what and why.
pub fn erased(ctx: &Ctx, erasure: &SubjectErasure) -> Markup {
    let t = ctx.t;
    layout(
        Some(ctx),
        t,
        t.erase_title,
        None,
        html! {
            p role="status" { @if erasure.erased { (t.erase_done) } @else { (t.erase_nothing) } }
            @for l in &erasure.links {
                section {
                    h2 { (t.link) " " (l.link) }
                    ul { @for d in &l.deleted { li { (t.deleted) ": " (d.system) " – " (d.item) } }
                         @for k in &l.kept { li { (t.kept) ": " (k.system) " – " (k.item) " – " (k.reason) } } }
                }
            }
        },
    )
}

/// A refusal in words: what was wrong, field by field, and the way back.
pub fn refusal(ctx: Option<&Ctx>, t: &Texts, title: &str, message: &str, fields: &[(String, String)]) -> Markup {
    layout(
        ctx,
        t,
        title,
        None,
        html! {
            p role="alert" { (message) }
            @if !fields.is_empty() {
                ul { @for (field, problem) in fields { li { strong { (field_label(t, field)) } ": " (problem) } } }
            }
            p { (t.back_hint) " " a href="/console/" { (t.nav_overview) } }
        },
    )
}

fn field_label<'a>(t: &Texts, field: &'a str) -> &'a str {
    match field {
        "list" => t.list,
        "segment" => t.segment,
        "account" => t.account,
        "newsletter" => t.newsletter_id,
        "email" => t.email,
        "api_key" => t.api_key,
        f if f.starts_with("settings.mapping") => t.more_fields,
        "deletion_report_email" => t.deletion_report_email,
        other => other,
    }
}

/// The sign-in page: the local runner's token form, or the button to the hosted sign-in.
pub fn sign_in(t: &Texts, local: Option<&str>, problem: Option<&str>) -> Markup {
    layout(
        None,
        t,
        t.sign_in_title,
        None,
        html! {
            @if let Some(p) = problem { p.warning role="alert" { (p) } }
            @match local {
                Some(csrf) => {
                    p { (t.sign_in_local_help) }
                    form method="post" action="/console/sign-in" {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="tenant" { (t.tenant) }
                        input id="tenant" name="tenant" required pattern="[A-Za-z0-9][A-Za-z0-9._-]{0,63}";
                        label for="token" { (t.admin_token) }
                        input id="token" name="token" type="password" required autocomplete="current-password";
                        label for="role" { (t.role) }
                        select id="role" name="role" {
                            option value="admin" { (t.role_admin) }
                            option value="approver" { (t.role_approver) }
                        }
                        button type="submit" class="primary" { (t.sign_in) }
                    }
                }
                None => {
                    p { (t.sign_in_help) }
                    p { a.button.primary href="/console/sign-in" { (t.sign_in) } }
                }
            }
        },
    )
}

/// The style sheet (no scripts anywhere).
pub const STYLE: &str = include_str!("style.css");
