"""`ddbsync local up|down`: the local stack in the foreground, and stopping it from another terminal."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from typing import Any

from ddbsync.cli.output import STATE_DIR


def local_up(batch_size: int, keep: bool) -> int:
    """Start the stack, print its endpoints, replicate until SIGINT/SIGTERM, then stop it all."""
    from ddbsync.local.stack import EXPORT_BUCKET, LocalStack, replicate_until
    from schema.delivery import StreamDelivery

    state = STATE_DIR / "local.json"
    if state.exists():
        print(f"a local stack is already running (see {state}); run `ddbsync local down` first", file=sys.stderr)
        return 1
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    stack = LocalStack(settings=StreamDelivery(batch_size=batch_size)).start()
    try:
        endpoints = {**stack.endpoints(), "pid": os.getpid()}
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps(endpoints, indent=2))
        print("ddbsync local stack is up.")
        print(
            f"  export AWS_ENDPOINT_URL={stack.endpoint} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
            "AWS_DEFAULT_REGION=us-east-1 AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled"
        )
        print(f"  psql {stack.database_url}")
        print(f"  tables: {', '.join(stack.stream_arns)}; stop with Ctrl-C or `ddbsync local down`", flush=True)
        schedules = export_schedules(stack)
        for line in schedules.describe():
            print(f"  export schedule {line}, into s3://{EXPORT_BUCKET}/", flush=True)

        def done() -> bool:  # polled between the runners' polls: the schedules' clock ticks there too
            schedules.tick()
            return bool(stopping)

        replicate_until(stack.runners(), done)
    finally:
        request = STATE_DIR / "stop.json"
        keep = keep or (request.exists() and json.loads(request.read_text()).get("keep", False))
        stack.stop(keep_data=keep)
        state.unlink(missing_ok=True)
        request.unlink(missing_ok=True)
        print("ddbsync local stack stopped" + (" (data kept)" if keep else ""), flush=True)
    return 0


def local_down(keep: bool, timeout: float = 30.0) -> int:
    """Ask the `local up` process to stop and wait until it has."""
    state = STATE_DIR / "local.json"
    if not state.exists():
        print("no local stack is running", file=sys.stderr)
        return 1
    pid = json.loads(state.read_text())["pid"]
    (STATE_DIR / "stop.json").write_text(json.dumps({"keep": keep}))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        state.unlink(missing_ok=True)
        print("the local stack's process was already gone", file=sys.stderr)
        return 1
    deadline = time.monotonic() + timeout
    while state.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if state.exists():
        print(f"the local stack (pid {pid}) did not stop within {timeout:.0f} s", file=sys.stderr)
        return 1
    print("local stack stopped")
    return 0


def export_schedules(stack: Any) -> Any:
    """The dev stack's export schedules, fired by this process (moto runs no scheduler)."""
    from ddbsync.local.schedules import HANDLER, ScheduleRunner, load_schedules
    from ddbsync.local.stack import EXPORT_BUCKET, load_handler

    os.environ["DDBSYNC_EXPORT_BUCKET"] = EXPORT_BUCKET  # read by the function at import, as on AWS

    def invoke(event: dict[str, Any]) -> Any:
        return load_handler(HANDLER)(event, None)

    return ScheduleRunner(load_schedules(list(stack.stream_arns)), invoke, datetime.now(timezone.utc))
