"""Bulk scheduling by spreadsheet: reading a posts CSV into checked rows with per-row errors, and
writing posts back out in the same columns, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "COLUMNS",
    "ImportedPost",
    "RowError",
    "export_posts_csv",
    "parse_posts_csv",
]

COLUMNS = (
    "channel_id",
    "scheduled_at_local",
    "text",
    "link",
    "media_urls",
    "tags",
    "notes",
)
_REQUIRED_COLUMNS = ("channel_id", "scheduled_at_local")
_TIME_FORMAT = "%Y-%m-%d %H:%M"
_SCHEDULED_AT = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{1,2}):(\d{2})")

# OWASP "CSV Injection": a spreadsheet runs a cell starting with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class ImportedPost:
    """One row of a posts CSV. `scheduled_at_local` is a naive wall-clock time in the brand's
    zone: the caller converts it (`schedule.to_utc`) and checks the text against the channel's
    network (`validation.validate`), which this module cannot know."""

    channel_id: str
    scheduled_at_local: datetime
    text: str = ""
    link: str | None = None
    media_urls: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class RowError:
    """A problem with one row (or the header, row 1), numbered as a spreadsheet shows it.
    `column` is None when the problem is the row or the file as a whole. A warning (an unknown
    column that is ignored) does not make the file unacceptable; an error does."""

    row_number: int
    column: str | None
    message: str
    severity: Severity = "error"


def parse_posts_csv(
    data: bytes | str, max_rows: int = 5000
) -> tuple[list[ImportedPost], list[RowError]]:
    """The valid rows of a posts CSV and every problem found, warnings included.

    UTF-8 with or without a BOM; the first row is the header (names case-insensitive, in any
    order, unknown ones ignored with a warning). Rows are numbered as a spreadsheet does: the
    header is row 1. No partial import is decided here: the API refuses the whole file when any
    problem has severity "error", so a user fixes the file and uploads it again. Reading stops
    after `max_rows` data rows.
    """
    problems: list[RowError] = []
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return [], [
                RowError(
                    1,
                    None,
                    f"the file is not UTF-8 (byte {exc.start}); save it as 'CSV UTF-8' and retry",
                )
            ]
    else:
        text = data.removeprefix("\ufeff")

    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            return [], [RowError(1, None, "the file is empty: a header row is required")]
        positions = _read_header(header, problems)
        if positions is None:
            return [], problems

        posts: list[ImportedPost] = []
        for row_number, row in enumerate(reader, start=2):
            if row_number - 1 > max_rows:
                problems.append(
                    RowError(
                        row_number,
                        None,
                        f"the file has more than {max_rows} rows; split it into smaller files",
                    )
                )
                break
            if not any(cell.strip() for cell in row):
                continue  # blank lines and rows of empty cells that spreadsheets leave behind
            post = _read_row(row_number, row, positions, len(header), problems)
            if post is not None:
                posts.append(post)
    except csv.Error as exc:
        # A NUL byte, an unterminated quote at the end, a cell over the csv module's size limit.
        problems.append(RowError(reader.line_num, None, f"the file is not valid CSV: {exc}"))
        return [], problems
    return posts, problems


def export_posts_csv(rows: Iterable[ImportedPost], *, bom: bool = True) -> str:
    """The posts as CSV in `COLUMNS` order, which `parse_posts_csv` reads back unchanged.

    A cell that a spreadsheet would run as a formula gets a leading `'` (import removes it). The
    BOM makes Excel read the file as UTF-8 rather than the locale's code page.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for post in rows:
        cells = (
            post.channel_id,
            post.scheduled_at_local.strftime(_TIME_FORMAT),
            post.text,
            post.link or "",
            " ".join(url.replace(" ", "%20") for url in post.media_urls),
            ",".join(post.tags),
            post.notes or "",
        )
        writer.writerow([_defuse(cell) for cell in cells])
    return ("\ufeff" if bom else "") + out.getvalue()


def _defuse(cell: str) -> str:
    # Also prefix cells whose formula start is already behind quotes, so that import removing one
    # quote gives back exactly what was exported.
    return "'" + cell if cell.lstrip("'").startswith(_FORMULA_STARTS) else cell


def _restore(cell: str) -> str:
    if cell.startswith("'") and cell.lstrip("'").startswith(_FORMULA_STARTS):
        return cell[1:]
    return cell


def _read_header(header: list[str], problems: list[RowError]) -> dict[str, int] | None:
    positions: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = raw.strip().lower()
        if not name:
            continue
        if name in positions:
            problems.append(RowError(1, name, f"column {name!r} appears twice"))
        elif name in COLUMNS:
            positions[name] = index
        else:
            problems.append(
                RowError(1, raw.strip(), f"unknown column {raw.strip()!r} ignored", "warning")
            )
    missing = [name for name in _REQUIRED_COLUMNS if name not in positions]
    if "text" not in positions and "media_urls" not in positions:
        missing.append("text or media_urls")
    if missing:
        # Without a usable header, warnings about its cells (often a data row) are only noise.
        problems[:] = [problem for problem in problems if problem.severity == "error"]
        hint = ""
        if len(header) == 1 and ";" in header[0]:
            hint = " (the file seems to use ';' between cells: export it with commas)"
        problems.append(RowError(1, None, f"the header row lacks {', '.join(missing)}{hint}"))
    if any(problem.severity == "error" for problem in problems):
        return None
    return positions


def _read_row(
    row_number: int,
    row: list[str],
    positions: dict[str, int],
    width: int,
    problems: list[RowError],
) -> ImportedPost | None:
    def cell(name: str) -> str:
        index = positions.get(name)
        return _restore(row[index]) if index is not None and index < len(row) else ""

    found: list[RowError] = []

    def error(column: str | None, message: str) -> None:
        found.append(RowError(row_number, column, message))

    if any(value.strip() for value in row[width:]):
        error(None, f"the row has {len(row)} cells but the header names only {width}")

    channel_id = cell("channel_id").strip()
    if not channel_id:
        error("channel_id", "channel_id is required")

    scheduled_at = _parse_scheduled_at(cell("scheduled_at_local"), error)

    text = cell("text")
    media_urls = tuple(cell("media_urls").split())
    if not text.strip() and not media_urls:
        error("text", "a post needs text or media_urls")
    for url in media_urls:
        if not _is_web_url(url):
            error("media_urls", f"{url!r} is not an http(s) URL")

    link = cell("link").strip() or None
    if link is not None and not _is_web_url(link):
        error("link", f"{link!r} is not an http(s) URL")

    tags = tuple(dict.fromkeys(tag.strip() for tag in cell("tags").split(",") if tag.strip()))
    notes = cell("notes").strip() or None

    problems.extend(found)
    if found or scheduled_at is None:
        return None
    return ImportedPost(
        channel_id=channel_id,
        scheduled_at_local=scheduled_at,
        text=text,
        link=link,
        media_urls=media_urls,
        tags=tags,
        notes=notes,
    )


def _parse_scheduled_at(value: str, error: Callable[[str | None, str], None]) -> datetime | None:
    value = value.strip()
    if not value:
        error("scheduled_at_local", "scheduled_at_local is required (YYYY-MM-DD HH:MM)")
        return None
    match = _SCHEDULED_AT.fullmatch(value)
    if match is None:
        error(
            "scheduled_at_local",
            f"{value!r} is not in the format YYYY-MM-DD HH:MM (for example 2025-03-14 09:30)",
        )
        return None
    year, month, day, hour, minute = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute)
    except ValueError as exc:
        error("scheduled_at_local", f"{value!r} is not a real date and time: {exc}")
        return None


def _is_web_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)
