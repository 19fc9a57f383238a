"""Per-network validation of a post's channel variant, run when it is saved and when scheduled.

Each network counts text its own way; the rules and their sources are in docs/publishing-rules.md.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Any, Protocol

import regex
from pydantic import BaseModel, ConfigDict, Field
from twitter_text import (
    extract_urls_with_indices,
    parse_tweet,
)

__all__ = [
    "DEFAULT_LIMITS",
    "ChannelOverrides",
    "MediaItem",
    "MediaType",
    "Network",
    "NetworkLimits",
    "PostVariant",
    "Violation",
    "composed_text",
    "compute_facets",
    "counted_length",
    "effective_limits",
    "validate",
]


class Network(StrEnum):
    BLUESKY = "bluesky"
    MASTODON = "mastodon"
    TELEGRAM = "telegram"
    X = "x"
    INSTAGRAM = "instagram"
    VK = "vk"
    FACEBOOK = "facebook"


class MediaType(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    GIF = "gif"


class MediaItem(BaseModel):
    """One attachment as the publisher knows it before upload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: MediaType
    mime: str | None = None
    size_bytes: int | None = Field(default=None, ge=0)
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    duration_s: float | None = Field(default=None, ge=0)
    alt_text: str | None = None
    # Where the publisher fetches the file when it publishes (media storage is the agency's).
    url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://\S+$")


class ChannelOverrides(BaseModel):
    """What one channel changes in its network's limits (a Mastodon instance's configuration,
    an X account with longer posts); unset fields keep the network's value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_chars: int | None = Field(default=None, gt=0)
    url_length: int | None = Field(default=None, ge=0)
    max_media: int | None = Field(default=None, ge=0)
    max_image_bytes: int | None = Field(default=None, gt=0)
    max_video_bytes: int | None = Field(default=None, gt=0)
    max_alt_text_chars: int | None = Field(default=None, gt=0)


class PostVariant(BaseModel):
    """A post as it will go to one channel."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    network: Network
    text: str = ""
    media: tuple[MediaItem, ...] = ()
    link: str | None = None
    reply_to: str | None = None
    overrides: ChannelOverrides = ChannelOverrides()


class Violation(BaseModel):
    """One reason a variant can't be published; the API answers 422 with these."""

    model_config = ConfigDict(frozen=True)

    network: Network
    rule: str
    message: str
    field: str
    limit: int | None = None
    actual: int | None = None


class NetworkLimits(BaseModel):
    """Everything one network limits; `None` means the network sets no such limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_chars: int
    # Telegram: a caption is limited more tightly than a text message.
    max_caption_chars: int | None = None
    max_bytes: int | None = None
    url_length: int | None = None
    max_media: int | None = None
    # Per type, for networks that allow "4 images or 1 video".
    max_per_type: dict[MediaType, int] = Field(default_factory=dict)
    allowed_types: frozenset[MediaType] = frozenset(MediaType)
    mixed_media: bool = True
    media_required: bool = False
    image_mimes: frozenset[str] | None = None
    max_image_bytes: int | None = None
    max_video_bytes: int | None = None
    max_alt_text_chars: int | None = None
    max_hashtags: int | None = None
    max_mentions: int | None = None
    # VK sends a link as one of the post's attachments.
    link_is_attachment: bool = False


DEFAULT_LIMITS: dict[Network, NetworkLimits] = {
    # Lexicon app.bsky.feed.post (text: maxGraphemes 300, maxLength 3000), app.bsky.embed.images
    # (4 images, blob maxSize 1,000,000), app.bsky.embed.video (one video, maxSize 100,000,000).
    # A post has one embed, so images and a video can't be combined; a GIF goes up as a video.
    Network.BLUESKY: NetworkLimits(
        max_chars=300,
        max_bytes=3000,
        max_media=4,
        max_per_type={MediaType.IMAGE: 4, MediaType.VIDEO: 1, MediaType.GIF: 1},
        mixed_media=False,
        max_image_bytes=1_000_000,
        max_video_bytes=100_000_000,
    ),
    # docs.joinmastodon.org /api/v2/instance configuration: statuses.max_characters 500,
    # characters_reserved_per_url 23, max_media_attachments 4; image 16 MB, video 99 MB by
    # default. A status takes images, or one video/GIF, never both. Descriptions: 1,500 chars.
    Network.MASTODON: NetworkLimits(
        max_chars=500,
        url_length=23,
        max_media=4,
        max_per_type={MediaType.IMAGE: 4, MediaType.VIDEO: 1, MediaType.GIF: 1},
        mixed_media=False,
        max_image_bytes=16 * 1024 * 1024,
        max_video_bytes=99 * 1024 * 1024,
        max_alt_text_chars=1500,
    ),
    # core.telegram.org/bots/api: sendMessage text 1-4096, captions 0-1024 characters after
    # entities parsing; sendMediaGroup 2-10 photos/videos (animations can't be in an album);
    # sendPhoto at most 10 MB; bots upload files of up to 50 MB.
    Network.TELEGRAM: NetworkLimits(
        max_chars=4096,
        max_caption_chars=1024,
        max_media=10,
        max_image_bytes=10 * 1024 * 1024,
        max_video_bytes=50 * 1024 * 1024,
    ),
    # developer.x.com counting-characters + twitter-text config v3: 280 weighted; 4 images, or
    # one video or GIF; image alt text up to 1,000 characters.
    Network.X: NetworkLimits(
        max_chars=280,
        url_length=23,
        max_media=4,
        max_per_type={MediaType.IMAGE: 4, MediaType.VIDEO: 1, MediaType.GIF: 1},
        mixed_media=False,
        max_image_bytes=5 * 1024 * 1024,
        max_video_bytes=512 * 1024 * 1024,
        max_alt_text_chars=1000,
    ),
    # Instagram Graph API, IG User Media: caption 2,200 characters, 30 hashtags, 20 @ tags;
    # a post needs media (a carousel holds up to 10); JPEG is the only image format, 8 MB max.
    Network.INSTAGRAM: NetworkLimits(
        max_chars=2200,
        max_media=10,
        allowed_types=frozenset({MediaType.IMAGE, MediaType.VIDEO}),
        media_required=True,
        image_mimes=frozenset({"image/jpeg"}),
        max_image_bytes=8 * 1024 * 1024,
        max_hashtags=30,
        max_mentions=20,
    ),
    # dev.vk.com wall.post: up to 10 attachments, a link among them; 16,384-character text.
    Network.VK: NetworkLimits(max_chars=16_384, max_media=10, link_is_attachment=True),
    # Facebook Page feed: 63,206 characters.
    Network.FACEBOOK: NetworkLimits(max_chars=63_206),
}

_GRAPHEME = regex.compile(r"\X")

# Mastodon's Account::MENTION_RE: the validator keeps only `@user` of `@user@domain`.
_MASTODON_MENTION = regex.compile(
    r"(?<![=/\w])@(([a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)(?:@[\w.-]+\w+)?)",
    regex.IGNORECASE,
)

# Bluesky facet detection, after docs.bsky.app "Links, mentions, and rich text" and the
# reference RichText.detectFacets: mentions are atproto handles, links need a scheme.
_BSKY_MENTION = regex.compile(
    r"(?:^|(?<=[^\w]))(@((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?))"
)
_BSKY_URL = regex.compile(
    r"(?:^|(?<=[^\w]))(https?://(?:www\.)?[-a-zA-Z0-9@:%._+~#=]{1,256}\.[a-zA-Z0-9()]{1,6}\b"
    r"(?:[-a-zA-Z0-9()@:%_+.~#?&/=]*[-a-zA-Z0-9@%_+~#/=])?)"
)
_INVISIBLE = "\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2"
_BSKY_TAG = regex.compile(
    rf"(?:^|(?<=\s))([#\uFF03]((?!\ufe0f)[^\s{_INVISIBLE}]*[^\d\s\p{{P}}{_INVISIBLE}]+"
    rf"[^\s{_INVISIBLE}]*))"
)
_TRAILING_PUNCTUATION = regex.compile(r"\p{P}+$")
_BSKY_TAG_MAX_GRAPHEMES = 64

# Instagram counts `#tag` and `@user` in the caption; a `#` inside a word is not a hashtag.
_HASHTAG = regex.compile(r"(?:^|(?<=[^\w&]))[#\uFF03](\w+)")
_MENTION = regex.compile(r"(?:^|(?<=[^\w]))@([\w.]+)")


def graphemes(text: str) -> int:
    return len(_GRAPHEME.findall(text))


def _mastodon_countable(text: str, url_length: int) -> str:
    # Mastodon replaces URLs (with a scheme) before mentions, so a URL's `@` is never a mention.
    pieces: list[str] = []
    cursor = 0
    for url in extract_urls_with_indices(text, extract_urls_without_protocol=False):
        start, end = url["indices"]
        pieces.append(text[cursor:start])
        pieces.append("x" * url_length)
        cursor = end
    pieces.append(text[cursor:])
    return _MASTODON_MENTION.sub(r"@\2", "".join(pieces))


def effective_limits(variant: PostVariant, limits: NetworkLimits | None = None) -> NetworkLimits:
    """The network's limits (or `limits`, when the caller has fresher ones) with the channel's
    overrides applied."""
    base = limits if limits is not None else DEFAULT_LIMITS[variant.network]
    changes = variant.overrides.model_dump(exclude_none=True)
    return base.model_copy(update=changes) if changes else base


def counted_length(network: Network | str, text: str, limits: NetworkLimits | None = None) -> int:
    """The length of `text` as `network` counts it against its character limit."""
    network = Network(network)
    rules = limits if limits is not None else DEFAULT_LIMITS[network]
    match network:
        case Network.BLUESKY:
            return graphemes(text)
        case Network.MASTODON:
            return graphemes(_mastodon_countable(text, rules.url_length or 23))
        case Network.X:
            # twitter-text's own weighting (config v3): its result is what X will count.
            weighted: int = parse_tweet(text).weightedLength
            return weighted
        case Network.TELEGRAM:
            # Telegram measures text in UTF-16 code units (its entity offsets do too): an emoji
            # outside the BMP takes two of the 4,096.
            return len(text.encode("utf-16-le")) // 2
        case Network.INSTAGRAM | Network.VK | Network.FACEBOOK:
            return len(text)


def composed_text(variant: PostVariant) -> str:
    """The text as the adapter will send it: the link goes into the text unless the network
    carries it separately (a Bluesky link card when the post has no media, a VK attachment, a
    Facebook link post), and unless the text already has it."""
    link = variant.link
    if not link or link in variant.text:
        return variant.text
    separate = {Network.VK, Network.FACEBOOK}
    if variant.network in separate or (variant.network is Network.BLUESKY and not variant.media):
        return variant.text
    return f"{variant.text}\n{link}" if variant.text else link


def compute_facets(text: str) -> list[dict[str, Any]]:
    """app.bsky.richtext.facet objects for the links, mentions and hashtags of `text`, with
    UTF-8 byte offsets. A mention carries the `handle`: the adapter resolves it to a `did`."""

    def byte_offset(index: int) -> int:
        return len(text[:index].encode("utf-8"))

    facets: list[dict[str, Any]] = []
    link_spans: list[tuple[int, int]] = []
    for match in _BSKY_URL.finditer(text):
        start, end = match.span(1)
        link_spans.append((start, end))
        facets.append(_facet(byte_offset(start), byte_offset(end), "link", uri=match.group(1)))

    def inside_link(start: int) -> bool:
        return any(link_start <= start < link_end for link_start, link_end in link_spans)

    for match in _BSKY_MENTION.finditer(text):
        start, end = match.span(1)
        if not inside_link(start):
            facets.append(
                _facet(byte_offset(start), byte_offset(end), "mention", handle=match.group(2))
            )
    for match in _BSKY_TAG.finditer(text):
        start = match.start(1)
        tag = _TRAILING_PUNCTUATION.sub("", match.group(2).strip())
        if not tag or graphemes(tag) > _BSKY_TAG_MAX_GRAPHEMES or inside_link(start):
            continue
        end = start + 1 + len(tag)
        facets.append(_facet(byte_offset(start), byte_offset(end), "tag", tag=tag))
    facets.sort(key=lambda facet: int(facet["index"]["byteStart"]))
    return facets


def _facet(byte_start: int, byte_end: int, kind: str, **feature: str) -> dict[str, Any]:
    return {
        "$type": "app.bsky.richtext.facet",
        "index": {"byteStart": byte_start, "byteEnd": byte_end},
        "features": [{"$type": f"app.bsky.richtext.facet#{kind}", **feature}],
    }


def validate(variant: PostVariant, limits: NetworkLimits | None = None) -> list[Violation]:
    """Every rule of the variant's network that it breaks; an empty list means it can go out."""
    rules = effective_limits(variant, limits)
    text = composed_text(variant)
    found: list[Violation] = []

    def violate(
        rule: str, message: str, field: str, limit: int | None = None, actual: int | None = None
    ) -> None:
        found.append(
            Violation(
                network=variant.network,
                rule=rule,
                message=f"{variant.network}: {message}",
                field=field,
                limit=limit,
                actual=actual,
            )
        )

    if not text.strip() and not variant.media:
        violate("text.empty", "a post needs text or media", "text")
    _check_text(variant, rules, text, violate)
    _check_media(variant, rules, violate)
    return found


class _Violate(Protocol):
    def __call__(
        self,
        rule: str,
        message: str,
        field: str,
        limit: int | None = None,
        actual: int | None = None,
    ) -> None: ...


def _check_text(variant: PostVariant, rules: NetworkLimits, text: str, violate: _Violate) -> None:
    length = counted_length(variant.network, text, rules)
    max_chars = rules.max_chars
    what = "text"
    if variant.media and rules.max_caption_chars is not None:
        max_chars, what = rules.max_caption_chars, "caption"
    if length > max_chars:
        violate(
            "text.too_long",
            f"{what} is {length} characters as {variant.network} counts them, over {max_chars}",
            "text",
            max_chars,
            length,
        )
    if rules.max_bytes is not None:
        size = len(text.encode("utf-8"))
        if size > rules.max_bytes:
            violate(
                "text.too_many_bytes",
                f"text is {size} bytes in UTF-8, over {rules.max_bytes}",
                "text",
                rules.max_bytes,
                size,
            )
    if rules.max_hashtags is not None:
        hashtags = len(_HASHTAG.findall(text))
        if hashtags > rules.max_hashtags:
            violate(
                "hashtags.too_many",
                f"{hashtags} hashtags, over {rules.max_hashtags}",
                "text",
                rules.max_hashtags,
                hashtags,
            )
    if rules.max_mentions is not None:
        mentions = len(_MENTION.findall(text))
        if mentions > rules.max_mentions:
            violate(
                "mentions.too_many",
                f"{mentions} @mentions, over {rules.max_mentions}",
                "text",
                rules.max_mentions,
                mentions,
            )


def _check_media(variant: PostVariant, rules: NetworkLimits, violate: _Violate) -> None:
    media = variant.media
    # An Instagram reply is a comment: text only, so the media rule doesn't apply to it.
    if rules.media_required and not media and variant.reply_to is None:
        violate("media.required", "a post needs at least one image or video", "media", 1, 0)

    attachments = len(media) + (1 if rules.link_is_attachment and variant.link else 0)
    too_many = rules.max_media is not None and attachments > rules.max_media
    if rules.max_media is not None and too_many:
        violate(
            "media.too_many",
            f"{attachments} attachments, over {rules.max_media}",
            "media",
            rules.max_media,
            attachments,
        )

    for index, item in enumerate(media):
        if item.type not in rules.allowed_types:
            violate(
                "media.type_not_allowed",
                f"media {index} is a {item.type}, which this network does not take",
                f"media.{index}.type",
            )
    # Telegram albums (sendMediaGroup) take photos and videos only; a GIF goes alone.
    if variant.network is Network.TELEGRAM and len(media) > 1:
        for index, item in enumerate(media):
            if item.type is MediaType.GIF:
                violate(
                    "media.type_not_allowed",
                    f"media {index} is a GIF, which can't be part of an album",
                    f"media.{index}.type",
                )

    types = Counter(item.type for item in media)
    if not rules.mixed_media and len(types) > 1:
        kinds = ", ".join(sorted(types))
        violate("media.mixed_types", f"media mixes {kinds}; use one kind per post", "media")
    for media_type, count in sorted(types.items()):
        most = rules.max_per_type.get(media_type)
        # Five images break "4 in all" and "4 images" alike: say it once.
        if most is not None and count > most and not (too_many and len(types) == 1):
            violate(
                "media.too_many",
                f"{count} of type {media_type}, over {most}",
                "media",
                most,
                count,
            )

    for index, item in enumerate(media):
        _check_item(index, item, rules, violate)


def _check_item(index: int, item: MediaItem, rules: NetworkLimits, violate: _Violate) -> None:
    if (
        item.type is MediaType.IMAGE
        and rules.image_mimes is not None
        and item.mime is not None
        and item.mime.lower() not in rules.image_mimes
    ):
        allowed = ", ".join(sorted(rules.image_mimes))
        violate(
            "media.mime_not_allowed",
            f"media {index} is {item.mime}; images must be {allowed}",
            f"media.{index}.mime",
        )
    most = rules.max_video_bytes if item.type is not MediaType.IMAGE else rules.max_image_bytes
    if most is not None and item.size_bytes is not None and item.size_bytes > most:
        violate(
            "media.too_large",
            f"media {index} is {item.size_bytes} bytes, over {most}",
            f"media.{index}.size_bytes",
            most,
            item.size_bytes,
        )
    if rules.max_alt_text_chars is not None and item.alt_text is not None:
        length = graphemes(item.alt_text)
        if length > rules.max_alt_text_chars:
            violate(
                "media.alt_text_too_long",
                f"media {index} alt text is {length} characters, over {rules.max_alt_text_chars}",
                f"media.{index}.alt_text",
                rules.max_alt_text_chars,
                length,
            )
