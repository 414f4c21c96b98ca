"""Actor names on each endpoint: the addresses other processes use, as (endpoint, name).

- ``controller`` on the supervisor's bootstrap endpoint (also the default actor for clients there)
- ``gateway`` on each worker endpoint (the default actor for clients there)
- ``replica-manager`` on each worker: LeaderAndIsr, UpdateMetadata, DescribeReplicas from the controller
- ``replica:<topic>:<partition>`` on each worker: replication between the replicas of one partition
"""

from __future__ import annotations

__all__ = ["CONTROLLER", "GATEWAY", "REPLICA_MANAGER", "replica_actor_name"]

CONTROLLER = "controller"
GATEWAY = "gateway"
REPLICA_MANAGER = "replica-manager"


def replica_actor_name(topic: str, partition: int) -> str:
    return f"replica:{topic}:{partition}"
