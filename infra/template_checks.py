"""Project checks on template.yaml for what the linters miss.

aws-sam-translator + cfn-lint catch most mistakes; these catch the rest and hold the template to the
project's own rules:
  * every crate in functions/ has exactly one function resource (BuildMethod rust-cargolambda, Binary =
    crate name) and every function resource builds a crate of functions/;
  * every function runs provided.al2023 on arm64 from CodeUri "." with handler bootstrap;
  * memory 128..10240 MB, timeout 1..900 s, and at most 30 s behind the HTTP API (its integration limit);
  * HTTP API routes use a real method, start with "/", and no route is served twice;
  * every EventBridge rule and schedule has a retry policy and a dead-letter queue, and every
    dead-letter queue has an alarm;
  * every function has a log group with a retention;
  * the table keeps point-in-time recovery, encryption and the TTL attribute expires_at;
  * every dashboard body is valid JSON once its ${...} placeholders are substituted.

Usage: python infra/template_checks.py TEMPLATE FUNCTIONS_DIR   (exit 1 and one line per problem)
"""

import json
import pathlib
import re
import sys

from samtranslator.yaml_helper import yaml_parse

HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"}
HTTP_API_TIMEOUT = 30


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


def check(template, crates):
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
    return problems


def main(template_path, functions_dir):
    template = yaml_parse(pathlib.Path(template_path).read_text())
    problems = check(template, crate_names(functions_dir))
    for p in problems:
        print(f"template check: {p}")
    if problems:
        sys.exit(1)
    print(f"template checks: {template_path} passed")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
