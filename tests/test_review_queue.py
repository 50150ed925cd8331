"""The mirror policy and the review queue's score, without Telegram (shop/review_queue.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from settings import ConfigError, settings_from_dict
from shop.review_queue import margin, must_act, sampled, score, should_mirror, weakest_labels
from storage.records import Decision


def _decision(kind: str = "review", label: str | None = "positive", action: str = "acknowledged",
              alternatives: tuple[tuple[str, float], ...] = (("positive", 0.9), ("neutral", 0.1)),
              decision_id: int = 1) -> Decision:
    return Decision(decision_id, 1, kind, label, alternatives[0][1] if alternatives else 0.0, action, "model", None,
                    alternatives, None, None, "pending", "2026-12-01T00:00:00")


def test_policy_keys(tmp_path: Path) -> None:
    quiet = settings_from_dict({"staff": {"mirror": "policy", "sample_rate": 0.0}}, tmp_path, env={})
    loud = settings_from_dict({}, tmp_path, env={})
    confident = _decision()
    assert loud.staff.mirror == "all" and should_mirror(loud, confident)
    assert not should_mirror(quiet, confident)
    assert should_mirror(quiet, replace(confident, customer_feedback="down"))  # the customer's 👎
    assert should_mirror(quiet, _decision("question", None, "handoff", (("hours", 0.3),)))
    assert should_mirror(quiet, _decision(label="negative"))
    assert should_mirror(quiet, _decision(label=None, alternatives=()))  # nobody could label it
    assert should_mirror(quiet, _decision(label=None, alternatives=(("negative", 0.6), ("neutral", 0.4))))
    assert not should_mirror(quiet, _decision(label=None, alternatives=(("neutral", 0.6), ("negative", 0.4))))
    everything = settings_from_dict({"staff": {"mirror": "policy", "sample_rate": 1.0}}, tmp_path, env={})
    assert should_mirror(everything, confident)
    for bad in ({"mirror": "some"}, {"sample_rate": 1.5}, {"review_batch": 0}, {"digest_time": "25:00"}):
        with pytest.raises(ConfigError):
            settings_from_dict({"staff": bad}, tmp_path, env={})


def test_sample_is_deterministic_and_near_the_rate() -> None:
    picks = [sampled(n, 0.1) for n in range(1, 5001)]
    assert picks == [sampled(n, 0.1) for n in range(1, 5001)]
    assert 400 < sum(picks) < 600
    assert not any(sampled(n, 0.0) for n in range(100))


def test_score_orders_by_margin_weak_classes_and_flags() -> None:
    sure, close = _decision(), _decision(alternatives=(("positive", 0.5), ("neutral", 0.45)))
    assert margin(sure) == pytest.approx(0.8) and margin(_decision(alternatives=())) == 0.0
    assert score(close) > score(sure)
    weak = weakest_labels({"confused": [["neutral", "positive", 4], ["bad row"]]})
    assert weak == {"neutral"}
    neutral = _decision(label="neutral", alternatives=(("neutral", 0.9), ("positive", 0.1)))
    assert score(neutral, weak) > score(sure, weak)
    disliked = replace(sure, customer_feedback="down")
    assert score(disliked) > score(close)
    assert not must_act(sure) and must_act(disliked) and not must_act(replace(sure, customer_feedback="up"))
