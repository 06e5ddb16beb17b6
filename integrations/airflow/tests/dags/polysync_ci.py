"""DAGs that tests/tests/serve_e2e.rs runs with `airflow dags test` against
`polysync serve` on the sandbox. The server has these entries: `report`
(prints its TARGET, reports ROWS=7), `fails` (exits 3), `slow` (runs 4 s),
`long` (runs until cancelled)."""

from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from polysync_airflow.operators import PolysyncRunOperator, PolysyncSyncOperator

START = datetime(2026, 1, 1)

with DAG("polysync_success", schedule=None, start_date=START, catchup=False):
    sync = PolysyncSyncOperator(task_id="sync", connection="sandbox")
    report = PolysyncRunOperator(
        task_id="report", connection="sandbox", entry="report", parameters={"TARGET": "{{ dag.dag_id }}"}
    )

    @task
    def check(outputs, ti=None):
        run = ti.xcom_pull(task_ids="report", key="polysync_run")
        assert outputs == {"ROWS": "7"}, outputs
        assert run["state"] == "Success" and run["exit_code"] == 0, run
        print(f"XCOM outputs={outputs} run={run['id']} platform_id={run['platform_id']}")

    sync >> report
    check(report.output)


with DAG("polysync_failure", schedule=None, start_date=START, catchup=False):
    PolysyncRunOperator(task_id="fails", connection="sandbox", entry="fails")


class LostWorker(PolysyncRunOperator):
    """Starts its run, then dies as a lost worker would, on its first try."""

    def execute(self, context):
        if context["ti"].try_number == 1:
            run = self.submit(self.hook(), context)
            raise RuntimeError(f"LOST WORKER after starting run #{run['id']}")
        return super().execute(context)


with DAG("polysync_retry", schedule=None, start_date=START, catchup=False):
    LostWorker(task_id="slow", connection="sandbox", entry="slow", retries=1, retry_delay=timedelta(seconds=0))


with DAG("polysync_kill", schedule=None, start_date=START, catchup=False):
    PolysyncRunOperator(
        task_id="long", connection="sandbox", entry="long", deferrable=False, execution_timeout=timedelta(seconds=8)
    )
