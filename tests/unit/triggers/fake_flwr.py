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
