#!/usr/bin/env python3
"""Cold start of each function's release bootstrap, under a local emulation of the Lambda Runtime API.

Used by `bench/lambda-start` (which builds the bootstraps and starts moto); Python 3 standard library only.

For every bootstrap in --lambda-dir (<name>/bootstrap, as `.ci/package` leaves them), and --runs times each
(round robin, so drift of the machine spreads over all functions; after one unrecorded start), it:

1. starts a Runtime API server on a free loopback port that hands out exactly one invocation: the
   function's first event on `GET /2018-06-01/runtime/invocation/next` (with the headers Lambda sends),
   and takes `POST .../invocation/{id}/response`, `.../invocation/{id}/error` and `.../init/error`;
   later `next` calls wait, as a frozen sandbox would;
2. spawns the bootstrap with the environment Lambda and template.yaml give it (AWS pointed at moto);
3. records the time from spawn to the first `next` (init) and to the response or error post (first
   handled request), the HTTP status for API Gateway events, and VmHWM (peak RSS) from /proc/<pid>/status
   read right after that post; then kills the process.

Prints one line per run on stderr and a markdown table of medians on stdout (with each bootstrap's size,
bare and zipped as the deployment package). Asserts nothing about the figures, but exits 1 when a
bootstrap is missing, fails its init, exits before answering, or does not answer within --timeout
seconds.
"""

from __future__ import annotations

import argparse
import base64
import http.server
import io
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
API = "/2018-06-01/runtime"
REGION = "eu-central-1"
ACCOUNT = "123456789012"
STAGE = "bench"

# Parameter defaults of template.yaml, with Stage=bench; the ESP base URLs point at a closed loopback port
# instead of Brevo and CleverReach (none of the first events below calls an ESP; if one did, it must fail
# here rather than leave the machine).
CLOSED_PORT_URL = "http://127.0.0.1:9"
GLOBAL_ENV = {  # template.yaml, Globals.Function.Environment
    "TABLE_NAME": f"optisync-{STAGE}",
    "SECRETS_PREFIX": "optisync/",
    "EVENT_BUS_NAME": f"optisync-{STAGE}",
    "RUST_LOG": "info",
    "METRICS_NAMESPACE": f"optisync/{STAGE}",
}
ESP_ENV = {
    "BREVO_BASE_URL": f"{CLOSED_PORT_URL}/brevo/v3",
    "CLEVERREACH_BASE_URL": f"{CLOSED_PORT_URL}/cleverreach",
    "CLEVERREACH_CLIENT_ID": "",
    "CLEVERREACH_REDIRECT_URI": "",
}
# Each function's own Environment, MemorySize and Timeout in template.yaml.
FUNCTION_ENV = {
    "admin-api": {"PUBLIC_BASE_URL": "", **ESP_ENV},
    "worker": dict(ESP_ENV),
    "reconciler": {**ESP_ENV, "GUARD_SHARE": "0.1", "GUARD_MIN": "10"},
}
MEMORY_MB = {"worker": 512, "reconciler": 512}
TIMEOUT_S = {"admin-api": 29, "worker": 120, "reconciler": 900, "scheduler": 60}


def fixture(function: str, name: str) -> str:
    return (REPO / "functions" / function / "tests" / "fixtures" / name).read_text()


def with_body(text: str, body: str) -> str:
    """A fixture's `"__BODY__"` replaced by the body as a JSON string (as the handler tests do)."""
    return text.replace('"__BODY__"', json.dumps(body))


def apigw_v2(method: str, path: str, route_key: str, path_parameters: dict, query: str = "",
             headers: dict | None = None, body: str | None = None, authorizer: dict | None = None) -> str:
    """An API Gateway HTTP API (payload 2.0) event, for the functions without a fixture."""
    now = time.time()
    context = {
        "accountId": ACCOUNT, "apiId": "abc123",
        "domainName": f"abc123.execute-api.{REGION}.amazonaws.com", "domainPrefix": "abc123",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7",
                 "userAgent": "bench"},
        "requestId": str(uuid.uuid4()), "routeKey": route_key, "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    event = {
        "version": "2.0", "routeKey": route_key, "rawPath": path, "rawQueryString": query,
        "headers": {"host": context["domainName"], "user-agent": "bench", **(headers or {})},
        "requestContext": context, "pathParameters": path_parameters, "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if body is not None:
        event["body"] = body
    return json.dumps(event)


def first_event(function: str) -> tuple[str, str]:
    """(what the event is, the event as JSON) of the function's first invocation."""
    now = int(time.time())
    if function == "hook-brevo":
        body = json.dumps({"id": 501, "camp_id": 12, "email": "max.muster@example.com", "event": "unsubscribed",
                           "date_event": "2024-09-25 11:15:37", "list_id": [7], "ts_event": 1727255737,
                           "ts": now})
        text = with_body(fixture(function, "apigw-v2-post-webhook.json"), body)
        return "POST webhook, wrong bearer token", text.replace("__AUTH__", "Bearer not-the-token")
    if function == "hook-cleverreach":
        body = '{"event":"receiver.unsubscribed","condition":"1939","payload":{"pool_id":"4285"}}'
        text = with_body(fixture(function, "apigw-v2-post-event.json"), body)
        return "POST event, wrong call token", text.replace("__TOKEN__", "not-the-token")
    if function == "hook-optigem":
        body = '{"events":[{"type":"assignment.deleted","id":"A-1","newsletter":"NL-7","version":3}]}'
        text = with_body(fixture(function, "apigw-v2-post-events.json"), body)
        signature = "v1," + base64.b64encode(bytes(32)).decode()
        text = text.replace("__ID__", "msg_bench").replace("__TS__", str(now)).replace("__SIG__", signature)
        return "POST change events, wrong signature", text
    if function == "connector-api":
        signature = "v1," + base64.b64encode(bytes(32)).decode()
        return "GET command feed, wrong signature", apigw_v2(
            "GET", "/connector/t1/commands", "GET /connector/{tenant}/commands", {"tenant": "t1"},
            query="after=0",
            headers={"webhook-id": "msg_bench", "webhook-timestamp": str(now), "webhook-signature": signature})
    if function == "admin-api":
        return "GET links, no IAM authorizer context", apigw_v2(
            "GET", "/admin/tenants/t1/links", "ANY /admin/{proxy+}", {"proxy": "tenants/t1/links"})
    if function == "worker":
        return "inbox.ready, unknown key", fixture(function, "eventbridge-inbox-ready.json")
    if function == "reconciler":
        return "link.reconcile, unknown link", fixture(function, "eventbridge-reconcile.json")
    if function == "scheduler":
        return "scheduled tick, empty table", fixture(function, "eventbridge-scheduled.json")
    raise KeyError(function)


# ------------------------------------------------------------------------------------------------------
# moto: the resources the functions use
# ------------------------------------------------------------------------------------------------------

def aws_call(endpoint: str, service: str, target: str, payload: dict, json_version: str) -> tuple[int, dict]:
    request = urllib.request.Request(endpoint + "/", data=json.dumps(payload).encode(), method="POST", headers={
        "Content-Type": f"application/x-amz-json-{json_version}",
        "X-Amz-Target": target,
        # moto does not check signatures; it reads service and region from the credential scope.
        "Authorization": f"AWS4-HMAC-SHA256 Credential=test/20240101/{REGION}/{service}/aws4_request, "
                         "SignedHeaders=host;x-amz-date, Signature=0",
        "X-Amz-Date": "20240101T000000Z",
    })
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def prepare_moto(endpoint: str) -> None:
    """The state table (key schema of template.yaml) and the bus; one Secrets Manager call, so that moto has
    loaded each service before the first measured run. No secret exists: every credential check fails."""
    key = lambda h, r: [{"AttributeName": h, "KeyType": "HASH"}, {"AttributeName": r, "KeyType": "RANGE"}]  # noqa: E731
    status, body = aws_call(endpoint, "dynamodb", "DynamoDB_20120810.CreateTable", {
        "TableName": GLOBAL_ENV["TABLE_NAME"],
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"}
                                 for a in ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")],
        "KeySchema": key("pk", "sk"),
        "GlobalSecondaryIndexes": [
            {"IndexName": i, "KeySchema": key(f"{i}pk", f"{i}sk"), "Projection": {"ProjectionType": "KEYS_ONLY"}}
            for i in ("gsi1", "gsi2")],
    }, "1.0")
    if status != 200 and "ResourceInUse" not in json.dumps(body):
        sys.exit(f"moto: CreateTable answered {status}: {body}")
    status, body = aws_call(endpoint, "events", "AWSEvents.CreateEventBus", {"Name": GLOBAL_ENV["EVENT_BUS_NAME"]},
                            "1.1")
    if status != 200 and "AlreadyExists" not in json.dumps(body):
        sys.exit(f"moto: CreateEventBus answered {status}: {body}")
    status, body = aws_call(endpoint, "secretsmanager", "secretsmanager.GetSecretValue",
                            {"SecretId": GLOBAL_ENV["SECRETS_PREFIX"] + "bench/none"}, "1.1")
    if "ResourceNotFound" not in json.dumps(body):
        sys.exit(f"moto: GetSecretValue of a missing secret answered {status}: {body}")


# ------------------------------------------------------------------------------------------------------
# The Runtime API
# ------------------------------------------------------------------------------------------------------

@dataclass
class Invocation:
    """One sandbox's Runtime API state: the single event it hands out and what came back."""

    event: bytes
    function_arn: str
    timeout_s: int
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    spawned: float = 0.0
    next_at: float | None = None
    done_at: float | None = None
    outcome: str | None = None  # "response", "error", "init-error"
    answer: bytes = b""
    answer_headers: dict = field(default_factory=dict)
    unexpected: list = field(default_factory=list)
    handed_out: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    closing: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the runtime client expects
    invocation: Invocation  # set on a subclass per server

    def log_message(self, *args) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        inv = self.invocation
        now = time.perf_counter()
        if self.path != f"{API}/invocation/next":
            inv.unexpected.append(f"GET {self.path}")
            return self._send(404, b'{"errorType":"NotFound"}')
        with inv.lock:
            first = not inv.handed_out
            inv.handed_out = True
            if first:
                inv.next_at = now
        if not first:
            # The one invocation is handed out: the sandbox would be frozen now. Hold the call until the
            # process is killed.
            inv.closing.wait(60)
            self.close_connection = True
            return
        deadline_ms = int(time.time() * 1000) + inv.timeout_s * 1000
        trace = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"
        self._send(200, inv.event, {
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
            "Lambda-Runtime-Trace-Id": trace,
        })

    def do_POST(self) -> None:
        inv = self.invocation
        now = time.perf_counter()
        body = self._body()
        m = re.fullmatch(rf"{API}/invocation/([^/]+)/(response|error)", self.path)
        if m and m.group(1) == inv.request_id:
            outcome = m.group(2)
        elif self.path == f"{API}/init/error":
            outcome = "init-error"
        else:
            inv.unexpected.append(f"POST {self.path}")
            return self._send(400 if m else 404, b'{"errorType":"InvalidRequestID"}')
        with inv.lock:
            if inv.outcome is None:
                inv.done_at, inv.outcome, inv.answer = now, outcome, body
                inv.answer_headers = {k.lower(): v for k, v in self.headers.items()}
        self._send(202, b'{"status":"OK"}')
        inv.done.set()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def handle_error(self, request, client_address) -> None:
        # The killed process's idle keep-alive connections are reset: expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


# ------------------------------------------------------------------------------------------------------
# One cold start
# ------------------------------------------------------------------------------------------------------

@dataclass
class Run:
    function: str
    ok: bool
    init_ms: float | None = None
    first_ms: float | None = None
    answer: str = ""
    peak_rss_kib: int | None = None
    problem: str = ""


def proc_status(pid: int) -> dict:
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def describe_answer(inv: Invocation) -> str:
    try:
        payload = json.loads(inv.answer or b"null")
    except ValueError:
        payload = None
    if inv.outcome == "response" and isinstance(payload, dict) and "statusCode" in payload:
        return str(payload["statusCode"])
    if inv.outcome == "response":
        if isinstance(payload, dict):
            text = ", ".join(f"{k} {json.dumps(v)}" for k, v in payload.items())
        else:
            text = inv.answer.decode(errors="replace")
        return "ok: " + (text if len(text) <= 90 else text[:87] + "...")
    kind = (payload or {}).get("errorType") if isinstance(payload, dict) else None
    message = (payload or {}).get("errorMessage", "") if isinstance(payload, dict) else ""
    return f"{inv.outcome} {kind or inv.answer_headers.get('lambda-runtime-function-error-type', '?')}: {message}"[:120]


def environment(function: str, runtime_api: str, endpoint: str) -> dict:
    name = f"optisync-{STAGE}-{function}"
    return {
        # What Lambda sets in a provided.al2023 sandbox (LoggingConfig: JSON logs, application level INFO).
        "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": "bootstrap",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB.get(function, 256)),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/[$LATEST]") + secrets.token_hex(16),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": "test",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        # Instead of AWS: every SDK client goes to moto.
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        # template.yaml
        **GLOBAL_ENV,
        **FUNCTION_ENV.get(function, {}),
    }


def cold_start(function: str, bootstrap: Path, endpoint: str, timeout: float, log: Path) -> Run:
    _, event = first_event(function)
    inv = Invocation(event=event.encode(), timeout_s=TIMEOUT_S.get(function, 30),
                     function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:optisync-{STAGE}-{function}")
    handler = type("Handler", (RuntimeApi,), {"invocation": inv})
    server = Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    runtime_api = f"127.0.0.1:{server.server_address[1]}"
    env = environment(function, runtime_api, endpoint)
    run = Run(function, ok=False)
    with open(log, "wb") as out:
        inv.spawned = time.perf_counter()
        proc = subprocess.Popen([str(bootstrap)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=bootstrap.parent)
        try:
            waited_until = time.perf_counter() + timeout
            while not inv.done.wait(0.005):
                if proc.poll() is not None:
                    break
                if time.perf_counter() > waited_until:
                    break
            status = proc_status(proc.pid)  # right after the answer, before the kill
            exited = proc.poll()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            inv.closing.set()
            server.shutdown()
            server.server_close()
    ms = lambda t: None if t is None else (t - inv.spawned) * 1000  # noqa: E731
    run.init_ms, run.first_ms = ms(inv.next_at), ms(inv.done_at)
    if "VmHWM" in status:
        run.peak_rss_kib = int(status["VmHWM"].split()[0])
    if inv.outcome is not None:
        run.answer = describe_answer(inv)
    if inv.outcome == "init-error":
        run.problem = f"init failed: {inv.answer.decode(errors='replace')[:300]}"
    elif inv.outcome is None and exited is not None:
        run.problem = f"exited with {exited} before answering"
    elif inv.outcome is None:
        run.problem = f"no answer within {timeout:g} s"
    elif exited is not None:
        run.problem = f"answered, then exited with {exited}"
    elif run.peak_rss_kib is None:
        run.problem = "no VmHWM in /proc/<pid>/status"
    if inv.unexpected:
        run.problem = (run.problem + "; " if run.problem else "") + "unexpected calls: " + ", ".join(inv.unexpected)
    run.ok = not run.problem
    return run


# ------------------------------------------------------------------------------------------------------

def template_variables() -> set[str]:
    """Names of every environment variable template.yaml sets (to notice one this file does not know)."""
    names, inside = set(), None
    for line in (REPO / "template.yaml").read_text().splitlines():
        indent = len(line) - len(line.lstrip())
        if line.strip() == "Variables:":
            inside = indent
        elif inside is not None and line.strip() and indent <= inside:
            inside = None
        elif inside is not None and (m := re.match(r"\s+([A-Z][A-Z0-9_]*):", line)):
            names.add(m.group(1))
    return names


def zipped_size(bootstrap: Path) -> int:
    """Bytes of the deployment package: a zip (deflate) holding the bootstrap, as `sam build` makes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(bootstrap, "bootstrap")
    return buffer.tell()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lambda-dir", type=Path, required=True, help="<dir>/<function>/bootstrap")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds a start may take to answer")
    parser.add_argument("--log-dir", type=Path, required=True, help="each run's stdout/stderr")
    parser.add_argument("--moto", default=os.environ.get("OPTISYNC_TEST_DYNAMODB_ENDPOINT"),
                        help="moto's URL (default: $OPTISYNC_TEST_DYNAMODB_ENDPOINT)")
    parser.add_argument("functions", nargs="*", help="only these (default: every <function>/bootstrap)")
    args = parser.parse_args()
    if not args.moto:
        sys.exit("no moto endpoint: run through tests/with-moto or pass --moto")

    functions = args.functions or sorted(p.parent.name for p in args.lambda_dir.glob("*/bootstrap"))
    if not functions:
        sys.exit(f"no bootstraps in {args.lambda_dir}")
    unknown = [f for f in functions if f not in {"admin-api", "connector-api", "hook-brevo", "hook-cleverreach",
                                                  "hook-optigem", "reconciler", "scheduler", "worker"}]
    if unknown:
        sys.exit(f"no first event defined for {', '.join(unknown)} (add one to {Path(__file__).name})")
    known = set(GLOBAL_ENV) | {k for env in FUNCTION_ENV.values() for k in env}
    if missing := sorted(template_variables() - known):
        print(f"warning: template.yaml sets {', '.join(missing)}, which this benchmark does not", file=sys.stderr)

    prepare_moto(args.moto)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    # One start that is not recorded: the machine's first one after moto started is an outlier (up to 3x),
    # which would fall on the first function only.
    first = args.lambda_dir / functions[0] / "bootstrap"
    if os.access(first, os.X_OK):
        cold_start(functions[0], first, args.moto, args.timeout, args.log_dir / f"{functions[0]}-warmup.log")
    runs: dict[str, list[Run]] = {f: [] for f in functions}
    failures = []
    for i in range(1, args.runs + 1):
        for function in functions:
            bootstrap = args.lambda_dir / function / "bootstrap"
            if not os.access(bootstrap, os.X_OK):
                failures.append(f"{function}: no executable {bootstrap}")
                continue
            log = args.log_dir / f"{function}-{i}.log"
            run = cold_start(function, bootstrap, args.moto, args.timeout, log)
            runs[function].append(run)
            fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
            print(f"run {i} {function:17} init {fmt(run.init_ms):>7} ms  first {fmt(run.first_ms):>7} ms  "
                  f"rss {run.peak_rss_kib or '-'} KiB  {run.answer}" + (f"  FAILED: {run.problem}" if run.problem else ""),
                  file=sys.stderr)
            if not run.ok:
                tail = log.read_text(errors="replace").splitlines()[-15:]
                failures.append(f"{function} run {i}: {run.problem} (log {log})\n    " + "\n    ".join(tail))
        if failures and i == 1:
            break  # a binary that fails once is not timed four more times

    def median(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    print(f"\n{args.runs} cold starts each; medians. Bootstraps from {args.lambda_dir}, moto at {args.moto}.\n")
    print("| function | bootstrap | first event | init (spawn → first `next`) | first response (spawn → post) "
          "| answer | peak RSS |")
    print("| --- | ---: | --- | ---: | ---: | --- | ---: |")
    for function in functions:
        bootstrap = args.lambda_dir / function / "bootstrap"
        size = (f"{bootstrap.stat().st_size / 1048576:.1f} MiB ({zipped_size(bootstrap) / 1048576:.1f} MiB zipped)"
                if bootstrap.exists() else "-")
        rs = runs[function]
        init, first = median(r.init_ms for r in rs), median(r.first_ms for r in rs)
        rss = median(r.peak_rss_kib for r in rs)
        answers = sorted({r.answer for r in rs if r.answer})
        print(f"| {function} | {size} | {first_event(function)[0]} | "
              f"{'-' if init is None else f'{init:.1f} ms'} | {'-' if first is None else f'{first:.1f} ms'} | "
              f"{' / '.join(answers) or '-'} | {'-' if rss is None else f'{rss / 1024:.1f} MiB'} |")
    if failures:
        print("\nFAILED:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
