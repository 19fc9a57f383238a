"""The topic registry: every Kafka topic the platform uses, its partitions, key and DLQ.

Topics are created at start-up (`ensure_topics`), never by broker auto-creation.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    key: str
    description: str
    retention_ms: int = 7 * 24 * 3600 * 1000

    @property
    def dlq(self) -> str:
        return self.name + DLQ_SUFFIX


MENTIONS = TopicSpec(
    name="smm.mentions.v1",
    partitions=12,
    key="tenant_id:brand_id:conversation root",
    description="Mentions, comments and replies heard by ingest, one event per (brand, item).",
)
POSTS = TopicSpec(
    name="smm.posts.v1",
    partitions=6,
    key="tenant_id:post_id",
    description="Publishing lifecycle of posts and replies, produced by publisher.",
)
INBOX = TopicSpec(
    name="smm.inbox.v1",
    partitions=6,
    key="tenant_id:conversation_id",
    description="Inbox events: triage results, assignments, reply requests.",
)

TOPICS: tuple[TopicSpec, ...] = (MENTIONS, POSTS, INBOX)


def topic_name(spec: TopicSpec, prefix: str = "") -> str:
    return prefix + spec.name


def dlq_name(spec: TopicSpec, prefix: str = "") -> str:
    return prefix + spec.dlq


def all_topic_names(prefix: str = "") -> list[str]:
    names: list[str] = []
    for spec in TOPICS:
        names += [topic_name(spec, prefix), dlq_name(spec, prefix)]
    return names


async def ensure_topics(bootstrap_servers: str, prefix: str = "") -> list[str]:
    """Create every registered topic and its DLQ if missing; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted: list[NewTopic] = []
        for spec in TOPICS:
            config = {"retention.ms": str(spec.retention_ms)}
            for name, partitions in (
                (topic_name(spec, prefix), spec.partitions),
                # A DLQ is read by people and replay tools, not by hot consumers.
                (dlq_name(spec, prefix), 1),
            ):
                if name not in existing:
                    wanted.append(NewTopic(name, partitions, 1, topic_configs=config))
        created: list[str] = []
        if not wanted:
            return created
        response = await admin.create_topics(wanted)
        # aiokafka reports per-topic errors in the response instead of raising.
        for name, code, *rest in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:  # another process created it first
                message = rest[0] if rest else ""
                raise RuntimeError(f"cannot create topic {name}: error {code} {message}")
        return created
    finally:
        await admin.close()


async def delete_topics(bootstrap_servers: str, prefix: str) -> None:
    """Delete a prefixed set of topics (used to clean up isolated test runs)."""
    if not prefix:
        raise ValueError("refusing to delete the unprefixed production topics")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in all_topic_names(prefix) if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
