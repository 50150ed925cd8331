"""The sentiment recipe's second view: the character n-gram model, its blend weight, its round trip into serving."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.args import TrainArgs
from training.encoder import Encoder
from training.features import FeatureCache
from training.recipe import CharNgramModel, blend, choose_weight, load_blend, save_blend
from training.tasks import SentimentSpec
from vocabulary import SENTIMENT_LABELS as LABELS

REVIEWS = [("珍珠太硬了", "negative"), ("难喝，踩雷了", "negative"), ("waited forever, cold tea", "negative"),
           ("too sweet and watery", "negative"), ("还行吧，一般般", "neutral"), ("it was ok, nothing special", "neutral"),
           ("普普通通", "neutral"), ("fine I guess", "neutral"), ("超好喝！下次还来", "positive"),
           ("the brown sugar boba is amazing", "positive"), ("奶盖很香，推荐", "positive"), ("love it, great staff", "positive")]



@functools.cache
def fitted(without: str = "") -> CharNgramModel:
    """The n-gram model fitted on REVIEWS, less the label `without`."""
    rows = [(t, y) for t, y in REVIEWS if y != without]
    return CharNgramModel.fit([t for t, _ in rows], [y for _, y in rows], LABELS)


def test_char_ngram_model_round_trips_without_pickle(tmp_path: Path) -> None:
    model = CharNgramModel.fit([t for t, _ in REVIEWS], [y for _, y in REVIEWS], LABELS)
    probs = model.predict_proba(["珍珠太硬", "amazing boba"])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    model.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"char_ngram.json", "char_ngram.npz"}
    again = CharNgramModel.load(tmp_path)
    assert np.allclose(again.predict_proba(["珍珠太硬", "amazing boba"]), probs, atol=1e-6)
    assert again.predict_proba([]).shape == (0, 3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("珍珠太硬了好喝 \t\nabcXYZ!é"), max_size=30), min_size=1, max_size=8))
def test_the_n_gram_model_scores_as_sklearn_does(texts: list[str]) -> None:
    """The bot scores the n-gram model with numpy; sklearn, which fitted it, must give the same probabilities."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    for model in (fitted(), fitted(without="neutral")):  # multinomial, and sklearn's binary case
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, dtype=np.float32,
                                     vocabulary=model.vocabulary)
        vectorizer.idf_ = model.idf
        classifier = LogisticRegression()
        classifier.classes_, classifier.coef_, classifier.intercept_ = np.array(model.classes), model.coef, model.intercept
        expected = np.zeros((len(texts), 3))
        expected[:, list(model.classes)] = classifier.predict_proba(vectorizer.transform(texts))
        assert np.allclose(model.predict_proba(texts), expected, atol=1e-5)


def test_a_saved_n_gram_model_loads_and_scores_without_sklearn_or_scipy(tmp_path: Path) -> None:
    fitted().save(tmp_path)
    script = ("import json, sys\nfrom pathlib import Path\nfrom training.recipe import CharNgramModel\n"
              f"probs = CharNgramModel.load(Path({str(tmp_path)!r})).predict_proba(['珍珠太硬', 'amazing boba'])\n"
              "print(json.dumps({'probs': probs.tolist(), 'loaded': [m for m in ('sklearn', 'scipy') if m in sys.modules]}))")
    out = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                         text=True, timeout=120, check=True)
    got = json.loads(out.stdout)
    assert got["loaded"] == []  # the bot loads sentiment adapters: 160 MB of RSS it does not need
    assert np.allclose(got["probs"], fitted().predict_proba(["珍珠太硬", "amazing boba"]), atol=1e-6)


def test_a_label_missing_from_training_gets_zero_probability() -> None:
    two = [(t, y) for t, y in REVIEWS if y != "neutral"]
    probs = CharNgramModel.fit([t for t, _ in two], [y for _, y in two], LABELS).predict_proba(["还行"])
    assert probs[0, LABELS.index("neutral")] == 0.0 and probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_the_blend_weight_follows_the_validation_data() -> None:
    targets = np.array([0, 1, 2, 0, 1, 2])
    network = np.full((6, 3), 1 / 3)  # an encoder head that knows nothing
    knowing = np.eye(3)[targets] * 0.9 + 0.1 / 3
    assert choose_weight(network, knowing, targets) == 0.5  # the n-gram model knows: take as much as allowed
    assert choose_weight(knowing, np.full((6, 3), 1 / 3), targets) == 0.0  # it knows nothing: none of it
    assert choose_weight(network, knowing, np.array([], dtype=int)) == 0.0
    assert np.allclose(blend(network, knowing, 0.5), 0.5 * network + 0.5 * knowing)
    assert blend(network, None, 0.3) is network


def test_no_weight_saves_no_model_and_old_folders_load_without_one(tmp_path: Path) -> None:
    model = CharNgramModel.fit([t for t, _ in REVIEWS], [y for _, y in REVIEWS], LABELS)
    save_blend(tmp_path, model, 0.0)
    assert not (tmp_path / "char_ngram.json").exists()
    assert load_blend(tmp_path) == (None, 0.0)
    assert load_blend(tmp_path / "missing") == (None, 0.0)  # an adapter saved before the blend existed


def test_sentiment_spec_round_trip_predicts_the_same(tiny_base: Path, tmp_path: Path) -> None:
    encoder = Encoder(tiny_base, top_layers=1)
    spec = SentimentSpec(FeatureCache(encoder), TrainArgs(epochs=1, min_steps=0, progress=False))
    model = spec.fit(REVIEWS * 2, REVIEWS)
    assert model.char is not None and 0.0 <= model.char_weight <= 0.5
    texts = ["珍珠太硬了", "love the staff", "一般般"]
    before = model.predict_proba(texts)
    spec.save(model, tmp_path)
    loaded = spec.load(tmp_path)
    assert loaded.char_weight == model.char_weight
    assert np.allclose(loaded.predict_proba(texts), before, atol=1e-5)
    assert spec.ranked(loaded, texts) == spec.ranked(model, texts)


def test_serving_blends_the_n_gram_model_as_training_scored_it(tiny_base: Path, tmp_path: Path, fresh_store) -> None:
    from serving.loading import build_serving

    encoder = Encoder(tiny_base, top_layers=1)
    cache = FeatureCache(encoder)
    spec = SentimentSpec(cache, TrainArgs(epochs=1, min_steps=0, progress=False))
    model = spec.fit(REVIEWS * 2, REVIEWS)
    model.char_weight = 0.5  # make the blend matter whatever validation chose
    spec.save(model, tmp_path)
    serving = build_serving(encoder, fresh_store, tmp_path, None, {"sentiment": "s-1"}, cache)
    assert serving.sentiment_char is not None and serving.char_weight == 0.5
    texts = ["珍珠太硬了", "love the staff", "一般般"]
    decisions, _ = serving.decide_features(texts, serving.trunk_features(texts), answer_threshold=1.0)
    expected = spec.load(tmp_path).predict_proba(texts)
    assert sum(d.kind == "review" for d in decisions) >= 2  # the cue router sends these to the review path
    for decision, row in zip(decisions, expected):
        if decision.kind == "review":
            served = dict(decision.alternatives)
            assert all(served[label] == pytest.approx(float(p), abs=1e-4) for label, p in zip(LABELS, row))
