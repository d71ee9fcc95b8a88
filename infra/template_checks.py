"""Project checks on template.yaml for what the linters miss.

aws-sam-translator + cfn-lint catch most mistakes; these catch the rest and hold the template to the
project's own rules:
  * every crate in functions/ has exactly one function resource (BuildMethod rust-cargolambda, Binary =
    crate name) and every function resource builds a crate of functions/;
  * every function runs provided.al2023 on arm64 from CodeUri "." with handler bootstrap;
  * memory 128..10240 MB, timeout 1..900 s, and at most 30 s behind the HTTP API (its integration limit);
    the reconciler's at least RECONCILER_MIN_TIMEOUT s (M9: a delivery that finds a run's lease held
    waits it out, 2 min 10 s, and then runs it, stopping a minute before the deadline);
  * HTTP API routes use a real method, start with "/", and no route is served twice;
  * every EventBridge rule and schedule has a retry policy and a dead-letter queue, and every
    dead-letter queue has an alarm;
  * every function has a log group with a retention;
  * the table keeps point-in-time recovery, encryption and the TTL attribute expires_at;
  * every dashboard body is valid JSON once its ${...} placeholders are substituted;
  * metrics (against shared/ports/src/metrics.rs, the names the functions emit): every metric a dashboard
    or an alarm names in the functions' namespace (Globals METRICS_NAMESPACE) is one of its constants,
    with dimension names of its `dimension` module, the dimensions the code records that metric with,
    and dimension values its doc comments list; every metric of that file, every function's Errors and
    Invocations, every queue's depth and every alarm is on the dashboard;
  * alarms: each goes to AlarmTopic with TreatMissingData notBreaching and a description, keeps within
    CloudWatch's limits (Period x EvaluationPeriods <= 1 day, valid periods, metric math with at most 10
    metrics and 10 expressions and one ReturnData), and the required ones exist: an error rate per
    function, failed runs, approvals waiting longer than ApprovalMaxWaitDays, failed OAuth refreshes;
  * Logs Insights: every infra/queries/NAME.logsinsights has one AWS::Logs::QueryDefinition named
    optisync-${Stage}/NAME and vice versa, whose QueryString is the file without its comment lines and
    whose LogGroupNames are the log groups of the file's "# Log groups:" line;
  * least privilege (SECRETS, TABLE_ACCESS, INDEX_ACCESS below; infra/README.md "Permissions"): each
    function's secrets are the names its code uses, with and without the ARN's random suffix, with only
    the actions its code makes (PutSecretValue/CreateSecret only in the writers), and those names are the
    ones the shipped code forms; its DynamoDB actions are the ones its code uses, on the table under
    ForAllValues:StringLike dynamodb:LeadingKeys with exactly the key prefixes it uses (required for a
    function serving only unauthenticated routes); no SAM policy template but EventBridgePutEventsPolicy;
  * every dead-letter queue lets EventBridge in only for the rules that dead-letter there (aws:SourceArn);
  * the HTTP API throttles every route (DefaultRouteSettings) and each /hooks/ route on its own
    (RouteSettings), from Number parameters with safe defaults; route settings name existing routes;
  * the deletion report topic: encrypted, touched only by the functions whose code uses it;
  * the admin console (check_console): a user pool with admin-created users only, the custom attribute
    tenant and a password policy of at least 12 characters and every class; a public code-flow client
    (no secret, openid, callback ${PublicBaseUrl}/console/callback, custom:tenant not writable) and the
    domain under HasConsole (PublicBaseUrl and ConsoleDomainPrefix); the groups optisync-admin and
    optisync-approver; GET /, GET /console and ANY /console/{proxy+} on admin-api without an authoriser,
    /admin/{proxy+} with AWS_IAM; admin-api's CONSOLE_* variables and its grant of the session key.

Usage: python infra/template_checks.py TEMPLATE FUNCTIONS_DIR   (exit 1 and one line per problem)
"""

import json
import pathlib
import re
import sys

from samtranslator.yaml_helper import yaml_parse

HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"}
HTTP_API_TIMEOUT = 30
# M9: the reconciler's DEADLINE_MARGIN (60 s) + busy_wait (RUN_LEASE + 10 s = 130 s) + room for steps.
RECONCILER_MIN_TIMEOUT = 300

ROOT = pathlib.Path(__file__).resolve().parent.parent
METRICS_RS = ROOT / "shared" / "ports" / "src" / "metrics.rs"
QUERIES_DIR = ROOT / "infra" / "queries"
ALARM_TOPIC = "AlarmTopic"
ALARM_MAX_RANGE = 86400  # Period x EvaluationPeriods
ALARM_MAX_METRICS = 10  # MetricStat entries of a metric-math alarm (hard limit)
ALARM_MAX_EXPRESSIONS = 10
APPROVAL_THRESHOLD_PARAMETER = "ApprovalMaxWaitDays"


def crate_names(functions_dir):
    names = set()
    for manifest in sorted(pathlib.Path(functions_dir).glob("*/Cargo.toml")):
        match = re.search(r'^name\s*=\s*"([^"]+)"', manifest.read_text(), re.MULTILINE)
        if match:
            names.add(match.group(1))
    return names


def sub_text(value):
    """The text of a Fn::Sub (string or [string, vars]) or a plain string, else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return None


def check(template, crates, code=None, queries=None):
    problems = []
    resources = template.get("Resources", {})
    glob = template.get("Globals", {}).get("Function", {})
    functions = {k: v for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Function"}

    binaries = {}
    for name, fn in functions.items():
        props = {**glob, **(fn.get("Properties") or {})}
        meta = fn.get("Metadata") or {}
        binary = (meta.get("BuildProperties") or {}).get("Binary")
        if meta.get("BuildMethod") != "rust-cargolambda":
            problems.append(f"{name}: Metadata.BuildMethod must be rust-cargolambda")
        if binary is None:
            problems.append(f"{name}: Metadata.BuildProperties.Binary is missing")
        elif binary in binaries:
            problems.append(f"{name}: binary {binary} is already built by {binaries[binary]}")
        else:
            binaries[binary] = name
        if binary is not None and binary not in crates:
            problems.append(f"{name}: binary {binary} is not a crate in functions/")
        if props.get("Runtime") != "provided.al2023":
            problems.append(f"{name}: Runtime must be provided.al2023")
        if props.get("Architectures") != ["arm64"]:
            problems.append(f"{name}: Architectures must be [arm64]")
        if props.get("CodeUri") != ".":
            problems.append(f"{name}: CodeUri must be . (the workspace)")
        if props.get("Handler") != "bootstrap":
            problems.append(f"{name}: Handler must be bootstrap")
        memory, timeout = props.get("MemorySize", 128), props.get("Timeout", 3)
        if not (isinstance(memory, int) and 128 <= memory <= 10240):
            problems.append(f"{name}: MemorySize {memory} outside 128..10240")
        if not (isinstance(timeout, int) and 1 <= timeout <= 900):
            problems.append(f"{name}: Timeout {timeout} outside 1..900")
        elif binary == "reconciler" and timeout < RECONCILER_MIN_TIMEOUT:
            problems.append(
                f"{name}: Timeout {timeout} leaves no room to wait out a run lease (M9): at least {RECONCILER_MIN_TIMEOUT}"
            )
        events = props.get("Events") or {}
        if any(e.get("Type") == "HttpApi" for e in events.values()) and isinstance(timeout, int):
            if timeout > HTTP_API_TIMEOUT:
                problems.append(f"{name}: Timeout {timeout} exceeds the HTTP API's {HTTP_API_TIMEOUT} s")
        for event_name, event in events.items():
            eprops = event.get("Properties") or {}
            if event.get("Type") == "HttpApi":
                method, path = str(eprops.get("Method", "")).upper(), str(eprops.get("Path", ""))
                if method not in HTTP_METHODS:
                    problems.append(f"{name}.{event_name}: HTTP method {method or '(none)'} is not one of {sorted(HTTP_METHODS)}")
                if not path.startswith("/"):
                    problems.append(f"{name}.{event_name}: path {path!r} must start with /")
            if event.get("Type") in ("EventBridgeRule", "Schedule", "ScheduleV2"):
                if "RetryPolicy" not in eprops:
                    problems.append(f"{name}.{event_name}: no RetryPolicy")
                if "DeadLetterConfig" not in eprops:
                    problems.append(f"{name}.{event_name}: no DeadLetterConfig")
    for crate in sorted(crates - set(binaries)):
        problems.append(f"functions/{crate}: no function resource builds it")

    routes = {}
    for name, fn in functions.items():
        for event_name, event in ((fn.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") == "HttpApi":
                eprops = event.get("Properties") or {}
                route = (str(eprops.get("Method", "")).upper(), eprops.get("Path"))
                if route in routes:
                    problems.append(f"{name}.{event_name}: {route[0]} {route[1]} is already served by {routes[route]}")
                routes[route] = f"{name}.{event_name}"

    log_groups = [sub_text(r.get("Properties", {}).get("LogGroupName")) or "" for r in resources.values()
                  if r.get("Type") == "AWS::Logs::LogGroup" and "RetentionInDays" in r.get("Properties", {})]
    for name in functions:
        if not any(g == f"/aws/lambda/${{{name}}}" for g in log_groups):
            problems.append(f"{name}: no log group /aws/lambda/${{{name}}} with RetentionInDays")

    queues = [k for k, v in resources.items() if v.get("Type") == "AWS::SQS::Queue"]
    alarms = json.dumps([v for v in resources.values() if v.get("Type") == "AWS::CloudWatch::Alarm"])
    for queue in queues:
        if f'"{queue}"' not in alarms:
            problems.append(f"{queue}: no alarm watches this queue")

    for name, table in resources.items():
        if table.get("Type") != "AWS::DynamoDB::Table":
            continue
        props = table.get("Properties", {})
        if not props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            problems.append(f"{name}: point-in-time recovery is off")
        if not props.get("SSESpecification", {}).get("SSEEnabled"):
            problems.append(f"{name}: encryption (SSESpecification) is off")
        ttl = props.get("TimeToLiveSpecification", {})
        if ttl.get("AttributeName") != "expires_at" or not ttl.get("Enabled"):
            problems.append(f"{name}: TTL must be enabled on expires_at")

    for name, dash in resources.items():
        if dash.get("Type") != "AWS::CloudWatch::Dashboard":
            continue
        body = sub_text(dash.get("Properties", {}).get("DashboardBody"))
        if body is None:
            problems.append(f"{name}: DashboardBody must be a string or a Fn::Sub")
            continue
        try:
            json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
        except json.JSONDecodeError as e:
            problems.append(f"{name}: DashboardBody is not valid JSON after substitution: {e}")

    if code is not None:
        problems += check_metrics(template, code)
    problems += check_alarms(template)
    if queries is not None:
        problems += check_queries(template, queries)
    problems += check_function_permissions(template, ROOT)
    problems += check_dead_letter_policies(template)
    problems += check_throttling(template)
    problems += check_report_topic(template, ROOT)
    problems += check_console(template)
    return problems


# ---------------------------------------------------------------------------------------------------
# Metrics: the template against shared/ports/src/metrics.rs
# ---------------------------------------------------------------------------------------------------


class CodeMetrics:
    """What shared/ports/src/metrics.rs declares: `names` (constant -> metric name), `dimensions`
    (dimension name -> the values its doc comment lists in backticks, possibly none), `emitted` (metric
    name -> the sets of dimension names it is recorded with) and the `problems` met reading it."""

    def __init__(self, names, dimensions, emitted, problems):
        self.names, self.dimensions, self.emitted, self.problems = names, dimensions, emitted, problems


def _call_args(text, start):
    """The text from `start` (just after a macro's opening parenthesis) to its closing parenthesis."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                return text[start:i]
            depth -= 1
    return text[start:]


def _split_first_arg(args):
    depth = 0
    for i, c in enumerate(args):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            return args[:i], args[i + 1:]
    return args, ""


def parse_metrics_rs(text):
    problems = []
    dim_consts, dimensions = {}, {}
    block = re.search(r"pub mod dimension \{(.*?)\n\}", text, re.S)
    if block:
        for m in re.finditer(r'((?:[ \t]*///[^\n]*\n)*)[ \t]*pub const (\w+): &str = "([^"]+)";', block.group(1)):
            dim_consts[m.group(2)] = m.group(3)
            dimensions[m.group(3)] = set(re.findall(r"`([^`]+)`", m.group(1)))
        rest = text[:block.start()] + text[block.end():]
    else:
        problems.append("shared/ports/src/metrics.rs: no `pub mod dimension` block")
        rest = text
    names = dict(re.findall(r'^pub const (\w+): &str = "([^"]+)";', rest, re.M))
    if not names:
        problems.append("shared/ports/src/metrics.rs: no `pub const NAME: &str = \"Value\";` line")

    code = re.sub(r"//[^\n]*", "", rest)
    emitted = {name: set() for name in names.values()}
    for m in re.finditer(r"(?<![\w])(?:counter|gauge|histogram)!\(", code):
        first, tail = _split_first_arg(_call_args(code, m.end()))
        consts = re.findall(r"\b[A-Z][A-Z0-9_]*\b", first)
        variable = first.strip()
        if not consts and re.fullmatch(r"[a-z_]\w*", variable):
            lets = re.findall(rf"let {variable}\s*=\s*([^;]+);", code[:m.start()])
            consts = re.findall(r"\b[A-Z][A-Z0-9_]*\b", lets[-1]) if lets else []
        dims = set()
        for d in re.findall(r"dimension::(\w+)\s*=>", tail):
            if d in dim_consts:
                dims.add(dim_consts[d])
            else:
                problems.append(f"shared/ports/src/metrics.rs: dimension::{d} is not a constant of `mod dimension`")
        for const in consts:
            if const in names:
                emitted[names[const]].add(frozenset(dims))
    for name, sets in sorted(emitted.items()):
        if not sets:
            problems.append(
                f"shared/ports/src/metrics.rs: no counter!/gauge!/histogram! call records {name} "
                "(the template checks read each metric's dimensions from those calls)"
            )
    return CodeMetrics(names, dimensions, emitted, problems)


def ref_text(value):
    """A dimension value as the dashboards write it: "x", "${Resource}" or "${Resource.Attribute}"."""
    if isinstance(value, dict):
        if "Ref" in value:
            return f"${{{value['Ref']}}}"
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return f"${{{att if isinstance(att, str) else '.'.join(att)}}}"
        sub = sub_text(value)
        if sub is not None:
            return sub
    return str(value)


def dashboard_bodies(resources):
    """(resource name, parsed body) of every dashboard whose body parses with its ${...} kept."""
    for name, dash in resources.items():
        if dash.get("Type") != "AWS::CloudWatch::Dashboard":
            continue
        body = sub_text(dash.get("Properties", {}).get("DashboardBody"))
        try:
            yield name, json.loads(body) if body is not None else {}
        except json.JSONDecodeError:
            continue  # reported by the JSON check


def dashboard_metrics(name, body):
    """(where, namespace, metric, {dimension: value}) of every metric row of a dashboard; "." repeats the
    previous row's item at that position."""
    uses = []
    for index, widget in enumerate(body.get("widgets", []) if isinstance(body, dict) else []):
        props = widget.get("properties") or {}
        where = f"{name} widget {index} ({props.get('title', widget.get('type'))})"
        previous = []
        for row in props.get("metrics") or []:
            if not isinstance(row, list) or not row or isinstance(row[0], dict):
                continue  # a math expression
            items = [x for x in row if not isinstance(x, dict)]
            items = [previous[i] if x == "." and i < len(previous) else x for i, x in enumerate(items)]
            previous = items
            if len(items) < 2 or len(items) % 2:
                uses.append((where, None, str(items), {}))
                continue
            uses.append((where, items[0], items[1], dict(zip(items[2::2], items[3::2]))))
    return uses


def alarm_metrics(name, alarm):
    """(where, namespace, metric, {dimension: value}) of every metric an alarm reads."""
    props = alarm.get("Properties") or {}
    metrics = []
    if "MetricName" in props:
        metrics.append(props)
    for query in props.get("Metrics") or []:
        metric = (query.get("MetricStat") or {}).get("Metric")
        if metric:
            metrics.append(metric)
    return [
        (name, sub_text(m.get("Namespace")), m.get("MetricName"),
         {d.get("Name"): ref_text(d.get("Value")) for d in m.get("Dimensions") or []})
        for m in metrics
    ]


def check_metrics(template, code):
    problems = list(code.problems)
    resources = template.get("Resources", {})
    variables = ((template.get("Globals", {}).get("Function", {}).get("Environment") or {}).get("Variables") or {})
    namespace = sub_text(variables.get("METRICS_NAMESPACE"))
    if namespace is None:
        problems.append("Globals: Function.Environment.Variables.METRICS_NAMESPACE is not set (the functions' metric namespace)")
    known = set(code.names.values())

    dashboard_uses = []
    for name, body in dashboard_bodies(resources):
        dashboard_uses += dashboard_metrics(name, body)
    alarm_uses = []
    for name, alarm in resources.items():
        if alarm.get("Type") == "AWS::CloudWatch::Alarm":
            alarm_uses += alarm_metrics(name, alarm)

    for where, ns, metric, dims in dashboard_uses + alarm_uses:
        if ns is None:
            problems.append(f"{where}: metric row {metric} is not [namespace, name, dimension, value, ...]")
            continue
        if ns.startswith("AWS/"):
            continue
        if ns != namespace:
            problems.append(f"{where}: namespace {ns} is neither AWS/* nor METRICS_NAMESPACE ({namespace})")
            continue
        if metric not in known:
            problems.append(f"{where}: {metric} is not a metric of shared/ports/src/metrics.rs ({', '.join(sorted(known))})")
            continue
        for dim, value in dims.items():
            if dim not in code.dimensions:
                problems.append(f"{where}: {metric} dimension {dim} is not one of {sorted(code.dimensions)}")
            elif code.dimensions[dim] and value not in code.dimensions[dim]:
                problems.append(f"{where}: {metric} {dim}={value} is not one of {sorted(code.dimensions[dim])}")
        if code.emitted.get(metric) and frozenset(dims) not in code.emitted[metric]:
            recorded = " or ".join(sorted("{" + ", ".join(sorted(s)) + "}" for s in code.emitted[metric]))
            problems.append(f"{where}: {metric} is recorded with dimensions {recorded}, not {{{', '.join(sorted(dims))}}}")

    dashboards = [n for n, r in resources.items() if r.get("Type") == "AWS::CloudWatch::Dashboard"]
    if not dashboards:
        problems.append("no AWS::CloudWatch::Dashboard")
        return problems
    if len(list(dashboard_bodies(resources))) < len(dashboards):
        return problems  # a body that does not parse is reported once, by the JSON check
    on_dashboard = {(ns, metric) for _, ns, metric, _ in dashboard_uses}
    for metric in sorted(known):
        if (namespace, metric) not in on_dashboard:
            problems.append(f"{metric}: not on the dashboard")
    lambda_rows = {(metric, dims.get("FunctionName")) for _, ns, metric, dims in dashboard_uses if ns == "AWS/Lambda"}
    for fn, res in resources.items():
        if res.get("Type") == "AWS::Serverless::Function":
            for metric in ("Errors", "Invocations"):
                if (metric, f"${{{fn}}}") not in lambda_rows:
                    problems.append(f"{fn}: its AWS/Lambda {metric} are not on the dashboard")
    queue_rows = {dims.get("QueueName") for _, ns, metric, dims in dashboard_uses
                  if ns == "AWS/SQS" and metric == "ApproximateNumberOfMessagesVisible"}
    for queue, res in resources.items():
        if res.get("Type") == "AWS::SQS::Queue" and f"${{{queue}.QueueName}}" not in queue_rows:
            problems.append(f"{queue}: its depth (ApproximateNumberOfMessagesVisible) is not on the dashboard")
    bodies = " ".join(sub_text(resources[d].get("Properties", {}).get("DashboardBody")) or "" for d in dashboards)
    for alarm, res in resources.items():
        if res.get("Type") == "AWS::CloudWatch::Alarm" and f"${{{alarm}.Arn}}" not in bodies:
            problems.append(f"{alarm}: not on the dashboard's alarm widget (${{{alarm}.Arn}})")
    return problems


# ---------------------------------------------------------------------------------------------------
# Alarms
# ---------------------------------------------------------------------------------------------------


def _valid_period(period):
    return isinstance(period, int) and (period in (10, 30) or (period >= 60 and period % 60 == 0))


def check_alarm_limits(name, props):
    problems = []
    evaluations = props.get("EvaluationPeriods")
    if not isinstance(evaluations, int) or evaluations < 1:
        problems.append(f"{name}: EvaluationPeriods must be a positive number")
        evaluations = 1
    datapoints = props.get("DatapointsToAlarm", evaluations)
    if isinstance(datapoints, int) and datapoints > evaluations:
        problems.append(f"{name}: DatapointsToAlarm {datapoints} exceeds EvaluationPeriods {evaluations}")
    periods = []
    if "Metrics" in props:
        single = [k for k in ("MetricName", "Namespace", "Dimensions", "Statistic", "ExtendedStatistic", "Period", "Unit") if k in props]
        if single:
            problems.append(f"{name}: Metrics cannot be combined with {', '.join(single)}")
        queries = props.get("Metrics") or []
        stats = [q for q in queries if "MetricStat" in q]
        expressions = [q for q in queries if "Expression" in q]
        if len(stats) > ALARM_MAX_METRICS:
            problems.append(f"{name}: {len(stats)} metrics in a metric-math alarm (at most {ALARM_MAX_METRICS})")
        if len(expressions) > ALARM_MAX_EXPRESSIONS:
            problems.append(f"{name}: {len(expressions)} expressions in a metric-math alarm (at most {ALARM_MAX_EXPRESSIONS})")
        for q in queries:
            if ("MetricStat" in q) == ("Expression" in q):
                problems.append(f"{name}: metric {q.get('Id')} needs exactly one of MetricStat and Expression")
            if not re.fullmatch(r"[a-z][A-Za-z0-9_]*", str(q.get("Id", ""))):
                problems.append(f"{name}: metric id {q.get('Id')!r} must start with a lower-case letter")
        ids = [q.get("Id") for q in queries]
        if len(ids) != len(set(ids)):
            problems.append(f"{name}: metric ids repeat")
        returned = [q.get("Id") for q in queries if q.get("ReturnData", True) is not False]
        if len(returned) != 1:
            problems.append(f"{name}: exactly one metric or expression must have ReturnData true (have {returned or 'none'})")
        periods = [q["MetricStat"].get("Period") for q in stats] + [q["Period"] for q in expressions if "Period" in q]
    else:
        periods = [props.get("Period")]
    for period in periods:
        if not _valid_period(period):
            problems.append(f"{name}: Period {period} must be 10, 30 or a multiple of 60")
        elif period * evaluations > ALARM_MAX_RANGE:
            problems.append(f"{name}: Period {period} x EvaluationPeriods {evaluations} exceeds one day")
    return problems


def check_alarms(template):
    problems = []
    resources = template.get("Resources", {})
    alarms = {k: v for k, v in resources.items() if v.get("Type") == "AWS::CloudWatch::Alarm"}
    for name, alarm in alarms.items():
        props = alarm.get("Properties") or {}
        if {"Ref": ALARM_TOPIC} not in (props.get("AlarmActions") or []):
            problems.append(f"{name}: AlarmActions must include !Ref {ALARM_TOPIC}")
        if props.get("TreatMissingData") != "notBreaching":
            problems.append(f"{name}: TreatMissingData must be notBreaching")
        if not props.get("AlarmDescription"):
            problems.append(f"{name}: no AlarmDescription (say what to do when it fires)")
        problems += check_alarm_limits(name, props)

    def reads(alarm, metric, **dims):
        return any(m == metric and all(d.get(k) == v for k, v in dims.items())
                   for _, _, m, d in alarm_metrics("", alarm))

    for fn, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        ref = f"${{{fn}}}"
        if not any(reads(a, "Errors", FunctionName=ref) and reads(a, "Invocations", FunctionName=ref)
                   and any("Expression" in q for q in (a.get("Properties") or {}).get("Metrics") or [])
                   for a in alarms.values()):
            problems.append(f"{fn}: no error-rate alarm (metric math over its AWS/Lambda Errors and Invocations)")
    required = [
        ("RunFailedAlarm", "ReconcileRuns", {"Outcome": "failed"}, None),
        ("ApprovalsWaitingAlarm", "ApprovalsOldestAge", {}, {"Ref": APPROVAL_THRESHOLD_PARAMETER}),
        ("OAuthRefreshFailedAlarm", "OAuthRefreshFailed", {"Provider": "cleverreach"}, None),
        # M7: handled 429s and 5xx of the hooks are no Lambda errors; only this metric shows them.
        ("WebhooksFailedAlarm", "WebhooksFailed", {"Source": "brevo"}, None),
        ("WebhooksFailedAlarm", "WebhooksFailed", {"Source": "cleverreach"}, None),
        ("WebhooksFailedAlarm", "WebhooksFailed", {"Source": "optigem"}, None),
    ]
    for label, metric, dims, threshold in required:
        matching = [a for a in alarms.values() if reads(a, metric, **dims)]
        wanted = f"{metric}" + "".join(f" {k}={v}" for k, v in dims.items())
        if not matching:
            problems.append(f"no alarm on {wanted} ({label})")
        elif threshold is not None and not any((a.get("Properties") or {}).get("Threshold") == threshold for a in matching):
            problems.append(f"{label}: the alarm on {wanted} must have Threshold !Ref {threshold['Ref']}")
    return problems


# ---------------------------------------------------------------------------------------------------
# Logs Insights queries: infra/queries/*.logsinsights against the AWS::Logs::QueryDefinition resources
# ---------------------------------------------------------------------------------------------------


def read_queries(directory):
    """{file stem: (query text without comment lines, [log group resources of its "# Log groups:" line],
    whether it starts with a comment)}."""
    queries = {}
    for path in sorted(pathlib.Path(directory).glob("*.logsinsights")):
        lines = path.read_text().splitlines()
        groups = [g.strip() for line in lines if line.startswith("# Log groups:")
                  for g in line.split(":", 1)[1].split(",") if g.strip()]
        query = "\n".join(line.rstrip() for line in lines if not line.lstrip().startswith("#")).strip("\n")
        queries[path.stem] = (query, groups, bool(lines) and lines[0].startswith("#"))
    return queries


def check_queries(template, queries):
    problems = []
    resources = template.get("Resources", {})
    defined = {}
    for name, res in resources.items():
        if res.get("Type") != "AWS::Logs::QueryDefinition":
            continue
        props = res.get("Properties") or {}
        title = sub_text(props.get("Name")) or ""
        stem = title.rsplit("/", 1)[-1]
        if title != f"optisync-${{Stage}}/{stem}":
            problems.append(f"{name}: Name must be !Sub optisync-${{Stage}}/NAME (NAME.logsinsights in infra/queries)")
        if stem in defined:
            problems.append(f"{name}: query {stem} is already defined by {defined[stem]}")
        defined[stem] = name
        if stem not in queries:
            problems.append(f"{name}: no infra/queries/{stem}.logsinsights")
            continue
        query, groups, _ = queries[stem]
        text = props.get("QueryString")
        if not isinstance(text, str) or "\n".join(l.rstrip() for l in text.splitlines()).strip("\n") != query:
            problems.append(f"{name}: QueryString differs from infra/queries/{stem}.logsinsights (without its comment lines)")
        refs = []
        for group in props.get("LogGroupNames") or []:
            if isinstance(group, dict) and "Ref" in group:
                refs.append(group["Ref"])
            else:
                problems.append(f"{name}: log group {group!r} must be a !Ref to a log group of the template")
        for ref in refs:
            if resources.get(ref, {}).get("Type") != "AWS::Logs::LogGroup":
                problems.append(f"{name}: {ref} is not an AWS::Logs::LogGroup")
        if sorted(refs) != sorted(groups):
            problems.append(f"{name}: LogGroupNames {sorted(refs)} differ from the file's '# Log groups:' {sorted(groups)}")
    for stem, (query, groups, header) in sorted(queries.items()):
        if not header:
            problems.append(f"infra/queries/{stem}.logsinsights: must start with a comment saying what it answers")
        if not groups:
            problems.append(f"infra/queries/{stem}.logsinsights: no '# Log groups:' line")
        if not query:
            problems.append(f"infra/queries/{stem}.logsinsights: no query")
        if stem not in defined:
            problems.append(f"infra/queries/{stem}.logsinsights: no AWS::Logs::QueryDefinition named optisync-${{Stage}}/{stem}")
    return problems


# ---------------------------------------------------------------------------------------------------
# Least privilege: each function's secrets and table keys against what its code reads and writes
# (infra/README.md, "Permissions", has the same tables for people)
# ---------------------------------------------------------------------------------------------------

SECRET_ARN = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretsPrefix}"
# Secrets Manager appends "-" and six random characters to a secret's ARN. A request for a secret that
# does not exist is authorised against the name alone, so each name is granted twice: with the suffix
# (the secret) and without (the code then sees ResourceNotFound and treats the secret as absent, where
# an AccessDenied would be an error).
SECRET_SUFFIX = "-??????"
READ = "secretsmanager:GetSecretValue"
WRITE = "secretsmanager:PutSecretValue"
CREATE = "secretsmanager:CreateSecret"  # SecretsManagerStore::put creates a secret PutSecretValue did not find
# Where the shipped code forms secret names (string literals, "{x}" placeholders read as "*").
SECRET_NAME_SOURCES = ("shared", "functions")
SECRET_NAME = re.compile(r"(connector|brevo|cleverreach|admin)/[A-Za-z0-9{}_.-]+(/[A-Za-z0-9{}_.-]+)*")

# The secrets each function's code touches (below SecretsPrefix) and how.
SECRETS = {
    "HookOptigemFunction": {"connector/*/signing-secrets": {READ}},
    "ConnectorApiFunction": {"connector/*/signing-secrets": {READ}},
    "HookBrevoFunction": {"brevo/*/webhook-token": {READ}, "brevo/*/api-key-name": {READ}},
    "HookCleverReachFunction": {"cleverreach/*/webhook": {READ}},
    "WorkerFunction": {
        "brevo/*/api-key": {READ},
        "cleverreach/*/tokens": {READ, WRITE},  # a refresh keeps the new tokens
        "cleverreach/app/client-secret": {READ},
    },
    "ReconcilerFunction": {
        "brevo/*/api-key": {READ},
        "cleverreach/*/tokens": {READ, WRITE},
        "cleverreach/app/client-secret": {READ},
    },
    "AdminApiFunction": {
        "connector/*/signing-secrets": {READ, WRITE, CREATE},
        "admin/oauth-state-key": {READ, WRITE, CREATE},
        "admin/console-session-key": {READ, WRITE, CREATE},  # the console's session cookies
        "brevo/*/api-key": {READ, WRITE, CREATE},
        "brevo/*/webhook-token": {READ, WRITE, CREATE},
        "cleverreach/*/tokens": {READ, WRITE, CREATE},
        "cleverreach/*/webhook": {READ, WRITE, CREATE},
        "cleverreach/app/client-secret": {READ},
    },
    "SchedulerFunction": {},
}

# The table operations each function's code makes: action -> the key prefixes its calls use
# (dynamodb:LeadingKeys, ForAllValues:StringLike), or None for the whole table (then the check only holds
# the actions; a function serving unauthenticated routes must have prefixes).
# Prefixes are written so that they stay right when every key gains the tenant (INBOX#{tenant}#… already
# does). Index operations (KEYS_ONLY GSIs) carry no key condition.
TABLE_ACCESS = {
    "HookOptigemFunction": {"PutItem": ["INBOX#*"], "GetItem": ["INBOX#*"]},
    # The hooks read the account record of their own provider (M2: the URL's tenant owns the account).
    "HookBrevoFunction": {"PutItem": ["INBOX#*"], "GetItem": ["INBOX#*", "ACCOUNT#brevo#*"]},
    "HookCleverReachFunction": {"PutItem": ["INBOX#*"], "GetItem": ["INBOX#*", "ACCOUNT#cleverreach#*"]},
    "ConnectorApiFunction": {
        "GetItem": ["INBOX#*", "LINK#*", "TENANT#*"],
        "Query": ["TENANT#*"],
        "PutItem": ["INBOX#*"],
        "UpdateItem": ["INBOX#*", "TENANT#*#COMMAND#*", "TENANT#*#FEED"],
    },
    # The tick also delivers the deletion reports left in the outbox (R-J2: TENANT#{t} / REPORT#…).
    "SchedulerFunction": {
        "GetItem": ["INBOX#*", "TENANT#*"],
        "BatchGetItem": ["LINK#*", "TENANT#*"],
        "Query": ["TENANT#*"],
        "UpdateItem": ["TENANT#*"],
    },
    # The engine (leases, state, commits with their commands) and the inbox; only admin-api writes accounts.
    "WorkerFunction": dict.fromkeys(
        ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "BatchGetItem"], ["INBOX#*", "LEASE#*", "LINK#*", "TENANT#*"]
    ),
    "ReconcilerFunction": dict.fromkeys(
        ["GetItem", "PutItem", "DeleteItem", "Query", "BatchGetItem"], ["INBOX#*", "LEASE#*", "LINK#*", "TENANT#*"]
    ),
    "AdminApiFunction": {
        **dict.fromkeys(["GetItem", "PutItem", "Query", "BatchGetItem"], ["ACCOUNT#*", "LINK#*", "TENANT#*"]),
        # take_authorisation: the single-use OAuth state under TENANT#{t}#OAUTH#… (M4)
        "DeleteItem": ["TENANT#*"],
    },
}
INDEX_ACCESS = {
    "SchedulerFunction": {"Query"},
    "WorkerFunction": {"Query"},
    "ReconcilerFunction": {"Query"},
    "AdminApiFunction": {"Query"},
}
TABLE = "StateTable"
LEADING_KEYS = "dynamodb:LeadingKeys"
LEADING_KEYS_OPERATOR = "ForAllValues:StringLike"
# SAM policy templates a function may use besides its inline statements (the others grant whole tables
# or every secret).
POLICY_TEMPLATES = {"EventBridgePutEventsPolicy"}
INLINE_SERVICES = {"dynamodb", "secretsmanager", "sns"}


def _list(value):
    return value if isinstance(value, list) else [value]


def code_secret_names(root):
    """{name pattern: [files]} of every secret name the shipped code forms (outside tests)."""
    names = {}
    for top in SECRET_NAME_SOURCES:
        for path in sorted((root / top).glob("**/src/**/*.rs")):
            text = path.read_text().split("#[cfg(test)]")[0]
            text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
            for literal in re.findall(r'"((?:[^"\\\n]|\\.)*)"', text):
                if SECRET_NAME.fullmatch(literal):
                    pattern = re.sub(r"\{[^}]*\}", "*", literal)
                    names.setdefault(pattern, []).append(str(path.relative_to(root)))
    return names


def _statements(name, props, problems):
    """The Allow statements of a function's Policies; anything else than inline statements and the
    allowed policy templates is a problem."""
    if "Role" in props:
        problems.append(f"{name}: Role replaces the function's own policies; keep Policies (checked here)")
    statements = []
    for policy in _list(props.get("Policies") or []):
        if isinstance(policy, dict) and "Statement" in policy:
            for st in _list(policy["Statement"]):
                if st.get("Effect") != "Allow":
                    continue
                if "NotAction" in st or "NotResource" in st:
                    problems.append(f"{name}: statement {st.get('Sid')} allows with NotAction/NotResource (everything else)")
                for action in _list(st.get("Action", [])):
                    service = str(action).split(":", 1)[0].lower()
                    if "*" in str(action):
                        problems.append(f"{name}: action {action} (name each action)")
                    elif service not in INLINE_SERVICES:
                        problems.append(f"{name}: inline action {action}; inline statements are for {', '.join(sorted(INLINE_SERVICES))}")
                statements.append(st)
        elif isinstance(policy, dict) and len(policy) == 1 and next(iter(policy)) in POLICY_TEMPLATES:
            continue
        else:
            label = next(iter(policy)) if isinstance(policy, dict) and policy else policy
            problems.append(
                f"{name}: policy {label!r} is neither an inline statement nor one of {sorted(POLICY_TEMPLATES)} "
                "(least privilege is checked on inline statements)"
            )
    return statements


def _table_resource(resource):
    """"table", "index" or None for a statement resource."""
    if resource in ({"Fn::GetAtt": [TABLE, "Arn"]}, {"Fn::GetAtt": f"{TABLE}.Arn"}):
        return "table"
    if sub_text(resource) == f"${{{TABLE}.Arn}}/index/*":
        return "index"
    return None


def check_function_permissions(template, root):
    problems = []
    resources = template.get("Resources", {})
    functions = {k: v for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Function"}
    code_names = code_secret_names(root)
    granted_names = {n for spec in SECRETS.values() for n in spec}
    for pattern, files in sorted(code_names.items()):
        if pattern not in granted_names:
            problems.append(
                f"secret {pattern} ({', '.join(sorted(set(files)))}): no function is granted it; add it to "
                "SECRETS in infra/template_checks.py and to the policies of the functions that use it"
            )
    for pattern in sorted(granted_names - set(code_names)):
        problems.append(f"secret {pattern}: the code forms no such name (renamed?); SECRETS must follow the code")

    for name, fn in functions.items():
        props = fn.get("Properties") or {}
        if name not in SECRETS or name not in TABLE_ACCESS and name not in INDEX_ACCESS:
            problems.append(f"{name}: no entry in SECRETS / TABLE_ACCESS of infra/template_checks.py (what its code may touch)")
            continue
        statements = _statements(name, props, problems)
        problems += _check_secrets(name, statements)
        problems += _check_table(name, props, statements)
    return problems


def _check_secrets(name, statements):
    problems = []
    needed = SECRETS[name]
    granted = set()
    for st in statements:
        actions = [a for a in _list(st.get("Action", [])) if str(a).lower().startswith("secretsmanager:")]
        if not actions:
            continue
        for resource in _list(st.get("Resource", [])):
            text = sub_text(resource)
            if text is None or not text.startswith(SECRET_ARN):
                problems.append(f"{name}: secret resource {text or resource!r} is not {SECRET_ARN}NAME")
                continue
            secret = text[len(SECRET_ARN):]
            base = secret[: -len(SECRET_SUFFIX)] if secret.endswith(SECRET_SUFFIX) else secret
            if base not in needed:
                problems.append(
                    f"{name}: secret {secret} is wider than or not one of what its code uses "
                    f"({', '.join(sorted(needed)) or 'no secret'})"
                )
                continue
            for action in actions:
                if action not in needed[base]:
                    what = "reads" if action == READ else "writes" if action in (WRITE, CREATE) else "does"
                    problems.append(f"{name}: {action} on {secret}, which its code never {what} that way")
                granted.add((secret, action))
    for base, actions in sorted(needed.items()):
        for action in sorted(actions):
            for secret in (base, base + SECRET_SUFFIX):
                if (secret, action) not in granted:
                    problems.append(
                        f"{name}: its code needs {action} on {secret} (grant the name with and without "
                        f"{SECRET_SUFFIX}: a missing secret is authorised by its name alone)"
                    )
    return problems


def _check_table(name, props, statements):
    problems = []
    spec, index_spec = TABLE_ACCESS.get(name, {}), INDEX_ACCESS.get(name, set())
    public_routes = [e for e in (props.get("Events") or {}).values() if e.get("Type") == "HttpApi"]
    internet_facing = public_routes and all(
        ((e.get("Properties") or {}).get("Auth") or {}).get("Authorizer") != "AWS_IAM" for e in public_routes
    )
    if internet_facing and any(prefixes is None for prefixes in spec.values()):
        problems.append(f"{name}: serves unauthenticated routes, so TABLE_ACCESS must name key prefixes for every action")
    table, index = {}, set()
    for st in statements:
        actions = [a for a in _list(st.get("Action", [])) if str(a).lower().startswith("dynamodb:")]
        if not actions:
            continue
        condition = st.get("Condition") or {}
        keys = None
        for operator, tests in condition.items():
            if LEADING_KEYS in (tests or {}):
                if operator != LEADING_KEYS_OPERATOR:
                    problems.append(f"{name}: {LEADING_KEYS} under {operator}; only {LEADING_KEYS_OPERATOR} holds every key to the list")
                else:
                    keys = set(_list(tests[LEADING_KEYS]))
        for resource in _list(st.get("Resource", [])):
            kind = _table_resource(resource)
            if kind is None:
                problems.append(f"{name}: DynamoDB access to {ref_text(resource)}; only {TABLE} and its indexes")
                continue
            for action in actions:
                op = action.split(":", 1)[1]
                if "*" in op:
                    continue  # reported with the statement
                elif kind == "index":
                    if op not in index_spec:
                        problems.append(f"{name}: {action} on the indexes, which its code does not use")
                    index.add(op)
                elif op not in spec:
                    problems.append(f"{name}: {action} on the table, which its code does not use")
                elif keys is None:
                    table[op] = None
                elif table.get(op, set()) is not None:
                    table[op] = table.get(op, set()) | keys
    for op, prefixes in sorted(spec.items()):
        if op not in table:
            problems.append(f"{name}: its code uses dynamodb:{op} on the table; the policy does not grant it")
        elif prefixes is None:
            continue
        elif table[op] is None:
            problems.append(f"{name}: dynamodb:{op} on the whole table; its code uses only keys {', '.join(prefixes)} ({LEADING_KEYS_OPERATOR} {LEADING_KEYS})")
        else:
            for extra in sorted(table[op] - set(prefixes)):
                problems.append(f"{name}: dynamodb:{op} on keys {extra}, which its code does not use ({', '.join(prefixes)})")
            for missing in sorted(set(prefixes) - table[op]):
                problems.append(f"{name}: its code uses dynamodb:{op} on keys {missing}; the policy does not grant them")
    for op in sorted(index_spec - index):
        problems.append(f"{name}: its code uses dynamodb:{op} on the indexes; the policy does not grant it")
    return problems


# ---------------------------------------------------------------------------------------------------
# Dead-letter queue policies and API throttling
# ---------------------------------------------------------------------------------------------------


def _getatt(value):
    """"Resource.Attribute" of a Fn::GetAtt, else None."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        att = value["Fn::GetAtt"]
        return att if isinstance(att, str) else ".".join(att)
    return None


def check_dead_letter_policies(template):
    """Every rule that dead-letters to a queue is let in by a queue policy naming that rule
    (aws:SourceArn), and no queue policy lets a service in without aws:SourceArn."""
    problems = []
    resources = template.get("Resources", {})
    senders = {}  # queue -> SAM rule logical ids that dead-letter to it
    for fn, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        for event_name, event in ((res.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") in ("EventBridgeRule", "Schedule"):
                arn = ((event.get("Properties") or {}).get("DeadLetterConfig") or {}).get("Arn")
                queue = (_getatt(arn) or "").removesuffix(".Arn")
                if queue:
                    senders.setdefault(queue, set()).add(f"{fn}{event_name}")  # SAM's name for the rule
    allowed = {}  # queue -> rule ids a statement lets in
    for name, res in resources.items():
        if res.get("Type") != "AWS::SQS::QueuePolicy":
            continue
        for st in _list(((res.get("Properties") or {}).get("PolicyDocument") or {}).get("Statement") or []):
            principal = st.get("Principal") or {}
            if st.get("Effect") != "Allow" or not isinstance(principal, dict) or "Service" not in principal:
                if st.get("Effect") == "Allow" and principal in ("*", {"AWS": "*"}):
                    problems.append(f"{name}: statement {st.get('Sid')} lets anyone in")
                continue
            condition = st.get("Condition") or {}
            arns = [v for op in ("ArnEquals", "ArnLike") for v in _list((condition.get(op) or {}).get("aws:SourceArn", []))]
            if not arns:
                problems.append(
                    f"{name}: statement {st.get('Sid')} lets {principal['Service']} send without an aws:SourceArn "
                    "condition (ArnEquals on the rules' ARNs): any account's rule could use the queue"
                )
                continue
            rules = {(_getatt(a) or "").removesuffix(".Arn") for a in arns}
            for resource in _list(st.get("Resource", [])):
                queue = (_getatt(resource) or "").removesuffix(".Arn")
                allowed.setdefault(queue, set()).update(rules)
    for queue, rules in sorted(senders.items()):
        for rule in sorted(rules - allowed.get(queue, set())):
            problems.append(
                f"{queue}: rule {rule} dead-letters here, but no queue policy lets events.amazonaws.com send "
                f"with aws:SourceArn !GetAtt {rule}.Arn"
            )
    for queue, rules in sorted(allowed.items()):
        for rule in sorted(rules - senders.get(queue, set())):
            problems.append(f"{queue}: its queue policy lets {rule} send, which is no rule dead-lettering to it")
    return problems


def check_throttling(template):
    """Every HTTP API throttles its routes by default, with limits that are parameters with safe
    defaults; the ESP hooks (unauthenticated, internet-facing) have their own, route by route; route
    settings name routes that exist."""
    problems = []
    resources, parameters = template.get("Resources", {}), template.get("Parameters", {})

    def limits(where, settings):
        for key, most in (("ThrottlingBurstLimit", API_MAX_BURST), ("ThrottlingRateLimit", API_MAX_RATE)):
            value = (settings or {}).get(key)
            ref = value.get("Ref") if isinstance(value, dict) else None
            param = parameters.get(ref) if ref else None
            if param is None:
                problems.append(f"{where}: {key} must be !Ref to a parameter (have {value!r})")
                continue
            default = param.get("Default")
            if param.get("Type") != "Number" or not isinstance(default, (int, float)) or not 1 <= default <= most:
                problems.append(f"{where}: parameter {ref} must be a Number with a Default from 1 to {most}")
            if not isinstance(param.get("MinValue"), (int, float)) or param["MinValue"] < 1:
                problems.append(f"{where}: parameter {ref} needs MinValue 1 or more (0 refuses every request)")

    for api, res in resources.items():
        if res.get("Type") != "AWS::Serverless::HttpApi":
            continue
        props = res.get("Properties") or {}
        limits(f"{api}.DefaultRouteSettings", props.get("DefaultRouteSettings"))
        routes = set()
        for fn in resources.values():
            for event in ((fn.get("Properties") or {}).get("Events") or {}).values():
                eprops = event.get("Properties") or {}
                if event.get("Type") == "HttpApi" and eprops.get("ApiId") == {"Ref": api}:
                    routes.add(f"{str(eprops.get('Method', '')).upper()} {eprops.get('Path')}")
        route_settings = props.get("RouteSettings") or {}
        for key, settings in route_settings.items():
            if key not in routes:
                problems.append(f"{api}.RouteSettings: {key!r} is not a route of the API (the stage would not deploy)")
            limits(f"{api}.RouteSettings[{key}]", settings)
        for route in sorted(r for r in routes if r.split(" ", 1)[1].startswith(HOOK_ROUTES)):
            if route not in route_settings:
                problems.append(f"{api}: the webhook route {route} has no RouteSettings with its own throttling")
    return problems


API_MAX_BURST = 5000  # the account's default burst for all HTTP APIs of a region
API_MAX_RATE = 10000  # and its default steady rate (requests per second)
HOOK_ROUTES = "/hooks/"


# ---------------------------------------------------------------------------------------------------
# The deletion report topic (R-J2): encrypted, and only the functions whose code uses it may touch it,
# each with the actions its code makes
# ---------------------------------------------------------------------------------------------------

REPORT_TOPIC = "DeletionReportTopic"
# The SNS actions each function's code makes on the topic (the others must have none).
REPORT_ACTIONS = {
    "WorkerFunction": {"sns:Publish"},  # right after the commit that made a report
    "SchedulerFunction": {"sns:Publish"},  # the tick retries what was not delivered
    "AdminApiFunction": {
        "sns:Subscribe",
        "sns:ListSubscriptionsByTopic",
        "sns:Unsubscribe",
        "sns:GetSubscriptionAttributes",
        "sns:SetSubscriptionAttributes",
    },
}
# A function's code uses the topic when its entry point builds the SNS adapter.
REPORT_USE = re.compile(r"\.reports\(\)")
REPORT_REF = f"${{{REPORT_TOPIC}}}"  # ref_text of !Ref DeletionReportTopic


def check_report_topic(template, root):
    problems = []
    resources = template.get("Resources", {})
    topic = resources.get(REPORT_TOPIC)
    if not topic or topic.get("Type") != "AWS::SNS::Topic":
        return [f"{REPORT_TOPIC}: the deletion report topic (AWS::SNS::Topic) is missing"]
    if not (topic.get("Properties") or {}).get("KmsMasterKeyId"):
        problems.append(f"{REPORT_TOPIC}: reports name the erased address; encrypt the topic (KmsMasterKeyId)")
    outputs = template.get("Outputs") or {}
    if ref_text((outputs.get("DeletionReportTopicArn") or {}).get("Value")) != REPORT_REF:
        problems.append(f"output DeletionReportTopicArn must be !Ref {REPORT_TOPIC}")
    functions = {k: v for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Function"}
    for name, fn in functions.items():
        props = fn.get("Properties") or {}
        binary = ((fn.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        main_rs = root / "functions" / str(binary) / "src" / "main.rs"
        uses = main_rs.is_file() and REPORT_USE.search(main_rs.read_text()) is not None
        expected = REPORT_ACTIONS.get(name, set())
        if uses and not expected:
            problems.append(f"{name}: its code uses the deletion report topic; add it to REPORT_ACTIONS in infra/template_checks.py")
        if expected and not uses:
            problems.append(f"{name}: granted the deletion report topic, which its code does not use")
        granted = set()
        for policy in _list(props.get("Policies") or []):
            if not (isinstance(policy, dict) and "Statement" in policy):
                continue
            for st in _list(policy["Statement"]):
                actions = [a for a in _list(st.get("Action", [])) if str(a).lower().startswith("sns:")]
                if not actions or st.get("Effect") != "Allow":
                    continue
                for resource in _list(st.get("Resource", [])):
                    if ref_text(resource) != REPORT_REF:
                        problems.append(f"{name}: SNS actions on {ref_text(resource) or resource!r}; only !Ref {REPORT_TOPIC}")
                granted |= set(actions)
        for extra in sorted(granted - expected):
            problems.append(f"{name}: {extra} on the deletion report topic, which its code does not do")
        for missing in sorted(expected - granted):
            problems.append(f"{name}: its code needs {missing} on the deletion report topic; the policy does not grant it")
        variables = ((props.get("Environment") or {}).get("Variables") or {})
        if expected and ref_text(variables.get("REPORT_TOPIC_ARN")) != REPORT_REF:
            problems.append(f"{name}: REPORT_TOPIC_ARN must be !Ref {REPORT_TOPIC} (its code requires it)")
    return problems


# ---------------------------------------------------------------------------------------------------
# The admin console: its Cognito user pool, client, domain and groups, its routes on admin-api (no
# authoriser: the console checks its own session cookie) and what admin-api is given for it
# ---------------------------------------------------------------------------------------------------

CONSOLE_FUNCTION = "AdminApiFunction"
CONSOLE_POOL = "ConsoleUserPool"
CONSOLE_CLIENT = "ConsoleUserPoolClient"
CONSOLE_DOMAIN = "ConsoleUserPoolDomain"
CONSOLE_CONDITION = "HasConsole"  # both parameters set: a Cognito domain and a public callback URL
CONSOLE_PARAMETERS = ("PublicBaseUrl", "ConsoleDomainPrefix")
CONSOLE_GROUPS = ("optisync-admin", "optisync-approver")  # the console's rights go by these names
CONSOLE_TENANT_ATTRIBUTE = "tenant"  # the claim custom:tenant
CONSOLE_MIN_PASSWORD = 12
CONSOLE_PASSWORD_CLASSES = ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols")
CONSOLE_CALLBACK = "${PublicBaseUrl}/console/callback"
CONSOLE_ROUTES = (("GET", "/"), ("GET", "/console"), ("ANY", "/console/{proxy+}"))
ADMIN_ROUTE = ("ANY", "/admin/{proxy+}")
CONSOLE_SESSION_KEY = "admin/console-session-key"  # shared/ports/src/names.rs, secret::CONSOLE_SESSION_KEY
CONSOLE_ENV = {
    "CONSOLE_COGNITO_DOMAIN": {"Fn::If": [CONSOLE_CONDITION, {"Fn::Sub": "https://${ConsoleDomainPrefix}.auth.${AWS::Region}.amazoncognito.com"}, ""]},
    "CONSOLE_CLIENT_ID": {"Fn::If": [CONSOLE_CONDITION, {"Ref": CONSOLE_CLIENT}, ""]},
    "CONSOLE_ISSUER": {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${ConsoleUserPool}"},
}


def _authorizer(event, resources):
    """The authoriser an HttpApi event's route ends up with: its own Auth.Authorizer, else its API's
    DefaultAuthorizer; None for none."""
    eprops = event.get("Properties") or {}
    own = (eprops.get("Auth") or {}).get("Authorizer")
    if own is None:
        api = (resources.get((eprops.get("ApiId") or {}).get("Ref", "")) or {}).get("Properties") or {}
        own = (api.get("Auth") or {}).get("DefaultAuthorizer")
    return None if own in (None, "NONE") else own


def check_console(template):
    problems = []
    resources = template.get("Resources", {})

    def resource(name, kind):
        res = resources.get(name)
        if not res or res.get("Type") != kind:
            problems.append(f"{name}: the admin console's {kind} is missing")
            return None
        if (res.get("Properties") or {}).get("UserPoolId", {"Ref": CONSOLE_POOL}) != {"Ref": CONSOLE_POOL}:
            problems.append(f"{name}: UserPoolId must be !Ref {CONSOLE_POOL}")
        return res.get("Properties") or {}

    pool = resource(CONSOLE_POOL, "AWS::Cognito::UserPool")
    if pool is None:
        return problems  # the client, the domain, the groups and CONSOLE_ISSUER all name it
    if (pool.get("AdminCreateUserConfig") or {}).get("AllowAdminCreateUserOnly") is not True:
        problems.append(f"{CONSOLE_POOL}: allows self sign-up; AdminCreateUserConfig.AllowAdminCreateUserOnly must be true")
    if not any(a.get("Name") == CONSOLE_TENANT_ATTRIBUTE and a.get("AttributeDataType") == "String"
               for a in pool.get("Schema") or []):
        problems.append(
            f"{CONSOLE_POOL}: no custom String attribute {CONSOLE_TENANT_ATTRIBUTE} in Schema (the console "
            f"reads the user's tenant from the claim custom:{CONSOLE_TENANT_ATTRIBUTE})"
        )
    password = (pool.get("Policies") or {}).get("PasswordPolicy") or {}
    length = password.get("MinimumLength")
    if not isinstance(length, int) or length < CONSOLE_MIN_PASSWORD:
        problems.append(f"{CONSOLE_POOL}: PasswordPolicy.MinimumLength {length} is below {CONSOLE_MIN_PASSWORD}")
    weak = [c for c in CONSOLE_PASSWORD_CLASSES if password.get(c) is not True]
    if weak:
        problems.append(f"{CONSOLE_POOL}: PasswordPolicy must require every character class ({', '.join(weak)} not true)")

    condition = json.dumps((template.get("Conditions") or {}).get(CONSOLE_CONDITION))
    for parameter in CONSOLE_PARAMETERS:
        if json.dumps({"Ref": parameter}) not in condition:
            problems.append(f"condition {CONSOLE_CONDITION} must test {parameter} (the console needs {' and '.join(CONSOLE_PARAMETERS)})")
    for name, kind in ((CONSOLE_DOMAIN, "AWS::Cognito::UserPoolDomain"), (CONSOLE_CLIENT, "AWS::Cognito::UserPoolClient")):
        if name in resources and resources[name].get("Condition") != CONSOLE_CONDITION:
            problems.append(f"{name}: must have Condition {CONSOLE_CONDITION} (without {' and '.join(CONSOLE_PARAMETERS)} there is no console)")

    resource(CONSOLE_DOMAIN, "AWS::Cognito::UserPoolDomain")
    client = resource(CONSOLE_CLIENT, "AWS::Cognito::UserPoolClient")
    if client is not None:
        if client.get("GenerateSecret") is not False:
            problems.append(f"{CONSOLE_CLIENT}: GenerateSecret must be false (a public client; PKCE protects the code)")
        flows = client.get("AllowedOAuthFlows") or []
        if flows != ["code"]:
            problems.append(f"{CONSOLE_CLIENT}: AllowedOAuthFlows must be [code] alone (have {flows})")
        if "openid" not in (client.get("AllowedOAuthScopes") or []):
            problems.append(f"{CONSOLE_CLIENT}: AllowedOAuthScopes lack openid (no ID token without it)")
        callbacks = [sub_text(c) for c in client.get("CallbackURLs") or []]
        if callbacks != [CONSOLE_CALLBACK]:
            problems.append(f"{CONSOLE_CLIENT}: CallbackURLs must be [!Sub {CONSOLE_CALLBACK}] (have {callbacks})")
        if f"custom:{CONSOLE_TENANT_ATTRIBUTE}" in (client.get("WriteAttributes") or []):
            problems.append(f"{CONSOLE_CLIENT}: WriteAttributes lets users change custom:{CONSOLE_TENANT_ATTRIBUTE} (their tenant)")

    groups = {(r.get("Properties") or {}).get("GroupName") for r in resources.values()
              if r.get("Type") == "AWS::Cognito::UserPoolGroup"
              and (r.get("Properties") or {}).get("UserPoolId") == {"Ref": CONSOLE_POOL}}
    for group in CONSOLE_GROUPS:
        if group not in groups:
            problems.append(f"{CONSOLE_POOL}: no AWS::Cognito::UserPoolGroup named {group} (the console's rights go by the group name)")

    served = {}  # (method, path) -> (function, event)
    for fn, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        for event in ((res.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                eprops = event.get("Properties") or {}
                served[(str(eprops.get("Method", "")).upper(), eprops.get("Path"))] = (fn, event)
    for route in CONSOLE_ROUTES:
        if route not in served:
            problems.append(f"{CONSOLE_FUNCTION}: the console route {' '.join(route)} is missing")
            continue
        fn, event = served[route]
        if fn != CONSOLE_FUNCTION:
            problems.append(f"{fn}: serves the console route {' '.join(route)}, which is {CONSOLE_FUNCTION}'s")
        authorizer = _authorizer(event, resources)
        if authorizer is not None:
            problems.append(
                f"{fn}: the console route {' '.join(route)} has the authoriser {authorizer}; it must have none "
                "(the console checks its own session cookie)"
            )
    if ADMIN_ROUTE not in served or served[ADMIN_ROUTE][0] != CONSOLE_FUNCTION:
        problems.append(f"{CONSOLE_FUNCTION}: the route {' '.join(ADMIN_ROUTE)} is missing")
    elif _authorizer(served[ADMIN_ROUTE][1], resources) != "AWS_IAM":
        problems.append(f"{CONSOLE_FUNCTION}: the route {' '.join(ADMIN_ROUTE)} must have Authorizer AWS_IAM")

    fn = resources.get(CONSOLE_FUNCTION) or {}
    props = fn.get("Properties") or {}
    variables = (props.get("Environment") or {}).get("Variables") or {}
    for variable, value in CONSOLE_ENV.items():
        if variable not in variables:
            problems.append(f"{CONSOLE_FUNCTION}: no {variable} (the console's sign-in; the code reads it)")
        elif variables[variable] != value:
            problems.append(f"{CONSOLE_FUNCTION}: {variable} must be {json.dumps(value)} (have {json.dumps(variables[variable])})")
    granted = set()
    for policy in _list(props.get("Policies") or []):
        for st in _list(policy.get("Statement") or []) if isinstance(policy, dict) else []:
            if st.get("Effect") == "Allow":
                for res in _list(st.get("Resource", [])):
                    granted |= {(sub_text(res), a) for a in _list(st.get("Action", []))}
    for secret in (CONSOLE_SESSION_KEY, CONSOLE_SESSION_KEY + SECRET_SUFFIX):
        missing = [a for a in (READ, WRITE, CREATE) if (SECRET_ARN + secret, a) not in granted]
        if missing:
            problems.append(
                f"{CONSOLE_FUNCTION}: the console's session key {secret} is not granted ({', '.join(missing)}; "
                "made on first use, like admin/oauth-state-key)"
            )
    return problems


def main(template_path, functions_dir):
    template = yaml_parse(pathlib.Path(template_path).read_text())
    if METRICS_RS.is_file():
        code = parse_metrics_rs(METRICS_RS.read_text())
    else:
        code = CodeMetrics({}, {}, {}, [f"{METRICS_RS.relative_to(ROOT)} is missing (the metric names the template may use)"])
    problems = check(template, crate_names(functions_dir), code, read_queries(QUERIES_DIR))
    problems = list(dict.fromkeys(problems))  # one line per problem, not per metric row
    for p in problems:
        print(f"template check: {p}")
    if problems:
        sys.exit(1)
    print(f"template checks: {template_path} passed")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
