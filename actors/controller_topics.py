"""Topic administration for the controller core: create, delete, alter config.

``TopicAdmin`` is a mixin of ``ControllerState`` (controller_state.py), split out to keep files
small; it uses the state's ``settings``, ``rng``, ``topics``, ``partitions``, ``_configs``,
``live_workers``, ``preferred_leader_counts``, ``topic``, ``_apply`` and ``_commit``.

Rules:
- names follow topic_names (internal ``__`` names only with ``internal=True``; names that
  collide on '.' versus '_' are refused);
- overrides are stored in Kafka's text form (``"compact,delete"``, ``"true"``), validated as a
  whole against the broker defaults (``TopicConfig``); unknown keys and bad values raise
  ``InvalidConfigError`` naming the key;
- replicas are placed on the live workers only (placement.py), the least loaded worker leading
  partition 0; ``validate_only`` checks everything and changes nothing (not even the rng).
"""

from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING, Mapping

from kbroker.actors.controller_changes import Changes, ChangeSet, ConfigAltered, TopicCreated
from kbroker.actors.controller_model import Partition, Removal, Topic
from kbroker.actors.leader_election import reconcile
from kbroker.actors.placement import assign_replicas
from kbroker.actors.topic_names import find_collision, is_internal, validate_topic_name
from kbroker.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidTopicError,
    TopicAlreadyExistsError,
)
from kbroker.storage.config import lookup_key

if TYPE_CHECKING:
    from kbroker.actors.controller_state import ControllerState

__all__ = ["TopicAdmin"]


class TopicAdmin:
    """Topic operations of ``ControllerState`` (see the module docstring)."""

    def create_topic(
        self: "ControllerState",
        name: str,
        partitions: int = -1,
        replication_factor: int = -1,
        config: Mapping[str, object] | None = None,
        *,
        internal: bool = False,
        validate_only: bool = False,
    ) -> TopicCreated:
        """Create a topic on the live workers; -1 partitions / replication factor: the defaults."""
        validate_topic_name(name, allow_internal=internal)
        if name in self.topics:
            raise TopicAlreadyExistsError(f"topic {name!r} already exists")
        collision = find_collision(name, self.topics)
        if collision is not None:
            raise InvalidTopicError(f"topic {name!r} collides with existing topic {collision!r} ('.' and '_' clash)")
        count = self.settings.default_partitions if partitions == -1 else partitions
        if not 1 <= count <= self.settings.max_partitions_per_topic:
            raise InvalidPartitionsError(
                f"a topic needs 1 to {self.settings.max_partitions_per_topic} partitions, got {count}"
            )
        live = self.live_workers()
        if not live:
            raise InvalidReplicationFactorError("no worker is alive to hold replicas; wait for workers to register")
        factor = replication_factor
        if factor == -1:
            factor = min(self.settings.default_replication_factor, len(live))
        missing = [key for key, value in (config or {}).items() if value is None]
        if missing:
            raise InvalidConfigError(f"topic configs need values; got None for {missing}")
        overrides = self._normalize(config or {}, {})
        rng = self.rng if not validate_only else _copy_rng(self.rng)
        assignment = assign_replicas(live, count, factor, rng=rng, leader_counts=self.preferred_leader_counts())
        topic = Topic(name, tuple(sorted(overrides.items())), count)
        parts = tuple(Partition.new(name, p, replicas) for p, replicas in enumerate(assignment))
        if validate_only:
            return TopicCreated(topic, parts, self._commit(ChangeSet()))
        cs = ChangeSet()
        self._put_topic(topic)
        self.partitions[name] = list(parts)
        cs.put(topic)
        for part in parts:
            cs.partition(part, leader_changed=True)
        return TopicCreated(topic, parts, self._commit(cs))

    def delete_topic(self: "ControllerState", name: str, *, internal: bool = False) -> Changes:
        """Delete a topic; workers drop its replicas when UpdateMetadata lists it as deleted."""
        topic = self.topic(name)
        if is_internal(name) and not internal:
            raise InvalidTopicError(f"topic {name!r} is internal to the broker and cannot be deleted")
        cs = ChangeSet(deleted_topics=[name])
        cs.put(Removal(topic.key))
        for part in self.partitions.pop(name):
            cs.put(Removal(part.key))
        del self.topics[name], self._configs[name]
        self.offline_replicas = {k for k in self.offline_replicas if k[0] != name}
        return self._commit(cs)

    def alter_config(
        self: "ControllerState", name: str, changes: Mapping[str, object | None], *, validate_only: bool = False
    ) -> ConfigAltered:
        """Set (value) or remove (None) overrides. Turning unclean election on elects offline partitions."""
        topic = self.topic(name)
        overrides = self._normalize(changes, topic.overrides)
        if validate_only or overrides == topic.overrides:
            return ConfigAltered(overrides, self._commit(ChangeSet()))
        cs = ChangeSet()
        updated = dataclasses.replace(topic, configs=tuple(sorted(overrides.items())))
        self._put_topic(updated)
        cs.put(updated)
        cs.topics.add(name)
        if self._configs[name].unclean_leader_election_enable:
            live = frozenset(self.live_workers())
            for part in list(self.partitions[name]):
                self._apply(reconcile(part, self._live_for(part, live), True), cs)
        return ConfigAltered(overrides, self._commit(cs))

    def _put_topic(self: "ControllerState", topic: Topic) -> None:
        self._configs[topic.name] = self.settings.topic_defaults.with_overrides(topic.overrides)
        self.topics[topic.name] = topic

    def _normalize(
        self: "ControllerState", changes: Mapping[str, object | None], base: dict[str, str]
    ) -> dict[str, str]:
        """``base`` with ``changes`` applied, every value in Kafka's text form; validated as a whole."""
        out = dict(base)
        for name, raw in changes.items():
            key = lookup_key(name)
            if raw is None:
                out.pop(key.name, None)
            else:
                out[key.name] = key.render(key.parse(raw))
        self.settings.topic_defaults.with_overrides(out)
        return out


def _copy_rng(rng: random.Random) -> random.Random:
    copy = random.Random()
    copy.setstate(rng.getstate())
    return copy
