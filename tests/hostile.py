"""The hostile-input cases (T01-T40 of the security test plan) against a local runner (stdlib only).

Started by tests/hostile with HOSTILE_BIN (the optisync-local binary) and HOSTILE_DATA (a fresh
directory). This script starts the runner on free loopback ports behind a capture proxy (the public URL
the ESP fakes call back on, so that the suite learns the Brevo webhook token as Brevo's own webhook
carries it), sets up the plan's baseline (demo's Brevo account `brevo-main` and link `rundbrief`, a
pending signup, a tenant `t2` with its signing secret) and runs each case: the secure outcome, and that
nothing was stored (demo's and t2's command feeds and demo's approval queue compared before and after).
Prints `T09 ok` / `T09 FAIL: ...` / `T19 not here: why`; exits 1 on any failure.
"""
import base64, hashlib, hmac, http.client, http.server, json, os, re, socket, subprocess, sys, threading, time
import urllib.error, urllib.parse, urllib.request, uuid
from concurrent.futures import ThreadPoolExecutor

BIN = os.environ["HOSTILE_BIN"]
DATA = os.environ["HOSTILE_DATA"]
LOG = os.path.join(DATA, "runner.log")
ADMIN = f"hostile-{int(time.time())}"
DEMO = "whsec_bG9jYWwtc2FuZGJveC1zaWduaW5nLXNlY3JldA=="
WRONG = "whsec_dGhpcyBpcyBhbm90aGVyIGtleSEhIQ=="
HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = open(os.path.join(HERE, "..", "docs", "examples", "event-batch.json"), "rb").read()
API = None            # the runner, set by Runner.start
BREVO = None          # the fake Brevo's base URL and API key, read from the runner's banner
BREVO_KEY = None
TOK = None            # the Brevo webhook token, learnt by the proxy
T2_SECRET = None      # t2's signing secret and its id, made in the baseline
T2_ID = None


class Fail(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- The runner and the capture proxy ------------------------------------------------------------

SEEN = {"authorization": set()}


class Proxy(http.server.BaseHTTPRequestHandler):
    """Forwards every request to the runner unchanged and remembers the Brevo hooks' bearer tokens."""
    def _forward(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path.startswith("/hooks/brevo/") and self.headers.get("authorization"):
            SEEN["authorization"].add(self.headers["authorization"])
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        status, out_headers, out = call(self.command, self.path, body, headers)
        self.send_response(status)
        for k, v in out_headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(k, v)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, *args):
        pass


class Runner:
    def __init__(self):
        self.port = free_port()
        self.proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        self.proc = None

    def start(self):
        global API, BREVO, BREVO_KEY
        env = dict(os.environ, OPTISYNC_ADDR=f"127.0.0.1:{self.port}", OPTIGEM_SIM_ADDR="127.0.0.1:0",
                   OPTISYNC_FAKE_BREVO_PORT="0", OPTISYNC_DATA=os.path.join(DATA, "state.redb"),
                   OPTISYNC_ADMIN_TOKEN=ADMIN, OPTISYNC_TICK_SECS="10", RUST_LOG="debug",
                   OPTISYNC_PUBLIC_URL=f"http://127.0.0.1:{self.proxy.server_address[1]}")
        log = open(LOG, "ab")
        start = log.tell()
        self.proc = subprocess.Popen([BIN], env=env, stdout=log, stderr=subprocess.STDOUT)
        API = f"http://127.0.0.1:{self.port}"
        for _ in range(200):
            if self.proc.poll() is not None:
                raise Fail("the local runner exited:\n" + open(LOG, encoding="utf-8", errors="replace").read()[-3000:])
            try:
                if admin("GET", "/admin/tenants/demo")[0] in (200, 404):
                    break
            except OSError:
                pass
            time.sleep(0.1)
        with open(LOG, "rb") as f:
            f.seek(start)
            banner = f.read().decode("utf-8", "replace")
        found = re.search(r"fake Brevo\s+(\S+)\s+API key: (\S+)", banner)
        if not found:
            raise Fail("no fake Brevo in the runner's banner")
        BREVO, BREVO_KEY = re.match(r"http://[^/]+", found.group(1)).group(0), found.group(2)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


RUNNER = None


# --- Requests ------------------------------------------------------------------------------------

def call(method, path, body=b"", headers=None, base=None):
    """One request; returns (status, headers, body). Header values may hold any byte (latin-1)."""
    base = base or API
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body or method in ("POST", "PUT"):
            conn.putheader("content-length", str(len(body)))
        conn.endheaders()
        if body:
            conn.send(body)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def mac(secret, text):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return base64.b64encode(hmac.new(key, text, hashlib.sha256).digest()).decode()


def sw(body=b"", secret=DEMO, msg_id=None, ts=None):
    """Standard Webhooks headers over "{id}.{ts}.{body}" (the events route)."""
    msg_id = msg_id or f"hostile-{uuid.uuid4()}"
    ts = str(int(time.time()) if ts is None else ts)
    sig = mac(secret, f"{msg_id}.{ts}.".encode() + body)
    return {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": "v1," + sig,
            "content-type": "application/json"}


def sr(method, path_query, body=b"", secret=DEMO, msg_id=None, ts=None):
    """optisync's extension over "{id}.{ts}.{METHOD} {path}[?{query}]\\n{body}" (every other route)."""
    msg_id = msg_id or f"hostile-{uuid.uuid4()}"
    ts = str(int(time.time()) if ts is None else ts)
    sig = mac(secret, f"{msg_id}.{ts}.{method} {path_query}\n".encode() + body)
    return {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": "v1," + sig,
            "content-type": "application/json"}


def connector(method, path, body=b"", secret=DEMO, msg_id=None):
    return call(method, path, body, sr(method, path, body, secret, msg_id))


def admin(method, path, body=None, raw=None, headers=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    h = {"authorization": f"Bearer {ADMIN}", "content-type": "application/json", **(headers or {})}
    return call(method, path, data, {k: v for k, v in h.items() if v is not None})


def brevo_hook(body, tenant="demo", account="brevo-main", token=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return call("POST", f"/hooks/brevo/{tenant}/{account}", data,
                {"authorization": token or TOK, "content-type": "application/json"})


def expect(status, want, what):
    if status not in (want if isinstance(want, tuple) else (want,)):
        raise Fail(f"{what}: status {status}, expected {want}")


def wait(what, predicate, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise Fail(f"timed out waiting for {what}")


def feed(tenant="demo", secret=DEMO):
    s, _, b = connector("GET", f"/connector/{tenant}/commands?after=0&limit=500", secret=secret)
    if s != 200:
        raise Fail(f"feed of {tenant}: status {s}")
    return json.loads(b)["commands"]


def approvals(tenant="demo", link="rundbrief"):
    s, _, b = admin("GET", f"/admin/tenants/{tenant}/links/{link}/approvals")
    return s, (json.loads(b).get("entries", []) if s == 200 else [])


def state():
    """What the cases must not change: both tenants' command feeds and demo's approval queue."""
    return feed(), feed("t2", T2_SECRET), approvals()


def unchanged(before, what):
    after = state()
    for name, b, a in zip(["demo's feed", "t2's feed", "demo's approvals"], before, after):
        if a != b:
            raise Fail(f"{what}: {name} changed")


def nothing_stored(case):
    """Runs the case's refusals and checks that they stored nothing."""
    def run():
        before = state()
        case()
        unchanged(before, case.__name__.upper())
    run.__name__ = case.__name__
    return run


def assignment(email="max.muster@example.com", person="P-55", extra=None, privacy=None):
    a = {"id": "A-9001", "newsletter": "rundbrief", "version": 1, "created_at": "2024-01-10T09:00:00Z",
         "changed_at": "2024-09-01T08:00:00Z", "count": 1,
         "person": {"id": person, "first_name": "Max", "last_name": "Muster",
                    "emails": [{"email": email, "priority": 1}]}}
    if extra:
        a.update(extra)
    if privacy is not None:
        a["person"]["privacy"] = privacy
    return {"type": "assignment.changed", "assignment": a}


def events(*evs):
    return json.dumps({"events": list(evs)}).encode()


# --- The baseline of the plan's setup ------------------------------------------------------------

def baseline():
    global TOK, T2_SECRET, T2_ID
    A = "/admin/tenants/demo"
    expect(admin("PUT", f"{A}/settings", {"no_statement_blocks": False, "approved_email_target": "assignment"})[0],
           200, "demo settings")
    expect(admin("PUT", f"{A}/accounts/brevo/brevo-main", {"api_key": BREVO_KEY})[0], (200, 201), "brevo-main")
    link = {"newsletter": "rundbrief", "provider": "brevo", "account": "brevo-main", "list": "1",
            "settings": {"mapping": {"first_name": "FIRSTNAME", "last_name": "LASTNAME"}}}
    expect(admin("PUT", f"{A}/links/rundbrief", link)[0], (200, 201), "link rundbrief")
    expect(admin("POST", f"{A}/links/rundbrief/sync")[0], (200, 202), "sync rundbrief")
    wait("rundbrief linked", lambda: b'"status":"linked"' in admin("GET", f"{A}/links/rundbrief")[2])
    s, _, _ = call("POST", "/simulate/signup", json.dumps({"email": "probe@example.org", "list_id": 1}).encode(),
                   {"content-type": "application/json"}, base=BREVO)
    expect(s, 200, "fake Brevo signup")
    wait("the Brevo token", lambda: SEEN["authorization"])
    TOK = next(iter(SEEN["authorization"]))
    wait("the probe signup queued", lambda: approvals()[1])
    expect(admin("PUT", "/admin/tenants/t2/settings",
                 {"no_statement_blocks": False, "approved_email_target": "assignment"})[0], 200, "t2 settings")
    s, _, b = admin("POST", "/admin/tenants/t2/signing-secrets")
    expect(s, 201, "t2 signing secret")
    T2_SECRET, T2_ID = json.loads(b)["secret"], json.loads(b)["id"]


def demo_command(kind=None):
    """A command of demo's feed (its id), optionally of one kind."""
    for c in feed():
        command = c["command"]
        if kind is None or command.get("type") == kind or kind in command:
            return command["id"]
    raise Fail(f"demo's feed holds no {kind or 'command'}")


# --- A. Tenant isolation -------------------------------------------------------------------------

def t01():
    s, _, _ = admin("PUT", "/admin/tenants/t2/accounts/brevo/brevo-t2", {"api_key": BREVO_KEY})
    expect(s, (200, 201), "t2 connects brevo-t2")
    link = {"newsletter": "rundbrief", "provider": "brevo", "account": "brevo-t2", "list": "1",
            "settings": {"mapping": {"first_name": "FIRSTNAME", "last_name": "LASTNAME"}}}
    s, _, _ = admin("PUT", "/admin/tenants/t2/links/rundbrief", link)
    expect(s, (201, 409), "t2 saves rundbrief")
    s, _, b = admin("GET", "/admin/tenants/demo/links")
    expect(s, 200, "demo's links")
    if b"rundbrief" not in b:
        raise Fail("demo's link rundbrief disappeared")
    s, _, b = admin("GET", "/admin/tenants/demo/links/rundbrief")
    if b"brevo-main" not in b:
        raise Fail("demo's rundbrief no longer names brevo-main")


def t02():
    s, entries = approvals("t2")
    expect(s, 200, "t2's approvals")
    if entries:
        raise Fail(f"t2 sees {len(entries)} entries (demo's signup)")
    if not approvals()[1]:
        raise Fail("demo's signup is gone")


def t03():
    path = "/connector/t2/commands?after=0"
    s, _, b = call("GET", path, headers=sr("GET", path, secret=DEMO))
    expect(s, 401, "t2 feed signed with demo's secret")
    if b"command" in b and b"[" in b:
        raise Fail("401 body holds feed content")


@nothing_stored
def t04():
    cid = demo_command()
    s, _, _ = connector("POST", f"/connector/t2/commands/{cid}/result", b'{"status":"done"}', secret=T2_SECRET)
    expect(s, 404, "t2 reports demo's command")


@nothing_stored
def t05():
    cid = demo_command("export_newsletter")
    page = json.dumps({"newsletter": "rundbrief", "last": True, "assignments": []}).encode()
    s, _, _ = connector("PUT", f"/connector/t2/snapshots/{cid}/pages/1", page, secret=T2_SECRET)
    expect(s, 404, "t2 uploads a page of demo's export")


def unsubscribed(email="probe@example.org"):
    ts = int(time.time())
    return {"id": 1, "camp_id": 1, "email": email, "event": "unsubscribed", "list_id": [1], "ts": ts,
            "ts_event": ts, "date_event": time.strftime("%Y-%m-%d %H:%M:%S")}


@nothing_stored
def t06():
    s, _, _ = brevo_hook(unsubscribed(), tenant="t2")
    expect(s, (401, 404), "demo's account through t2's URL")


@nothing_stored
def t07():
    addition = {"id": 1, "email": "probe@example.org", "event": "list_addition", "list_id": [1],
                "ts": int(time.time())}
    s, _, _ = brevo_hook(addition, tenant="demo~preview")
    expect(s, 404, "a dry run's tenant")


# --- B. Authentication and replay ----------------------------------------------------------------

@nothing_stored
def t08():
    s, _, _ = call("POST", "/connector/demo/events", BATCH, {"content-type": "application/json"})
    expect(s, 400, "events without webhook headers")


def t09():
    before = state()
    now = int(time.time())
    for what, h in [
        ("wrong key", sw(BATCH, secret=WRONG)),
        ("ts now-301", sw(BATCH, ts=now - 301)),
        ("ts now+301", sw(BATCH, ts=now + 301)),
        ("ts abc", sw(BATCH, ts="abc")),
        ("ts i64::MAX", sw(BATCH, ts="9223372036854775807")),
    ]:
        s, _, _ = call("POST", "/connector/demo/events", BATCH, h)
        expect(s, 401, what)
    h = sw(BATCH)
    h["webhook-signature"] = "v2," + h["webhook-signature"][3:]
    s, _, _ = call("POST", "/connector/demo/events", BATCH, h)
    expect(s, 401, "signature v2")
    unchanged(before, "T09 refusals")
    h = sw(BATCH)
    h["webhook-signature"] = " ".join(["v1," + base64.b64encode(os.urandom(32)).decode()] * 50
                                      + [h["webhook-signature"]])
    s, _, _ = call("POST", "/connector/demo/events", BATCH, h)
    expect(s, 202, "50 bogus entries then the good one")


def t10():
    h = sw(BATCH)
    s1, _, _ = call("POST", "/connector/demo/events", BATCH, h)
    s2, _, b2 = call("POST", "/connector/demo/events", BATCH, h)
    expect(s1, 202, "first delivery")
    expect(s2, 202, "same id and body again")
    if b'"duplicate":true' not in b2.replace(b" ", b""):
        raise Fail("second delivery not marked duplicate")
    other = BATCH.replace(b"2", b"3", 1)
    s3, _, _ = call("POST", "/connector/demo/events", other, sw(other, msg_id=h["webhook-id"]))
    expect(s3, 409, "same id, another body")
    old = sw(BATCH, ts=int(time.time()) - 360)
    s4, _, _ = call("POST", "/connector/demo/events", BATCH, old)
    expect(s4, 401, "resent after 6 minutes")


@nothing_stored
def t11():
    ids = [c["command"]["id"] for c in feed()]
    if len(ids) < 2:
        raise Fail("demo's feed holds fewer than two commands")
    body = b'{"status":"done"}'
    h = sr("POST", f"/connector/demo/commands/{ids[0]}/result", body)
    s, _, _ = call("POST", f"/connector/demo/commands/{ids[1]}/result", body, h)
    expect(s, 401, "a result signed for C1 sent to C2")


def t12():
    path = "/connector/demo/commands?after=999999"
    h = sr("GET", path)
    s, _, _ = call("GET", path, headers=h)
    expect(s, 200, "signed feed read")
    s, _, _ = call("GET", "/connector/demo/commands?after=0&limit=500", headers=h)
    expect(s, 401, "headers replayed with another query")


def t13():
    one = events({"type": "assignment.deleted", "id": "A-1", "newsletter": "rundbrief", "version": 1})
    old_id = T2_ID
    s, _, b = admin("POST", "/admin/tenants/t2/signing-secrets")
    expect(s, 201, "rotate")
    new = json.loads(b)
    for what, secret in [("old", T2_SECRET), ("new", new["secret"])]:
        s, _, _ = call("POST", "/connector/t2/events", one, sw(one, secret=secret))
        expect(s, 202, f"signed with the {what} secret during the rotation")
    expect(admin("DELETE", f"/admin/tenants/t2/signing-secrets/{old_id}")[0], (200, 204), "retire the old")
    s, _, _ = call("POST", "/connector/t2/events", one, sw(one, secret=T2_SECRET))
    expect(s, 401, "the retired secret")
    expect(admin("DELETE", f"/admin/tenants/t2/signing-secrets/{new['id']}")[0], 409, "retire the last")
    globals()["T2_SECRET"] = new["secret"]


def t14():
    s1, _, b1 = call("POST", "/connector/nosuch/events", BATCH, sw(BATCH))
    s2, _, b2 = call("POST", "/connector/demo/events", BATCH, sw(BATCH, secret=WRONG))
    expect(s1, 401, "unknown tenant")
    expect(s2, 401, "wrong signature")
    if b1 != b2:
        raise Fail(f"bodies differ (enumeration): {b1[:80]!r} vs {b2[:80]!r}")


def t15():
    for what, h in [
        ("no header", {}),
        ("empty bearer", {"authorization": "Bearer "}),
        ("wrong token, same length", {"authorization": "Bearer " + "x" * len(ADMIN)}),
        ("wrong token, other length", {"authorization": "Bearer x"}),
        ("lower-case scheme", {"authorization": "bearer " + ADMIN}),
    ]:
        s, hs, _ = call("GET", "/admin/tenants/demo", headers=h)
        expect(s, 401, what)
        if not any(k.lower() == "www-authenticate" for k in hs):
            raise Fail(f"{what}: 401 without www-authenticate")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url, headers=None):
    """GET an absolute URL (a browser step of the OAuth flow) without following redirects."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.build_opener(_NoRedirect).open(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def header(headers, name):
    return next((v for k, v in headers.items() if k.lower() == name), "")


def t16():
    """M4: the start link and the state work once, and the callback only in the browser that started."""
    s, _, b = admin("POST", "/admin/tenants/demo/accounts/cleverreach/cr-main/authorize")
    expect(s, 200, "authorize")
    start = json.loads(b)["authorize_url"]
    s, h, _ = fetch(start)
    expect(s, 302, "the start link")
    cookie, at_cleverreach = header(h, "set-cookie").split(";")[0], header(h, "location")
    if not cookie.startswith("__Host-optisync-oauth="):
        raise Fail(f"the start link set no browser cookie: {header(h, 'set-cookie')!r}")
    s, _, _ = fetch(start)
    expect(s, 422, "the start link a second time")
    # The CleverReach URL opened twice: two codes with the same state.
    backs = []
    for _ in range(2):
        s, h, _ = fetch(at_cleverreach)
        expect(s, 302, "CleverReach's authorize step")
        backs.append(header(h, "location"))
    states = [urllib.parse.parse_qs(urllib.parse.urlparse(u).query)["state"][0] for u in backs]
    if states[0] != states[1]:
        raise Fail("the two codes came back with different states")
    s, _, _ = fetch(backs[0])
    expect(s, 422, "the callback without the starting browser's cookie")
    s, _, b = fetch(backs[0], {"cookie": cookie})
    expect(s, 200, "the first callback")
    s, _, b = fetch(backs[1], {"cookie": cookie})
    expect(s, 422, "the second callback with the same state")
    if b"already used" not in b:
        raise Fail(f"the second callback: {b[:200]!r}")


def t17():
    forged = base64.urlsafe_b64encode(b'{"t":"demo","a":"cr-main","e":9999999999}').decode().rstrip("=")
    for what, state in [("garbage", "garbage"), ("a forged MAC", forged + ".AAAA")]:
        s, _, _ = call("GET", f"/oauth/cleverreach/callback?code=x&state={state}")
        expect(s, 422, f"callback with state {what}")
    s, _, _ = call("GET", "/oauth/cleverreach/callback?state=garbage")
    expect(s, 400, "no code")


def t18():
    s, _, _ = call("GET", "/hooks/cleverreach/demo/nosuch?secret=abc")
    expect(s, 404, "verify for an unknown account")
    s, _, _ = call("GET", "/hooks/cleverreach/demo/nosuch")
    expect(s, (400, 404), "verify without secret")


# --- C. Input handling ---------------------------------------------------------------------------

@nothing_stored
def t20():
    big = b"{" + b" " * (512 * 1024) + b"}"
    s, _, _ = call("POST", "/connector/demo/events", big, sw(big))
    expect(s, 413, "512 KiB+1 to the OPTIGEM intake")
    s, _, _ = call("POST", "/hooks/brevo/demo/brevo-main", big, {"content-type": "application/json"})
    expect(s, 413, "512 KiB+1 to the Brevo hook")
    small = b"{" + b" " * (64 * 1024) + b"}"
    s, _, _ = call("POST", "/hooks/cleverreach/demo/cr-main", small, {"content-type": "application/json"})
    expect(s, 413, "64 KiB+1 to the CleverReach hook")
    s, _, _ = call("PUT", "/admin/tenants/demo/settings", small, {"content-type": "application/json"})
    expect(s, (401, 413), "64 KiB+1 to the admin API, unauthenticated")


@nothing_stored
def t21():
    cid = demo_command("export_newsletter")
    long = {"first_name": "x" * 5000, "last_name": "y" * 5000}
    many = [dict(assignment(person=f"P-{i}")["assignment"], id=f"A-{i}") for i in range(500)]
    for a in many:
        a["person"].update(long)
    page = json.dumps({"newsletter": "rundbrief", "last": False, "assignments": many}).encode()
    s, _, _ = connector("PUT", f"/connector/demo/snapshots/{cid}/pages/1", page)
    expect(s, 413, f"a snapshot page of {len(page) // 1024} KiB")
    result = json.dumps({"status": "failed", "reason": "r" * (2 * 1024 * 1024)}).encode()
    s, _, _ = connector("POST", f"/connector/demo/commands/{cid}/result", result)
    expect(s, 413, "a 2 MiB result")


@nothing_stored
def t22():
    nested = b'{"events":' + b"[" * 200 + b"]" * 200 + b"}"
    s, _, _ = call("POST", "/connector/demo/events", nested, sw(nested))
    expect(s, 400, "signed events nested 200 deep")
    s, _, _ = brevo_hook(b"[" * 200 + b"]" * 200)
    expect(s, 400, "Brevo body nested 200 deep")


@nothing_stored
def t23():
    many = events(*[{"type": "assignment.deleted", "id": f"A-{i}", "newsletter": "rundbrief", "version": 1}
                    for i in range(201)])
    s, _, _ = call("POST", "/connector/demo/events", many, sw(many))
    expect(s, 400, "201 events")
    cid = demo_command("export_newsletter")
    rows = [dict(assignment(person=f"P-{i}")["assignment"], id=f"A-{i}") for i in range(501)]
    page = json.dumps({"newsletter": "rundbrief", "last": False, "assignments": rows}).encode()
    s, _, _ = connector("PUT", f"/connector/demo/snapshots/{cid}/pages/1", page)
    expect(s, (400, 413), "a page of 501 assignments")
    s, _, _ = brevo_hook(json.dumps([{"event": "opened", "email": "probe@example.org"}] * 5000).encode())
    expect(s, (400, 413), "5,000 Brevo events in one request")
    addition = {"id": 1, "email": "probe@example.org", "event": "list_addition", "ts": int(time.time()),
                "list_id": ",".join(str(i) for i in range(1, 5001))}
    s, _, _ = brevo_hook(addition)
    expect(s, (400, 413), "one list_addition with 5,000 list ids")


@nothing_stored
def t24():
    junk = b"\xff\xfe"
    s, _, _ = call("POST", "/connector/demo/events", junk, sw(junk))
    expect(s, 400, "bytes that are no UTF-8, signed events")
    cid = demo_command()
    s, _, _ = connector("POST", f"/connector/demo/commands/{cid}/result", junk)
    expect(s, 400, "bytes that are no UTF-8, a signed result")
    s, _, _ = brevo_hook(junk)
    expect(s, 400, "bytes that are no UTF-8 to the Brevo hook")
    s, _, _ = call("POST", "/hooks/cleverreach/demo/cr-main", junk, {"content-type": "application/json"})
    expect(s, (401, 404), "bytes that are no UTF-8 to the CleverReach hook, without a call token")
    s, _, _ = admin("PUT", "/admin/tenants/demo/settings", raw=junk)
    expect(s, 400, "bytes that are no UTF-8 to the admin API")
    h = sw(BATCH)
    h["webhook-id"] = "m\xffm"
    s, _, _ = call("POST", "/connector/demo/events", BATCH, h)
    expect(s, 400, "a webhook-id with byte 0xff")


@nothing_stored
def t25():
    for bad in ["max", "a b@c.de", "@x.de", "x@"]:
        body = events(assignment(email=bad))
        s, _, b = call("POST", "/connector/demo/events", body, sw(body))
        expect(s, 400, f"assignment e-mail {bad!r}")
        path = json.loads(b)["error"].get("path", "")
        if not (path.startswith("events[0].") and path.endswith("email")):
            raise Fail(f"the 400 names {path!r}, not the e-mail field")


@nothing_stored
def t26():
    s, _, _ = brevo_hook(unsubscribed(email="not-an-address"))
    expect(s, 200, "an unsubscribe without an address is acknowledged and ignored")


@nothing_stored
def t27():
    for tenant in ["a%23b", "a%2Fb", "a" * 300]:
        s, _, _ = call("POST", f"/connector/{tenant}/events", BATCH, {"content-type": "application/json"})
        expect(s, 404, f"events for tenant {tenant[:10]}...")


@nothing_stored
def t28():
    s, _, b = call("POST", "/connector/demo/events", BATCH, sw(BATCH, msg_id="m" * 3000))
    expect(s, 400, "a webhook-id of 3,000 characters")
    if b"mmmm" in b:
        raise Fail("the webhook-id is echoed")


def t29():
    body = {"no_statement_blocks": False, "approved_email_target": "assignment"}
    expect(admin("PUT", "/admin/tenants/../settings", body)[0], 404, "tenant ..")
    link = {"newsletter": "rundbrief", "provider": "brevo", "account": "brevo-main", "list": "1"}
    expect(admin("PUT", "/admin/tenants/demo/links/..", link)[0], 404, "link ..")
    expect(admin("PUT", "/admin/tenants/demo/links/" + "l" * 65, link)[0], 404, "a link id of 65 characters")
    expect(admin("PUT", "/admin/tenants/demo/links/other", dict(link, newsletter="a#b"))[0], 422, "newsletter a#b")
    s, _, b = admin("GET", "/admin/tenants/demo/links")
    if b"other" in b:
        raise Fail("a link was saved")


def t30():
    s, _, b = admin("PUT", "/admin/tenants/demo/settings",
                    {"no_statement_blocks": "lena@example.org", "approved_email_target": "assignment"})
    expect(s, (400, 422), "settings with an address as a flag")
    if b"@" in b:
        raise Fail("the 4xx echoes the address")
    s, _, b = admin("POST", "/admin/tenants/demo/links/rundbrief/approvals/decisions",
                    {"decision": "lena@example.org", "email": "x@y.de"})
    expect(s, (400, 422), "a decision named by an address")
    if b"@" in b:
        raise Fail("the 4xx echoes the address")


def t31():
    good = json.dumps({"no_statement_blocks": False, "approved_email_target": "assignment"}).encode()
    expect(admin("PUT", "/admin/tenants/demo/settings", raw=good + b"xyz")[0], 400, "trailing bytes")
    expect(admin("PUT", "/admin/tenants/demo/settings", raw=good, headers={"content-type": None})[0], 415,
           "no content-type")


def t32():
    before = state()
    cid = demo_command()
    s, _, _ = connector("POST", f"/connector/demo/commands/{cid}/result", b'{"status":"failed","reason":"  "}')
    expect(s, 400, "a failure without a reason")
    s, _, _ = connector("POST", "/connector/demo/commands/nosuch/result", b'{"status":"done"}')
    expect(s, 404, "an unknown command")
    export = demo_command("export_newsletter")
    page = json.dumps({"newsletter": "rundbrief", "last": False, "assignments": []}).encode()
    for n in ["0", "abc"]:
        s, _, _ = connector("PUT", f"/connector/demo/snapshots/{export}/pages/{n}", page)
        expect(s, 400, f"page {n}")
    other = json.dumps({"newsletter": "other", "last": False, "assignments": []}).encode()
    s, _, _ = connector("PUT", f"/connector/demo/snapshots/{export}/pages/2", other)
    expect(s, 400, "a page of another newsletter")
    unchanged(before, "T32 refusals")
    s, _, _ = connector("PUT", f"/connector/demo/snapshots/{export}/pages/4294967295", page)
    expect(s, 202, "page 4294967295")


def t33():
    for method, path, body in [("GET", "/connector/demo/events", b""), ("PUT", "/hooks/brevo/demo/brevo-main", b"{}"),
                               ("DELETE", "/hooks/cleverreach/demo/cr-main", b"")]:
        s, _, _ = call(method, path, body, {"content-type": "application/json"})
        expect(s, 405, f"{method} {path}")


def t34():
    body = events({"type": "assignment.deleted", "id": "A-77", "newsletter": "rundbrief", "version": 1})
    h = sw(body)
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: call("POST", "/connector/demo/events", body, h), range(20)))
    statuses = [s for s, _, _ in answers]
    if any(s != 202 for s in statuses):
        raise Fail(f"statuses {sorted(set(statuses))}, expected only 202")
    duplicates = sum(b'"duplicate":true' in b.replace(b" ", b"") for _, _, b in answers)
    if duplicates != 19:
        raise Fail(f"{20 - duplicates} stored, expected exactly one")


# --- D. Privacy ----------------------------------------------------------------------------------

@nothing_stored
def t35():
    s, _, b = brevo_hook({"event": "lena.schmidt@example.org", "email": "x@y.de"})
    expect(s, 200, "an unknown Brevo event is acknowledged")
    if b"@" in b:
        raise Fail("the answer echoes the event name")


@nothing_stored
def t36():
    for what, ev in [("an extra key", assignment(extra={"lena@example.org": 1})),
                     ("a privacy category", assignment(privacy={"lena@example.org": "nope"}))]:
        body = events(ev)
        s, _, b = call("POST", "/connector/demo/events", body, sw(body))
        expect(s, 400, what)
        if b"lena" in b:
            raise Fail(f"{what}: the 400 holds the address")


def t37():
    time.sleep(1)  # the runner's last lines
    with open(LOG, encoding="utf-8", errors="replace") as f:
        hits = [line for line in f if "@" in line]
    if hits:
        raise Fail(f"{len(hits)} runner log lines hold '@', e.g. {hits[0][:160]!r}")


# --- E. Durability -------------------------------------------------------------------------------

def t38():
    body = events({"type": "assignment.deleted", "id": "A-38", "newsletter": "rundbrief", "version": 1})
    h = sw(body)
    s, _, _ = call("POST", "/connector/demo/events", body, h)
    expect(s, 202, "a signed batch")
    RUNNER.kill()
    RUNNER.start()
    h = sw(body, msg_id=h["webhook-id"])
    s, _, b = call("POST", "/connector/demo/events", body, h)
    expect(s, 202, "the batch again after kill -9 and a restart")
    if b'"duplicate":true' not in b.replace(b" ", b""):
        raise Fail("the accepted batch was lost with the process (not answered as a duplicate)")


def t39():
    """R-J2 over the runner: an erasure link, the recipient's own unsubscribe, the connector's done."""
    A = "/admin/tenants/demo"
    email = "erika.t39@example.org"
    settings = {"no_statement_blocks": False, "approved_email_target": "assignment"}
    link = {"newsletter": "rundbrief", "provider": "brevo", "account": "brevo-main", "list": "1",
            "settings": {"mapping": {"first_name": "FIRSTNAME", "last_name": "LASTNAME"},
                         "unsubscribe_mode": "erasure"}}
    expect(admin("PUT", f"{A}/links/rundbrief", link)[0], 422, "erasure mode without a deletion report address")
    expect(admin("PUT", f"{A}/settings", dict(settings, deletion_report_email="datenschutz@gemeinde.example"))[0],
           200, "demo's deletion report address")
    expect(admin("PUT", f"{A}/links/rundbrief", link)[0], 200, "rundbrief in erasure mode")
    try:
        body = events(assignment(email=email, person="P-39", extra={"id": "A-39"}))
        expect(call("POST", "/connector/demo/events", body, sw(body))[0], 202, "Erika's assignment")
        contact = lambda: call("GET", f"/v3/contacts/{email}", headers={"api-key": BREVO_KEY}, base=BREVO)[0]
        wait("Erika on the Brevo list", lambda: contact() == 200)
        expect(brevo_hook(unsubscribed(email))[0], (200, 202), "Erika's own unsubscribe")

        def end():
            return next((c["command"]["id"] for c in feed() if c["command"].get("type") == "end_assignment"
                         and c["command"].get("assignment") == "A-39"), None)
        wait("the end_assignment of A-39", end)
        expect(contact(), 200, "the contact before OPTIGEM's done")
        expect(connector("POST", f"/connector/demo/commands/{end()}/result", b'{"status":"done"}')[0],
               (200, 202, 204), "OPTIGEM's done")
        wait("the contact deleted at Brevo", lambda: contact() == 404)

        def reports():
            s, _, b = admin("GET", f"{A}/erasure-reports")
            return [r for r in json.loads(b)["reports"] if r.get("email") == email] if s == 200 else []
        wait("the deletion report", reports)
        if len(reports()) != 1:
            raise Fail(f"{len(reports())} deletion reports for one erasure")
        if not any(c["command"].get("type") == "erasure_report" for c in feed()):
            raise Fail("no erasure_report on the connector's feed")
        s, _, b = admin("POST", f"{A}/subjects/lookup", {"email": email})
        expect(s, 200, "the access export after the erasure")
        held = json.loads(b)
        if any(l.get("recipient") for l in held["links"]) or not held.get("erased"):
            raise Fail(f"the store still holds a recipient state, or no erasure marker: {held}")
    finally:
        classic = dict(link, settings={"mapping": link["settings"]["mapping"]})
        admin("PUT", f"{A}/links/rundbrief", classic)


CASES = {f"T{n:02}": f for n, f in [
    (1, t01), (2, t02), (3, t03), (4, t04), (5, t05), (6, t06), (7, t07), (8, t08), (9, t09), (10, t10),
    (11, t11), (12, t12), (13, t13), (14, t14), (15, t15), (16, t16), (17, t17), (18, t18), (20, t20), (21, t21),
    (22, t22), (23, t23), (24, t24), (25, t25), (26, t26), (27, t27), (28, t28), (29, t29), (30, t30),
    (31, t31), (32, t32), (33, t33), (34, t34), (35, t35), (36, t36), (37, t37), (38, t38), (39, t39)]}
NOT_HERE = {  # each is asserted elsewhere, or does not apply yet; the reason is printed
    "T19": "the fake CleverReach has no HTTP trigger for receiver events: hook-cleverreach's handler tests",
    "T40": "a 30-minute run: bench/retention-growth measures the state file over a long run (R-J6, docs/privacy.md)",
}


def main(argv):
    global RUNNER
    wanted = [a.upper() for a in argv] or sorted(set(CASES) | set(NOT_HERE))
    RUNNER = Runner()
    failed = 0
    try:
        RUNNER.start()
        baseline()
        for name in wanted:
            case = CASES.get(name)
            if case is None:
                print(f"{name} not here: {NOT_HERE.get(name, 'unknown case')}")
                continue
            try:
                case()
                print(f"{name} ok")
            except Fail as e:
                failed += 1
                print(f"{name} FAIL: {e}")
            except Exception as e:  # a crash of the case is a failure too
                failed += 1
                print(f"{name} FAIL: {type(e).__name__}: {e}")
    except Fail as e:
        print(f"baseline FAIL: {e}")
        failed += 1
    finally:
        RUNNER.stop()
    print(f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
