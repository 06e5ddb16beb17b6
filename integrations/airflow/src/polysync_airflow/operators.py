"""Operators that rerun polysync catalog entries and sync its catalog."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from polysync_airflow.hooks import PolysyncError, PolysyncHook, idempotency_key
from polysync_airflow.triggers import PolysyncRunTrigger


class PolysyncRunFailed(Exception):
    """The run ended in another state than Success."""


def summary(run: dict[str, Any]) -> dict[str, Any]:
    """What is pushed to XCom of a run: enough to find it again and read its
    end, no parameter values."""
    keys = ("id", "connection", "entry", "platform_id", "state", "reason", "exit_code", "started_at", "finished_at")
    return {k: run.get(k) for k in keys} | {"links": run.get("links", {})}


class PolysyncRunOperator(BaseOperator):
    """Rerun a catalog entry and wait for its end.

    The run's Idempotency-Key is made of the DAG, the task, its map index
    and the Airflow run id: a retry of the task (a worker lost, a timeout)
    finds the run an earlier attempt started and follows it, so it never
    starts a second one while one runs or after one succeeded. An attempt
    after a *failed* run starts a new run (with the try number in its key),
    which is what a retry is for.

    Deferred by default: the wait is a trigger that follows the run's status
    stream, so no worker slot is held. The run's outputs are the task's
    return value (XCom `return_value`); `polysync_run` has the run (id,
    state, reason, exit code, links). A run that ends Failed, Cancelled,
    Lost or SubmitFailed fails the task with its reason and message. Killing
    the task (or its timeout) cancels the run.

    :param connection: the polysync connection (`kube`, `prod-eks`, ...)
    :param entry: the catalog entry to rerun (`cronjob/nightly`)
    :param parameters: values for the entry's parameters (templated)
    :param startup_timeout: fail the run if it has not started this long
        after submission (`"10m"`)
    :param delete_after: `never`, `success` or `always`
    :param wait: wait for the run's end (else succeed once it is submitted)
    :param deferrable: wait in the triggerer (default) instead of a worker
    :param polysync_conn_id: the Airflow connection of the polysync server
    """

    template_fields: Sequence[str] = ("connection", "entry", "parameters", "startup_timeout")
    template_fields_renderers = {"parameters": "json"}
    ui_color = "#d8e8f5"

    def __init__(
        self,
        *,
        connection: str,
        entry: str,
        parameters: dict[str, str] | None = None,
        startup_timeout: str | None = None,
        delete_after: str | None = None,
        wait: bool = True,
        deferrable: bool = True,
        polysync_conn_id: str = PolysyncHook.default_conn_name,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.connection = connection
        self.entry = entry
        self.parameters = parameters or {}
        self.startup_timeout = startup_timeout
        self.delete_after = delete_after
        self.wait = wait
        self.deferrable = deferrable
        self.polysync_conn_id = polysync_conn_id
        self.run_id: int | None = None

    def hook(self) -> PolysyncHook:
        return PolysyncHook(self.polysync_conn_id)

    @staticmethod
    def key_of(context: Any) -> str:
        """The run's Idempotency-Key for this task instance (all its tries)."""
        ti = context["ti"]
        return idempotency_key(f"airflow:{ti.dag_id}:{ti.task_id}:{ti.map_index}:{ti.run_id}")

    def submit(self, hook: PolysyncHook, context: Any) -> dict[str, Any]:
        """The run this task instance follows: one an earlier try started that
        runs or succeeded, else a new one."""
        base, tries = self.key_of(context), int(context["ti"].try_number)
        keys = [base] + [f"{base}:try{t}" for t in range(2, tries + 1)]
        for key in keys:
            earlier = hook.run_by_key(key)
            if earlier and (not earlier["final"] or earlier["state"] == "Success"):
                self.log.info("following polysync run #%s, started by an earlier try (key %s)", earlier["id"], key)
                return earlier
        body: dict[str, Any] = {"connection": self.connection, "entry": self.entry, "parameters": self.parameters}
        if self.startup_timeout:
            body["startup_timeout"] = self.startup_timeout
        if self.delete_after:
            body["delete_after"] = self.delete_after
        run, created = hook.create_run(body, keys[-1])
        self.log.info(
            "%s polysync run #%s of %s/%s (key %s): %s",
            "started" if created else "found",
            run["id"],
            self.connection,
            self.entry,
            keys[-1],
            run["links"]["self"],
        )
        return run

    def execute(self, context: Any) -> Any:
        hook = self.hook()
        run = self.submit(hook, context)
        self.run_id = run["id"]
        context["ti"].xcom_push(key="polysync_run", value=summary(run))
        if run["final"] or not self.wait:
            return self.finish(run, context)
        if self.deferrable:
            self.log.info("deferring: the triggerer follows polysync run #%s", run["id"])
            self.defer(
                trigger=PolysyncRunTrigger(self.polysync_conn_id, run["id"]),
                method_name="execute_complete",
            )
        return self.finish(hook.follow(run["id"]), context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if event["status"] != "final":
            raise PolysyncError(0, "stream", event.get("message", "the status stream failed"))
        self.run_id = event["run"]["id"]
        return self.finish(event["run"], context)

    def finish(self, run: dict[str, Any], context: Any) -> Any:
        context["ti"].xcom_push(key="polysync_run", value=summary(run))
        if run["state"] == "Success" or (not self.wait and not run["final"]):
            return run.get("outputs", {})
        said = ": ".join(p for p in (run.get("reason"), run.get("message")) if p)
        code = f" (exit code {run['exit_code']})" if run.get("exit_code") is not None else ""
        raise PolysyncRunFailed(f"polysync run #{run['id']} ended {run['state']}{code}: {said}")

    def on_kill(self) -> None:
        if self.run_id is None:
            return
        outcome = self.hook().cancel_run(self.run_id)
        self.log.info("cancelled polysync run #%s: %s", self.run_id, outcome["outcome"])


class PolysyncSyncOperator(BaseOperator):
    """Discover a connection's jobs into polysync's catalog and wait for the
    sync's end. A sync already running for the connection is waited out and
    a new one started after it. Returns the sync (counts of entries seen,
    added, updated, missing) as XCom.

    :param connection: the polysync connection to sync
    :param poll_interval: seconds between reads of the sync's progress
    :param polysync_conn_id: the Airflow connection of the polysync server
    """

    template_fields: Sequence[str] = ("connection",)

    def __init__(
        self,
        *,
        connection: str,
        poll_interval: float = 1.0,
        polysync_conn_id: str = PolysyncHook.default_conn_name,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.connection = connection
        self.poll_interval = poll_interval
        self.polysync_conn_id = polysync_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        hook = PolysyncHook(self.polysync_conn_id)
        while True:
            try:
                sync = hook.start_sync(self.connection)
                break
            except PolysyncError as e:
                if e.kind != "conflict":
                    raise
                self.log.info("a sync of %s is running; waiting for it to end", self.connection)
                time.sleep(self.poll_interval)
        self.log.info("sync #%s of %s started", sync["id"], self.connection)
        while sync["status"] == "running":
            time.sleep(self.poll_interval)
            sync = hook.get_sync(sync["id"])
        if sync["status"] != "complete":
            raise PolysyncError(0, "sync", f"sync #{sync['id']} of {self.connection} failed: {sync.get('error')}")
        self.log.info("sync #%s: %s entries seen, %s added, %s missing", sync["id"], sync["seen"], sync["added"], sync["missing"])
        return sync
