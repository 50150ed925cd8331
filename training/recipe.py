"""A character n-gram linear model, the cheap second view of a review, and how much to trust it beside the encoder.

The encoder reads subwords through a frozen trunk; character n-grams see the exact strings a
shop's customers use (dish names, 难喝, "meh"). Their probabilities are blended with the
encoder head's, with a weight chosen on the validation split (never on test data).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NGRAMS = (1, 3)  # character n-gram lengths, within words (sklearn's analyzer "char_wb")


@dataclass(frozen=True, eq=False)
class CharNgramModel:
    """TF-IDF over character 1-3-grams (within word boundaries, sublinear tf) + multinomial logistic regression.

    Fitted with scikit-learn (`fit`, in the trainer only); the fitted model is its arrays, scored here with numpy
    the way sklearn's `TfidfVectorizer(analyzer="char_wb", sublinear_tf=True)` and `LogisticRegression` score them
    (tests/test_recipe.py compares the two), so the bot never imports sklearn or scipy (160 MB of RSS, measured).
    """

    vocabulary: dict[str, int]  # n-gram -> column
    idf: np.ndarray  # (columns,)
    coef: np.ndarray  # (classes, columns), or (1, columns) for two classes
    intercept: np.ndarray  # (classes,) or (1,)
    classes: tuple[int, ...]  # the label indices seen in training, in coef's order
    labels: tuple[str, ...]

    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[str], label_order: tuple[str, ...],
            c: float = 10.0) -> CharNgramModel:
        """Fit on (text, label) pairs; classes balanced so a rare class is not ignored."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, sublinear_tf=True, dtype=np.float32,
                                     min_df=2 if len(texts) >= 1000 else 1, max_features=100_000)
        x = vectorizer.fit_transform(list(texts))
        y = np.array([label_order.index(label) for label in labels])
        classifier = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(x, y)
        return cls({term: int(i) for term, i in vectorizer.vocabulary_.items()}, vectorizer.idf_, classifier.coef_,
                   classifier.intercept_, tuple(int(k) for k in classifier.classes_), tuple(label_order))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n, labels) probabilities in `labels` order (a label absent from training gets 0)."""
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for row, text in enumerate(texts):
            scores = self.intercept.astype(np.float64)
            columns, tf = self._counts(text)
            if len(columns):
                weights = (1.0 + np.log(tf)) * self.idf[columns]
                scores = scores + self.coef[:, columns] @ (weights / np.linalg.norm(weights))
            if len(self.classes) == 2:  # sklearn's binary case: one logit for the second class
                second = 1.0 / (1.0 + np.exp(-scores[0]))
                out[row, list(self.classes)] = (1.0 - second, second)
            else:
                exp = np.exp(scores - scores.max())
                out[row, list(self.classes)] = exp / exp.sum()
        return out

    def _counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The known n-grams of `text` as (columns, counts)."""
        counts: dict[int, int] = {}
        for word in text.lower().split():
            padded = f" {word} "
            for n in range(NGRAMS[0], NGRAMS[1] + 1):
                for start in range(max(len(padded) - n + 1, 1)):
                    column = self.vocabulary.get(padded[start:start + n])
                    if column is not None:
                        counts[column] = counts.get(column, 0) + 1
                if len(padded) <= n:  # as sklearn: a word no longer than n is counted once, whole
                    break
        return np.fromiter(counts, dtype=np.int64, count=len(counts)), np.fromiter(
            counts.values(), dtype=np.float64, count=len(counts))

    def save(self, folder: Path) -> None:
        """Vocabulary, idf and weights as JSON + npz (no pickle: an adapter folder never runs code)."""
        (folder / "char_ngram.json").write_text(json.dumps(
            {"labels": list(self.labels), "classes": list(self.classes), "vocabulary": self.vocabulary},
            ensure_ascii=False))
        np.savez(folder / "char_ngram.npz", idf=self.idf, coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, folder: Path) -> CharNgramModel:
        """The model `save` wrote."""
        meta = json.loads((folder / "char_ngram.json").read_text())
        arrays = np.load(folder / "char_ngram.npz")
        return cls(meta["vocabulary"], arrays["idf"], arrays["coef"], arrays["intercept"],
                   tuple(meta["classes"]), tuple(meta["labels"]))


BLEND = "blend.json"
LABELS = "labels.json"  # a sentiment adapter's class order
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(6))  # char n-gram share tried: 0, 0.1, ..., 0.5


def blend(network: np.ndarray, char: np.ndarray | None, weight: float) -> np.ndarray:
    """(1 - weight) * encoder probabilities + weight * character n-gram probabilities."""
    return network if char is None or weight == 0 else (1 - weight) * network + weight * char


def choose_weight(network: np.ndarray, char: np.ndarray, targets: np.ndarray) -> float:
    """The share of the n-gram model that maximises validation log-likelihood (ties: less n-gram)."""
    if len(targets) == 0:
        return 0.0
    rows = np.arange(len(targets))
    scores = [float(np.log(blend(network, char, w)[rows, targets] + 1e-6).mean()) for w in WEIGHTS]
    return WEIGHTS[int(np.argmax(scores))]


def save_blend(folder: Path, model: CharNgramModel | None, weight: float) -> None:
    """Write the n-gram model (if it has any weight) and its share."""
    if model is not None and weight > 0:
        model.save(folder)
    (folder / BLEND).write_text(json.dumps({"char_weight": weight if model is not None else 0.0}))


def read_labels(folder: Path) -> tuple[str, ...]:
    """The class order saved beside a sentiment adapter."""
    return tuple(json.loads((folder / LABELS).read_text()))


def load_blend(folder: Path) -> tuple[CharNgramModel | None, float]:
    """The n-gram model and its share saved beside a sentiment adapter ((None, 0) when there is none)."""
    path = folder / BLEND
    weight = float(json.loads(path.read_text())["char_weight"]) if path.exists() else 0.0
    return (CharNgramModel.load(folder), weight) if weight > 0 else (None, 0.0)
