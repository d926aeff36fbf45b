#!/usr/bin/env python3
"""An example agent that asks Gatehouse before every action.

Standard library only. It submits each planned action to POST /v1/actions
and then:
  - allowed         -> does it (here: prints ALLOWED);
  - blocked         -> skips it and says why (BLOCKED);
  - pending_review  -> waits for a human, polling GET /v1/actions/{id}
                       until it is approved or denied, or gives up after
                       GATEHOUSE_APPROVAL_TIMEOUT seconds (PENDING, then
                       APPROVED / DENIED / TIMEOUT);
  - any error       -> does not do it (fail closed: ERROR). A 503
                       evaluation_unavailable means "not evaluated, not
                       allowed"; a well-behaved agent retries later.

Environment: GATEHOUSE_URL (default http://127.0.0.1:8181),
GATEHOUSE_API_KEY (required), GATEHOUSE_APPROVAL_TIMEOUT (default 120),
GATEHOUSE_AGENT_ID (default demo-agent).
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BASE = os.environ.get("GATEHOUSE_URL", "http://127.0.0.1:8181").rstrip("/")
KEY = os.environ.get("GATEHOUSE_API_KEY", "")
AGENT = os.environ.get("GATEHOUSE_AGENT_ID", "demo-agent")
APPROVAL_TIMEOUT = float(os.environ.get("GATEHOUSE_APPROVAL_TIMEOUT", "120"))
POLL_INTERVAL = 0.5

# The policy this demo relies on; a real agent's operators write policies,
# the agent only asks. Writing it again just updates it.
DEMO_POLICY = {
    "name": "agent-demo",
    "description": "Example agent: no recursive deletes; production deploys need a human",
    "rules": [
        {"match": r"rm\s+-rf", "severity": "critical", "reason": "Refusing {match}"},
        {"match": r"deploy.*production", "severity": "high",
         "reason": "Production deploys need a human"},
    ],
}

# What the agent wants to do, in order.
PLAN = [
    {"action": "slack.send_message", "params": {"channel": "#ops", "text": "starting maintenance"}},
    {"action": "shell.exec", "params": {"cmd": "rm -rf /var/lib/app"}},
    {"action": "ci.deploy", "params": {"target": "production", "ref": "main"}},
]


class GatehouseError(Exception):
    """A non-2xx answer: the contract's error envelope."""

    def __init__(self, status, code, message, body):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + KEY)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            env = json.loads(raw)
        except ValueError:
            env = {}
        raise GatehouseError(e.code, env.get("code", ""), env.get("message", raw[:200]), env) from None


def say(*words):
    print(*words, flush=True)


def wait_for_human(action_id):
    """Polls the held action until a human decides, or gives up."""
    deadline = time.monotonic() + APPROVAL_TIMEOUT
    while time.monotonic() < deadline:
        rec = call("GET", "/v1/actions/" + urllib.parse.quote(action_id, safe=""))
        if rec["status"] != "pending_review":
            return rec
        time.sleep(POLL_INTERVAL)
    return None


def run(step):
    name = step["action"]
    try:
        res = call("POST", "/v1/actions", {"action": name, "params": step["params"], "agent_id": AGENT})
    except (GatehouseError, OSError) as e:
        # Not decided is not allowed.
        say("ERROR", name, str(e))
        return
    status = res["status"]
    if status == "allowed":
        say("ALLOWED", name)  # ... and here the agent would do it
    elif status == "blocked":
        say("BLOCKED", name + ":", res["policy_result"]["reason"])
    elif status == "pending_review":
        say("PENDING", name, res["action_id"])
        try:
            rec = wait_for_human(res["action_id"])
        except (GatehouseError, OSError) as e:
            say("ERROR", name, str(e))
            return
        if rec is None:
            say("TIMEOUT", name)
        elif rec["status"] == "approved":
            say("APPROVED", name, "by", rec.get("approver_id"))  # ... now it may do it
        else:
            say("DENIED", name + ":", rec.get("reason") or "")
    else:
        say("ERROR", name, "unknown status " + status)


def main():
    if not KEY:
        sys.exit("set GATEHOUSE_API_KEY (make run prints one)")
    try:
        call("POST", "/v1/control/policies", DEMO_POLICY)
    except (GatehouseError, OSError) as e:
        sys.exit(f"cannot write the demo policy: {e}")
    for step in PLAN:
        run(step)


if __name__ == "__main__":
    main()
