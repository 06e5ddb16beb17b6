"""Apache Airflow operators for polysync (`polysync serve`).

- `PolysyncRunOperator` reruns a catalog entry and waits for its end,
  deferred by default: a trigger follows the run's status stream, so no
  worker slot is held while the job runs.
- `PolysyncSyncOperator` discovers a connection's jobs into the catalog.
- `PolysyncHook` is the API client both use, over an Airflow connection of
  type `polysync` (host: the server's URL; password: an API token).
"""

__version__ = "0.1.0"


def get_provider_info():
    """What Airflow's provider manager lists for this package."""
    return {
        "package-name": "airflow-provider-polysync",
        "name": "polysync",
        "description": "Rerun the batch jobs of AKS, EKS, ECS and Kubernetes through polysync.",
        "versions": [__version__],
        "connection-types": [
            {"connection-type": "polysync", "hook-class-name": "polysync_airflow.hooks.PolysyncHook"}
        ],
    }
