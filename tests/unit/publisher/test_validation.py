from __future__ import annotations

import pytest

from services.publisher.validation import (
    ChannelOverrides,
    MediaItem,
    MediaType,
    Network,
    PostVariant,
    compute_facets,
    counted_length,
    validate,
)

FAMILY = "👩\u200d👩\u200d👧\u200d👦"  # one grapheme, 7 code points, 25 UTF-8 bytes
FLAG_UA = "🇺🇦"  # one grapheme, two regional indicators, 8 bytes
THUMB_DARK = "👍🏽"  # one grapheme with a skin-tone modifier
LONG_URL = "https://example.com/spring/collection/2026/lookbook?utm_source=opensmm"
IMAGE = MediaItem(type=MediaType.IMAGE, mime="image/jpeg", size_bytes=200_000)
VIDEO = MediaItem(type=MediaType.VIDEO, mime="video/mp4", size_bytes=5_000_000)
GIF = MediaItem(type=MediaType.GIF, mime="image/gif", size_bytes=300_000)


@pytest.mark.parametrize(
    ("network", "text", "expected"),
    [
        # Bluesky counts grapheme clusters.
        (Network.BLUESKY, FAMILY, 1),
        (Network.BLUESKY, FLAG_UA * 2, 2),
        (Network.BLUESKY, THUMB_DARK, 1),
        (Network.BLUESKY, "e\u0301", 1),
        (Network.BLUESKY, "Привет, мир", 11),
        (Network.BLUESKY, f"see {LONG_URL}", 4 + len(LONG_URL)),
        # Mastodon: graphemes, every URL is 23, a remote mention counts as `@user`.
        (Network.MASTODON, f"see {LONG_URL}", 4 + 23),
        (Network.MASTODON, "hi @alice@social.example.org!", len("hi @alice!")),
        (Network.MASTODON, "hi @alice!", len("hi @alice!")),
        (Network.MASTODON, f"{FAMILY} {FLAG_UA}", 3),
        (Network.MASTODON, "Привет", 6),
        # X: twitter-text weights; CJK weigh 2, Cyrillic 1, an emoji sequence 2, URLs 23.
        (Network.X, "日本語", 6),
        (Network.X, "Привет", 6),
        (Network.X, FAMILY, 2),
        (Network.X, f"see {LONG_URL}", 4 + 23),
        (Network.X, "example.com", 23),
        # Telegram counts UTF-16 code units.
        (Network.TELEGRAM, "👍", 2),
        (Network.TELEGRAM, "Привет", 6),
        (Network.TELEGRAM, "日本語", 3),
        (Network.INSTAGRAM, "Привет #мир", 11),
        (Network.VK, "Привет", 6),
        (Network.FACEBOOK, "Привет", 6),
    ],
)
def test_counted_length_follows_each_network(network: Network, text: str, expected: int) -> None:
    assert counted_length(network, text) == expected


def rules_of(variant: PostVariant) -> list[str]:
    return sorted(violation.rule for violation in validate(variant))


def hashtags(count: int) -> str:
    return " ".join(f"#tag{n}" for n in range(count))


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        # Bluesky: 300 graphemes and 3,000 bytes, both enforced.
        (PostVariant(network="bluesky", text=FLAG_UA * 300), []),
        (PostVariant(network="bluesky", text=FLAG_UA * 301), ["text.too_long"]),
        (PostVariant(network="bluesky", text=FAMILY * 120), []),
        (PostVariant(network="bluesky", text=FAMILY * 121), ["text.too_many_bytes"]),
        (PostVariant(network="bluesky", text="x", media=(IMAGE,) * 4), []),
        (PostVariant(network="bluesky", text="x", media=(IMAGE,) * 5), ["media.too_many"]),
        (PostVariant(network="bluesky", text="x", media=(IMAGE, VIDEO)), ["media.mixed_types"]),
        (
            PostVariant(
                network="bluesky",
                text="x",
                media=(MediaItem(type="image", size_bytes=1_000_001),),
            ),
            ["media.too_large"],
        ),
        # A link without media becomes a card on Bluesky, not text.
        (PostVariant(network="bluesky", text="a" * 300, link=LONG_URL), []),
        (
            PostVariant(network="bluesky", text="a" * 300, link=LONG_URL, media=(IMAGE,)),
            ["text.too_long"],
        ),
        # Mastodon: 500 per instance default, remote mentions and URLs discounted.
        (PostVariant(network="mastodon", text="a" * 500), []),
        (PostVariant(network="mastodon", text="a" * 501), ["text.too_long"]),
        (
            PostVariant(
                network="mastodon",
                text="a" * 501,
                overrides=ChannelOverrides(max_chars=5000),
            ),
            [],
        ),
        (
            PostVariant(
                network="mastodon",
                text="a" * 470 + " @kim@a.very.long.remote.instance.example",
            ),
            [],
        ),
        (PostVariant(network="mastodon", text="a" * 476 + " " + LONG_URL), []),
        (PostVariant(network="mastodon", text="a" * 477 + " " + LONG_URL), ["text.too_long"]),
        (PostVariant(network="mastodon", text="x", media=(IMAGE,) * 5), ["media.too_many"]),
        (PostVariant(network="mastodon", text="x", media=(VIDEO, VIDEO)), ["media.too_many"]),
        (PostVariant(network="mastodon", text="x", media=(IMAGE, GIF)), ["media.mixed_types"]),
        (
            PostVariant(
                network="mastodon",
                text="x",
                media=(MediaItem(type="image", alt_text="d" * 1501),),
            ),
            ["media.alt_text_too_long"],
        ),
        # Telegram: 4,096 for a message, 1,024 for a caption, 10 in an album, no GIF in one.
        (PostVariant(network="telegram", text="a" * 4096), []),
        (PostVariant(network="telegram", text="a" * 4097), ["text.too_long"]),
        (PostVariant(network="telegram", text="👍" * 2048), []),
        (PostVariant(network="telegram", text="👍" * 2049), ["text.too_long"]),
        (PostVariant(network="telegram", text="a" * 1024, media=(IMAGE,)), []),
        (PostVariant(network="telegram", text="a" * 1025, media=(IMAGE,)), ["text.too_long"]),
        (PostVariant(network="telegram", text="x", media=(IMAGE,) * 10), []),
        (PostVariant(network="telegram", text="x", media=(IMAGE,) * 11), ["media.too_many"]),
        (PostVariant(network="telegram", text="x", media=(GIF,)), []),
        (
            PostVariant(network="telegram", text="x", media=(IMAGE, GIF)),
            ["media.type_not_allowed"],
        ),
        # X: 280 weighted.
        (PostVariant(network="x", text="a" * 280), []),
        (PostVariant(network="x", text="a" * 281), ["text.too_long"]),
        (PostVariant(network="x", text="日" * 140), []),
        (PostVariant(network="x", text="日" * 141), ["text.too_long"]),
        (PostVariant(network="x", text="Ж" * 280), []),
        (PostVariant(network="x", text="a" * 256, link=LONG_URL), []),
        (PostVariant(network="x", text="a" * 257, link=LONG_URL), ["text.too_long"]),
        (PostVariant(network="x", text="x", media=(VIDEO, GIF)), ["media.mixed_types"]),
        # Instagram: media required, 2,200 characters, 30 hashtags, JPEG images, 10 in a carousel.
        (PostVariant(network="instagram", text=hashtags(30), media=(IMAGE,)), []),
        (
            PostVariant(network="instagram", text=hashtags(31), media=(IMAGE,)),
            ["hashtags.too_many"],
        ),
        (PostVariant(network="instagram", text="New drop"), ["media.required"]),
        (PostVariant(network="instagram", text="a" * 2200, media=(IMAGE,)), []),
        (
            PostVariant(network="instagram", text="a" * 2201, media=(IMAGE,)),
            ["text.too_long"],
        ),
        (
            PostVariant(
                network="instagram", text="x", media=(MediaItem(type="image", mime="image/png"),)
            ),
            ["media.mime_not_allowed"],
        ),
        (
            PostVariant(network="instagram", text="x", media=(GIF,)),
            ["media.type_not_allowed"],
        ),
        (PostVariant(network="instagram", text="x", media=(IMAGE,) * 11), ["media.too_many"]),
        (PostVariant(network="instagram", text="Thanks!", reply_to="17890000000000000"), []),
        # VK: the link is one of the 10 attachments.
        (PostVariant(network="vk", text="a" * 16_384), []),
        (PostVariant(network="vk", text="a" * 16_385), ["text.too_long"]),
        (PostVariant(network="vk", text="x", media=(IMAGE,) * 10), []),
        (
            PostVariant(network="vk", text="x", media=(IMAGE,) * 10, link=LONG_URL),
            ["media.too_many"],
        ),
        (PostVariant(network="facebook", text="a" * 63_206), []),
        (PostVariant(network="facebook", text="a" * 63_207), ["text.too_long"]),
        # Empty text with no media is an error everywhere; media alone is enough.
        *[
            (PostVariant(network=network, text=" \n"), ["text.empty"])
            for network in Network
            if network is not Network.INSTAGRAM
        ],
        (PostVariant(network="instagram", text=""), ["media.required", "text.empty"]),
        (PostVariant(network="mastodon", text="", media=(IMAGE,)), []),
    ],
    ids=lambda case: None if isinstance(case, PostVariant) else ",".join(case) or "ok",
)
def test_validate_reports_each_broken_rule(variant: PostVariant, expected: list[str]) -> None:
    assert rules_of(variant) == sorted(expected)


def test_violation_names_the_network_field_limit_and_count() -> None:
    variant = PostVariant(network="telegram", text="a" * 1025, media=(IMAGE,))

    (violation,) = validate(variant)

    assert violation.network is Network.TELEGRAM
    assert violation.rule == "text.too_long"
    assert violation.field == "text"
    assert (violation.limit, violation.actual) == (1024, 1025)
    assert violation.message.startswith("telegram:")
    assert "caption" in violation.message


def test_media_violations_point_at_the_item() -> None:
    variant = PostVariant(
        network="instagram",
        text="x",
        media=(IMAGE, MediaItem(type="image", mime="image/webp", size_bytes=9_000_000)),
    )

    fields = {violation.rule: violation.field for violation in validate(variant)}

    assert fields == {
        "media.mime_not_allowed": "media.1.mime",
        "media.too_large": "media.1.size_bytes",
    }


def test_variant_parses_from_api_json() -> None:
    variant = PostVariant.model_validate(
        {
            "network": "mastodon",
            "text": "a" * 600,
            "media": [{"type": "image", "mime": "image/png", "alt_text": "Our new store"}],
            "overrides": {"max_chars": 1000},
        }
    )

    assert validate(variant) == []


def test_bluesky_facets_use_utf8_byte_offsets_after_emoji() -> None:
    text = (
        f"{FAMILY}{FLAG_UA} New lookbook: https://example.com/look?id=7. "
        "Thanks @kim.bsky.social #SMM!"
    )
    encoded = text.encode("utf-8")

    facets = compute_facets(text)

    spans = [
        (
            facet["features"][0]["$type"].rsplit("#", 1)[1],
            encoded[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode("utf-8"),
        )
        for facet in facets
    ]
    assert spans == [
        ("link", "https://example.com/look?id=7"),
        ("mention", "@kim.bsky.social"),
        ("tag", "#SMM"),
    ]
    # 25 bytes of family + 8 of flag + " New lookbook: " (15 bytes).
    assert facets[0]["index"] == {"byteStart": 48, "byteEnd": 77}
    assert facets[0]["features"][0]["uri"] == "https://example.com/look?id=7"
    assert facets[1]["features"][0] == {
        "$type": "app.bsky.richtext.facet#mention",
        "handle": "kim.bsky.social",
    }
    assert facets[2]["features"][0]["tag"] == "SMM"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail kim@example.com", []),
        (
            "https://example.com/@kim.bsky.social",
            [("link", "https://example.com/@kim.bsky.social")],
        ),
        ("Цена #скидка2026, смотри", [("tag", "скидка2026")]),  # noqa: RUF001
        ("#2026 is just a number", []),
        ("@kim.bsky.social.", [("mention", "kim.bsky.social")]),
    ],
)
def test_bluesky_facets_ignore_what_is_not_a_facet(
    text: str, expected: list[tuple[str, str]]
) -> None:
    found = [
        (
            facet["features"][0]["$type"].rsplit("#", 1)[1],
            next(v for k, v in facet["features"][0].items() if k != "$type"),
        )
        for facet in compute_facets(text)
    ]

    assert found == expected
