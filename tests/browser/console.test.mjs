// The admin console in headless Chromium against the local runner (fake Brevo, simulated OPTIGEM):
// sign in, connect Brevo, create a link with a mapping, read the preview, save and watch it turn
// "Verknüpft"; a signup reaches the queue with its suggestion and its approval creates the assignment in
// OPTIGEM; a lookup says in words why a person is not on the list; an approver cannot open link settings;
// form posts without the CSRF token or from another site are refused. Every page is photographed.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const CONSOLE = "http://127.0.0.1:8080";
const OPTIGEM = "http://127.0.0.1:8081";
const BREVO = "http://127.0.0.1:8082";
const TOKEN = "local-admin-token";
const SHOTS = process.env.SCREENSHOTS ?? "target/console-screenshots";
mkdirSync(SHOTS, { recursive: true });

let browser;
let shot = 0;
before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
});
after(async () => browser?.close());

async function snap(page, name) {
  shot += 1;
  await page.screenshot({ path: `${SHOTS}/${String(shot).padStart(2, "0")}-${name}.png`, fullPage: true });
}

async function post(url, body) {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  assert.ok(r.ok, `${url}: ${r.status} ${await r.text()}`);
  return r.json().catch(() => null);
}

/// Reloads until the page shows `text` (the console has no script that would update it by itself).
async function reloadUntil(page, text, seconds = 90) {
  const end = Date.now() + seconds * 1000;
  while (!(await page.content()).includes(text)) {
    assert.ok(Date.now() < end, `the page never showed "${text}"`);
    await page.waitForTimeout(1000);
    await page.reload();
  }
}

async function signIn(page, role) {
  await page.goto(`${CONSOLE}/`);
  await page.getByLabel("Mandant").fill("demo");
  await page.getByLabel("Admin-Token").fill(TOKEN);
  await page.getByLabel("Rolle").selectOption(role);
  await page.getByRole("button", { name: "Anmelden" }).click();
  await page.waitForURL(`${CONSOLE}/console/t/demo/`);
}

test("an admin links a Brevo list, approves a signup and looks up a person", async () => {
  // OPTIGEM before the first sync: Erika's assignment ended in April 2024, Lena's runs; Max Muster has none.
  await post(`${OPTIGEM}/persons`, { first_name: "Erika", last_name: "Muster", emails: [{ email: "erika@example.org", priority: 1 }] });
  await post(`${OPTIGEM}/assignments`, { person: "P-1", newsletter: "rundbrief", end: "2024-04" });
  await post(`${OPTIGEM}/persons`, { first_name: "Max", last_name: "Muster", emails: [{ email: "max@example.org", priority: 1 }] });
  await post(`${OPTIGEM}/persons`, { first_name: "Lena", last_name: "Schmidt", emails: [{ email: "lena@example.org", priority: 1 }] });
  await post(`${OPTIGEM}/assignments`, { person: "P-3", newsletter: "rundbrief" });

  const context = await browser.newContext({ locale: "de-DE" });
  const page = await context.newPage();
  await page.goto(`${CONSOLE}/`);
  await snap(page, "sign-in");
  await signIn(page, "admin");
  await snap(page, "overview-empty");

  await page.getByRole("link", { name: "Konten" }).click();
  await page.locator("#brevo-account").fill("brevo-demo");
  await page.getByLabel("API-Schlüssel").fill("xkeysib-fake-0000000000000000");
  await page.getByRole("button", { name: "Verbinden" }).first().click();
  await page.getByText("Das Konto ist verbunden.").waitFor();
  await snap(page, "accounts");

  await page.getByRole("link", { name: "Neue Verknüpfung" }).click();
  await page.getByLabel("Kennung der Verknüpfung").fill("rundbrief");
  await page.getByLabel("OPTIGEM-Newsletter (Kennung)").fill("rundbrief");
  await page.getByLabel("Anbieter und Konto").selectOption("brevo:brevo-demo");
  await page.getByRole("button", { name: "Weiter" }).click();
  await page.getByLabel("Liste", { exact: true }).selectOption("1");
  await page.getByLabel("Vorname").selectOption("FIRSTNAME");
  await page.getByLabel("Nachname").selectOption("LASTNAME");
  await snap(page, "link-settings");
  await page.getByRole("button", { name: "Vorschau" }).click();
  await page.waitForURL(/\/links\/rundbrief\/preview$/);
  await page.getByText("Bericht vom").waitFor({ timeout: 60_000 });
  const report = await page.content();
  assert.match(report, /lena@example\.org/, "the preview names what it would create");
  assert.doesNotMatch(report, /erika@example\.org/, "an ended assignment is not created");
  await snap(page, "preview");
  await page.getByRole("button", { name: "Speichern und synchronisieren" }).click();
  await page.getByText("Die erste Synchronisation läuft").waitFor();
  await reloadUntil(page, "status status-linked");
  assert.match(await page.content(), />Verknüpft</);
  await snap(page, "overview-linked");

  // A signup in Brevo: the queue shows it with OPTIGEM's suggestion (same e-mail: Max Muster, P-2).
  await post(`${BREVO}/simulate/signup`, { email: "max.muster@example.org", list_id: 1 });
  await post(`${BREVO}/simulate/signup`, { email: "max@example.org", list_id: 1 });
  await page.goto(`${CONSOLE}/console/t/demo/links/rundbrief/approvals`);
  await reloadUntil(page, "gleiche E-Mail-Adresse");
  await snap(page, "approvals");
  const entry = page.locator("ol.queue > li", { hasText: "max@example.org" }).filter({ hasNotText: "max.muster" });
  await entry.getByLabel(/Person P-2 zuordnen/).check();
  await entry.getByRole("button", { name: "Entscheiden" }).click();
  await page.getByText("Entschieden.").waitFor();
  const end = Date.now() + 60_000;
  for (;;) {
    const assignments = await (await fetch(`${OPTIGEM}/assignments?newsletter=rundbrief`)).json();
    if (assignments.some((a) => a.person?.id === "P-2")) break;
    assert.ok(Date.now() < end, "the approval never reached OPTIGEM");
    await new Promise((r) => setTimeout(r, 500));
  }

  // Why is Erika not on the list? The lookup says it in words; the address is in no URL.
  await page.getByRole("link", { name: "Personen" }).click();
  await page.getByLabel("E-Mail-Adresse").fill("erika@example.org");
  await page.getByRole("button", { name: "Nachschlagen" }).click();
  await page.getByText("Der Endemonat 2024-04 ist vorbei.").waitFor();
  assert.ok(!page.url().includes("erika"), page.url());
  await snap(page, "person-lookup");

  await page.goto(`${CONSOLE}/console/t/demo/links/rundbrief/runs`);
  await page.getByText("Letzte Abgleiche").waitFor();
  await snap(page, "runs");

  // Narrow and at 200 %: nothing runs off the side.
  await page.setViewportSize({ width: 640, height: 900 });
  await page.evaluate(() => { document.body.style.zoom = "2"; });
  await page.goto(`${CONSOLE}/console/t/demo/`);
  await page.evaluate(() => { document.body.style.zoom = "2"; });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `the overview is ${overflow}px wider than a narrow screen at 200 %`);
  await snap(page, "overview-narrow-200");

  // In English.
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.getByRole("link", { name: "English" }).click();
  await page.getByText("Overview").first().waitFor();
  await snap(page, "overview-english");
  await context.close();
});

test("an approver cannot open link settings, and forms without the token or from elsewhere are refused", async () => {
  const context = await browser.newContext({ locale: "de-DE" });
  const page = await context.newPage();
  await signIn(page, "approver");
  assert.equal(await page.getByRole("link", { name: "Konten" }).count(), 0, "no admin navigation");
  const settings = await page.goto(`${CONSOLE}/console/t/demo/links/rundbrief`);
  assert.equal(settings.status(), 403);
  await page.getByText("diese Seite ist der Administration vorbehalten").waitFor();
  await snap(page, "approver-refused");
  const queue = await page.goto(`${CONSOLE}/console/t/demo/links/rundbrief/approvals`);
  assert.equal(queue.status(), 200);
  const other = await page.goto(`${CONSOLE}/console/t/other-tenant/`);
  assert.equal(other.status(), 404, "R-K1: another tenant's pages do not exist");
  await context.close();

  // An admin's session: a post without the CSRF token, and one from another site with it, change nothing.
  const admin = await browser.newContext({ locale: "de-DE" });
  const adminPage = await admin.newPage();
  await signIn(adminPage, "admin");
  await adminPage.goto(`${CONSOLE}/console/t/demo/links/rundbrief`);
  const csrf = await adminPage.locator('input[name="csrf"]').first().inputValue();
  const unlink = `${CONSOLE}/console/t/demo/links/rundbrief/unlink`;
  const noToken = await adminPage.request.post(unlink, { form: {}, headers: { origin: CONSOLE }, maxRedirects: 0 });
  assert.equal(noToken.status(), 403);
  const elsewhere = await adminPage.request.post(unlink, { form: { csrf }, headers: { origin: "https://evil.example" }, maxRedirects: 0 });
  assert.equal(elsewhere.status(), 403);
  await adminPage.goto(`${CONSOLE}/console/t/demo/`);
  assert.match(await adminPage.content(), />Verknüpft</, "the link still syncs");
  await admin.close();
});
