#!/usr/bin/env python3
"""A scripted agent for foreman's tests: a real child process that speaks MCP (Streamable
HTTP, JSON-RPC) to foreman with the bearer token foreman gave it, following a plan file.

Run by foreman's `command` adapter as `python3 scripted_agent.py PLAN.json`. It reads its
environment (FOREMAN_MCP_URL, FOREMAN_MCP_TOKEN, FOREMAN_ROLE, FOREMAN_PROMPT_FILE) and
performs one turn:

  plan = {
    "manager": [turn, turn, ...],          # the manager's turns: each turn runs every unused
                                           # one whose "when" text is in its prompt, else the
                                           # first unused one without a "when"; one
                                           # with "unless" is skipped while that text
                                           # is in the prompt
    "workers": {"<title>": turn, ...},     # a worker's (single) turn, by its title
    "default_worker": turn                 # for workers without their own entry
  }
  turn = {"when": "text", "calls": [call, ...], "print": ["line", ...], "sleep": seconds,
          "exit": code, "spawn_sleeper": seconds, "expect_prompt": "text",
          "write": {"path": "content"}, "expect_files": ["path"],
          "run": ["shell command", ...]}   # run in the working directory, after "write";
                                           # a command that fails ends the turn with exit 6

Or, for the supervisor's simulation, plan = {"sim": {"steps": N, "seed": S, "stall": p,
"crash": p, "exit_early": p}}: a manager that, each turn, at random crashes (exit 1) before
doing anything, stalls (ends its turn with only a plan), or acts: spawns the first of the
workers "step-0" … "step-N-1" it does not know of — it knows what it spawned itself and what
the state snapshot in its prompt lists — and then, at random, crashes right after (exits
early); with every step known it marks the objective done. Sim workers just succeed.

Every turn also records its environment (environ.json) in the state directory.
  call = {"tool": "name", "args": {...}, "save": "var", "expect_error": true|false}

String arguments of the form "$var" are replaced by the integer saved earlier under that
name (the first number in that tool's result text). Variables and the turn counter are kept
in the session's state directory, next to the prompt file. Every call and its result is
appended to calls.jsonl there, and printed.
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

PROTOCOL = "2025-06-18"


class Mcp:
    def __init__(self, url, token):
        self.url, self.token, self.session, self.next_id = url, token, None, 1

    def post(self, message):
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Authorization": "Bearer " + self.token,
            "MCP-Protocol-Version": PROTOCOL,
        }
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        request = urllib.request.Request(self.url, json.dumps(message).encode(), headers, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            self.session = response.headers.get("Mcp-Session-Id") or self.session
            body = response.read().decode()
            if response.headers.get("Content-Type", "").startswith("text/event-stream"):
                for line in body.splitlines():
                    if line.startswith("data:") and line[5:].strip():
                        data = json.loads(line[5:])
                        if data.get("id") == message.get("id"):
                            return data
                return None
            return json.loads(body) if body.strip() else None

    def request(self, method, params):
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.next_id += 1
        reply = self.post(message)
        if reply is None or "error" in reply:
            raise RuntimeError("%s failed: %s" % (method, reply))
        return reply["result"]

    def initialize(self):
        self.request("initialize", {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "scripted-agent", "version": "1"},
        })
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})


def substitute(value, variables):
    if isinstance(value, str) and value.startswith("$"):
        return variables[value[1:]]
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def simulate(sim, role, prompt, state_dir, state, state_path):
    """One turn of the supervisor simulation (see the module's description)."""
    if role != "manager":
        print("done")
        sys.exit(0)
    import random
    rng = random.Random("%s-%s-%d" % (sim["seed"], state_dir, state["turn"]))
    roll = rng.random()
    # What it knows: what it spawned and every snapshot it was given (its conversation, which
    # it keeps whatever it does with this turn).
    known = set(state.setdefault("known", []))
    known.update(re.findall(r"^- #\d+ (step-\d+) \((?:worker|followup), ", prompt, re.M))
    state["known"] = sorted(known)
    json.dump(state, open(state_path, "w"))
    if roll < sim["crash"]:
        print("crashing before doing anything", file=sys.stderr)
        sys.exit(1)
    if roll < sim["crash"] + sim["stall"]:
        print("Done for now; next I will spawn the next step.")
        sys.exit(0)
    missing = ["step-%d" % i for i in range(sim["steps"]) if "step-%d" % i not in known]
    mcp = Mcp(os.environ["FOREMAN_MCP_URL"], os.environ["FOREMAN_MCP_TOKEN"])
    mcp.initialize()
    if missing:
        call = ("spawn_worker", {"title": missing[0], "instructions": "Do " + missing[0] + "."})
        state["known"].append(missing[0])
    else:
        call = ("mark_objective_done", {"summary": "every step is done"})
    result = mcp.request("tools/call", {"name": call[0], "arguments": call[1]})
    text = "".join(c.get("text", "") for c in result.get("content", []))
    print("%s -> %s" % (call[0], text), flush=True)
    with open(os.path.join(state_dir, "calls.jsonl"), "a") as log:
        log.write(json.dumps({"tool": call[0], "error": bool(result.get("isError")), "text": text}) + "\n")
    json.dump(state, open(state_path, "w"))
    if missing and rng.random() < sim["exit_early"]:
        print("crashing right after acting", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


def main():
    plan = json.load(open(sys.argv[1]))
    role = os.environ["FOREMAN_ROLE"]
    prompt_file = os.environ["FOREMAN_PROMPT_FILE"]
    state_dir = os.path.dirname(prompt_file)
    prompt = open(prompt_file).read()
    state_path = os.path.join(state_dir, "scripted_state.json")
    state = json.load(open(state_path)) if os.path.exists(state_path) else {"turn": 0, "vars": {}}
    turn_index = state["turn"]
    state["turn"] += 1
    if role != "manager":
        # A worker's title is in its first prompt only: keep it for the later turns, in the
        # same write as the turn counter (a turn can be killed right after its prompt is logged).
        title = re.search(r"Your task: (.*)", prompt)
        state["title"] = title.group(1).strip() if title else state.get("title", "")
    json.dump(state, open(state_path, "w"))
    with open(os.path.join(state_dir, "prompts.txt"), "a") as log:
        log.write("=== turn %d ===\n%s\n" % (turn_index, prompt))
    if "sim" in plan:
        simulate(plan["sim"], role, prompt, state_dir, state, state_path)

    if role == "manager":
        # Every unused turn whose "when" text is in the prompt runs (news can arrive
        # together); failing those, the first unused turn without a "when".
        used = state.setdefault("used", [])
        turns = plan.get("manager", [])
        chosen = [i for i, t in enumerate(turns) if i not in used and t.get("when") and t["when"] in prompt
                  and not (t.get("unless") and t["unless"] in prompt)]
        if not chosen:
            chosen = [i for i, t in enumerate(turns) if i not in used and not t.get("when")][:1]
        turn = {}
        for index in chosen:
            used.append(index)
            for key, value in turns[index].items():
                if key == "calls":
                    turn.setdefault("calls", []).extend(value)
                elif key not in ("when", "unless"):
                    turn[key] = value
        json.dump(state, open(state_path, "w"))
    else:
        turn = plan.get("workers", {}).get(state["title"], plan.get("default_worker", {}))
        if isinstance(turn, list):
            turn = turn[turn_index] if turn_index < len(turn) else {}

    open(os.path.join(state_dir, "token"), "w").write(os.environ["FOREMAN_MCP_TOKEN"])
    json.dump(dict(os.environ), open(os.path.join(state_dir, "environ.json"), "w"))
    for path in turn.get("expect_files", []):
        if not os.path.exists(path):
            print("expected %s in the working directory" % path, file=sys.stderr)
            sys.exit(5)
    for path, content in turn.get("write", {}).items():
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        open(path, "w").write(content)
    for command in turn.get("run", []):
        if subprocess.run(command, shell=True).returncode != 0:
            print("command failed: %s" % command, file=sys.stderr)
            sys.exit(6)
    if "expect_prompt" in turn and turn["expect_prompt"] not in prompt:
        print("expected %r in the prompt" % turn["expect_prompt"], file=sys.stderr)
        sys.exit(3)
    if turn.get("spawn_sleeper"):
        child = subprocess.Popen(["sleep", str(turn["spawn_sleeper"])])
        open(os.path.join(state_dir, "sleeper.pid"), "w").write(str(child.pid))
        print("sleeper %d" % child.pid, flush=True)
    calls = turn.get("calls", [])
    if calls:
        mcp = Mcp(os.environ["FOREMAN_MCP_URL"], os.environ["FOREMAN_MCP_TOKEN"])
        mcp.initialize()
        tools = [t["name"] for t in mcp.request("tools/list", {})["tools"]]
        print("tools: " + ",".join(tools), flush=True)
        for call in calls:
            args = substitute(call.get("args", {}), state["vars"])
            result = mcp.request("tools/call", {"name": call["tool"], "arguments": args})
            text = "".join(c.get("text", "") for c in result.get("content", []))
            is_error = bool(result.get("isError"))
            print("%s -> %s%s" % (call["tool"], "ERROR " if is_error else "", text), flush=True)
            with open(os.path.join(state_dir, "calls.jsonl"), "a") as log:
                log.write(json.dumps({"tool": call["tool"], "error": is_error, "text": text}) + "\n")
            if call.get("expect_error") is not None and call["expect_error"] != is_error:
                print("unexpected outcome of %s" % call["tool"], file=sys.stderr)
                sys.exit(4)
            if "save" in call:
                number = re.search(r"\d+", text)
                state["vars"][call["save"]] = int(number.group(0)) if number else None
                json.dump(state, open(state_path, "w"))
    for line in turn.get("print", []):
        print(line, flush=True)
    if turn.get("sleep"):
        time.sleep(turn["sleep"])
    sys.exit(turn.get("exit", 0))


if __name__ == "__main__":
    main()
