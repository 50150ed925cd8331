"""The serving side's tokenizer: XLM-R's Unigram pieces from `tokenizer.json`, in a sixth of the memory.

`tokenizers` holds this 250,002-piece Unigram model in ~280 MB (its trie of every piece), the largest
part of the ONNX bot's RSS. Here the pieces are one dict (piece -> id) and an array of scores, ~45 MB;
`tokenizers` still normalises and pre-tokenises (a copy of the same `tokenizer.json` with a one-piece
model, so its precompiled character map and Metaspace rules are the file's own), and the Viterbi
search over each word is the one `tokenizers` runs, tie-breaking included: candidate pieces ending at
a position are tried from the leftmost start and shortest first, a later one replaces the best only
if strictly better, a character no piece covers is `<unk>` at the lowest score minus 10, runs of
`<unk>` are fused. The same ids as `tokenizers` on all 43,176 texts of the benchmark datasets plus
edge cases (tests/test_onnx_tokenizer.py checks it on every build of the suite); `sentencepiece`,
which also holds these pieces compactly, breaks ties differently on repetition-heavy chat texts.
Costs ~0.1 ms more per message than `tokenizers`.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

UNK_PENALTY = 10.0  # `tokenizers`' K_UNK_PENALTY: an uncovered character scores this far below the lowest piece


class PieceTokenizer:
    """Token ids of texts as `tokenizers.Tokenizer.from_file(path)` with truncation and padding gives them."""

    def __init__(self, path: Path, max_length: int):
        from tokenizers import Tokenizer

        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        model = spec["model"]
        if model.get("type") != "Unigram" or model.get("byte_fallback"):
            raise ValueError(f"{path}: a Unigram model without byte fallback is expected, got {model.get('type')}")
        pieces = model["vocab"]
        # Fresh copies of the pieces, so that the parsed JSON (lists and floats between them) frees whole arenas
        # once dropped (28 MB less resident); the scores as one array of doubles instead of 250,002 floats.
        self._ids = {piece.encode().decode(): i for i, (piece, _) in enumerate(pieces)}
        self._scores = array("d", (score for _, score in pieces))
        self._longest = max(len(piece) for piece in self._ids)
        self._unk = int(model["unk_id"])
        self._unk_score = min(self._scores) - UNK_PENALTY
        special = {token["content"]: int(token["id"]) for token in spec["added_tokens"]}
        self._special = special
        self._split = re.compile("|".join(re.escape(s) for s in sorted(special, key=len, reverse=True)))
        self.bos, self.eos, self.pad = special["<s>"], special["</s>"], special.get("<pad>", 0)
        self.max_length = max_length
        spec |= {"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]], "byte_fallback": False},
                 "added_tokens": [], "post_processor": None, "truncation": None, "padding": None}
        rules = Tokenizer.from_str(json.dumps(spec))
        self._normalizer, self._pre_tokenizer = rules.normalizer, rules.pre_tokenizer
        self.word = lru_cache(maxsize=20_000)(self._word)  # chat repeats its words; bounded

    def _word(self, word: str) -> tuple[int, ...]:
        """The best-scoring segmentation of one pre-tokenised word (Viterbi), as piece ids."""
        ids, scores, longest = self._ids, self._scores, self._longest
        n = len(word)
        best: list[tuple[float, int, int] | None] = [None] * (n + 1)  # (path score, start, piece id) ending here
        best[0] = (0.0, 0, -1)
        for start in range(n):
            here = best[start][0]  # type: ignore[index]  # every position is reached (by a piece or <unk>)
            covered = False
            for end in range(start + 1, min(n, start + longest) + 1):
                piece = ids.get(word[start:end])
                if piece is None:
                    continue
                score, node = here + scores[piece], best[end]
                if node is None or score > node[0]:
                    best[end] = (score, start, piece)
                covered = covered or end == start + 1
            if not covered:
                score, node = here + self._unk_score, best[start + 1]
                if node is None or score > node[0]:
                    best[start + 1] = (score, start, self._unk)
        out: list[int] = []
        end = n
        while end > 0:
            _, start, piece = best[end]  # type: ignore[misc]
            if not (piece == self._unk and out and out[-1] == self._unk):
                out.append(piece)
            end = start
        return tuple(reversed(out))

    def encode(self, text: str) -> list[int]:
        """<s> ids </s>, truncated to max_length tokens; special-token texts ("<s>", "<mask>", ...) are those tokens."""
        ids: list[int] = []
        position = 0
        for match in [*self._split.finditer(text), None]:
            segment = text[position:match.start()] if match else text[position:]
            if segment:
                normalised = self._normalizer.normalize_str(segment)
                for word, _ in self._pre_tokenizer.pre_tokenize_str(normalised):
                    ids.extend(self.word(word))
            if match:
                ids.append(self._special[match.group()])
                position = match.end()
        return [self.bos, *ids[: self.max_length - 2], self.eos]

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, attention mask), int64, padded with <pad> to the longest text."""
        encoded = [self.encode(t) for t in texts]
        width = max((len(e) for e in encoded), default=0)
        ids = np.full((len(encoded), width), self.pad, dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        for i, e in enumerate(encoded):
            ids[i, : len(e)] = e
            mask[i, : len(e)] = 1
        return ids, mask
