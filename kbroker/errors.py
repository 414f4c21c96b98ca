"""The kbroker error hierarchy: one base class, stable numeric codes, a ``retriable`` flag.

Replies on the wire carry ``code`` and ``message``, never pickled exceptions; ``error_for_code``
turns them back into the right class on the client. Codes never change meaning once published;
new errors get new codes. Each message says what happened and what to do about it.

This module is pure (no sockets, no threads) so that every layer, storage included, may use it.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "KBrokerError",
    "UnknownError",
    "OffsetOutOfRangeError",
    "CorruptRecordError",
    "UnknownTopicOrPartitionError",
    "InvalidFetchSizeError",
    "LeaderNotAvailableError",
    "NotLeaderError",
    "RequestTimedOutError",
    "RecordTooLargeError",
    "InvalidTopicError",
    "NotEnoughReplicasError",
    "NotEnoughReplicasAfterAppendError",
    "InvalidRequiredAcksError",
    "InvalidTimestampError",
    "TopicAlreadyExistsError",
    "InvalidPartitionsError",
    "InvalidReplicationFactorError",
    "InvalidConfigError",
    "InvalidRequestError",
    "InvalidRecordError",
    "InvalidUpdateVersionError",
    "IneligibleReplicaError",
    "OutOfOrderSequenceError",
    "DuplicateSequenceError",
    "InvalidProducerEpochError",
    "FencedLeaderEpochError",
    "UnknownLeaderEpochError",
    "KafkaStorageError",
    "AuthenticationError",
    "AuthorizationError",
    "BrokerUnavailableError",
    "ConnectionLimitError",
    "CoordinatorNotAvailableError",
    "NotCoordinatorError",
    "UnknownMemberError",
    "StaleMemberEpochError",
    "FencedMemberEpochError",
    "GroupNotEmptyError",
    "GroupIdNotFoundError",
    "PolicyViolationError",
    "ThrottledError",
    "error_for_code",
]


class KBrokerError(Exception):
    """Base of every error kbroker raises on purpose.

    ``code`` is stable across versions and travels on the wire; ``retriable`` tells clients that the
    same request may succeed if sent again (usually after a metadata refresh).
    """

    code: ClassVar[int] = -1
    retriable: ClassVar[bool] = False
    hint: ClassVar[str] = ""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.hint or type(self).__name__
        super().__init__(self.message)


_BY_CODE: dict[int, type[KBrokerError]] = {}


def _register(cls: type[KBrokerError]) -> type[KBrokerError]:
    if cls.code in _BY_CODE:
        raise RuntimeError(f"error code {cls.code} used twice ({_BY_CODE[cls.code].__name__}, {cls.__name__})")
    _BY_CODE[cls.code] = cls
    return cls


@_register
class UnknownError(KBrokerError):
    code = -1
    hint = "The broker hit an unexpected error; see the broker log for details."


@_register
class OffsetOutOfRangeError(KBrokerError):
    code = 1
    hint = "The requested offset is outside the log's range; seek to an offset between the log start and the log end."


@_register
class CorruptRecordError(KBrokerError):
    code = 2
    hint = "A record batch failed its CRC or structure check; it was not stored or served."


@_register
class UnknownTopicOrPartitionError(KBrokerError):
    code = 3
    retriable = True
    hint = "The topic or partition does not exist; create it first (kbroker topics create) or check the name."


@_register
class InvalidFetchSizeError(KBrokerError):
    code = 4
    hint = "The fetch size must be a positive number of bytes."


@_register
class LeaderNotAvailableError(KBrokerError):
    code = 5
    retriable = True
    hint = "The partition has no leader right now (an election is in progress); retry shortly."


@_register
class NotLeaderError(KBrokerError):
    code = 6
    retriable = True
    hint = "This worker does not lead the partition; refresh metadata and send to the current leader."


@_register
class RequestTimedOutError(KBrokerError):
    code = 7
    retriable = True
    hint = "The request timed out; the broker may be overloaded or unreachable. Retry, or raise the timeout."


@_register
class RecordTooLargeError(KBrokerError):
    code = 10
    hint = "The record batch is larger than the topic's max.message.bytes; send smaller records or raise max.message.bytes."


@_register
class InvalidTopicError(KBrokerError):
    code = 17
    hint = "Topic names are 1-249 characters of ASCII letters, digits, '.', '_' and '-', and not '.' or '..'."


@_register
class NotEnoughReplicasError(KBrokerError):
    code = 19
    retriable = True
    hint = "Fewer in-sync replicas than min.insync.replicas; wait for replicas to catch up or lower the setting."


@_register
class NotEnoughReplicasAfterAppendError(KBrokerError):
    code = 20
    retriable = True
    hint = "The batch was written by the leader but the in-sync replicas shrank before it was replicated."


@_register
class InvalidRequiredAcksError(KBrokerError):
    code = 21
    hint = "acks must be 0, 1 or 'all' (-1)."


@_register
class InvalidTimestampError(KBrokerError):
    code = 32
    hint = "A timestamp is invalid (negative or out of range)."


@_register
class TopicAlreadyExistsError(KBrokerError):
    code = 36
    hint = "A topic with this name already exists; pick another name or delete it first."


@_register
class InvalidPartitionsError(KBrokerError):
    code = 37
    hint = "The number of partitions must be at least 1 (and within the broker's limit)."


@_register
class InvalidReplicationFactorError(KBrokerError):
    code = 38
    hint = "The replication factor must be between 1 and the number of workers."


@_register
class InvalidConfigError(KBrokerError):
    code = 40
    hint = "A configuration key or value is invalid."


@_register
class InvalidRequestError(KBrokerError):
    code = 42
    hint = "The request is malformed; check the wire protocol documentation."


@_register
class PolicyViolationError(KBrokerError):
    code = 44
    hint = "The request violates a broker policy."


@_register
class OutOfOrderSequenceError(KBrokerError):
    code = 45
    hint = "The producer's sequence numbers have a gap; records may have been lost. Recreate the producer."


@_register
class DuplicateSequenceError(KBrokerError):
    code = 46
    hint = "This batch was already written (duplicate sequence number); nothing to do."


@_register
class InvalidProducerEpochError(KBrokerError):
    """A batch from an older epoch of an idempotent producer (Kafka's INVALID_PRODUCER_EPOCH)."""

    code = 47
    hint = (
        "A newer instance of this producer (same producer id, higher epoch) has written to the partition; "
        "this one is fenced. Close it and create a new producer."
    )


@_register
class KafkaStorageError(KBrokerError):
    code = 56
    retriable = True
    hint = "The worker could not read or write its disk; leadership moves to another replica. Retry shortly."


@_register
class AuthenticationError(KBrokerError):
    code = 58
    hint = "Authentication failed; check the client's CURVE keys and that its public key is allowed by the broker."


@_register
class AuthorizationError(KBrokerError):
    code = 29
    hint = "This client is not allowed to do that; an admin can allow it with `kbroker acls add`."


@_register
class FencedLeaderEpochError(KBrokerError):
    code = 74
    retriable = True
    hint = "The request carried an older leader epoch than the replica's; refresh metadata and retry."


@_register
class UnknownLeaderEpochError(KBrokerError):
    code = 75
    retriable = True
    hint = "The request carried a newer leader epoch than the replica knows; retry shortly."


@_register
class InvalidUpdateVersionError(KBrokerError):
    """AlterIsr based on a stale partition epoch (Kafka's INVALID_UPDATE_VERSION)."""

    code = 95
    hint = "The ISR change was based on an old partition epoch; apply the latest LeaderAndIsr and retry."


@_register
class IneligibleReplicaError(KBrokerError):
    """AlterIsr adding a replica that is not alive (Kafka's INELIGIBLE_REPLICA)."""

    code = 107
    retriable = True
    hint = "A replica added to the ISR is not alive (dead or fenced); retry once it has registered again."


@_register
class InvalidRecordError(KBrokerError):
    code = 87
    hint = "A record is invalid for this topic (for example a record without a key in a compacted topic)."


@_register
class BrokerUnavailableError(KBrokerError):
    code = 1001
    retriable = True
    hint = "No broker answered; check that kbroker is running and the bootstrap address is right."


@_register
class ConnectionLimitError(BrokerUnavailableError):
    """The broker process refused the connection: it has ``--max-connections`` open (a ZAP refusal)."""

    code = 1003
    retriable = True
    hint = (
        "The broker refused the connection: it has reached its connection limit (--max-connections); "
        "close idle clients or raise the limit, then retry."
    )


@_register
class CoordinatorNotAvailableError(KBrokerError):
    code = 15
    retriable = True
    hint = "The group coordinator is not available yet; retry shortly."


@_register
class NotCoordinatorError(KBrokerError):
    code = 16
    retriable = True
    hint = "This worker is not the group's coordinator; look the coordinator up again."


@_register
class UnknownMemberError(KBrokerError):
    code = 25
    hint = "The group does not know this member (it timed out or left); join again."


@_register
class StaleMemberEpochError(KBrokerError):
    code = 113
    hint = "The member's epoch is stale (the group moved on); rejoin and commit again."


@_register
class FencedMemberEpochError(KBrokerError):
    """A group member's epoch no longer matches the coordinator's (Kafka's FENCED_MEMBER_EPOCH)."""

    code = 110
    hint = "The group member was fenced (its epoch is behind the coordinator's); it must rejoin the group."


@_register
class GroupNotEmptyError(KBrokerError):
    code = 68
    hint = "The group still has active members; stop them first."


@_register
class GroupIdNotFoundError(KBrokerError):
    code = 69
    hint = "No group with this id exists."


@_register
class ThrottledError(KBrokerError):
    code = 1002
    retriable = True
    hint = "The client exceeded its quota; the request was delayed. Slow down or raise the quota."


def error_for_code(code: int, message: str | None = None) -> KBrokerError:
    """Build the error for a wire ``code``; unknown codes become ``UnknownError`` keeping the code."""
    cls = _BY_CODE.get(code)
    if cls is None:
        err = UnknownError(f"error code {code}: {message or 'no message'}")
        return err
    return cls(message)
