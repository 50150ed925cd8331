"""Loading the base model prints no transformers LOAD REPORT (the pooler it lacks is never used)."""

from __future__ import annotations

import logging

import pytest

from training.base_model import sanity_margin
from training.encoder import Encoder


def assert_quiet(capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture) -> None:
    out, err = capfd.readouterr()
    text = out + err + caplog.text
    assert "LOAD REPORT" not in text and "MISSING" not in text, text


def test_the_first_run_sanity_check_loads_quietly(tiny_base, capfd, caplog):
    caplog.set_level(logging.INFO)
    sanity_margin(tiny_base)  # what ensure_bundled runs on a first start, after building the base
    assert_quiet(capfd, caplog)


def test_the_encoder_and_sentence_transformers_load_the_base_quietly(tiny_base, capfd, caplog):
    from sentence_transformers import SentenceTransformer

    caplog.set_level(logging.INFO)
    Encoder(tiny_base, 1)
    SentenceTransformer(str(tiny_base), device="cpu")
    assert_quiet(capfd, caplog)
