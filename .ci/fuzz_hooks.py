"""Schemathesis hooks for .ci/fuzz: fit generated *valid* requests to the deployment they run against.

A schema can say what a field looks like, not which rows exist: a valid request names the cluster and
nodes that `taskyard dev` made (dev; n1-n3), a parent that is still running (none here), a follow-up on one of those nodes, an idempotency key
not used for another request, a token expiry in the future, and each participant once. Waits do not hold
(wait=0, timeout=0) so the run stays short, and a token revocation revokes the token made for it (never
the admin token the run uses). Requests generated to be invalid are left alone.
"""
import datetime
import ipaddress
import os
import re
import uuid

import schemathesis

NODES = ["n1", "n2", "n3"]


def _positive(case):
    mode = getattr(getattr(getattr(case, "meta", None), "generation", None), "mode", None)
    return mode is not None and "negative" not in str(mode).lower()


def _fit_task(task):
    if not isinstance(task, dict):
        return
    nodes = task.get("participating_nodes")
    if isinstance(nodes, list) and nodes:
        task["participating_nodes"] = NODES[: max(1, min(len(NODES), len(nodes)))]
    task.pop("parent_id", None)
    # At least as many participants as the completion policy asks successes of.
    policy = task.get("complete_when")
    nodes = task.get("participating_nodes")
    if isinstance(policy, dict) and isinstance(policy.get("at_least"), (int, float)) and isinstance(nodes, list) and nodes:
        policy["at_least"] = max(1, min(int(policy["at_least"]), len(nodes)))
    # A concurrency limit or strategy names the key it is for.
    if (task.get("concurrency_limit") is not None or task.get("on_limit") is not None) and task.get("concurrency_key") is None:
        task["concurrency_key"] = "fuzz"
    # A follow-up runs on a node the cluster has.
    if isinstance(task.get("on_finish"), dict) and isinstance(task["on_finish"].get("node"), str):
        task["on_finish"]["node"] = NODES[0]
    if isinstance(task.get("idempotency_key"), str):
        task["idempotency_key"] = f"fuzz-{uuid.uuid4()}"


def _keep_webhooks_on_loopback(case):
    """A webhook subscription the server would accept gets a loopback address (a closed port), whatever mode
    the request was generated in: the dev server's leader delivers to it, and nothing may leave loopback. A
    URL the server refuses is left as generated, so that it is still refused."""
    body = case.body
    if case.operation.method.upper() != "POST" or not case.operation.path.endswith("/webhooks") or not isinstance(body, dict):
        return
    url = body.get("url")
    if not isinstance(url, str):
        return
    match = re.fullmatch(r"(https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):([1-9][0-9]{0,4})(/[^?#]*)?", url)
    if match and int(match.group(3)) <= 65535:
        host = match.group(2)
        if host.startswith("["):
            try:
                ipaddress.IPv6Address(host[1:-1])
            except ValueError:
                return
        body["url"] = f"{match.group(1)}://127.0.0.1:9{match.group(4) or ''}"


def _seconds(text):
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"([1-9][0-9]{0,7})([smhd])", str(text))
    return int(match.group(1)) * units[match.group(2)] if match else None


def _fit_stats_query(query):
    """The schema's durations say how a window and a step are written, not the ranges they must fall in
    (1m to 7d; a step of whole minutes, at most the window, at most 1,440 points): fit them."""
    window = _seconds(query.get("window", "1h"))
    if window is None or not 60 <= window <= 7 * 86400:
        query["window"], window = "1h", 3600
    if "step" in query:
        step = _seconds(query["step"])
        if step is None or step % 60 or step > window or window // step > 1440:
            del query["step"]
    if "type" in query and "node" in query:
        del query["node"]


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    # Waits do not hold, whatever else the request is (an invalid wait or timeout stays as generated).
    if case.query is None:
        case.query = {}
    query = case.query
    if case.operation.path.endswith("/wait"):
        query.setdefault("timeout", 0)  # the route's default is 30 s
    if case.operation.path.endswith("/changes"):
        # The change stream lasts until its timeout (default: until the client goes): end it at once.
        try:
            if "timeout" not in query or 0 <= float(query["timeout"]) <= 86400:
                query["timeout"] = 0
        except (TypeError, ValueError):
            pass
    for name in ("wait", "timeout"):
        try:
            seconds = float(query[name]) if name in query and not isinstance(query[name], bool) else None
        except (TypeError, ValueError):
            seconds = None
        if seconds is not None and 0 <= seconds <= 300:
            query[name] = 0
    _keep_webhooks_on_loopback(case)
    path = case.path_parameters or {}
    # Never the admin token the run uses, whatever mode the request was generated in: a request that is
    # invalid elsewhere (a header, say) may still carry a real token id.
    if case.operation.method.upper() == "DELETE" and "token_id" in path and str(path["token_id"]) == os.environ.get("FUZZ_ADMIN_TOKEN_ID"):
        path["token_id"] = int(os.environ["FUZZ_REVOCABLE_TOKEN_ID"])
    if not _positive(case):
        return
    if "cluster_id" in path:
        path["cluster_id"] = "dev"
    if "node_id" in path:
        path["node_id"] = "n1"
    if "token_id" in path:
        path["token_id"] = int(os.environ["FUZZ_REVOCABLE_TOKEN_ID"])
    if case.operation.path.endswith("/stats"):
        _fit_stats_query(query)
    body = case.body
    if isinstance(body, dict):
        _fit_task(body)
        for task in body.get("tasks", []) if isinstance(body.get("tasks"), list) else []:
            _fit_task(task)
        # A schedule's task: fitted the same, and keyed by its slots, never by a key of its own.
        if isinstance(body.get("task"), dict):
            _fit_task(body["task"])
            body["task"].pop("idempotency_key", None)
        if "expires_at" in body:
            body["expires_at"] = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).isoformat()
        if isinstance(body.get("participants"), list):
            seen, kept = set(), []
            for participant in body["participants"]:
                node = participant.get("node") if isinstance(participant, dict) else None
                if node not in seen:
                    seen.add(node)
                    kept.append(participant)
            body["participants"] = kept
    headers = case.headers or {}
    if "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = f"fuzz-{uuid.uuid4()}"

