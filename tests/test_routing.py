"""Question-vs-review routing: the cue features, the learned router and its router.json (fast, no real model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serving.runtime import heuristic_question_probability
from training.router import (
    CUE_NAMES,
    QUESTION_CUES,
    RouterWeights,
    augment_questions,
    cue_score,
    question_cues,
    train_router,
)


def cues_of(text: str) -> set[str]:
    return {name for name, on in zip(CUE_NAMES, question_cues([text])[0]) if on}


@pytest.mark.parametrize("text, expected", [
    ("杨枝甘露今天还有吗", {"zh_final_particle", "zh_particle"}),
    ("周日下午人多不多呢", {"zh_final_particle", "zh_question_word"}),
    ("店里大不大", {"zh_question_word"}),
    ("是鲜奶还是奶精", {"zh_question_word"}),
    ("还是那个味道", set()),
    ("能做得不太甜吗", {"zh_final_particle", "zh_particle"}),
    ("有没有不加糖也好喝的", {"zh_question_word", "emphasis"}),
    ("想问下营业时间", {"zh_asking"}),
    ("我对花生过敏，哪些能喝？", {"question_mark", "zh_question_word"}),
    ("晚上十点以后还营业么", {"zh_final_particle"}),
    ("can I bring my dog", {"en_question_start", "en_asking"}),
    ("r u open on sundays", {"en_question_start"}),
    ("what do you recommend", {"en_question_start", "en_question_word", "en_asking"}),
    ("I'd like to know if you deliver", {"en_asking"}),
    ("hi, do you have oat milk?", {"question_mark", "en_question_start", "en_asking"}),
    ("好喝", {"emphasis"}),
    ("meh", set()),
    ("怎么这么甜", {"zh_question_word", "emphasis"}),
    ("why is it so sweet!!", {"exclamation", "emphasis"}),  # "why" is no question cue: mostly a complaint
    ("为什么每次都要等半小时", set()),
    ("这么贵凭什么", {"emphasis"}),
    ("what a letdown", set()),
    ("can't stop thinking about that mango drink", set()),
])
def test_cue_features(text, expected):
    assert cues_of(text) == expected


def test_cue_list_is_the_one_list_and_the_fallback_router_uses_it():
    assert len(set(CUE_NAMES)) == len(CUE_NAMES) == len(QUESTION_CUES)
    assert {sign for _, _, sign in QUESTION_CUES} == {1, -1}
    for text in ("想问下营业时间", "我对花生过敏，哪些能喝？", "有什么推荐的吗", "what do you recommend", "can I pay by card",
                 "好喝", "meh", "why is it so sweet!!", "怎么这么甜"):
        assert (heuristic_question_probability(text) >= 0.5) == (cue_score(text) > 0)
    assert heuristic_question_probability("有什么推荐的吗") >= 0.5
    assert heuristic_question_probability("why is it so sweet!!") < 0.5


def test_question_cues_by_name_ignores_names_this_version_does_not_know():
    m = question_cues(["能少冰吗？", "nice"], ("question_mark", "retired_cue"))
    assert m.shape == (2, 2) and m.tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_old_router_json_without_cues_still_loads_and_reads_the_embedding_only(tmp_path):
    rng = np.random.default_rng(0)
    weight = rng.normal(size=8).astype(np.float32)
    (tmp_path / "router.json").write_text(json.dumps({"weight": weight.tolist(), "bias": 0.25}))
    router = RouterWeights.from_json(json.loads((tmp_path / "router.json").read_text()))
    assert router.cue_names == () and router.cue_weight.size == 0
    vectors = rng.normal(size=(3, 8)).astype(np.float32)
    expected = 1 / (1 + np.exp(-(vectors @ weight + 0.25)))
    np.testing.assert_allclose(router.probability(vectors), expected, rtol=1e-6)
    np.testing.assert_allclose(router.probability(vectors, ["a", "b", "c"]), expected, rtol=1e-6)
    assert RouterWeights(np.zeros(8, dtype=np.float32), 0.0).probability(vectors).shape == (3,)  # old constructor


def test_old_router_json_loads_through_load_faq(tmp_path, tiny_base):
    from training.args import TrainArgs
    from training.encoder import Encoder
    from training.faq import load_faq, new_faq_model, save_faq

    encoder = Encoder(tiny_base, top_layers=1)
    save_faq(new_faq_model(encoder, TrainArgs(progress=False)), tmp_path)
    (tmp_path / "router.json").write_text(json.dumps({"weight": [0.0] * encoder.hidden_size, "bias": -1.0}))
    _model, router = load_faq(encoder, tmp_path)
    assert router is not None and router.cue_names == ()
    assert router.probability(np.zeros((1, encoder.hidden_size), dtype=np.float32))[0] == pytest.approx(1 / (1 + np.e))


def synthetic(n: int = 120, hidden: int = 16, seed: int = 0):
    """Embeddings that carry no signal; only the texts' cues tell questions from reviews."""
    rng = np.random.default_rng(seed)
    questions = ["能做少糖吗", "几点开门？", "do you deliver", "can I pay by card?", "有没有停车位", "where is the shop"]
    reviews = ["好喝", "太甜了！", "the pearls were great", "so good!!", "服务很好", "a bit bland"]
    texts = [(questions if i % 2 == 0 else reviews)[i // 2 % 6] for i in range(n)]
    labels = np.array([i % 2 == 0 for i in range(n)], dtype=np.int64)
    vectors = rng.normal(size=(n, hidden)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, labels, texts


def test_train_router_learns_the_cues_and_needs_the_texts():
    vectors, labels, texts = synthetic()
    router = train_router(vectors, labels, texts=texts)
    assert router.cue_names == CUE_NAMES
    weights = dict(zip(router.cue_names, router.cue_weight))
    assert weights["question_mark"] > 0 and weights["zh_particle"] > 0 and weights["en_question_start"] > 0
    assert weights["exclamation"] < 0 and weights["emphasis"] < 0
    probe = ["还有热饮吗", "is there parking?", "好喝！", "so sweet"]
    vecs = np.zeros((4, vectors.shape[1]), dtype=np.float32)
    assert (router.probability(vecs, probe) >= 0.5).tolist() == [True, True, False, False]
    with pytest.raises(ValueError):
        router.probability(vecs)


def test_train_router_is_deterministic_and_round_trips_through_json():
    vectors, labels, texts = synthetic()
    a = train_router(vectors, labels, texts=texts)
    b = train_router(vectors, labels, texts=texts)
    np.testing.assert_array_equal(a.weight, b.weight)
    again = RouterWeights.from_json(json.loads(json.dumps(a.to_json())))
    np.testing.assert_allclose(again.probability(vectors, texts), a.probability(vectors, texts), rtol=1e-5)


def test_train_router_without_texts_is_an_embedding_router():
    vectors, labels, _ = synthetic()
    vectors[labels == 1, 0] += 2.0  # now the embedding carries the signal
    router = train_router(vectors, labels)
    assert router.cue_names == () and ((router.probability(vectors) >= 0.5) == labels.astype(bool)).mean() > 0.95


def test_augment_questions_adds_asked_style_variants_deterministically():
    questions = ["你们几点开门？", "What are your opening hours?", "hours pls"]
    out = augment_questions(questions)
    assert out == augment_questions(questions)
    assert "你们几点开门" in out and "What are your opening hours" in out
    assert sum(t.endswith("你们几点开门？") and t != "你们几点开门？" for t in out) == 1  # one prefixed copy
    assert not set(out) & set(questions)
    assert len(augment_questions([f"question {i}?" for i in range(50)], limit=30)) == 30
