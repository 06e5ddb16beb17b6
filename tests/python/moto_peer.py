"""moto_server for the AWS provider tests, on 127.0.0.1 and an ephemeral port.

Prints "PORT <n>" on stdout once it listens, then serves until stdin closes
(so it never outlives the test process that started it).

Test hooks, each making moto behave like the real service where the tests
need it, and nothing else changed:

* EKS: moto gives every cluster a random endpoint and CA. A cluster created
  with the tags `polysync-test/endpoint` and `polysync-test/ca` reports those
  instead, which points DescribeCluster at the project's sandbox API server.
* ECS: a task whose SLEEP_SECONDS (container override, else the task
  definition's environment) is over 60 stays RUNNING until it is stopped,
  as a long task would; others advance one state per DescribeTasks (moto's
  state manager). A task that reaches STOPPED on its own gets ECS's stopCode
  EssentialContainerExited and the exit code in EXIT_CODE (default 0);
  StopTask sets stopCode UserInitiated, as ECS does. A task's containers
  report cpu and memory as strings, as ECS's API does (moto echoes the task
  definition's integers, which a strict client refuses).
"""

import logging
import sys

import moto.ecs.models as ecs
import moto.eks.models as eks
from moto.server import ThreadedMotoServer

_init = eks.Cluster.__init__


def _init_with_test_endpoint(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    tags = self.tags or {}
    if "polysync-test/endpoint" in tags:
        self.endpoint = tags["polysync-test/endpoint"]
    if "polysync-test/ca" in tags:
        self.certificate_authority = {"data": tags["polysync-test/ca"]}


eks.Cluster.__init__ = _init_with_test_endpoint


def _get(d, key):
    # moto keeps request parameters in either spelling.
    return d.get(key) or d.get(key[0].upper() + key[1:]) or []


def _env(task, name):
    for override in _get(task.overrides or {}, "containerOverrides"):
        for kv in _get(override, "environment"):
            if (kv.get("name") or kv.get("Name")) == name:
                return kv.get("value") or kv.get("Value")
    td = task._backend.describe_task_definition(task.task_definition_arn)
    for kv in td.container_definitions[0].get("environment", []) or []:
        if kv.get("name") == name:
            return kv.get("value")
    return None


_advance = ecs.Task.advance


def _advance_unless_sleeping(self):
    try:
        sleeping = float(_env(self, "SLEEP_SECONDS") or 0) > 60
    except ValueError:
        sleeping = False
    if sleeping:
        return
    _advance(self)
    # Reading the status makes the transition now, before the response is
    # written, so the containers below are stopped in the same answer.
    if self.status == "STOPPED" and getattr(self, "stop_code", None) is None:
        self.stop_code = "EssentialContainerExited"
        self.stopped_reason = "Essential container in task exited"
        code = int(_env(self, "EXIT_CODE") or 0)
        for container in self.containers:
            container.exitCode = code
            container.last_status = "STOPPED"


_stop = ecs.EC2ContainerServiceBackend.stop_task


def _stop_task(self, cluster_str, task_str, reason):
    task = _stop(self, cluster_str, task_str, reason)
    task.stop_code = "UserInitiated"
    for container in task.containers:
        container.exitCode = 143
        container.last_status = "STOPPED"
    return task


_container_init = ecs.Container.__init__


def _container_init_as_ecs(self, *args, **kwargs):
    _container_init(self, *args, **kwargs)
    self.cpu = None if self.cpu is None else str(self.cpu)
    self.memory = None if self.memory is None else str(self.memory)


ecs.Container.__init__ = _container_init_as_ecs
ecs.Task.advance = _advance_unless_sleeping
ecs.EC2ContainerServiceBackend.stop_task = _stop_task

logging.getLogger("werkzeug").setLevel(logging.ERROR)

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("PORT", server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
