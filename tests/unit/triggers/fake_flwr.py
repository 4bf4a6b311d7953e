"""A stand-in for the ``flwr`` CLI in unit tests: answers run / ls / stop from a state folder.

``state/statuses``: one status per line, one consumed per ``ls`` (the last one repeats);
``state/calls``: every call's arguments, one JSON list a line.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

SCRIPT = """\
import json, os, sys
state = {state!r}
args = sys.argv[1:]
with open(os.path.join(state, "calls"), "a") as fh:
    fh.write(json.dumps(args + ["FLWR_HOME" in os.environ]) + "\\n")
if args[0] == "run":
    open(os.path.join(state, "run.toml"), "w").write(open(args[4]).read())
    print(json.dumps({{"success": True, "run-id": "4242", "fab-hash": "feed"}}))
elif args[0] == "ls":
    path = os.path.join(state, "statuses")
    lines = open(path).read().split()
    status = lines[0]
    if len(lines) > 1:
        open(path, "w").write("\\n".join(lines[1:]))
    run = {{"run-id": "4242", "status": status, "status-details": "details of " + status, "fab-hash": "feed",
           "elapsed": 1.0}}
    print(json.dumps({{"success": True, "runs": [run]}}))
elif args[0] == "stop":
    print(json.dumps({{"success": True, "run-id": args[1]}}))
"""


def make_fake_flwr(folder: Path, statuses: list[str]) -> tuple[str, Path]:
    """The fake CLI's path and its state folder."""
    state = folder / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "statuses").write_text("\n".join(statuses))
    (state / "calls").write_text("")
    cli = folder / "flwr"
    cli.write_text(f"#!{sys.executable}\n" + SCRIPT.format(state=str(state)))
    cli.chmod(cli.stat().st_mode | stat.S_IEXEC)
    return str(cli), state


def calls(state: Path) -> list[list[object]]:
    import json

    return [json.loads(line) for line in (state / "calls").read_text().splitlines()]


SUPERLINK = """\
import glob, os, sys, time
state = {state!r}
if os.path.exists(os.path.join(state, "superlink-fails")):
    print("cannot bind", flush=True)
    sys.exit(3)
print("INFO: Uvicorn running on http://" + sys.argv[sys.argv.index("--host") + 1] + ":"
      + sys.argv[sys.argv.index("--port") + 1], flush=True)
seen = set()
while True:  # a SuperNode registers by leaving its file in the state folder
    for path in sorted(glob.glob(os.path.join(state, "node-*"))):
        if path not in seen:
            seen.add(path)
            print("INFO: Activated node_id=" + open(path).read(), flush=True)
    time.sleep(0.1)
"""

SUPERNODE = """\
import os, subprocess, sys, time
state = {state!r}
config = sys.argv[sys.argv.index("--node-config") + 1]
# like a SuperNode's superexec: a child process that outlives it unless its group is signalled
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.path.join(state, f"child-{{os.getpid()}}"), "w") as fh:
    fh.write(str(child.pid))
with open(os.path.join(state, f"node-{{os.getpid()}}"), "w") as fh:
    fh.write(config + " superlink=" + sys.argv[sys.argv.index("--superlink") + 1])
while True:
    time.sleep(0.1)
"""


def make_fake_federation(folder: Path, statuses: list[str]) -> tuple[str, Path]:
    """A fake ``flwr`` with fake ``flower-superlink`` and ``flower-supernode`` beside it (a
    SuperNode registers with the SuperLink through the state folder)."""
    cli, state = make_fake_flwr(folder, statuses)
    for name, script in (("flower-superlink", SUPERLINK), ("flower-supernode", SUPERNODE)):
        path = folder / name
        path.write_text(f"#!{sys.executable}\n" + script.format(state=str(state)))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return cli, state
