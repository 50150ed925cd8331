"""What the week's negative reviews are about, simply enough to explain in a line.

A review's terms are its English words (3 letters or more, not a stop word) and the pairs of
adjacent Chinese characters in it (珍珠太硬了 → 珍珠 珠太 太硬; a pair with a function character
such as 的/了/很 is dropped). A topic is a term that at least `min_reviews` negative reviews share
and that is commoner among them than among the week's other reviews (so 奶茶, in every review,
is no topic); the most frequent come first, ties in alphabetical order.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from storage.text import normalise_text

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z][a-z']+")
_STOP_CHARS = set("的了是我你他她它们这那吗呢吧啊呀哦嘛就都也还和在有个一很又")
_STOP_WORDS = frozenset(
    "the and was were are is this that these those with for you your our they them their its it's but not "
    "too very really just have has had get got here there what when then than from about all any out "
    "can could would will did does don't didn't i'm i've me my myself".split())


def terms(text: str) -> set[str]:
    """The English words and Chinese character pairs of a text (see the module docstring)."""
    folded = normalise_text(text)
    found = {word for word in _WORD.findall(folded) if len(word) >= 3 and word not in _STOP_WORDS}
    for run in _CJK_RUN.findall(folded):
        found |= {run[i:i + 2] for i in range(len(run) - 1) if not _STOP_CHARS & set(run[i:i + 2])}
    return found


def _counts(texts: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(terms(text))  # a term counts once per review
    return counts


def negative_topics(negative: Sequence[str], others: Sequence[str], top: int = 5,
                    min_reviews: int = 2) -> list[tuple[str, int]]:
    """(term, how many negative reviews have it), most first: terms commoner in negative reviews than in the others."""
    ours, theirs = _counts(negative), _counts(others)
    topics = [(term, count) for term, count in ours.items()
              if count >= min_reviews and (not others or count / len(negative) > theirs[term] / len(others))]
    return sorted(topics, key=lambda item: (-item[1], item[0]))[:top]
