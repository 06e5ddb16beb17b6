"""The polysync API client of the operators and the trigger.

One Airflow connection holds where the server is and the API token:
`host` is the server's URL (`http://polysync.jobs.svc:8080`, or a host name
with `schema` http/https and `port`), `password` an API token. The token
never reaches logs, XCom or trigger rows: the trigger is given the
connection id and reads the connection itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from airflow.sdk import BaseHook

# Answers worth asking again: the server or the platform is busy or away.
RETRYABLE = {429, 502, 503, 504}


class PolysyncError(Exception):
    """An error answer of polysync: its problem document's kind and detail."""

    def __init__(self, status: int, kind: str, detail: str):
        super().__init__(f"polysync answered {status} ({kind}): {detail}")
        self.status, self.kind, self.detail = status, kind, detail

    @classmethod
    def of(cls, response: httpx.Response) -> PolysyncError:
        try:
            problem = response.json()
            return cls(response.status_code, problem.get("kind", "unknown"), problem.get("detail", response.text))
        except ValueError:
            return cls(response.status_code, "unknown", response.text[:500])


def settings_of(conn: Any) -> tuple[str, str | None]:
    """The server's base URL and the token of an Airflow connection."""
    host = (conn.host or "").rstrip("/")
    if not host:
        raise ValueError(f"connection {conn.conn_id!r}: set its host to polysync's URL (http://host:port)")
    if "://" not in host:
        scheme = conn.schema or "http"
        host = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    elif conn.port and host.count(":") < 2:
        host = f"{host}:{conn.port}"
    return host, conn.password or None


def idempotency_key(text: str) -> str:
    """`text` as an Idempotency-Key: visible ASCII, at most 255 characters
    (a longer one keeps its start and a digest of the whole)."""
    import hashlib

    key = "".join(c if "!" <= c <= "~" else "_" for c in text)
    if len(key) > 255:
        key = key[:190] + ":" + hashlib.sha256(text.encode()).hexdigest()
    return key


class SseParser:
    """Server-Sent Events from a stream's lines, one line at a time."""

    def __init__(self) -> None:
        self.event, self.data, self.id = "message", [], None

    def feed(self, line: str) -> tuple[str, str, str | None] | None:
        """The (event, data, id) this line completes, if any."""
        if line == "":
            done = (self.event, "\n".join(self.data), self.id) if self.data else None
            self.event, self.data = "message", []
            return done
        if not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                self.event = value
            elif field == "data":
                self.data.append(value)
            elif field == "id":
                self.id = value
        return None


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, str, str | None]]:
    """(event, data, id) of each Server-Sent Event of a stream's lines."""
    parser = SseParser()
    for line in lines:
        if (event := parser.feed(line)) is not None:
            yield event


async def asse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str, str | None]]:
    """`sse_events` of an async stream of lines."""
    parser = SseParser()
    async for line in lines:
        if (event := parser.feed(line)) is not None:
            yield event


class PolysyncHook(BaseHook):
    """polysync's API over an Airflow connection of type `polysync`."""

    conn_name_attr = "polysync_conn_id"
    default_conn_name = "polysync_default"
    conn_type = "polysync"
    hook_name = "polysync"

    def __init__(self, polysync_conn_id: str = default_conn_name, retries: int = 5, timeout: float = 60.0):
        super().__init__()
        self.polysync_conn_id = polysync_conn_id
        self.retries = retries
        self.timeout = timeout
        self._client: httpx.Client | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["login", "extra"],
            "relabeling": {"host": "polysync URL", "password": "API token"},
            "placeholders": {"host": "http://polysync.jobs.svc:8080"},
        }

    @staticmethod
    def headers(token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    def get_conn(self) -> httpx.Client:
        if self._client is None:
            base, token = settings_of(self.get_connection(self.polysync_conn_id))
            self._client = httpx.Client(base_url=base, headers=self.headers(token), timeout=self.timeout)
        return self._client

    @classmethod
    async def async_settings(cls, conn_id: str) -> tuple[str, str | None]:
        """`settings_of` the connection, read without blocking the triggerer."""
        getter = getattr(cls, "aget_connection", None)
        if getter is not None:
            return settings_of(await getter(conn_id))
        from asgiref.sync import sync_to_async

        return settings_of(await sync_to_async(cls.get_connection)(conn_id))

    def request(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        """One call, asked again (with back-off, or after Retry-After) while
        the answer is retryable; any other answer not in `ok` raises."""
        delay = 1.0
        for attempt in range(self.retries + 1):
            try:
                response = self.get_conn().request(method, path, **kwargs)
            except httpx.TransportError as e:
                if attempt == self.retries:
                    raise PolysyncError(0, "unavailable", f"polysync cannot be reached: {e}") from e
                self.log.warning("polysync cannot be reached (%s); asking again in %.0f s", e, delay)
            else:
                if response.status_code in ok:
                    return response
                if response.status_code not in RETRYABLE or attempt == self.retries:
                    raise PolysyncError.of(response)
                after = response.headers.get("retry-after", "")
                delay = float(after) if after.isdigit() else delay
                self.log.warning("polysync answered %s; asking again in %.0f s", response.status_code, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    # ---- runs

    def create_run(self, body: dict[str, Any], key: str) -> tuple[dict[str, Any], bool]:
        """The run `body` asks for, and whether this call created it (a key
        used before answers the run it created)."""
        response = self.request("POST", "/v1/runs", ok=(200, 201, 202), json=body, headers={"Idempotency-Key": key})
        return response.json(), response.status_code != 200

    def run_by_key(self, key: str) -> dict[str, Any] | None:
        runs = self.request("GET", "/v1/runs", params={"idempotency_key": key}).json()["runs"]
        return runs[0] if runs else None

    def get_run(self, run_id: int) -> dict[str, Any]:
        return self.request("GET", f"/v1/runs/{run_id}").json()

    def cancel_run(self, run_id: int) -> dict[str, Any]:
        return self.request("POST", f"/v1/runs/{run_id}/cancel").json()

    def follow(self, run_id: int) -> dict[str, Any]:
        """Follow the run's status stream to its final status (reconnecting
        where it left off if the connection drops) and return the run."""
        last: str | None = None
        delay = 1.0
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            try:
                with self.get_conn().stream(
                    "GET", f"/v1/runs/{run_id}/status-stream", headers=headers, timeout=httpx.Timeout(30.0, read=None)
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        if response.status_code not in RETRYABLE:
                            raise PolysyncError.of(response)
                    else:
                        for event, data, ident in sse_events(response.iter_lines()):
                            if event != "status":
                                continue
                            last = ident or last
                            run = json.loads(data)
                            if run["final"]:
                                return run
                            delay = 1.0
            except httpx.TransportError as e:
                self.log.warning("the status stream of run #%s broke (%s); reconnecting", run_id, e)
            # The stream ended before the final status (a server restarted):
            # reconnect, from the last event seen.
            time.sleep(delay)
            delay = min(delay * 2, 30.0)

    # ---- catalog

    def start_sync(self, connection: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/connections/{connection}/syncs", ok=(202,)).json()

    def get_sync(self, sync_id: int) -> dict[str, Any]:
        return self.request("GET", f"/v1/syncs/{sync_id}").json()
