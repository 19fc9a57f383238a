"""A local web server publishing RSS 2.0 and Atom feeds from fixture files, with ETag and
Last-Modified validators and `304 Not Modified` answers (RFC 9110 conditional requests); tests add
entries, force error statuses, or make it ignore validators like a server without caching."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from fastapi import FastAPI, Request, Response

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rss"
CONTENT_TYPES = {
    ".xml": "application/xml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
# Each change of a feed moves its Last-Modified a minute on from here: HTTP dates have whole
# seconds only, so wall-clock times of changes made within one second would compare equal.
EPOCH = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class SeenRequest:
    path: str
    headers: dict[str, str]
    status: int


@dataclass
class Feed:
    body: str
    content_type: str
    version: int = 1

    @property
    def etag(self) -> str:
        return f'"v{self.version}"'

    @property
    def last_modified(self) -> datetime:
        return EPOCH + timedelta(minutes=self.version)


@dataclass
class FakeFeeds:
    """Feeds by name (`/feeds/<file name>`), and what the server was asked."""

    feeds: dict[str, Feed] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)  # name -> forced answer status
    conditional: bool = True  # False: always 200 with the full body
    requests: list[SeenRequest] = field(default_factory=list)

    @classmethod
    def with_fixtures(cls) -> FakeFeeds:
        fake = cls()
        for path in FIXTURES.iterdir():
            if path.suffix in CONTENT_TYPES:
                fake.feeds[path.name] = Feed(path.read_text(), CONTENT_TYPES[path.suffix])
        return fake

    def add_entry(self, name: str, fragment: str) -> None:
        """Publish a new `<item>`/`<entry>` at the top of a feed, as sites put the newest first."""
        feed = self.feeds[name]
        for marker in ("<item>", "<item ", "<entry>", "<entry "):
            at = feed.body.find(marker)
            if at >= 0:
                break
        else:
            at = max(feed.body.rfind("</channel>"), feed.body.rfind("</feed>"))
        feed.body = feed.body[:at] + fragment + "\n" + feed.body[at:]
        feed.version += 1

    def _not_modified(self, request: Request, feed: Feed) -> bool:
        if not self.conditional:
            return False
        # If-None-Match wins over If-Modified-Since when both are sent (RFC 9110, 13.2.2).
        tags = request.headers.get("if-none-match")
        if tags is not None:
            return feed.etag in [t.strip() for t in tags.split(",")] or tags.strip() == "*"
        since = request.headers.get("if-modified-since")
        if since is not None:
            try:
                return feed.last_modified <= parsedate_to_datetime(since)
            except (TypeError, ValueError):
                return False
        return False

    @property
    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/feeds/{name}")
        async def feed(name: str, request: Request) -> Response:
            response = self._answer(name, request)
            self.requests.append(
                SeenRequest(request.url.path, dict(request.headers), response.status_code)
            )
            return response

        return app

    def _answer(self, name: str, request: Request) -> Response:
        if name in self.status:
            return Response(f"status {self.status[name]}", status_code=self.status[name])
        feed = self.feeds.get(name)
        if feed is None:
            return Response("<html><body>Not Found</body></html>", status_code=404)
        validators = {
            "ETag": feed.etag,
            "Last-Modified": format_datetime(feed.last_modified, usegmt=True),
        }
        if self._not_modified(request, feed):
            return Response(status_code=304, headers=validators)
        return Response(
            feed.body.encode(),
            media_type=feed.content_type,
            headers=validators if self.conditional else {},
        )
