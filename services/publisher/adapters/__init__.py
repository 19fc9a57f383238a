"""The publisher's network adapters (write halves), by network name."""

from __future__ import annotations

from collections.abc import Mapping

from services.publisher.adapters.base import PublishAdapter
from services.publisher.adapters.mastodon import MastodonPublisher

PUBLISH_ADAPTERS: Mapping[str, PublishAdapter] = {MastodonPublisher.network: MastodonPublisher()}


def adapter_for(network: str) -> PublishAdapter:
    """The adapter that publishes to `network`; KeyError for a network without one."""
    return PUBLISH_ADAPTERS[network]
