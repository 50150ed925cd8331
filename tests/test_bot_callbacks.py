"""callback_data encoding: round trips, the 64-byte limit, strict parsing of anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.callbacks import MAX_ALTERNATIVES, Callback, CallbackDataError, decode, encode

ACTIONS = st.one_of(
    st.tuples(st.sampled_from(["ok", "no", "back", "ans", "x"]), st.none()),
    st.tuples(st.just("lab"), st.sampled_from(["positive", "neutral", "negative"])),
    st.tuples(st.just("faq"), st.integers(0, MAX_ALTERNATIVES - 1).map(str)),
)


@given(st.integers(1, 10**18 - 1), ACTIONS)
def test_every_button_round_trips_within_64_bytes(decision_id: int, action: tuple[str, str | None]) -> None:
    data = encode(decision_id, *action)
    assert len(data.encode()) <= 64
    assert decode(data) == Callback(decision_id, *action)


@given(st.one_of(st.text(max_size=80), st.binary(max_size=80), st.none(), st.integers()))
def test_anything_else_is_refused_with_a_reason_never_a_crash(data: object) -> None:
    try:
        parsed = decode(data)
    except CallbackDataError as error:
        assert error.reason in ("forged", "stale")
    else:
        assert encode(parsed.decision_id, parsed.action, parsed.arg) == data


@pytest.mark.parametrize("data, reason", [
    ("v1:12:ok", None), ("v1:12:faq:4", None),
    ("v2:12:ok", "stale"), ("v0:12:lab:positive", "stale"),
    ("v1:12", "forged"), ("v1:12:o", "forged"), ("v1:012:ok", "forged"), ("v1:0:ok", "forged"),
    ("v1:12:faq:5", "forged"), ("v1:12:faq:01", "forged"), ("v1:12:lab", "forged"), ("v1:12:ok:1", "forged"),
    ("v1:12:lab:Positive", "forged"), ("v1:-3:ok", "forged"), (" v1:12:ok", "forged"), ("v1:12:ok\n", "forged"),
    ("", "forged"),
])
def test_examples(data: str, reason: str | None) -> None:
    if reason is None:
        assert decode(data).decision_id == 12
    else:
        with pytest.raises(CallbackDataError) as caught:
            decode(data)
        assert caught.value.reason == reason


def test_encode_refuses_what_decode_would() -> None:
    for bad in [(0, "ok"), (True, "ok"), (5, "dance"), (5, "lab", "happy"), (5, "faq", 9), (5, "ok", "x")]:
        with pytest.raises(ValueError):
            encode(*bad)
