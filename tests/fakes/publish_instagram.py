"""A local Instagram Graph API for one professional account: media containers, their status and
`media_publish` (https://developers.facebook.com/docs/instagram-platform/content-publishing), the
account's media with cursor paging
(https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/media),
comment replies
(https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-comment/replies),
hiding a comment with `POST /{ig-comment-id}` and `hide`
(https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-comment)
and Graph errors (https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/error-codes)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

GraphError = tuple[int, int, int | None, str, dict[str, str]]


@dataclass
class InstagramFaults:
    """What the next writes meet. `errors[edge]` ("media", "media_publish", "replies", and
    "comment" for a hide) are (HTTP status, code, subcode, message, extra headers) answered before
    anything is written;
    `broken_media` maps a media URL to the `status` its container ends in ERROR with;
    `in_progress_polls` is how many status reads answer IN_PROGRESS before FINISHED;
    `publish_delay_s` publishes, then holds the `media_publish` answer that long; `hide_delay_s`
    does the same with a hide."""

    errors: dict[str, list[GraphError]] = field(default_factory=dict)
    broken_media: dict[str, str] = field(default_factory=dict)
    in_progress_polls: int = 0
    publish_delay_s: float = 0.0
    hide_delay_s: float = 0.0


class FakeInstagramAccount:
    """One account (`ig_user_id`, `username`, reachable with `token`). Tests add posts and
    comments with `add_media` and `add_comment`, set `faults`, and read `containers`, `media`
    (published posts, by id), `comments` (a comment's `hidden` among its fields) and
    `hide_calls`."""

    def __init__(
        self, token: str, ig_user_id: str, username: str = "acme", version: str = "v21.0"
    ) -> None:
        self.token = token
        self.ig_user_id = ig_user_id
        self.username = username
        self.containers: dict[str, dict[str, Any]] = {}
        self.media: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, dict[str, Any]] = {}
        self.hide_calls = 0
        self.faults = InstagramFaults()
        self._ids = itertools.count(17_900_000_000_000_001)
        self.app = Starlette(
            routes=[
                Route(f"/{version}/{{object_id}}/{{edge}}", self._edge, methods=["GET", "POST"]),
                Route(f"/{version}/{{object_id}}", self._node, methods=["GET"]),
                Route(f"/{version}/{{object_id}}", self._update, methods=["POST"]),
            ]
        )

    def add_media(self, caption: str, created: datetime | None = None) -> dict[str, Any]:
        """A post already on the account."""
        media_id = str(next(self._ids))
        item = {
            "id": media_id,
            "caption": caption,
            "media_type": "IMAGE",
            "timestamp": _graph_time(created or datetime.now(UTC)),
            "permalink": f"https://www.instagram.com/p/C{media_id[-8:]}/",
        }
        self.media[media_id] = item
        return item

    def add_comment(
        self, text: str, username: str, parent: str, created: datetime | None = None
    ) -> dict[str, Any]:
        """A comment on a post (`parent` a media id) or a reply to a comment (a comment id)."""
        comment_id = str(next(self._ids))
        item = {
            "id": comment_id,
            "text": text,
            "username": username,
            "timestamp": _graph_time(created or datetime.now(UTC)),
            "parent": parent,
            "hidden": False,
        }
        self.comments[comment_id] = item
        return item

    def replies_to(self, comment_id: str) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["parent"] == comment_id]

    # --- routes ----------------------------------------------------------------------------------

    async def _edge(self, request: Request) -> Response:
        object_id, edge = request.path_params["object_id"], request.path_params["edge"]
        params = await self._params(request)
        if params is None:
            return _token_error()
        if request.method == "POST" and self.faults.errors.get(edge):
            status, code, subcode, message, headers = self.faults.errors[edge].pop(0)
            return _error(status, code, subcode, message, headers)
        owner = object_id == self.ig_user_id
        match request.method, edge:
            case "POST", "media" if owner:
                return self._create_container(params)
            case "POST", "media_publish" if owner:
                return await self._publish(params)
            case "GET", "media" if owner:
                return self._page(request, params, self._newest_media())
            case "POST", "replies" if object_id in self.comments:
                if not params.get("message", "").strip():
                    return _error(400, 100, None, "(#100) The parameter message is required")
                reply = self.add_comment(params["message"], self.username, object_id)
                return JSONResponse({"id": reply["id"]})
            case "GET", "replies" if object_id in self.comments:
                replies = sorted(self.replies_to(object_id), key=lambda c: c["timestamp"])
                return self._page(request, params, replies)
        return _error(400, 100, None, f"Unsupported {request.method} request. Object {object_id}")

    async def _node(self, request: Request) -> Response:
        object_id = request.path_params["object_id"]
        params = await self._params(request)
        if params is None:
            return _token_error()
        fields = params.get("fields", "id").split(",")
        if object_id == self.ig_user_id:
            node: dict[str, Any] = {"id": self.ig_user_id, "username": self.username}
        elif object_id in self.containers:
            node = self._poll(self.containers[object_id])
        elif object_id in self.media:
            node = self.media[object_id]
        else:
            return _error(400, 100, 33, f"Unsupported get request. Object {object_id}")
        return JSONResponse({k: v for k, v in node.items() if k in fields or k == "id"})

    async def _update(self, request: Request) -> Response:
        """`POST /{ig-comment-id}`: `hide=true` hides the comment, `false` shows it again; the
        answer is `{"success": true}` whatever the comment's state was."""
        object_id = request.path_params["object_id"]
        params = await self._params(request)
        if params is None:
            return _token_error()
        comment = self.comments.get(object_id)
        if comment is None:
            return _error(400, 100, 33, f"Unsupported post request. Object {object_id}")
        if self.faults.errors.get("comment"):
            status, code, subcode, message, headers = self.faults.errors["comment"].pop(0)
            return _error(status, code, subcode, message, headers)
        if params.get("hide") not in ("true", "false"):
            return _error(400, 100, None, "(#100) The parameter hide is required")
        self.hide_calls += 1
        comment["hidden"] = params["hide"] == "true"
        delay, self.faults.hide_delay_s = self.faults.hide_delay_s, 0.0
        if delay:
            await asyncio.sleep(delay)  # hidden already; the answer is what is late
        return JSONResponse({"success": True})

    async def _params(self, request: Request) -> dict[str, str] | None:
        """The request's query and form parameters; None when the token is not the account's."""
        form = dict(parse_qsl((await request.body()).decode())) if request.method == "POST" else {}
        params = {**dict(request.query_params), **form}
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        return params if (params.get("access_token") or bearer) == self.token else None

    # --- containers and publishing ---------------------------------------------------------------

    def _create_container(self, params: dict[str, str]) -> Response:
        media_type = params.get("media_type", "IMAGE")
        url = params.get("image_url") or params.get("video_url")
        children = [c for c in params.get("children", "").split(",") if c]
        if media_type == "CAROUSEL":
            if not 2 <= len(children) <= 10:
                return _error(400, 100, 2207023, "The carousel needs between 2 and 10 items")
            for child in children:
                item = self.containers.get(child)
                if item is None or not item["is_carousel_item"]:
                    return _error(400, 100, None, f"Invalid children parameter: {child}")
        elif not url or not url.startswith(("https://", "http://")):
            return _error(400, 9004, 2207052, "The media could not be fetched from this URI")
        container_id = str(next(self._ids))
        broken = self.faults.broken_media.get(url or "")
        self.containers[container_id] = {
            "id": container_id,
            "media_type": media_type,
            "url": url,
            "caption": params.get("caption"),
            "children": children,
            "is_carousel_item": params.get("is_carousel_item") == "true",
            "status_code": "ERROR" if broken else "IN_PROGRESS",
            "status": broken or "In Progress",
            "polls_left": self.faults.in_progress_polls,
        }
        return JSONResponse({"id": container_id})

    def _poll(self, container: dict[str, Any]) -> dict[str, Any]:
        if container["status_code"] == "IN_PROGRESS":
            if container["polls_left"] > 0:
                container["polls_left"] -= 1
            else:
                container["status_code"], container["status"] = "FINISHED", "Finished: Media Ready"
        return {k: container[k] for k in ("id", "status_code", "status")}

    async def _publish(self, params: dict[str, str]) -> Response:
        container = self.containers.get(params.get("creation_id", ""))
        if container is None or container["is_carousel_item"]:
            return _error(400, 100, None, "Invalid parameter creation_id")
        if container["status_code"] != "FINISHED":
            return _error(400, 9007, 2207027, "Media ID is not available")
        item = self.add_media(container["caption"] or "")
        item["media_type"] = {"CAROUSEL": "CAROUSEL_ALBUM", "REELS": "VIDEO"}.get(
            container["media_type"], "IMAGE"
        )
        item["children"] = [self.containers[c]["url"] for c in container["children"]]
        item["media_url"] = container["url"]
        container["status_code"], container["status"] = "PUBLISHED", "Published"
        delay, self.faults.publish_delay_s = self.faults.publish_delay_s, 0.0
        if delay:
            await asyncio.sleep(delay)  # published already; the answer is what is late
        return JSONResponse({"id": item["id"]})

    # --- reads -----------------------------------------------------------------------------------

    def _newest_media(self) -> list[dict[str, Any]]:
        return sorted(self.media.values(), key=lambda m: (m["timestamp"], m["id"]), reverse=True)

    def _page(
        self, request: Request, params: dict[str, str], items: list[dict[str, Any]]
    ) -> Response:
        offset = int(params.get("after", 0))
        limit = int(params.get("limit", 25))
        fields = params.get("fields", "id").split(",")
        page = [{k: v for k, v in i.items() if k in fields} for i in items[offset : offset + limit]]
        paging: dict[str, Any] = {
            "cursors": {"before": str(offset), "after": str(offset + len(page))}
        }
        if offset + limit < len(items):
            following = {k: v for k, v in params.items() if k != "access_token"}
            following["after"] = str(offset + limit)
            paging["next"] = f"{str(request.url).split('?')[0]}?{urlencode(following)}"
        return JSONResponse({"data": page, "paging": paging})


def _graph_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _token_error() -> Response:
    return _error(400, 190, 460, "Error validating access token: The session has been invalidated")


def _error(
    status: int,
    code: int,
    subcode: int | None,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    error = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "error_subcode": subcode,
        "is_transient": False,
        "fbtrace_id": "AbCdEfGh123",
    }
    return JSONResponse({"error": error}, status_code=status, headers=headers)
