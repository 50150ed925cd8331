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
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # sklearn is imported only when a model is fitted or loaded
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression


def _vectorizer(**options: Any) -> TfidfVectorizer:
    """The one TF-IDF configuration, for fitting and for loading: character 1-3-grams within words."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, dtype=np.float32, **options)


@dataclass
class CharNgramModel:
    """TF-IDF over character 1-3-grams (within word boundaries, sublinear tf) + multinomial logistic regression."""

    vectorizer: TfidfVectorizer
    classifier: LogisticRegression
    labels: tuple[str, ...]

    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[str], label_order: tuple[str, ...],
            c: float = 10.0) -> CharNgramModel:
        """Fit on (text, label) pairs; classes balanced so a rare class is not ignored."""
        from sklearn.linear_model import LogisticRegression

        vectorizer = _vectorizer(min_df=2 if len(texts) >= 1000 else 1, max_features=100_000)
        x = vectorizer.fit_transform(list(texts))
        y = np.array([label_order.index(label) for label in labels])
        classifier = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(x, y)
        return cls(vectorizer, classifier, tuple(label_order))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n, labels) probabilities in `labels` order (a label absent from training gets 0)."""
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if len(texts):
            out[:, self.classifier.classes_] = self.classifier.predict_proba(self.vectorizer.transform(list(texts)))
        return out

    def save(self, folder: Path) -> None:
        """Vocabulary, idf and weights as JSON + npz (no pickle: an adapter folder never runs code)."""
        vocabulary = {term: int(i) for term, i in self.vectorizer.vocabulary_.items()}
        (folder / "char_ngram.json").write_text(json.dumps(
            {"labels": list(self.labels), "classes": self.classifier.classes_.tolist(), "vocabulary": vocabulary},
            ensure_ascii=False))
        np.savez(folder / "char_ngram.npz", idf=self.vectorizer.idf_, coef=self.classifier.coef_,
                 intercept=self.classifier.intercept_)

    @classmethod
    def load(cls, folder: Path) -> CharNgramModel:
        """The model `save` wrote."""
        from sklearn.linear_model import LogisticRegression

        meta = json.loads((folder / "char_ngram.json").read_text())
        arrays = np.load(folder / "char_ngram.npz")
        vectorizer = _vectorizer(vocabulary=meta["vocabulary"])
        vectorizer.idf_ = arrays["idf"]
        classifier = LogisticRegression()
        classifier.classes_ = np.array(meta["classes"])
        classifier.coef_, classifier.intercept_ = arrays["coef"], arrays["intercept"]
        return cls(vectorizer, classifier, tuple(meta["labels"]))


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
