"""The connectors ingest knows, by network name."""

from __future__ import annotations

from services.ingest.connectors.base import PullConnector, WebhookConnector
from services.ingest.connectors.bluesky import BlueskyConnector
from services.ingest.connectors.generic import GenericWebhookConnector
from services.ingest.connectors.mastodon import MastodonConnector
from services.ingest.connectors.meta import MetaConnector
from services.ingest.connectors.reddit import RedditConnector
from services.ingest.connectors.rss import RssConnector
from services.ingest.connectors.telegram import TelegramConnector
from services.ingest.connectors.vk import VkConnector
from services.ingest.connectors.youtube import YoutubeConnector


def pull_connectors() -> dict[str, PullConnector]:
    return {
        "mastodon": MastodonConnector(),
        "bluesky": BlueskyConnector(),
        "rss": RssConnector(),
        "telegram": TelegramConnector(),
        "vk": VkConnector(),
        "reddit": RedditConnector(),
        "youtube": YoutubeConnector(),
    }


def webhook_connectors() -> dict[str, WebhookConnector]:
    return {
        "generic": GenericWebhookConnector(),
        "telegram": TelegramConnector(),
        "vk": VkConnector(),
        "meta": MetaConnector(),
    }
