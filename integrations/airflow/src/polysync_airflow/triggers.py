"""The trigger a deferred `PolysyncRunOperator` waits on: it follows the
run's status stream in the triggerer, so no worker slot is held while the
job runs, and fires once with the run's final status.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from polysync_airflow.hooks import RETRYABLE, PolysyncError, PolysyncHook, asse_events


class PolysyncRunTrigger(BaseTrigger):
    """Fires `{"status": "final", "run": {...}}` once the run is final, or
    `{"status": "error", "message": ...}` if polysync refuses to stream it.

    It is given the connection id, not the token: trigger rows are kept in
    Airflow's database, credentials are not.
    """

    def __init__(self, polysync_conn_id: str, run_id: int, last_event_id: str | None = None):
        super().__init__()
        self.polysync_conn_id = polysync_conn_id
        self.run_id = run_id
        self.last_event_id = last_event_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "polysync_airflow.triggers.PolysyncRunTrigger",
            {"polysync_conn_id": self.polysync_conn_id, "run_id": self.run_id, "last_event_id": self.last_event_id},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        base, token = await PolysyncHook.async_settings(self.polysync_conn_id)
        path = f"/v1/runs/{self.run_id}/status-stream"
        delay = 1.0
        self.log.info("following polysync run #%s through its status stream", self.run_id)
        async with httpx.AsyncClient(
            base_url=base, headers=PolysyncHook.headers(token), timeout=httpx.Timeout(30.0, read=None)
        ) as client:
            while True:
                headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
                try:
                    async with client.stream("GET", path, headers=headers) as response:
                        if response.status_code != 200:
                            await response.aread()
                            if response.status_code not in RETRYABLE:
                                yield TriggerEvent({"status": "error", "message": str(PolysyncError.of(response))})
                                return
                        else:
                            async for event, data, ident in asse_events(response.aiter_lines()):
                                if event != "status":
                                    continue
                                self.last_event_id = ident or self.last_event_id
                                run = json.loads(data)
                                self.log.info("polysync run #%s: %s %s", self.run_id, run["state"], run["reason"] or "")
                                if run["final"]:
                                    yield TriggerEvent({"status": "final", "run": run})
                                    return
                                delay = 1.0
                except httpx.TransportError as e:
                    self.log.warning("the status stream of run #%s broke (%s); reconnecting", self.run_id, e)
                # The stream ended before the final status: reconnect from
                # the last event seen.
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
