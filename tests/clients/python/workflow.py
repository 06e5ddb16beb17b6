"""The scheduler's whole workflow through a client that openapi-python-client
generated from polysync's OpenAPI document (tests/tests/serve_e2e.rs makes
it and runs this): sync, entries, run, repeat with the same key, stream to
the end, logs, events, cancel, and every error kind a caller can cause.

Usage: workflow.py BASE_URL TOKEN GENERATED_DIR
Each step prints one line; a failed check raises, and the exit code is not 0.
"""

import json
import sys
import time

base, token, generated = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, generated)

from polysync_client import AuthenticatedClient, Client  # noqa: E402
from polysync_client.api.catalog import get_entry, get_sync, list_entries, start_sync  # noqa: E402
from polysync_client.api.connections import list_connections  # noqa: E402
from polysync_client.api.runs import (  # noqa: E402
    cancel_run,
    create_run,
    get_run,
    list_runs,
    run_events,
    run_logs,
    run_status_stream,
)
from polysync_client.models import (  # noqa: E402
    CancelResult,
    CreateRun,
    CreateRunParameters,
    EntryList,
    Problem,
    RunState,
    RunView,
    SyncStatus,
    SyncView,
)

client = AuthenticatedClient(base_url=base, token=token, timeout=60.0)


def step(what):
    print(f"ok: {what}", flush=True)


def problem(response, status, kind):
    """An error answer: the status, a parsed Problem of that kind."""
    assert response.status_code == status, (response.status_code, response.content)
    assert isinstance(response.parsed, Problem), response.content
    assert response.parsed.kind == kind, response.parsed
    assert response.parsed.type_ == f"/v1/problems/{kind}", response.parsed
    assert response.parsed.detail, response.parsed
    return response.parsed


def events(body):
    """Server-Sent Events of a finished stream: (event, data) pairs."""
    out, name = [], None
    for line in body.decode().splitlines():
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            out.append((name, json.loads(line[len("data: "):])))
    return out


connections = list_connections.sync(client=client)
assert [c.name for c in connections] == ["sandbox"], connections
step("connections")

# Sync, and follow it to the end.
started = start_sync.sync_detailed("sandbox", client=client)
assert started.status_code == 202 and isinstance(started.parsed, SyncView), started.content
assert started.headers["location"] == started.parsed.links.self_
deadline = time.monotonic() + 60
while True:
    sync = get_sync.sync(started.parsed.id, client=client)
    if sync.status == SyncStatus.COMPLETE:
        break
    assert sync.status == SyncStatus.RUNNING and time.monotonic() < deadline, sync
    time.sleep(0.2)
assert sync.seen >= 5, sync
step(f"sync #{sync.id}: {sync.seen} entries")

# Entries, a page at a time.
page = list_entries.sync(client=client, connection="sandbox", limit=2)
assert isinstance(page, EntryList) and len(page.entries) == 2 and page.next_after, page
rest = list_entries.sync(client=client, connection="sandbox", after=page.next_after)
ids = [e.entry for e in page.entries + rest.entries]
assert "report" in ids and len(ids) == len(set(ids)), ids
# An id with a slash, as the generated client fills the path template.
cron = next(i for i in ids if i.startswith("cronjob/"))
assert get_entry.sync("sandbox", cron, client=client).entry == cron
report = get_entry.sync("sandbox", "report", client=client)
assert [p.name for p in report.parameters] == ["TARGET", "DB_PASSWORD"], report
step(f"entries: {len(ids)}, {cron} by its id")

# A run with parameters and a key; the same request again is the same run.
request = CreateRun(
    connection="sandbox",
    entry="report",
    parameters=CreateRunParameters.from_dict({"TARGET": "the client", "DB_PASSWORD": "s3cret"}),
)
first = create_run.sync_detailed(client=client, body=request, idempotency_key="client-run-1")
assert first.status_code == 201 and isinstance(first.parsed, RunView), first.content
run = first.parsed
assert first.headers["location"] == run.links.self_ == f"/v1/runs/{run.id}"
assert run.parameters.to_dict()["DB_PASSWORD"] == "<redacted>", run.parameters
assert run.outputs.to_dict() == {} and run.exit_code is None and run.final is False, run
again = create_run.sync_detailed(client=client, body=request, idempotency_key="client-run-1")
assert again.status_code == 200 and again.parsed.id == run.id, again.content
step(f"run #{run.id} created, the same run again")

# Its status stream, to the end (the stream closes after the final status).
stream = run_status_stream.sync_detailed(run.id, client=client)
assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
statuses = [RunView.from_dict(data) for name, data in events(stream.content) if name == "status"]
assert statuses and statuses[-1].state == RunState.SUCCESS and statuses[-1].final, statuses
step("status stream: " + " > ".join(s.state.value for s in statuses))

# What a scheduler reads once it ended.
done = get_run.sync(run.id, client=client)
assert done.exit_code == 0 and done.final, done
assert done.started_at is not None and done.finished_at >= done.started_at >= done.created_at, done
assert done.outputs.to_dict() == {"ROWS": "7"}, done.outputs
assert done.platform_id and all(code == 0 for code in done.exit_codes.to_dict().values()), done
logs = run_logs.sync(run.id, client=client)
assert "report for the client" in logs, logs
platform = events(run_events.sync_detailed(run.id, client=client).content)
assert platform and all(name == "event" and data["platform_id"] == done.platform_id for name, data in platform)
listed = list_runs.sync(client=client, connection="sandbox", entry="report", state=RunState.SUCCESS)
assert [r.id for r in listed.runs] == [run.id], listed
step(f"run #{run.id}: exit 0, outputs, logs, {len(platform)} events")

# Cancel a long one; cancelling again finds it done.
long = create_run.sync(client=client, body=CreateRun(connection="sandbox", entry="long"))
deadline = time.monotonic() + 60
while get_run.sync(long.id, client=client).state != RunState.RUNNING:
    assert time.monotonic() < deadline, "the long run never ran"
    time.sleep(0.1)
cancelled = cancel_run.sync(long.id, client=client)
assert cancelled.outcome == CancelResult.CANCELLED and cancelled.run.state == RunState.CANCELLED, cancelled
assert cancelled.run.reason == "CancelledByUser" and cancelled.run.final, cancelled
assert cancel_run.sync(long.id, client=client).outcome == CancelResult.ALREADYDONE
step(f"run #{long.id} cancelled")

# Every error a caller can cause, as a parsed problem document.
problem(get_run.sync_detailed(999999, client=client), 404, "not_found")
problem(get_entry.sync_detailed("sandbox", "no-such-entry", client=client), 404, "not_found")
problem(list_runs.sync_detailed(client=client, limit=0), 400, "invalid_input")
problem(run_logs.sync_detailed(run.id, client=client, container="no such"), 400, "invalid_input")
other = CreateRun(connection="sandbox", entry="report", parameters=CreateRunParameters.from_dict({"TARGET": "x"}))
problem(create_run.sync_detailed(client=client, body=other, idempotency_key="client-run-1"), 409, "conflict")
unknown = CreateRun(connection="sandbox", entry="report", parameters=CreateRunParameters.from_dict({"NOPE": "1"}))
problem(create_run.sync_detailed(client=client, body=unknown), 422, "invalid_input")
bad_timeout = CreateRun(connection="sandbox", entry="report", startup_timeout="soon")
problem(create_run.sync_detailed(client=client, body=bad_timeout), 400, "invalid_input")
huge = CreateRun(connection="sandbox", entry="report", parameters=CreateRunParameters.from_dict({"TARGET": "x" * 70000}))
problem(create_run.sync_detailed(client=client, body=huge), 413, "invalid_input")
problem(create_run.sync_detailed(client=client, body=request, idempotency_key="has space"), 400, "invalid_input")
problem(create_run.sync_detailed(client=Client(base_url=base), body=request), 401, "unauthenticated")
problem(list_runs.sync_detailed(client=AuthenticatedClient(base_url=base, token="wrong")), 401, "unauthenticated")
step("errors: 400, 401, 404, 409, 413, 422 as problem documents")
print("workflow complete")
