"""retrain_and_swap (shop/retraining.py): only a promoted run is swapped in; every failure is a result, not a crash."""

from __future__ import annotations

import asyncio

from shop.retraining import retrain_and_swap


def _retrain(make_settings, result=None, error: Exception | None = None, reload_error: Exception | None = None):
    reloads: list[str] = []

    def run_retrain(settings, trigger):
        assert trigger == "manual"
        if error is not None:
            raise error
        return result

    async def reload() -> str:
        if reload_error is not None:
            raise reload_error
        reloads.append("swapped")
        return "sentiment=s-2;faq=f-2"

    retrained = asyncio.run(retrain_and_swap(make_settings(), "manual", reload, run_retrain))
    return retrained, reloads


def test_a_promoted_run_is_swapped_in(make_settings) -> None:
    retrained, reloads = _retrain(make_settings, {"status": "promoted", "reasons": ["sentiment: promoted s-2"]})
    assert (retrained.status, retrained.serving, retrained.swap_problem, reloads) == (
        "promoted", "sentiment=s-2;faq=f-2", None, ["swapped"])


def test_a_refused_or_skipped_run_changes_nothing_served(make_settings) -> None:
    for status in ("refused", "skipped", "failed"):
        retrained, reloads = _retrain(make_settings, {"status": status, "reasons": []})
        assert (retrained.status, retrained.serving, reloads) == (status, None, [])


def test_a_run_that_cannot_start_is_a_failed_result_with_the_reason(make_settings) -> None:
    retrained, reloads = _retrain(make_settings, error=OSError("no space left"))
    assert retrained.status == "failed" and retrained.result["reasons"] == ["OSError: no space left"]
    assert reloads == []


def test_a_promotion_that_cannot_be_loaded_says_so_and_the_old_model_keeps_serving(make_settings) -> None:
    retrained, _ = _retrain(make_settings, {"status": "promoted"}, reload_error=RuntimeError("corrupt adapter"))
    assert (retrained.status, retrained.serving, retrained.swap_problem) == (
        "promoted", None, "RuntimeError: corrupt adapter")
