"""The owner report's chart as a PNG (matplotlib, Agg): accuracy by week per task (in use, candidates, base
model), and the share of questions answered right without staff (containment) by week."""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from typing import Any

from shop.report.data import ContainmentWeek, History
from shop.texts import chart_text
from vocabulary import TASKS

_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Noto Sans CJK JP", "Source Han Sans SC", "Source Han Sans CN",
              "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC",
              "Heiti SC", "Hiragino Sans GB", "AR PL UMing CN", "AR PL UKai CN", "Droid Sans Fallback")


@functools.lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The name of an installed font that has Chinese glyphs, or None (the chart then uses English)."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    for name in _CJK_FONTS:
        if name in installed:
            return name
    return next((name for name in sorted(installed)
                 if any(mark in name for mark in ("CJK", "Hei", "WenQuanYi", "Han Sans", "Song"))), None)


def _panel(ax: Any, title: str, labels: list[str], empty: str) -> list[int]:
    """One panel's title, scale, grid and x ticks; without any point it says `empty` (and returns no x)."""
    ax.set_title(title)
    ax.set_ylim(0, 105)
    ax.grid(True, axis="y", alpha=0.3)
    if not labels:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_xticks([])
        return []
    x = list(range(len(labels)))
    ax.set_xticks(x, labels)
    return x


def _write_last(ax: Any, x: int, value: float) -> None:
    ax.annotate(f"{value:.0f}%", (x, value), textcoords="offset points", xytext=(0, 6), ha="center")


def _containment_panel(ax: Any, weeks: Sequence[ContainmentWeek], word: functools.partial[str]) -> None:
    """Containment by week: one line, the latest value written on it."""
    x = _panel(ax, word("containment"), [w.week[5:] for w in weeks], word("no_questions"))
    if x:
        values = [100 * w.rate for w in weeks]
        ax.plot(x, values, "-o", color="tab:purple", label=word("containment"))
        _write_last(ax, x[-1], values[-1])


def render_chart(history: History, language: str, containment: Sequence[ContainmentWeek] = ()) -> bytes:
    """The chart as PNG bytes: one accuracy panel per task (in use / candidate / base), then containment."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    font = cjk_font()
    if language == "zh" and font is None:
        language = "en"  # no font with Chinese glyphs here: English labels instead of empty boxes
    word = functools.partial(chart_text, language)
    families = ["DejaVu Sans"] + ([font] if font else [])
    with matplotlib.rc_context({"font.family": families, "font.size": 9}):
        figure = Figure(figsize=(9, 3.6), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, len(TASKS) + 1, sharey=True)
        for ax, task in zip(axes, TASKS):
            rows = [(week[5:], run.tasks[task]) for week, run in history if task in run.tasks]
            x = _panel(ax, word(task), [label for label, _ in rows], word("empty"))
            if not x:
                continue

            def series(values: list[float | None]) -> list[float]:
                return [math.nan if v is None else 100 * v for v in values]

            served = series([p.served for _, p in rows])
            ax.plot(x, served, "-o", color="tab:blue", label=word("served"))
            ax.plot(x, series([p.base for _, p in rows]), "--s", color="grey", markersize=4, label=word("base"))
            for promoted, marker, color, key in ((True, "^", "tab:green", "candidate"),
                                                 (False, "x", "tab:red", "refused")):
                points = [(i, 100 * p.candidate) for i, (_, p) in enumerate(rows)
                          if p.promoted == promoted and p.candidate is not None]
                if points:
                    ax.scatter([i for i, _ in points], [y for _, y in points], marker=marker, color=color,
                               zorder=3, label=word(key))
            last = next((v for v in reversed(served) if not math.isnan(v)), None)
            if last is not None:
                _write_last(ax, x[-1], last)
            ax.legend(loc="lower right", fontsize=7)
        _containment_panel(axes[-1], containment, word)
        axes[0].set_ylabel("%")
        figure.suptitle(word("title"))
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return buffer.getvalue()
