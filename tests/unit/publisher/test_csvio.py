"""Posts CSV: a spreadsheet's file is read with an error per bad cell, an export reads back
unchanged, and exported cells never run as formulas when opened."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest

from services.publisher.csvio import (
    COLUMNS,
    ImportedPost,
    RowError,
    export_posts_csv,
    parse_posts_csv,
)

HEADER = ",".join(COLUMNS)
GREETING = "С Новым годом! 🎉"  # noqa: RUF001 - Cyrillic on purpose: a VK community's post


def errors(problems: list[RowError]) -> list[tuple[int, str | None]]:
    return [(p.row_number, p.column) for p in problems if p.severity == "error"]


def test_a_spreadsheet_file_becomes_scheduled_posts() -> None:
    data = (
        "Notes,TEXT,Channel_ID,scheduled_at_local,media_urls,tags,link,Campaign\r\n"
        'check stock,"Spring sale, 20% off!",ch-1,2025-03-14 09:30,'
        "https://cdn.example/a.jpg https://cdn.example/b.jpg,"
        '"spring, sale,spring",https://shop.example/sale,Q1\r\n'
        ",,ch-2,2025-03-15 18:05,https://cdn.example/c.mp4,,,\r\n"
    )
    posts, problems = parse_posts_csv(data)

    assert posts == [
        ImportedPost(
            channel_id="ch-1",
            scheduled_at_local=datetime(2025, 3, 14, 9, 30),
            text="Spring sale, 20% off!",
            link="https://shop.example/sale",
            media_urls=("https://cdn.example/a.jpg", "https://cdn.example/b.jpg"),
            tags=("spring", "sale"),
            notes="check stock",
        ),
        ImportedPost(
            channel_id="ch-2",
            scheduled_at_local=datetime(2025, 3, 15, 18, 5),
            media_urls=("https://cdn.example/c.mp4",),
        ),
    ]
    # The unknown column is only a warning: nothing stops the import.
    assert problems == [RowError(1, "Campaign", "unknown column 'Campaign' ignored", "warning")]


def test_utf8_with_a_bom_as_excel_saves_it() -> None:
    data = f"{HEADER}\nvk-7,2025-12-31 23:59,{GREETING},,,,\n".encode("utf-8-sig")
    posts, problems = parse_posts_csv(data)
    assert problems == []
    assert [(p.channel_id, p.text) for p in posts] == [("vk-7", GREETING)]


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        ("ch-1,2025-03-14 09:30,,,,,", "text", "needs text or media"),
        ("ch-1,2025-02-30 09:30,Hello,,,,", "scheduled_at_local", "not a real date"),
        ("ch-1,2025-03-14 25:00,Hello,,,,", "scheduled_at_local", "not a real date"),
        ("ch-1,14/03/2025 09:30,Hello,,,,", "scheduled_at_local", "YYYY-MM-DD HH:MM"),
        ("ch-1,2025-03-14 9:30am,Hello,,,,", "scheduled_at_local", "YYYY-MM-DD HH:MM"),
        ("ch-1,,Hello,,,,", "scheduled_at_local", "required"),
        (",2025-03-14 09:30,Hello,,,,", "channel_id", "required"),
        ("ch-1,2025-03-14 09:30,Hello,javascript:alert(1),,,", "link", "http(s) URL"),
        ("ch-1,2025-03-14 09:30,,,ftp://cdn.example/a.jpg,,", "media_urls", "http(s) URL"),
        ("ch-1,2025-03-14 09:30,Hello,,,,,stray", None, "header names only 7"),
    ],
)
def test_each_bad_row_is_reported_and_the_good_rows_kept(
    row: str, column: str | None, message: str
) -> None:
    data = f"{HEADER}\nok-1,2025-03-14 08:00,Fine,,,,\n{row}\nok-2,2025-03-14 10:00,Fine,,,,\n"
    posts, problems = parse_posts_csv(data)

    assert [p.channel_id for p in posts] == ["ok-1", "ok-2"]
    assert len(problems) == 1
    problem = problems[0]
    assert (problem.row_number, problem.column, problem.severity) == (3, column, "error")
    assert message in problem.message


def test_rows_are_numbered_as_the_spreadsheet_shows_them() -> None:
    # A multi-line cell is one spreadsheet row; a blank line is a row too.
    data = f'{HEADER}\nch-1,2025-03-14 09:00,"two\nlines",,,,\n\nch-1,bad,x,,,,\n'
    posts, problems = parse_posts_csv(data)
    assert posts[0].text == "two\nlines"
    assert errors(problems) == [(4, "scheduled_at_local")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "header row is required"),
        (b"\xef\xbb\xbf\r\n", "header row is required"),
        (b"channel_id,text\nch-1,hi\n", "lacks scheduled_at_local"),
        (b"channel_id;scheduled_at_local;text\n", "';'"),
        (b"ch-1,2025-03-14 09:00,Hello\n", "lacks channel_id, scheduled_at_local"),
        (b"channel_id,scheduled_at_local,text\nch-1,2025-03-14 09:00,caf\xe9\n", "not UTF-8"),
    ],
)
def test_a_file_without_a_usable_header_is_refused_whole(data: bytes, message: str) -> None:
    posts, problems = parse_posts_csv(data)
    assert posts == []
    assert [p.severity for p in problems] == ["error"]
    assert message in problems[0].message


def test_a_file_over_max_rows_is_refused() -> None:
    rows = "".join(f"ch-1,2025-03-14 09:{minute:02d},Post {minute},,,,\n" for minute in range(4))
    posts, problems = parse_posts_csv(f"{HEADER}\n{rows}", max_rows=3)
    assert len(posts) == 3
    assert errors(problems) == [(5, None)]
    assert "more than 3 rows" in problems[0].message

    posts, problems = parse_posts_csv(f"{HEADER}\n{rows}", max_rows=4)
    assert (len(posts), problems) == (4, [])


ROUND_TRIP = [
    ImportedPost(
        channel_id="mastodon-1",
        scheduled_at_local=datetime(2025, 3, 14, 9, 30),
        text='Spring sale, "20% off"\nall week',
        link="https://shop.example/sale?utm_source=csv&x=1",
        media_urls=("https://cdn.example/a.jpg", "https://cdn.example/b.jpg"),
        tags=("spring", "sale"),
        notes="approved by Ana",
    ),
    ImportedPost(
        channel_id="bsky-2",
        scheduled_at_local=datetime(2025, 10, 26, 2, 30),
        text='=HYPERLINK("https://evil.example","click")',
        notes="-20% for members",
    ),
    ImportedPost(
        channel_id="tg-3",
        scheduled_at_local=datetime(2026, 1, 1, 0, 0),
        text="@brand thanks! 🙌",
        tags=("+1",),
    ),
    ImportedPost(
        channel_id="vk-4",
        scheduled_at_local=datetime(2026, 1, 2, 12, 0),
        text="'=already quoted by the author",
        notes="'Tis the season",
    ),
    ImportedPost(
        channel_id="ig-5",
        scheduled_at_local=datetime(2026, 1, 3, 7, 5),
        text="\tindented",
        media_urls=("https://cdn.example/only.jpg",),
    ),
]


def test_an_export_imports_back_unchanged() -> None:
    exported = export_posts_csv(ROUND_TRIP)
    assert exported.startswith("\ufeff" + HEADER + "\r\n")

    posts, problems = parse_posts_csv(exported.encode("utf-8"))
    assert problems == []
    assert posts == ROUND_TRIP


def test_exported_cells_never_start_a_formula() -> None:
    exported = export_posts_csv(ROUND_TRIP, bom=False)
    rows = list(csv.reader(io.StringIO(exported, newline="")))
    cells = {cell for row in rows[1:] for cell in row}

    assert '\'=HYPERLINK("https://evil.example","click")' in cells
    assert "'-20% for members" in cells
    assert "'@brand thanks! 🙌" in cells
    assert "'+1" in cells
    assert "''=already quoted by the author" in cells
    assert "'\tindented" in cells
    # Harmless cells are left alone.
    assert "'Tis the season" in cells
    assert "approved by Ana" in cells
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
