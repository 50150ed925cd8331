"""The owner report's chart: accuracy by week per task (in use, candidates, base model) as a PNG (matplotlib, Agg)."""

from __future__ import annotations

import functools
import io
import math

from shop.report.data import History
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


def render_chart(history: History, language: str) -> bytes:
    """The accuracy-by-week chart as PNG bytes: one panel per task, in use / candidate / base."""
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
        axes = figure.subplots(1, len(TASKS), sharey=True)
        for ax, task in zip(axes, TASKS):
            rows = [(week[5:], run.tasks[task]) for week, run in history if task in run.tasks]
            ax.set_title(word(task))
            ax.set_ylim(0, 105)
            ax.grid(True, axis="y", alpha=0.3)
            if not rows:
                ax.text(0.5, 0.5, word("empty"), ha="center", va="center", transform=ax.transAxes, color="grey")
                ax.set_xticks([])
                continue
            x = list(range(len(rows)))
            ax.set_xticks(x, [label for label, _ in rows])

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
                ax.annotate(f"{last:.0f}%", (x[-1], last), textcoords="offset points", xytext=(0, 6),
                            ha="center")
            ax.legend(loc="lower right", fontsize=7)
        axes[0].set_ylabel("%")
        figure.suptitle(word("title"))
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return buffer.getvalue()
