"""Put on the ``PYTHONPATH`` of every component of the test cluster (``tests/cluster/harness.py``).

:func:`hostname` is the ``[core] hostname_callable`` of each component: it returns the component's name
(``CFTUNNEL_CLUSTER_HOSTNAME``), so the ``job`` and ``task_instance`` tables tell the two triggerers and the
two Celery workers apart as if they ran on separate machines.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """The component's name, or the machine's when it is not set."""
    return os.environ.get("CFTUNNEL_CLUSTER_HOSTNAME") or socket.getfqdn()
