"""The hostile-input cases (T01-T40) against a running local runner (stdlib only).

Each case asserts the secure outcome and that nothing was stored (the command feed and the approval
queue compared before and after). Prints `T09 ok` / `T09 FAIL: ...`; exits 1 on any failure.
Started by tests/hostile, which sets HOSTILE_API, HOSTILE_ADMIN_TOKEN and HOSTILE_LOG.
"""
import base64, hashlib, hmac, json, os, sys, time, uuid, urllib.error, urllib.parse, urllib.request

API = os.environ["HOSTILE_API"]
ADMIN = os.environ["HOSTILE_ADMIN_TOKEN"]
LOG = os.environ["HOSTILE_LOG"]
DEMO = "whsec_bG9jYWwtc2FuZGJveC1zaWduaW5nLXNlY3JldA=="
WRONG = "whsec_dGhpcyBpcyBhbm90aGVyIGtleSEhIQ=="
HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = open(os.path.join(HERE, "..", "docs", "examples", "event-batch.json"), "rb").read()


class Fail(Exception):
    pass


def call(method, path, body=b"", headers=None):
    req = urllib.request.Request(API + path, data=body or None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


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


def admin(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else b""
    return call(method, path, data, {"authorization": f"Bearer {ADMIN}", "content-type": "application/json"})


def expect(status, want, what):
    if status not in (want if isinstance(want, tuple) else (want,)):
        raise Fail(f"{what}: status {status}, expected {want}")


def feed(tenant="demo"):
    path = f"/connector/{tenant}/commands?after=0&limit=500"
    s, _, b = call("GET", path, headers=sr("GET", path))
    return s, b


def state():
    """What the cases must not change: demo's command feed and the log length of stored entries."""
    return feed()


def unchanged(before, what):
    after = state()
    if after != before:
        raise Fail(f"{what}: the command feed changed")


# --- B. Authentication and replay ----------------------------------------------------------------

def t03():
    path = "/connector/t2/commands?after=0"
    s, _, b = call("GET", path, headers=sr("GET", path, secret=DEMO))
    expect(s, 401, "t2 feed signed with demo's secret")
    if b"command" in b and b"[" in b:
        raise Fail("401 body holds feed content")


def t08():
    before = state()
    s, _, _ = call("POST", "/connector/demo/events", BATCH, {"content-type": "application/json"})
    expect(s, 400, "events without webhook headers")
    unchanged(before, "T08")


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


def t12():
    path = "/connector/demo/commands?after=999999"
    h = sr("GET", path)
    s, _, _ = call("GET", path, headers=h)
    expect(s, 200, "signed feed read")
    s, _, _ = call("GET", "/connector/demo/commands?after=0&limit=500", headers=h)
    expect(s, 401, "headers replayed with another query")


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
    s, _, _ = call("GET", "/oauth/cleverreach/callback?code=abc&state=garbage")
    expect(s, 422, "state=garbage")
    s, _, _ = call("GET", "/oauth/cleverreach/callback?state=garbage")
    expect(s, 400, "no code")


def t18():
    s, _, _ = call("GET", "/hooks/cleverreach/demo/nosuch?secret=abc")
    expect(s, 404, "verify for an unknown account")
    s, _, _ = call("GET", "/hooks/cleverreach/demo/nosuch")
    expect(s, (400, 404), "verify without secret")


# --- C. Input handling ---------------------------------------------------------------------------

def t20():
    before = state()
    big = b"{" + b" " * (512 * 1024) + b"}"
    s, _, _ = call("POST", "/connector/demo/events", big, sw(big))
    expect(s, 413, "512 KiB+1 to the OPTIGEM intake")
    s, _, _ = call("POST", "/hooks/brevo/demo/brevo-demo", big, {"content-type": "application/json"})
    expect(s, 413, "512 KiB+1 to the Brevo hook")
    small = b"{" + b" " * (64 * 1024) + b"}"
    s, _, _ = call("POST", "/hooks/cleverreach/demo/cr-main", small, {"content-type": "application/json"})
    expect(s, 413, "64 KiB+1 to the CleverReach hook")
    s, _, _ = call("PUT", "/admin/tenants/demo/settings", small, {"content-type": "application/json"})
    expect(s, (401, 413), "64 KiB+1 to the admin API, unauthenticated")
    unchanged(before, "T20")


# --- D. Privacy ----------------------------------------------------------------------------------

def t37():
    with open(LOG, encoding="utf-8", errors="replace") as f:
        hits = [line for line in f if "@" in line]
    if hits:
        raise Fail(f"{len(hits)} runner log lines hold '@'")


CASES = {"T03": t03, "T08": t08, "T09": t09, "T10": t10, "T12": t12, "T14": t14, "T15": t15, "T16": t16,
         "T17": t17, "T18": t18, "T20": t20, "T37": t37}
PENDING = {  # not yet written in this suite (they need the Brevo/CleverReach baseline of the plan)
    **{t: "needs the Brevo webhook token / link baseline, not written yet" for t in
       ["T01", "T02", "T04", "T05", "T06", "T07", "T11", "T13", "T19", "T21", "T35", "T36"]},
    **{f"T{n}": "not written yet" for n in range(22, 35)},
    "T38": "kill -9 and restart, not written yet",
    "T39": "not applicable yet: erasure does not exist",
    "T40": "not applicable yet: retention does not exist",
}


def main(argv):
    wanted = [a.upper() for a in argv] or list(CASES)
    failed = 0
    for name in wanted:
        case = CASES.get(name)
        if case is None:
            print(f"{name} skipped: {PENDING.get(name, 'unknown case')}")
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
    if not argv:
        for name, why in sorted(PENDING.items()):
            print(f"{name} skipped: {why}")
    print(f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
