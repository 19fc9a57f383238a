"""The publisher's network adapters (write halves), by network name."""

from __future__ import annotations

from collections.abc import Mapping

from services.publisher.adapters.base import PublishAdapter
from services.publisher.adapters.bluesky import BlueskyPublisher
from services.publisher.adapters.instagram import InstagramPublisher
from services.publisher.adapters.mastodon import MastodonPublisher
from services.publisher.adapters.meta import MetaPagePublisher
from services.publisher.adapters.telegram import TelegramPublisher
from services.publisher.adapters.vk import VkPublisher
from services.publisher.adapters.webhook import WebhookPublisher

PUBLISH_ADAPTERS: Mapping[str, PublishAdapter] = {
    MastodonPublisher.network: MastodonPublisher(),
    BlueskyPublisher.network: BlueskyPublisher(),
    TelegramPublisher.network: TelegramPublisher(),
    VkPublisher.network: VkPublisher(),
    MetaPagePublisher.network: MetaPagePublisher(),
    InstagramPublisher.network: InstagramPublisher(),
    WebhookPublisher.network: WebhookPublisher(),
}


def adapter_for(network: str) -> PublishAdapter:
    """The adapter that publishes to `network`; KeyError for a network without one."""
    return PUBLISH_ADAPTERS[network]
