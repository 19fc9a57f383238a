"""Mastodon's JSON entities (Account, Status, Notification, MediaAttachment, Tag) rendered from the
sandbox network's objects, with status text formatted into Mastodon's sanitised HTML.

Shapes follow https://docs.joinmastodon.org/entities/ ; `base` is the sandbox's public URL, so
profile, status and media links point back at it.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from typing import Any

from devstack.sandbox.network import (
    HASHTAG,
    MENTION,
    Account,
    MediaAttachment,
    Notification,
    Status,
)

_URL = re.compile(r"https?://[^\s<>\"]+")
_TOKENS = re.compile(f"(?P<url>{_URL.pattern})|(?P<mention>{MENTION.pattern})|{HASHTAG.pattern}")
_PARAGRAPHS = re.compile(r"\n{2,}")
_URL_TRAILER = ".,;:!?)'\""
_ELLIPSIS_AFTER = 30  # Mastodon shows the first 30 characters of a long link


def iso(moment: datetime) -> str:
    """Mastodon's datetime format: UTC with milliseconds and `Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _link(url: str) -> str:
    scheme, _, rest = url.partition("://")
    shown, hidden = rest, ""
    middle_class = ""
    if len(rest) > _ELLIPSIS_AFTER:
        shown, hidden, middle_class = rest[:_ELLIPSIS_AFTER], rest[_ELLIPSIS_AFTER:], "ellipsis"
    return (
        f'<a href="{html.escape(url)}" target="_blank" rel="nofollow noopener" translate="no">'
        f'<span class="invisible">{html.escape(scheme)}://</span>'
        f'<span class="{middle_class}">{html.escape(shown)}</span>'
        f'<span class="invisible">{html.escape(hidden)}</span></a>'
    )


def _format_line(line: str, mentioned: dict[str, Account], base: str) -> str:
    out: list[str] = []
    position = 0
    for match in _TOKENS.finditer(line):
        start, end = match.span()
        token = match.group(0)
        if match.group("url"):
            url = token.rstrip(_URL_TRAILER)
            end = start + len(url)
            rendered = _link(url)
        elif match.group("mention"):
            account = mentioned.get(token[1:].lower())
            if account is None:
                continue  # not a local account: plain text, as Mastodon leaves it
            rendered = (
                f'<span class="h-card" translate="no"><a href="{base}/@{account.username}" '
                f'class="u-url mention">@<span>{account.username}</span></a></span>'
            )
        else:
            name = token[1:]
            rendered = (
                f'<a href="{base}/tags/{html.escape(name.lower())}" class="mention hashtag" '
                f'rel="tag">#<span>{html.escape(name)}</span></a>'
            )
        out.append(html.escape(line[position:start]))
        out.append(rendered)
        position = end
    out.append(html.escape(line[position:]))
    return "".join(out)


def content_html(text: str, mentions: tuple[Account, ...], base: str) -> str:
    """Plain status text as Mastodon renders it: paragraphs, line breaks, linked mentions,
    hashtags and URLs, everything else escaped."""
    mentioned = {account.username.lower(): account for account in mentions}
    paragraphs = []
    for paragraph in _PARAGRAPHS.split(text.strip()):
        lines = [_format_line(line, mentioned, base) for line in paragraph.split("\n")]
        paragraphs.append("<p>" + "<br />".join(lines) + "</p>")
    return "".join(paragraphs)


def account_json(account: Account, base: str) -> dict[str, Any]:
    avatar = f"{base}/avatars/original/missing.png"
    header = f"{base}/headers/original/missing.png"
    day = account.created_at.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "id": str(account.id),
        "username": account.username,
        "acct": account.username,
        "display_name": account.display_name,
        "locked": False,
        "bot": account.bot,
        "discoverable": True,
        "indexable": True,
        "group": False,
        "created_at": iso(day),
        "note": f"<p>{html.escape(account.note)}</p>" if account.note else "",
        "url": f"{base}/@{account.username}",
        "uri": f"{base}/users/{account.username}",
        "avatar": avatar,
        "avatar_static": avatar,
        "header": header,
        "header_static": header,
        "followers_count": account.followers_count,
        "following_count": account.following_count,
        "statuses_count": account.statuses_count,
        "last_status_at": account.last_status_at.date().isoformat()
        if account.last_status_at
        else None,
        "hide_collections": None,
        "noindex": False,
        "emojis": [],
        "roles": [],
        "fields": [],
    }


def credential_account_json(account: Account, base: str) -> dict[str, Any]:
    """The Account entity with `source`, as verify_credentials returns it."""
    rendered = account_json(account, base)
    rendered["source"] = {
        "privacy": "public",
        "sensitive": False,
        "language": account.language,
        "note": account.note,
        "fields": [],
        "follow_requests_count": 0,
    }
    return rendered


def media_json(media: MediaAttachment, base: str, *, processing: bool = False) -> dict[str, Any]:
    """The MediaAttachment entity; while `processing`, `url` is null (only the preview exists)."""
    extension = {"image": "jpg", "gifv": "mp4", "video": "mp4", "audio": "mp3"}.get(media.type, "")
    path = f"{base}/system/media_attachments/files/{media.id}"
    return {
        "id": str(media.id),
        "type": media.type,
        "url": None if processing else f"{path}/original/file.{extension}",
        "preview_url": f"{path}/small/file.jpg",
        "remote_url": None,
        "preview_remote_url": None,
        "text_url": None,
        "meta": {
            "original": {"width": 1280, "height": 960, "size": "1280x960", "aspect": 4 / 3},
            "small": {"width": 400, "height": 300, "size": "400x300", "aspect": 4 / 3},
        },
        "description": media.description,
        "blurhash": "UFBWY:8_0Jxv4mx]t8t64.%M-:IUWGWAt6M}",
    }


def status_json(status: Status, base: str, *, with_source: bool = False) -> dict[str, Any]:
    author = status.account
    rendered: dict[str, Any] = {
        "id": str(status.id),
        "created_at": iso(status.created_at),
        "in_reply_to_id": str(status.in_reply_to_id) if status.in_reply_to_id else None,
        "in_reply_to_account_id": str(status.in_reply_to_account_id)
        if status.in_reply_to_account_id
        else None,
        "sensitive": status.sensitive,
        "spoiler_text": status.spoiler_text,
        "visibility": status.visibility,
        "language": status.language,
        "uri": f"{base}/users/{author.username}/statuses/{status.id}",
        "url": f"{base}/@{author.username}/{status.id}",
        "replies_count": status.replies_count,
        "reblogs_count": status.reblogs_count,
        "favourites_count": status.favourites_count,
        "edited_at": iso(status.edited_at) if status.edited_at else None,
        "favourited": False,
        "reblogged": False,
        "muted": False,
        "bookmarked": False,
        "content": content_html(status.text, status.mentions, base),
        "filtered": [],
        "reblog": None,
        "application": {"name": status.application, "website": None}
        if status.application
        else None,
        "account": account_json(author, base),
        "media_attachments": [media_json(m, base) for m in status.media],
        "mentions": [
            {
                "id": str(m.id),
                "username": m.username,
                "url": f"{base}/@{m.username}",
                "acct": m.username,
            }
            for m in status.mentions
        ],
        "tags": [{"name": tag, "url": f"{base}/tags/{tag}"} for tag in status.tags],
        "emojis": [],
        "card": None,
        "poll": None,
    }
    if with_source:
        rendered["text"] = status.text
    return rendered


def reblog_json(reblog_id: int, booster: Account, original: Status, base: str) -> dict[str, Any]:
    """The Status a boost creates: the booster's, empty, with the original under `reblog`."""
    inner = status_json(original, base)
    inner["reblogged"] = True
    return {
        **inner,
        "id": str(reblog_id),
        "uri": f"{base}/users/{booster.username}/statuses/{reblog_id}/activity",
        "url": None,
        "in_reply_to_id": None,
        "in_reply_to_account_id": None,
        "content": "",
        "account": account_json(booster, base),
        "media_attachments": [],
        "mentions": [],
        "tags": [],
        "reblog": inner,
    }


def notification_json(
    notification: Notification, status: Status | None, base: str
) -> dict[str, Any]:
    return {
        "id": str(notification.id),
        "type": notification.type,
        "group_key": f"ungrouped-{notification.id}",
        "created_at": iso(notification.created_at),
        "account": account_json(notification.from_account, base),
        "status": status_json(status, base) if status is not None else None,
    }


def tag_json(name: str, base: str) -> dict[str, Any]:
    return {"name": name, "url": f"{base}/tags/{name}", "history": [], "following": False}
