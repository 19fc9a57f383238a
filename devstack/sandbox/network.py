"""The sandbox network's state: accounts and their tokens, statuses, mention notifications, and the
id-based paging Mastodon's timelines use. In memory only; one `Network` per sandbox process.

Every public method takes `lock` (re-entrant), so HTTP handlers and the traffic generator can share
one network; the generator holds it across a batch. Rendering to Mastodon's JSON entities lives in
`devstack.sandbox.entities`.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

Visibility = Literal["public", "unlisted", "private", "direct"]
VISIBILITIES: tuple[Visibility, ...] = ("public", "unlisted", "private", "direct")
MediaType = Literal["image", "gifv", "video", "audio", "unknown"]

MAX_STATUS_CHARS = 500  # Mastodon's default character limit
MAX_MEDIA = 4  # attachments per status
NOT_PROCESSED = "Cannot attach files that have not finished processing. Try again in a moment!"
IDEMPOTENCY_TTL_S = 3600.0  # Mastodon keeps Idempotency-Key for one hour
# Mastodon's username rule (local accounts): letters, digits, underscores.
USERNAME = re.compile(r"^[A-Za-z0-9_]{1,30}$")
MENTION = re.compile(r"(?<![\w@/])@([A-Za-z0-9_]+)(?:@([A-Za-z0-9.-]+\.[A-Za-z]+))?")
# A hashtag needs one non-digit (Mastodon does not tag "#1").
HASHTAG = re.compile(r"(?<![\w#/&])#(\w*[^\W\d]\w*)")


class NetworkError(Exception):
    """A request the network refuses; `status` and the message become Mastodon's JSON error."""

    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(NetworkError):
    status = 404

    def __init__(self, message: str = "Record not found") -> None:
        super().__init__(message)


class Forbidden(NetworkError):
    status = 403

    def __init__(self, message: str = "This action is not allowed") -> None:
        super().__init__(message)


class ValidationFailed(NetworkError):
    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(f"Validation failed: {message}")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True, eq=False)
class Account:
    id: int
    username: str
    display_name: str
    created_at: datetime
    followers_count: int = 0
    following_count: int = 0
    bot: bool = False
    note: str = ""
    language: str = "en"
    # Authors the traffic generator made up; they receive no notifications (nobody reads them).
    generated: bool = False
    rate_limit: int | None = None  # per-token budget per window; None = the sandbox default
    statuses_count: int = 0
    last_status_at: datetime | None = None


@dataclass(slots=True, frozen=True)
class MediaAttachment:
    id: int
    type: MediaType
    description: str | None = None


@dataclass(slots=True, eq=False)
class Status:
    id: int
    account: Account
    text: str
    created_at: datetime
    visibility: Visibility = "public"
    language: str | None = None
    in_reply_to_id: int | None = None
    in_reply_to_account_id: int | None = None
    spoiler_text: str = ""
    sensitive: bool = False
    mentions: tuple[Account, ...] = ()
    tags: tuple[str, ...] = ()  # lower-cased names, in order of first use
    media: tuple[MediaAttachment, ...] = ()
    favourites_count: int = 0
    reblogs_count: int = 0
    replies_count: int = 0
    edited_at: datetime | None = None
    application: str | None = None
    search_text: str = ""  # lower-cased text and spoiler, for search

    def visible_to(self, viewer: Account | None) -> bool:
        if self.visibility in ("public", "unlisted"):
            return True
        if viewer is None:
            return False
        return viewer is self.account or any(m is viewer for m in self.mentions)


@dataclass(slots=True, frozen=True)
class Notification:
    id: int
    type: str
    recipient_id: int
    from_account: Account
    status_id: int | None
    created_at: datetime


@dataclass(slots=True)
class AccountStats:
    """What the sandbox noticed about one registered account's writes (for exactly-once tests)."""

    idempotent_replays: int = 0
    duplicate_texts: int = 0
    # Statuses created with a key that had already created another status (after it expired).
    duplicates_by_idempotency_key: int = 0
    texts: dict[tuple[str, int | None], int] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    """Bounds of one id-paginated request, as Mastodon reads them."""

    limit: int
    max_id: int | None = None
    since_id: int | None = None
    min_id: int | None = None


class SnowflakeIds:
    """Mastodon-style ids: milliseconds since the epoch shifted left 16 bits plus a sequence, so
    they sort by creation time and never repeat or go backwards."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        candidate = time.time_ns() // 1_000_000 << 16
        self._last = candidate if candidate > self._last else self._last + 1
        return self._last


def page_ids(ids: Sequence[int], page: Page, accept: Callable[[int], bool]) -> list[int]:
    """The ids of one page, newest first, from ascending `ids`, as Mastodon's `paginate_by_id`:
    `max_id` is an exclusive upper bound; `min_id` returns the page *immediately* above it (the
    oldest `limit` newer items), `since_id` the newest `limit` items above it."""
    hi = bisect_left(ids, page.max_id) if page.max_id is not None else len(ids)
    found: list[int] = []
    if page.limit <= 0:
        return found
    if page.min_id is not None:
        i = bisect_right(ids, page.min_id)
        while i < hi and len(found) < page.limit:
            if accept(ids[i]):
                found.append(ids[i])
            i += 1
        found.reverse()
        return found
    lo = bisect_right(ids, page.since_id) if page.since_id is not None else 0
    i = hi - 1
    while i >= lo and len(found) < page.limit:
        if accept(ids[i]):
            found.append(ids[i])
        i -= 1
    return found


def _trim(ids: list[int], below: int) -> None:
    del ids[: bisect_left(ids, below)]


class Network:
    """Accounts, tokens, statuses and notifications of the sandbox, with Mastodon's rules."""

    def __init__(self, *, max_statuses: int = 500_000) -> None:
        self.lock = threading.RLock()
        self.max_statuses = max_statuses
        self._ids = SnowflakeIds()
        self.accounts: dict[int, Account] = {}
        self._by_username: dict[str, Account] = {}
        self._tokens: dict[str, int] = {}
        self.statuses: dict[int, Status] = {}
        self._all: list[int] = []
        self._by_tag: dict[str, list[int]] = {}
        self._by_account: dict[int, list[int]] = {}
        self._replies: dict[int, list[int]] = {}
        self._notifications: dict[int, Notification] = {}
        self._inbox: dict[int, list[int]] = {}
        self._uploads: dict[int, tuple[int, MediaAttachment]] = {}  # unattached media -> owner
        self._processing: set[int] = set()  # uploads whose (pretend) transcoding is not done
        self._idempotency: dict[tuple[int, str], tuple[int, float]] = {}
        self._keys_ever: dict[tuple[int, str], int] = {}
        self._keys_since_sweep = 0
        self.account_stats: dict[int, AccountStats] = {}
        # Who favourited / reblogged each status and who follows each account: each counts once.
        self._favourited_by: dict[int, set[int]] = {}
        self._reblogged_by: dict[int, dict[int, int]] = {}  # status -> booster -> reblog id
        self._followers: dict[int, set[int]] = {}
        self.statuses_created = 0
        self.statuses_evicted = 0

    # --- accounts and tokens -------------------------------------------------------------------

    def create_account(
        self,
        username: str,
        *,
        display_name: str | None = None,
        followers_count: int = 0,
        following_count: int = 0,
        bot: bool = False,
        note: str = "",
        language: str = "en",
        generated: bool = False,
        rate_limit: int | None = None,
    ) -> Account:
        if not USERNAME.match(username):
            raise ValidationFailed("Username must contain only letters, numbers and underscores")
        with self.lock:
            if username.lower() in self._by_username:
                raise ValidationFailed("Username has already been taken")
            account = Account(
                id=self._ids.next(),
                username=username,
                display_name=display_name if display_name is not None else username,
                created_at=utcnow(),
                followers_count=followers_count,
                following_count=following_count,
                bot=bot,
                note=note,
                language=language,
                generated=generated,
                rate_limit=rate_limit,
            )
            self.accounts[account.id] = account
            self._by_username[username.lower()] = account
            self._by_account[account.id] = []
            if not generated:
                self._inbox[account.id] = []
                self.account_stats[account.id] = AccountStats()
            return account

    def account(self, account_id: int) -> Account:
        with self.lock:
            found = self.accounts.get(account_id)
            if found is None:
                raise NotFound()
            return found

    def account_by_username(self, username: str) -> Account | None:
        with self.lock:
            return self._by_username.get(username.lower())

    def issue_token(self, account_id: int) -> str:
        with self.lock:
            self.account(account_id)
            token = secrets.token_urlsafe(32)
            self._tokens[token] = account_id
            return token

    def revoke_tokens(self, account_id: int) -> int:
        """Revoke every token of the account; return how many there were."""
        with self.lock:
            self.account(account_id)
            revoked = [t for t, owner in self._tokens.items() if owner == account_id]
            for token in revoked:
                del self._tokens[token]
            return len(revoked)

    def account_for_token(self, token: str) -> Account | None:
        with self.lock:
            owner = self._tokens.get(token)
            return None if owner is None else self.accounts.get(owner)

    # --- media ---------------------------------------------------------------------------------

    def new_media(self, kind: MediaType, description: str | None = None) -> MediaAttachment:
        """A media attachment with a fresh id, to attach directly (generated traffic)."""
        with self.lock:
            return MediaAttachment(id=self._ids.next(), type=kind, description=description)

    def upload_media(
        self,
        account: Account,
        kind: MediaType,
        description: str | None = None,
        *,
        processing: bool = False,
    ) -> MediaAttachment:
        """An unattached upload of `account`, for `media_ids` of its next status; with
        `processing`, it cannot be attached until `uploaded_media` has seen it once."""
        with self.lock:
            media = self.new_media(kind, description)
            self._uploads[media.id] = (account.id, media)
            if processing:
                self._processing.add(media.id)
            return media

    def uploaded_media(self, account: Account, media_id: int) -> tuple[MediaAttachment, bool]:
        """One of `account`'s unattached uploads and whether it was still processing. Looking
        finishes the processing, so a client's poll sees "processing" once, then "done"."""
        with self.lock:
            owner, media = self._uploads.get(media_id, (None, None))
            if media is None or owner != account.id:
                raise NotFound()
            processing = media_id in self._processing
            self._processing.discard(media_id)
            return media, processing

    def _take_uploads(self, account: Account, media_ids: Sequence[int]) -> list[MediaAttachment]:
        if len(media_ids) > MAX_MEDIA:
            raise ValidationFailed(f"Media attachments cannot be more than {MAX_MEDIA}")
        missing = [str(i) for i in media_ids if self._uploads.get(i, (None,))[0] != account.id]
        if missing:
            # Mastodon's message for ids that are not this account's unattached uploads.
            raise NetworkError(f"Media attachment(s) {', '.join(missing)} not found")
        if any(i in self._processing for i in media_ids):
            raise NetworkError(NOT_PROCESSED)
        return [self._uploads.pop(i)[1] for i in media_ids]

    # --- statuses ------------------------------------------------------------------------------

    def resolve_mentions(self, text: str) -> tuple[Account, ...]:
        """Local accounts @mentioned in `text` (remote or unknown handles stay plain text)."""
        found: list[Account] = []
        for match in MENTION.finditer(text):
            if match.group(2) is not None:
                continue
            account = self._by_username.get(match.group(1).lower())
            if account is not None and account not in found:
                found.append(account)
        return tuple(found)

    @staticmethod
    def parse_tags(text: str) -> tuple[str, ...]:
        tags: list[str] = []
        for match in HASHTAG.finditer(text):
            name = match.group(1).lower()
            if name not in tags:
                tags.append(name)
        return tuple(tags)

    def create_status(
        self,
        account: Account,
        text: str,
        *,
        visibility: Visibility = "public",
        in_reply_to_id: int | None = None,
        spoiler_text: str = "",
        sensitive: bool = False,
        language: str | None = None,
        media: Sequence[MediaAttachment] = (),
        media_ids: Sequence[int] = (),
        idempotency_key: str | None = None,
        favourites_count: int = 0,
        reblogs_count: int = 0,
        application: str | None = None,
    ) -> tuple[Status, bool]:
        """Post a status; return it and whether it is an Idempotency-Key replay of an earlier one.

        A replay returns the status the key created within the last hour and changes nothing.
        """
        with self.lock:
            key = (account.id, idempotency_key) if idempotency_key else None
            if key is not None:
                earlier = self._idempotency.get(key)
                if earlier is not None and earlier[1] > time.monotonic():
                    stats = self.account_stats.get(account.id)
                    if stats is not None:
                        stats.idempotent_replays += 1
                    replayed = self.statuses.get(earlier[0])
                    if replayed is None:  # deleted since: Mastodon's lookup fails the same way
                        raise NotFound()
                    return replayed, True
            if not text.strip() and not media and not media_ids:
                raise ValidationFailed("Text can't be blank")
            if len(text) + len(spoiler_text) > MAX_STATUS_CHARS:
                raise ValidationFailed(f"Text character limit of {MAX_STATUS_CHARS} exceeded")
            parent: Status | None = None
            if in_reply_to_id is not None:
                parent = self.statuses.get(in_reply_to_id)
                if parent is None or not parent.visible_to(account):
                    raise NotFound("The post you are trying to reply to does not appear to exist.")
            attached = (*media, *self._take_uploads(account, media_ids))
            status = Status(
                id=self._ids.next(),
                account=account,
                text=text,
                created_at=utcnow(),
                visibility=visibility,
                language=language,
                in_reply_to_id=parent.id if parent else None,
                in_reply_to_account_id=parent.account.id if parent else None,
                spoiler_text=spoiler_text,
                sensitive=sensitive,
                mentions=self.resolve_mentions(text),
                tags=self.parse_tags(text),
                media=attached,
                favourites_count=favourites_count,
                reblogs_count=reblogs_count,
                application=application,
                search_text=f"{spoiler_text}\n{text}".lower(),
            )
            self._store(status, parent)
            if key is not None:
                self._remember_key(key, status)
            return status, False

    def _store(self, status: Status, parent: Status | None) -> None:
        self.statuses[status.id] = status
        self._all.append(status.id)
        self._by_account[status.account.id].append(status.id)
        if status.visibility == "public":  # tag timelines show public statuses only
            for tag in status.tags:
                self._by_tag.setdefault(tag, []).append(status.id)
        if parent is not None:
            parent.replies_count += 1
            self._replies.setdefault(parent.id, []).append(status.id)
        account = status.account
        account.statuses_count += 1
        account.last_status_at = status.created_at
        self.statuses_created += 1
        for mentioned in status.mentions:
            if mentioned is not account and not mentioned.generated:
                self._notify(mentioned, "mention", account, status)
        stats = self.account_stats.get(account.id)
        if stats is not None:
            signature = (status.text, status.in_reply_to_id)
            seen = stats.texts.get(signature, 0)
            if seen:
                stats.duplicate_texts += 1
            stats.texts[signature] = seen + 1
        if len(self.statuses) > self.max_statuses:
            self._evict_oldest(max(1, self.max_statuses // 10))

    def _remember_key(self, key: tuple[int, str], status: Status) -> None:
        now = time.monotonic()
        if key in self._keys_ever and key[0] in self.account_stats:
            self.account_stats[key[0]].duplicates_by_idempotency_key += 1
        self._keys_ever[key] = status.id
        self._idempotency[key] = (status.id, now + IDEMPOTENCY_TTL_S)
        self._keys_since_sweep += 1
        if self._keys_since_sweep >= 4096:
            self._keys_since_sweep = 0
            expired = [k for k, (_, until) in self._idempotency.items() if until <= now]
            for k in expired:
                del self._idempotency[k]

    def _notify(self, recipient: Account, kind: str, sender: Account, status: Status) -> None:
        notification = Notification(
            id=self._ids.next(),
            type=kind,
            recipient_id=recipient.id,
            from_account=sender,
            status_id=status.id,
            created_at=status.created_at,
        )
        self._notifications[notification.id] = notification
        self._inbox[recipient.id].append(notification.id)

    def _evict_oldest(self, count: int) -> None:
        """Forget the oldest statuses (and what points at them) to bound memory under load."""
        doomed = self._all[:count]
        if not doomed:
            return
        cutoff = doomed[-1] + 1
        for status_id in doomed:
            status = self.statuses.pop(status_id, None)
            if status is not None:
                self.statuses_evicted += 1
            self._replies.pop(status_id, None)
        del self._all[:count]
        for ids in (*self._by_tag.values(), *self._by_account.values()):
            _trim(ids, cutoff)
        for inbox in self._inbox.values():
            for notification_id in inbox[: bisect_left(inbox, cutoff)]:
                self._notifications.pop(notification_id, None)
            _trim(inbox, cutoff)

    def status(self, status_id: int, viewer: Account | None) -> Status:
        with self.lock:
            found = self.statuses.get(status_id)
            if found is None or not found.visible_to(viewer):
                raise NotFound()
            return found

    def delete_status(self, status_id: int, viewer: Account) -> Status:
        with self.lock:
            found = self.status(status_id, viewer)
            if found.account is not viewer:
                raise Forbidden()
            del self.statuses[status_id]
            found.account.statuses_count -= 1
            if found.in_reply_to_id is not None:
                parent = self.statuses.get(found.in_reply_to_id)
                if parent is not None:
                    parent.replies_count -= 1
            return found

    # --- interactions: favourites, reblogs, follows ---------------------------------------------

    def favourite(self, status_id: int, account: Account) -> Status:
        """`account` favourites the status (again: nothing changes), as Mastodon counts it."""
        with self.lock:
            status = self.status(status_id, account)
            fans = self._favourited_by.setdefault(status_id, set())
            if account.id not in fans:
                fans.add(account.id)
                status.favourites_count += 1
                self._notify_interaction("favourite", account, status)
            return status

    def reblog(self, status_id: int, account: Account) -> tuple[int, Status]:
        """`account` boosts the status; the reblog's id and the original. Boosting twice returns
        the first reblog. Only public and unlisted statuses can be boosted."""
        with self.lock:
            status = self.status(status_id, account)
            if status.visibility not in ("public", "unlisted"):
                raise Forbidden()
            boosters = self._reblogged_by.setdefault(status_id, {})
            if account.id not in boosters:
                boosters[account.id] = self._ids.next()
                status.reblogs_count += 1
                self._notify_interaction("reblog", account, status)
            return boosters[account.id], status

    def follow(self, account_id: int, follower: Account) -> Account:
        """`follower` follows the account (again: nothing changes); its followers_count grows."""
        with self.lock:
            followed = self.account(account_id)
            if followed is follower:
                raise Forbidden()
            followers = self._followers.setdefault(account_id, set())
            if follower.id not in followers:
                followers.add(follower.id)
                followed.followers_count += 1
                follower.following_count += 1
            return followed

    def _notify_interaction(self, kind: str, sender: Account, status: Status) -> None:
        author = status.account
        if author is not sender and not author.generated:
            self._notify(author, kind, sender, status)

    def context(self, status_id: int, viewer: Account | None) -> tuple[list[Status], list[Status]]:
        """Ancestors (root first) and descendants (depth first, oldest branch first)."""
        with self.lock:
            status = self.status(status_id, viewer)
            ancestors: list[Status] = []
            parent_id = status.in_reply_to_id
            while parent_id is not None:
                parent = self.statuses.get(parent_id)
                if parent is None:
                    break
                if parent.visible_to(viewer):
                    ancestors.append(parent)
                parent_id = parent.in_reply_to_id
            ancestors.reverse()
            descendants: list[Status] = []
            stack = list(reversed(self._replies.get(status.id, [])))
            while stack:
                child = self.statuses.get(stack.pop())
                if child is None:
                    continue
                if child.visible_to(viewer):
                    descendants.append(child)
                stack.extend(reversed(self._replies.get(child.id, [])))
            return ancestors, descendants

    # --- listings ------------------------------------------------------------------------------

    def notifications(
        self,
        recipient: Account,
        page: Page,
        *,
        types: Sequence[str] = (),
        exclude_types: Sequence[str] = (),
    ) -> list[tuple[Notification, Status | None]]:
        with self.lock:
            inbox = self._inbox.get(recipient.id, [])

            def accept(notification_id: int) -> bool:
                n = self._notifications.get(notification_id)
                if n is None or (types and n.type not in types) or n.type in exclude_types:
                    return False
                # Mastodon deletes a mention's notification with its status.
                return n.status_id is None or n.status_id in self.statuses

            found = [self._notifications[i] for i in page_ids(inbox, page, accept)]
            return [(n, self.statuses.get(n.status_id) if n.status_id else None) for n in found]

    def tag_timeline(self, tag: str, page: Page, *, only_media: bool = False) -> list[Status]:
        with self.lock:
            ids = self._by_tag.get(tag.lower().lstrip("#"), [])

            def accept(status_id: int) -> bool:
                status = self.statuses.get(status_id)
                return status is not None and (not only_media or bool(status.media))

            return [self.statuses[i] for i in page_ids(ids, page, accept)]

    def search_statuses(
        self,
        query: str,
        page: Page,
        viewer: Account | None,
        *,
        author_id: int | None = None,
        offset: int = 0,
    ) -> list[Status]:
        """Statuses containing every word of `query` (case-insensitive), newest first."""
        terms = query.lower().split()
        if not terms:
            return []
        with self.lock:
            ids = self._by_account.get(author_id, []) if author_id is not None else self._all
            skip = offset

            def accept(status_id: int) -> bool:
                nonlocal skip
                status = self.statuses.get(status_id)
                if status is None or not status.visible_to(viewer):
                    return False
                if not all(term in status.search_text for term in terms):
                    return False
                if skip > 0:
                    skip -= 1
                    return False
                return True

            return [self.statuses[i] for i in page_ids(ids, page, accept)]

    def search_accounts(self, query: str, limit: int) -> list[Account]:
        needle = query.lower().lstrip("@")
        with self.lock:
            found = [
                a
                for a in self.accounts.values()
                if needle in a.username.lower() or needle in a.display_name.lower()
            ]
            return found[:limit]

    def search_tags(self, query: str, limit: int) -> list[str]:
        needle = query.lower().lstrip("#")
        with self.lock:
            return [tag for tag in self._by_tag if needle in tag][:limit]

    def statuses_of(self, account: Account, limit: int | None = None) -> list[Status]:
        """All of an account's statuses that exist, newest first."""
        with self.lock:
            ids = self._by_account.get(account.id, [])
            found: list[Status] = []
            for status_id in reversed(ids):
                status = self.statuses.get(status_id)
                if status is not None:
                    found.append(status)
                    if limit is not None and len(found) >= limit:
                        break
            return found

    def stats(self) -> dict[str, object]:
        with self.lock:
            registered = {
                str(account_id): {
                    "username": self.accounts[account_id].username,
                    "statuses": self.accounts[account_id].statuses_count,
                    "idempotent_replays": stats.idempotent_replays,
                    "duplicate_texts": stats.duplicate_texts,
                    "duplicates_by_idempotency_key": stats.duplicates_by_idempotency_key,
                    "notifications": len(self._inbox.get(account_id, [])),
                }
                for account_id, stats in self.account_stats.items()
            }
            return {
                "accounts": registered,
                "accounts_total": len(self.accounts),
                "statuses_total": len(self.statuses),
                "statuses_created": self.statuses_created,
                "statuses_evicted": self.statuses_evicted,
                "notifications_total": len(self._notifications),
                "idempotent_replays": sum(
                    s.idempotent_replays for s in self.account_stats.values()
                ),
                "duplicates_by_idempotency_key": sum(
                    s.duplicates_by_idempotency_key for s in self.account_stats.values()
                ),
                "duplicate_texts": sum(s.duplicate_texts for s in self.account_stats.values()),
            }
