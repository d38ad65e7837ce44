#!/usr/bin/env python3
"""A session-mode agent (contract §6a) that misbehaves on request, for the
session client's tests. argv[1] is the mode:
  echo      answer each request at once (success, a GUID vm_id)
  reverse   hold requests until two are in, answer them newest first
  noise     before each answer print a non-JSON line, an answer for an
            unknown request_id and an object without one
  die       exit 3 on the first request, without answering
  hang      never answer a request; a cancel is answered CANCELLED
  nohello   print a non-hello first line, then behave like echo
  silent    print nothing at all (no hello)
  output    print two output lines for a request, then answer
"""
import json
import sys
import uuid

mode = sys.argv[1] if len(sys.argv) > 1 else "echo"
out = sys.stdout


def say(obj):
    out.write(json.dumps(obj) + "\n")
    out.flush()


def answer(req, status="success", code=None, message="ok"):
    say({"request_id": req["request_id"], "status": status, "message": message, "code": code,
         "data": {"vm_id": str(uuid.uuid4()), "operation": req.get("operation")}, "logs": [],
         "correlation_id": req.get("correlation_id")})


if mode == "silent":
    sys.stdin.read()
    sys.exit(0)
if mode == "nohello":
    out.write("Windows PowerShell 7.4\n")
    out.flush()
else:
    say({"hello": {"agent": "session_fake 1", "capabilities": ["session", "output"]}})

held = []
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    msg = json.loads(line)
    if "cancel" in msg:
        for r in held:
            if str(r["request_id"]) == str(msg["cancel"]):
                answer(r, "error", "CANCELLED", "The pipeline has been stopped.")
                held.remove(r)
                break
        continue
    if mode == "die":
        sys.exit(3)
    if mode == "hang":
        held.append(msg)
        continue
    if mode == "reverse":
        held.append(msg)
        if len(held) == 2:
            answer(held[1])
            answer(held[0])
            held = []
        continue
    if mode == "noise":
        out.write("WARNING: something on stdout\n")
        say({"request_id": "no-such-request", "status": "success", "message": "stray", "data": {}})
        say({"status": "success", "message": "no request id"})
    if mode == "output":
        say({"request_id": msg["request_id"], "output": "progress 1 of 2", "stream": "stdout"})
        say({"request_id": msg["request_id"], "output": "progress 2 of 2", "stream": "stderr"})
    answer(msg)
