"""Text utilities: normalisation, the stable train/validation/test split, language detection."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Literal

Language = Literal["zh", "en"]

_WHITESPACE = re.compile(r"\s+")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def normalise_text(text: str) -> str:
    """NFKC, casefold (then NFKC again), collapse whitespace and strip: the form used to compare texts."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return _WHITESPACE.sub(" ", folded).strip()


def stable_split(text: str) -> str:
    """Hash-based split of a text: 80% train, 10% validation, 10% test, stable forever."""
    digest = hashlib.sha256(normalise_text(text).encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    if bucket < 80:
        return "train"
    if bucket < 90:
        return "validation"
    return "test"


# CJK Unified Ideographs, Extension A, Compatibility Ideographs, Extensions B.. and Compatibility Supplement:
# one regex scan instead of a Python test per character (texts may be 4,096 characters).
_CJK = re.compile("[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\U00020000-\U0002fa1f]")


def detect_language(text: str, default: Language = "zh") -> Language:
    """Return "zh" when CJK characters are at least half of (CJK chars + Latin words), else "en"."""
    cjk = len(_CJK.findall(text))
    latin_words = len(_LATIN_WORD.findall(unicodedata.normalize("NFKC", text)))
    if cjk == 0 and latin_words == 0:
        return default
    return "zh" if cjk >= latin_words else "en"
