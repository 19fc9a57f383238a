"""The client report: a brand's figures for a period with charts, as HTML (inline SVG) or PDF.
Charts are drawn by matplotlib's Agg backend (no display); the PDF is laid out by reportlab."""

from __future__ import annotations

import asyncio
import html
import io
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Flowable,
    Image,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from services.metrics.models import Audience, Series, Summary

Chart = tuple[str, Figure]


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2%}"


def _labels(series: Series) -> list[str]:
    fmt = "%d %b %H:%M" if series.bucket == "hour" else "%d %b %Y"
    return [p.start.strftime(fmt) for p in series.points]


def _lines(series: Series, title: str) -> Figure:
    fig = Figure(figsize=(7, 2.6), dpi=100)
    ax = fig.subplots()
    x = range(len(series.points))
    values = sorted({k for p in series.points for k in p.values}) or ["all"]
    for value in values:
        ax.plot(x, [p.values.get(value, 0) for p in series.points], label=value, marker=".")
    labels = _labels(series)
    every = max(1, len(labels) // 8)
    ax.set_xticks(list(x)[::every], labels[::every], rotation=30, ha="right", fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if len(values) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _audience(audience: Audience, title: str) -> Figure:
    fig = Figure(figsize=(7, 2.6), dpi=100)
    ax = fig.subplots()
    fmt = "%d %b %H:%M" if audience.bucket == "hour" else "%d %b %Y"
    for c in audience.channels:
        ax.plot(
            [p.start.timestamp() for p in c.points],
            [p.followers for p in c.points],
            label=f"{c.network} {str(c.channel_id)[:8]}",
            marker=".",
        )
    tz = ZoneInfo(audience.timezone)
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda x, _: datetime.fromtimestamp(x, tz).strftime(fmt))
    )
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if audience.channels:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _post_label(network: str | None, external_id: str | None, post_id: object) -> str:
    return f"{network or ''} {external_id or str(post_id)[:8]}"


def _bars(labels: Sequence[str], values: Sequence[float], title: str, unit: str = "") -> Figure:
    fig = Figure(figsize=(7, 2.6), dpi=100)
    ax = fig.subplots()
    ax.barh(list(labels)[::-1] or ["-"], list(values)[::-1] or [0], color="#3b6ea5")
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=7)
    if unit:
        ax.set_xlabel(unit, fontsize=7)
    fig.tight_layout()
    return fig


def charts(s: Summary) -> list[Chart]:
    r = s.responses.rows[0] if s.responses.rows else None
    return [
        ("Volume", _lines(s.mentions, "Mentions")),
        ("Sentiment", _lines(s.sentiment, "Mentions by sentiment")),
        (
            "Share of voice",
            _bars(
                [v.voice for v in s.share_of_voice.voices],
                [v.share * 100 for v in s.share_of_voice.voices],
                "Share of voice",
                "% of mentions",
            ),
        ),
        (
            "Response times",
            _bars(
                ["first: median", "first: p90", "next: median", "next: p90"],
                [
                    (x or 0.0) / 60
                    for x in (
                        r.first_response.median_s if r else None,
                        r.first_response.p90_s if r else None,
                        r.next_response.median_s if r else None,
                        r.next_response.p90_s if r else None,
                    )
                ],
                "Response times",
                "minutes",
            ),
        ),
        (
            "Top posts",
            _bars(
                [_post_label(p.network, p.external_id, p.post_id) for p in s.top_posts.items],
                [p.replies for p in s.top_posts.items],
                "Top posts by replies",
                "replies",
            ),
        ),
        (
            "Top posts by engagement",
            _bars(
                [_post_label(p.network, p.external_id, p.post_id) for p in s.engagement.items],
                [p.engagement or 0 for p in s.engagement.items],
                "Top posts by engagement (likes + reposts + replies)",
                "engagement",
            ),
        ),
        ("Audience", _audience(s.audience, "Followers per channel")),
    ]


def figures(s: Summary) -> list[tuple[str, str]]:
    """The report's numbers as (label, value) rows, shared by HTML and PDF."""
    c = s.mentions.comparison
    r = s.responses.rows[0] if s.responses.rows else None
    p = s.publishing
    e = s.engagement.totals
    change = (
        f"{c.change:+d} ({c.change_pct:+.1f} %)"
        if c and c.change_pct is not None
        else f"{c.change:+d}"
        if c
        else "-"
    )
    return [
        ("Mentions", str(s.mentions.total)),
        ("vs previous period", change),
        ("Unique authors", f"{s.unique_authors} (previous {s.unique_authors_previous})"),
        *[(f"Sentiment: {k}", str(v)) for k, v in sorted(s.sentiment.totals.items())],
        *[
            (f"Share of voice: {v.voice}", f"{v.share:.1%} ({v.mentions})")
            for v in s.share_of_voice.voices
        ],
        ("First responses", str(r.first_response.count) if r else "0"),
        (
            "First response median / p90",
            _fmt_s(r.first_response.median_s if r else None)
            + " / "
            + _fmt_s(r.first_response.p90_s if r else None),
        ),
        (
            "Next response median / p90",
            _fmt_s(r.next_response.median_s if r else None)
            + " / "
            + _fmt_s(r.next_response.p90_s if r else None),
        ),
        ("SLA met / breached", f"{r.sla_met if r else 0} / {r.sla_breached if r else 0}"),
        ("Posts scheduled / published / failed", f"{p.scheduled} / {p.published} / {p.failed}"),
        ("On-time rate", "-" if p.on_time_rate is None else f"{p.on_time_rate:.0%}"),
        ("Post engagement (likes + reposts + replies)", str(e.engagement)),
        ("Likes / reposts / replies / views", f"{e.likes} / {e.reposts} / {e.replies} / {e.views}"),
        (
            "Engagement rate (mean per post)",
            _pct(e.engagement_rate_mean),
        ),
        *[
            (f"Followers: {c.network} {str(c.channel_id)[:8]}", f"{c.last} ({c.change:+d})")
            for c in s.audience.channels
        ],
        *[(f"Top hashtag #{e.key}", str(e.count)) for e in s.top_hashtags.items[:5]],
        *[(f"Top term “{e.key}”", str(e.count)) for e in s.top_terms.items[:5]],
    ]


def _svg(fig: Figure) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg")
    text = out.getvalue()
    return text[text.index("<svg") :]


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    return out.getvalue()


def _title(s: Summary) -> str:
    return f"{s.brand_id}: {s.start:%d %b %Y %H:%M} to {s.end:%d %b %Y %H:%M} ({s.timezone})"


def _html(s: Summary) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in figures(s)
    )
    sections = "".join(
        f"<section><h2>{html.escape(name)}</h2>{_svg(fig)}</section>" for name, fig in charts(s)
    )
    posts = "".join(
        f"<tr><td>{html.escape(p.network or '')}</td><td>{html.escape(p.url or str(p.post_id))}"
        f"</td><td>{p.replies}</td></tr>"
        for p in s.top_posts.items
    )
    engaged = "".join(
        f"<tr><td>{html.escape(p.network)}</td>"
        f"<td>{html.escape(p.url or p.external_id or str(p.post_id))}</td>"
        + "".join(f"<td>{_n(v)}</td>" for v in (p.likes, p.reposts, p.replies, p.views))
        + f"<td>{_n(p.engagement)}</td><td>{_pct(p.engagement_rate)}</td></tr>"
        for p in s.engagement.items
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(_title(s))}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}}
th{{text-align:left;padding-right:2rem}} svg{{max-width:100%;height:auto}}</style></head>
<body><h1>Report — {html.escape(_title(s))}</h1>
<table class="figures">{rows}</table>
{sections}
<h2>Top posts by replies</h2>
<table class="posts"><tr><th>network</th><th>post</th><th>replies</th></tr>{posts}</table>
<h2>Top posts by engagement</h2>
<table class="engagement"><tr><th>network</th><th>post</th><th>likes</th><th>reposts</th>
<th>replies</th><th>views</th><th>engagement</th><th>rate</th></tr>{engaged}</table>
</body></html>"""


_PDF_FONT = "DejaVuSans"


def _pdf_fonts() -> None:
    """reportlab's built-in Helvetica has no Cyrillic: use DejaVu Sans, the TrueType font that
    ships inside matplotlib (so Russian terms and handles print as letters, not boxes)."""
    if _PDF_FONT in pdfmetrics.getRegisteredFontNames():
        return
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont(_PDF_FONT, str(fonts / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(f"{_PDF_FONT}-Bold", str(fonts / "DejaVuSans-Bold.ttf")))


def _pdf(s: Summary) -> bytes:
    _pdf_fonts()
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, title=_title(s), author="OpenSMM")
    styles = getSampleStyleSheet()
    for style in styles.byName.values():
        bold = "Bold" in getattr(style, "fontName", "")
        style.fontName = f"{_PDF_FONT}-Bold" if bold else _PDF_FONT
    story: list[Flowable] = [Paragraph(html.escape(f"Report — {_title(s)}"), styles["Title"])]
    table = Table([[k, v] for k, v in figures(s)], colWidths=[80 * mm, 90 * mm])
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), _PDF_FONT),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
            ]
        )
    )
    story += [table, Spacer(1, 6 * mm)]
    for name, fig in charts(s):
        story += [
            Paragraph(html.escape(name), styles["Heading2"]),
            Image(io.BytesIO(_png(fig)), width=170 * mm, height=63 * mm),
        ]
    doc.build(story)
    return out.getvalue()


async def render_html(s: Summary) -> str:
    # Drawing charts is CPU work: keep it off the event loop.
    return await asyncio.to_thread(_html, s)


async def render_pdf(s: Summary) -> bytes:
    return await asyncio.to_thread(_pdf, s)
