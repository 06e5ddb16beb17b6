"""moto_server for the AWS provider tests, on 127.0.0.1 and an ephemeral port.

Prints "PORT <n>" on stdout once it listens, then serves until stdin closes
(so it never outlives the test process that started it).

One test hook, because moto gives every EKS cluster a random endpoint and a
random CA: a cluster created with the tags `polysync-test/endpoint` and
`polysync-test/ca` reports those instead, which points DescribeCluster at the
project's sandbox API server. Nothing else of moto is changed.
"""

import logging
import sys

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

logging.getLogger("werkzeug").setLevel(logging.ERROR)

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("PORT", server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
