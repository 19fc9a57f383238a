"""VK connector: keyword search with `newsfeed.search` (pull), the comments on one of our wall
posts with `wall.getComments` (replies), and a community's wall events from the Callback API.
A backfill restarts the search sweep at VK's `start_time` = the backfill's start."""

from __future__ import annotations

import hmac
import json
import math
import re
from datetime import UTC, datetime
from typing import Any, ClassVar, NoReturn

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.ingest.connectors.base import (
    AuthFailed,
    BadConfig,
    Engagement,
    FetchedAuthor,
    FetchedMention,
    Media,
    PullResult,
    RateLimited,
    SignatureInvalid,
    SkippedItem,
    SourceConfig,
    TransientError,
    WebhookReply,
    WebhookRequest,
    WebhookResult,
    parse_time,
    raise_for_status,
)

NETWORK = "vk"
# https://dev.vk.com/ru/reference/errors: what to wait after each rate-limit error. 6 is a
# per-second limit, 9 flood control, 29 a method's daily quota.
RATE_LIMIT_WAIT_S = {6: 1.0, 9: 60.0, 29: 3600.0}
AUTH_FAILED = 5
INTERNAL_ERROR = 10
# Asked along with the search so authors come with names and audience sizes.
AUTHOR_FIELDS = "screen_name,followers_count,members_count,verified"
# wall.getComments: at most 100 comments a page and 10 replies inlined under each comment.
COMMENTS_PAGE_MAX = 100
THREAD_PREVIEW_MAX = 10
_POST_KEY = re.compile(r"(?P<owner>-?[0-9]+)_(?P<post>[0-9]+)")


class VkConfig(SourceConfig):
    api_base: str = "https://api.vk.com/method"
    api_version: str = "5.199"
    # The community whose Callback API server this source is, and the string VK expects back
    # when it confirms the server address.
    group_id: int | None = None
    confirmation_code: str | None = None
    # What newsfeed.search looks for (VK's search syntax).
    query: str | None = None
    page_size: int = Field(default=100, ge=1, le=200)


# --- VK's wire format (the subset we read) -----------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Count(_Wire):
    count: int = 0


class _Post(_Wire):
    """https://dev.vk.com/ru/reference/objects/post"""

    id: int
    owner_id: int
    from_id: int
    date: int
    text: str = ""
    likes: _Count | None = None
    reposts: _Count | None = None
    comments: _Count | None = None
    views: _Count | None = None
    attachments: list[Any] = Field(default_factory=list)


class _Comment(_Wire):
    """https://dev.vk.com/ru/reference/objects/comment, with the post it is on."""

    id: int
    from_id: int
    date: int
    text: str = ""
    post_id: int
    owner_id: int
    post_owner_id: int | None = None
    reply_to_comment: int | None = None
    parents_stack: list[int] = Field(default_factory=list)
    attachments: list[Any] = Field(default_factory=list)

    @property
    def wall(self) -> int:
        return self.post_owner_id if self.post_owner_id is not None else self.owner_id


class _DeletedComment(_Wire):
    id: int
    owner_id: int
    post_id: int
    deleter_id: int | None = None


class _Profile(_Wire):
    id: int
    first_name: str = ""
    last_name: str = ""
    screen_name: str | None = None
    followers_count: int | None = None
    verified: int | None = None


class _Group(_Wire):
    id: int
    name: str = ""
    screen_name: str | None = None
    members_count: int | None = None
    verified: int | None = None


# --- the connector -----------------------------------------------------------------------------


class VkConnector:
    """Both halves: `pull` runs newsfeed.search; `handshake`/`verify`/`parse` serve the
    Callback API."""

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[SourceConfig]] = VkConfig

    async def pull(
        self,
        client: httpx.AsyncClient,
        config: VkConfig,
        credentials: dict[str, Any],
        cursor: dict[str, Any],
    ) -> PullResult:
        """One page of a sweep over the search results, newest first.

        A sweep pages back with `next_from` from newest to the previous sweep's newest date
        (`since`, VK's inclusive `start_time`); when it ends, its newest date becomes `since`.
        Posts at exactly `since` that were already delivered are remembered by id, so the
        inclusive bound neither repeats them nor drops others of the same second.
        """
        if not config.query:
            raise BadConfig("vk: newsfeed.search needs a query")
        token = credentials.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthFailed("vk: the source has no access_token")
        since = _int_or_none(cursor.get("since"))
        seen_at_since = set(_str_list(cursor.get("seen_at_since")))
        next_from = cursor.get("next_from")
        newest = _int_or_none(cursor.get("sweep_newest"))
        newest_ids = _str_list(cursor.get("sweep_newest_ids"))

        form: dict[str, str] = {
            "q": config.query,
            "count": str(config.page_size),
            "extended": "1",
            "fields": AUTHOR_FIELDS,
            # In the form body, not the query string, so no log of URLs holds the token.
            "access_token": token,
            "v": config.api_version,
        }
        if since is not None:
            form["start_time"] = str(since)
        if isinstance(next_from, str) and next_from:
            form["start_from"] = next_from
        result = await _call(client, config, "newsfeed.search", form)

        authors = _authors(result)
        mentions: list[FetchedMention] = []
        skipped: list[SkippedItem] = []
        items = result.get("items")
        for raw in items if isinstance(items, list) else []:
            try:
                post = _Post.model_validate(raw)
            except ValidationError as exc:
                skipped.append(SkippedItem(f"vk: malformed post: {_first_error(exc)}", raw))
                continue
            post_key = f"{post.owner_id}_{post.id}"
            if since is not None and (
                post.date < since or (post.date == since and post_key in seen_at_since)
            ):
                continue
            if newest is None or post.date > newest:
                newest, newest_ids = post.date, [post_key]
            elif post.date == newest and post_key not in newest_ids:
                newest_ids.append(post_key)
            mentions.append(_post_mention(post, raw, authors.get(post.from_id)))

        following = result.get("next_from")
        if isinstance(following, str) and following:
            new_cursor: dict[str, Any] = {
                "since": since,
                "seen_at_since": sorted(seen_at_since),
                "next_from": following,
                "sweep_newest": newest,
                "sweep_newest_ids": newest_ids,
            }
            return PullResult(mentions, new_cursor, more=True, skipped=skipped)
        if newest is None:
            new_cursor = {"since": since, "seen_at_since": sorted(seen_at_since)}
        elif newest == since:
            new_cursor = {"since": since, "seen_at_since": sorted(seen_at_since | {*newest_ids})}
        else:
            new_cursor = {"since": newest, "seen_at_since": sorted(newest_ids)}
        return PullResult(mentions, new_cursor, more=False, skipped=skipped)

    def backfill_cursor(self, since: datetime) -> dict[str, Any]:
        """A cursor whose next sweep searches from `since` on (`start_time` is inclusive).

        Post dates are whole seconds, so the first whole second at or after `since` is the bound.
        """
        return {"since": math.ceil(since.timestamp()), "seen_at_since": []}

    async def replies(
        self,
        client: httpx.AsyncClient,
        config: VkConfig,
        credentials: dict[str, Any],
        post_external_id: str,
        cursor: dict[str, Any],
    ) -> PullResult:
        """Comments on one of our wall posts, replies to comments included, newer than the cursor.

        Comment ids grow along a wall, so the cursor is the largest id handled (`max_seen`). A
        new reply can land under any old comment, so each call reads every top-level comment
        (oldest first, with up to 10 replies inlined); a thread longer than its preview is read
        newest first with `comment_id` until it reaches ids already handled.
        """
        owner_id, post_id = _post_key(post_external_id)
        token = credentials.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthFailed("vk: the source has no access_token")
        max_seen = _int_or_none(cursor.get("max_seen")) or 0
        page_size = min(config.page_size, COMMENTS_PAGE_MAX)
        form: dict[str, str] = {
            "owner_id": str(owner_id),
            "post_id": str(post_id),
            "count": str(page_size),
            "preview_length": "0",  # whole texts, not previews
            "extended": "1",
            "fields": AUTHOR_FIELDS,
            "access_token": token,
            "v": config.api_version,
        }
        top, authors = await _comment_level(
            client,
            config,
            {**form, "sort": "asc", "thread_items_count": str(THREAD_PREVIEW_MAX)},
            page_size,
            newer_than=None,
        )
        # (comment, the top-level comment whose thread it is in, if any)
        found: list[tuple[Any, int | None]] = [(item, None) for item in top]
        for item in top:
            thread_root = _int_or_none(item.get("id")) if isinstance(item, dict) else None
            thread = item.get("thread") if isinstance(item, dict) else None
            thread = thread if isinstance(thread, dict) else {}
            inline = thread.get("items")
            inline = inline if isinstance(inline, list) else []
            found += [(reply, thread_root) for reply in inline]
            if thread_root is None or (_int_or_none(thread.get("count")) or 0) <= len(inline):
                continue
            rest, thread_authors = await _comment_level(
                client,
                config,
                {**form, "comment_id": str(thread_root), "sort": "desc"},
                page_size,
                newer_than=max_seen,
            )
            authors.update(thread_authors)
            found += [(reply, thread_root) for reply in rest]

        mentions: dict[int, FetchedMention] = {}
        skipped: list[SkippedItem] = []
        newest = max_seen
        handled: set[int] = set()  # a reply can come both inlined and in its thread's pages
        for raw, thread_root in found:
            comment_id = _int_or_none(raw.get("id")) if isinstance(raw, dict) else None
            if not isinstance(raw, dict) or comment_id is None:
                skipped.append(SkippedItem("vk: malformed comment: no id", raw))
                continue
            newest = max(newest, comment_id)
            # VK keeps a deleted comment that has replies as a placeholder; nothing to hear.
            if comment_id <= max_seen or comment_id in handled or raw.get("deleted"):
                continue
            handled.add(comment_id)
            # The wall and post are the ones asked about, so ids match the Callback API's.
            data = {**raw, "post_owner_id": owner_id, "post_id": post_id}
            data.setdefault("owner_id", owner_id)
            if thread_root is not None and not raw.get("reply_to_comment"):
                data["reply_to_comment"] = thread_root
            try:
                comment = _Comment.model_validate(data)
            except ValidationError as exc:
                skipped.append(SkippedItem(f"vk: malformed comment: {_first_error(exc)}", raw))
                continue
            mentions[comment_id] = _comment_mention(
                comment, raw, edited=False, author=authors.get(comment.from_id)
            )
        return PullResult(
            [mentions[key] for key in sorted(mentions)],  # oldest first: ids grow with time
            {"max_seen": newest},
            skipped=skipped,
        )

    def handshake(
        self, request: WebhookRequest, config: VkConfig, secrets: dict[str, Any]
    ) -> WebhookReply | None:
        event = _json_object(request.body)
        if event is None or event.get("type") != "confirmation":
            return None
        if config.group_id is None or not config.confirmation_code:
            raise BadConfig("vk: group_id and confirmation_code are needed to confirm the server")
        if event.get("group_id") != config.group_id:
            raise SignatureInvalid("vk: confirmation request for another community")
        # VK includes the secret key in the confirmation only once one is set; check it then.
        expected, given = secrets.get("secret"), event.get("secret")
        if isinstance(expected, str) and expected and given is not None:
            _check_secret(expected, given)
        return WebhookReply(200, config.confirmation_code.encode(), "text/plain")

    def verify(self, request: WebhookRequest, config: VkConfig, secrets: dict[str, Any]) -> None:
        expected = secrets.get("secret")
        if not isinstance(expected, str) or not expected:
            raise SignatureInvalid("vk: the source has no secret key to check against")
        event = _json_object(request.body)
        _check_secret(expected, event.get("secret") if event is not None else None)
        group = event.get("group_id") if event is not None else None
        if config.group_id is not None and group != config.group_id:
            raise SignatureInvalid("vk: event for another community")

    def parse(self, request: WebhookRequest, config: VkConfig) -> WebhookResult:
        # VK wants exactly `ok` back, whatever the event; WebhookReply's default is that.
        event = _json_object(request.body)
        if event is None:
            return WebhookResult([], [SkippedItem("vk: body is not a JSON object")])
        kind, obj = event.get("type"), event.get("object")
        if kind not in ("wall_reply_new", "wall_reply_edit", "wall_reply_delete", "wall_post_new"):
            return WebhookResult([])
        try:
            if kind == "wall_post_new":
                mention = _post_mention(_Post.model_validate(obj), obj, None)
            elif kind == "wall_reply_delete":
                mention = _deleted_comment(_DeletedComment.model_validate(obj), obj)
            else:
                mention = _comment_mention(
                    _Comment.model_validate(obj), obj, edited=kind == "wall_reply_edit"
                )
        except ValidationError as exc:
            return WebhookResult(
                [], [SkippedItem(f"vk: malformed {kind}: {_first_error(exc)}", obj)]
            )
        return WebhookResult([mention])


# --- normalising -------------------------------------------------------------------------------


def _post_mention(post: _Post, raw: Any, author: FetchedAuthor | None) -> FetchedMention:
    external_id = f"{post.owner_id}_{post.id}"
    return FetchedMention(
        network=NETWORK,
        external_id=external_id,
        kind="post",
        text=post.text,
        created_at=parse_time(post.date),
        author=author or _bare_author(post.from_id),
        root_external_id=external_id,
        url=f"https://vk.com/wall{external_id}",
        media=_media(post.attachments),
        engagement=Engagement(
            likes=post.likes.count if post.likes else None,
            reposts=post.reposts.count if post.reposts else None,
            replies=post.comments.count if post.comments else None,
            views=post.views.count if post.views else None,
        ),
        raw=raw if isinstance(raw, dict) else {},
    )


def _comment_mention(
    comment: _Comment, raw: Any, *, edited: bool, author: FetchedAuthor | None = None
) -> FetchedMention:
    post = f"{comment.wall}_{comment.post_id}"
    url = f"https://vk.com/wall{post}?reply={comment.id}"
    if comment.parents_stack:
        url += f"&thread={comment.parents_stack[0]}"
    return FetchedMention(
        network=NETWORK,
        external_id=_comment_id(comment.wall, comment.post_id, comment.id),
        kind="comment",
        text=comment.text,
        created_at=parse_time(comment.date),
        author=author or _bare_author(comment.from_id),
        root_external_id=post,
        parent_external_id=(
            _comment_id(comment.wall, comment.post_id, comment.reply_to_comment)
            if comment.reply_to_comment
            else post
        ),
        url=url,
        media=_media(comment.attachments),
        # The edit event carries no time of its own: the moment we heard of it stands in.
        edited_at=datetime.now(UTC) if edited else None,
        raw=raw if isinstance(raw, dict) else {},
    )


def _deleted_comment(comment: _DeletedComment, raw: Any) -> FetchedMention:
    # A tombstone: VK names the comment, the post and who deleted it (maybe a moderator), not
    # the author, text or time, which ingest already holds from the comment itself.
    post = f"{comment.owner_id}_{comment.post_id}"
    return FetchedMention(
        network=NETWORK,
        external_id=_comment_id(comment.owner_id, comment.post_id, comment.id),
        kind="comment",
        text="",
        created_at=datetime.now(UTC),
        author=FetchedAuthor(id="unknown", handle="unknown"),
        root_external_id=post,
        url=f"https://vk.com/wall{post}",
        deleted=True,
        raw=raw if isinstance(raw, dict) else {},
    )


def _comment_id(owner_id: int, post_id: int, comment_id: int) -> str:
    # Everything wall.createComment needs to answer it: the wall, the post and the comment.
    return f"{owner_id}_{post_id}_{comment_id}"


def _bare_author(vk_id: int) -> FetchedAuthor:
    # Negative ids are communities; VK's own addresses for ids are id<N> and club<N>.
    handle = f"club{-vk_id}" if vk_id < 0 else f"id{vk_id}"
    return FetchedAuthor(id=str(vk_id), handle=handle)


def _authors(result: dict[str, Any]) -> dict[int, FetchedAuthor]:
    """Authors from an extended answer's `profiles` and `groups`, by signed VK id."""
    out: dict[int, FetchedAuthor] = {}
    for raw in result.get("profiles") or []:
        try:
            profile = _Profile.model_validate(raw)
        except ValidationError:
            continue  # the post keeps a bare author
        out[profile.id] = FetchedAuthor(
            id=str(profile.id),
            handle=profile.screen_name or f"id{profile.id}",
            display_name=f"{profile.first_name} {profile.last_name}".strip() or None,
            followers=profile.followers_count,
            verified=bool(profile.verified) if profile.verified is not None else None,
        )
    for raw in result.get("groups") or []:
        try:
            group = _Group.model_validate(raw)
        except ValidationError:
            continue
        out[-group.id] = FetchedAuthor(
            id=str(-group.id),
            handle=group.screen_name or f"club{group.id}",
            display_name=group.name or None,
            followers=group.members_count,
            verified=bool(group.verified) if group.verified is not None else None,
        )
    return out


def _media(attachments: list[Any]) -> tuple[Media, ...]:
    out: list[Media] = []
    for attachment in attachments:
        if not isinstance(attachment, dict):
            continue
        kind = attachment.get("type")
        body = attachment.get(kind) if isinstance(kind, str) else None
        if not isinstance(body, dict):
            continue
        if kind == "photo":
            sizes = [s for s in body.get("sizes") or [] if isinstance(s, dict) and s.get("url")]
            if sizes:
                out.append(Media("image", str(max(sizes, key=_area)["url"])))
        elif kind == "video" and "owner_id" in body and "id" in body:
            out.append(Media("video", f"https://vk.com/video{body['owner_id']}_{body['id']}"))
        elif kind == "link" and body.get("url"):
            out.append(Media("link", str(body["url"])))
        elif kind == "doc" and body.get("url"):
            out.append(Media("gif" if body.get("ext") == "gif" else "other", str(body["url"])))
    return tuple(out)


def _area(size: dict[str, Any]) -> int:
    width, height = size.get("width"), size.get("height")
    return width * height if isinstance(width, int) and isinstance(height, int) else 0


# --- calling the API ---------------------------------------------------------------------------


async def _call(
    client: httpx.AsyncClient, config: VkConfig, method: str, form: dict[str, str]
) -> dict[str, Any]:
    """POST one API method and return its `response`, mapping VK's errors."""
    url = f"{config.api_base.rstrip('/')}/{method}"
    try:
        response = await client.post(url, data=form)
    except httpx.TransportError as exc:
        raise TransientError(f"vk: {method} failed ({type(exc).__name__})") from None
    raise_for_status(response, NETWORK)
    body = _json_object(response.content)
    if body is None:
        raise TransientError(f"vk: {method} answered something that is not a JSON object")
    error = body.get("error")
    if isinstance(error, dict):
        _raise_api_error(method, error)
    result = body.get("response")
    if not isinstance(result, dict):
        raise BadConfig(f"vk: {method} answered without a response object")
    return result


async def _comment_level(
    client: httpx.AsyncClient,
    config: VkConfig,
    form: dict[str, str],
    page_size: int,
    *,
    newer_than: int | None,
) -> tuple[list[Any], dict[int, FetchedAuthor]]:
    """Every comment of one level (a post's, or one thread's with `comment_id`) and their authors.

    Pages continue from the last comment seen (`start_comment_id`, `offset=1`) rather than by a
    plain offset, so a comment deleted between two pages does not shift one past us. With
    `newer_than` (the level is read newest first) reading stops at the first id not newer.
    """
    items: list[Any] = []
    authors: dict[int, FetchedAuthor] = {}
    anchors: set[int] = set()
    page_form = dict(form)
    while True:
        result = await _call(client, config, "wall.getComments", page_form)
        authors.update(_authors(result))
        page = result.get("items")
        page = page if isinstance(page, list) else []
        items += page
        ids = [i for i in (_int_or_none(c.get("id")) for c in page if isinstance(c, dict)) if i]
        if len(page) < page_size or not ids or ids[-1] in anchors:
            break
        if newer_than is not None and min(ids) <= newer_than:
            break
        anchors.add(ids[-1])
        page_form = {**form, "start_comment_id": str(ids[-1]), "offset": "1"}
    return items, authors


def _post_key(post_external_id: str) -> tuple[int, int]:
    """`<owner_id>_<post_id>`, as posts are identified everywhere in this connector."""
    match = _POST_KEY.fullmatch(post_external_id)
    if match is None:
        raise BadConfig(f"vk: {post_external_id!r} is not a wall post id (<owner>_<post>)")
    return int(match["owner"]), int(match["post"])


def _raise_api_error(method: str, error: dict[str, Any]) -> NoReturn:
    """VK reports errors in a 200 answer: https://dev.vk.com/ru/reference/errors"""
    code = error.get("error_code")
    detail = f"vk: {method}: error {code}: {error.get('error_msg', 'no message')}"
    if code == AUTH_FAILED:
        raise AuthFailed(f"{detail} (the access token was revoked or expired: reconnect)")
    if isinstance(code, int) and code in RATE_LIMIT_WAIT_S:
        raise RateLimited(detail, RATE_LIMIT_WAIT_S[code])
    if code == INTERNAL_ERROR:
        raise TransientError(detail)
    raise BadConfig(detail)


def _check_secret(expected: str, given: Any) -> None:
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        raise SignatureInvalid("vk: the event's secret key is missing or wrong")


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_list(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}"
