"""How long after a run's end Airflow sees it (tests/benches/airflow.rs).

Each run of the `bench` entry ends with `date +ENDED_AT=%s.%N` as its
output, so the moment its container ended is known to the nanosecond. Each
DAG starts POLYSYNC_BENCH_RUNS runs one after another and prints, for each,
`SEEN_AFTER <how> <seconds>` when Airflow learns that the run ended:

- `latency_trigger`: PolysyncRunOperator, deferred to its trigger on the
  status stream;
- `latency_sensor`: the peer, what a DAG does without the provider:
  HttpOperator to start the run, HttpSensor polling it every 5 s (Airflow's
  default poke interval is 60 s).
"""

import json
import os
import time
from datetime import datetime

from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk import DAG, chain

from polysync_airflow.operators import PolysyncRunOperator

RUNS = int(os.environ.get("POLYSYNC_BENCH_RUNS", "5"))
START = datetime(2026, 1, 1)


def seen(how, run):
    print(f"SEEN_AFTER {how} {time.time() - float(run['outputs']['ENDED_AT']):.3f}", flush=True)


class Timed(PolysyncRunOperator):
    def finish(self, run, context):
        if run["final"]:
            seen("trigger", run)
        return super().finish(run, context)


with DAG("latency_trigger", schedule=None, start_date=START, catchup=False):
    chain(*[Timed(task_id=f"run_{i}", connection="bench", entry="bench") for i in range(RUNS)])


def final(response):
    run = response.json()
    if run["final"]:
        seen("sensor", run)
    return run["final"]


with DAG("latency_sensor", schedule=None, start_date=START, catchup=False):
    auth = {"Authorization": "Bearer {{ conn.polysync_http.password }}", "Content-Type": "application/json"}
    steps = []
    for i in range(RUNS):
        start = HttpOperator(
            task_id=f"start_{i}",
            http_conn_id="polysync_http",
            method="POST",
            endpoint="/v1/runs",
            data=json.dumps({"connection": "bench", "entry": "bench"}),
            headers=auth | {"Idempotency-Key": f"sensor-{i}-{{{{ run_id }}}}"},
            response_filter=lambda r: r.json()["id"],
        )
        wait = HttpSensor(
            task_id=f"wait_{i}",
            http_conn_id="polysync_http",
            method="GET",
            endpoint=f"/v1/runs/{{{{ ti.xcom_pull(task_ids='start_{i}') }}}}",
            headers=auth,
            response_check=final,
            poke_interval=5,
        )
        steps += [start, wait]
    chain(*steps)
