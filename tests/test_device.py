"""The device settings reach the model (CPU-only checks; tests/test_cuda.py runs the GPU paths)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

import training.encoder as encoders
from settings import ConfigError
from training.args import TrainArgs
from training.device import SKIP_QUANTISATION, DeviceError, quantisation_config, top_layer_names
from training.encoder import Encoder
from training.faq import new_faq_model
from training.sentiment import new_sentiment_model


class RecordingEncoder:
    """Stands in for Encoder in load_encoder: records how it was asked to build the model."""

    def __init__(self, folder: Path, top_layers: int, max_length: int = 128, trunk_dtype: str = "float32",
                 device: str = "cpu"):
        self.args = {"top_layers": top_layers, "trunk_dtype": trunk_dtype, "device": device}


@pytest.fixture
def cuda_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoders, "Encoder", RecordingEncoder)


def test_auto_picks_cuda_when_present_and_the_encoder_gets_it(cuda_present, recorded, make_settings, tiny_base):
    encoder = encoders.load_encoder(make_settings(model={"base": str(tiny_base), "top_layers": 1}))
    assert encoder.args == {"top_layers": 1, "trunk_dtype": "bfloat16", "device": "cuda"}


def test_cpu_setting_keeps_the_model_on_the_cpu_even_with_cuda(cuda_present, recorded, make_settings, tiny_base):
    settings = make_settings(model={"base": str(tiny_base), "top_layers": 1, "device": "cpu", "trunk_dtype": "int8"})
    assert encoders.load_encoder(settings).args["device"] == "cpu"
    assert encoders.load_encoder(settings).args["trunk_dtype"] == "int8"


def test_load_in_4bit_asks_for_an_nf4_trunk_on_cuda(cuda_present, recorded, make_settings, tiny_base, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", types.ModuleType("bitsandbytes"))  # the import check only
    settings = make_settings(model={"base": str(tiny_base), "top_layers": 1, "device": "cuda", "load_in_4bit": True})
    assert encoders.load_encoder(settings).args == {"top_layers": 1, "trunk_dtype": "nf4", "device": "cuda"}


def test_load_in_4bit_without_cuda_is_a_clear_error(monkeypatch, recorded, make_settings, tiny_base):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    settings = make_settings(model={"base": str(tiny_base), "top_layers": 1, "load_in_4bit": True})  # device auto
    with pytest.raises(DeviceError, match="load_in_4bit needs CUDA"):
        encoders.load_encoder(settings)


def test_4bit_with_another_trunk_dtype_is_a_config_error(make_settings):
    for dtype in ("int8", "float32", "bfloat16"):
        with pytest.raises(ConfigError, match=r'model.load_in_4bit: .*trunk_dtype = "auto"'):
            make_settings(model={"load_in_4bit": True, "trunk_dtype": dtype})
    assert make_settings(model={"load_in_4bit": True}).model.load_in_4bit


def test_4bit_config_is_nf4_and_keeps_the_adapted_layers_and_head_unquantised(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", types.ModuleType("bitsandbytes"))  # the import check only
    config = quantisation_config(True, "cuda", keep=top_layer_names(12, 2))
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert config.llm_int8_skip_modules == [*SKIP_QUANTISATION, "encoder.layer.10", "encoder.layer.11"]


def test_4bit_without_bitsandbytes_names_the_gpu_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails
    with pytest.raises(DeviceError, match=r"shopbot\[gpu\]"):
        quantisation_config(True, "cuda")


def test_nf4_and_int8_are_refused_on_the_wrong_device(tiny_base):
    with pytest.raises(DeviceError, match="needs CUDA"):
        Encoder(tiny_base, 1, trunk_dtype="nf4", device="cpu")
    with pytest.raises(ValueError, match=r"int8 .*CPU"):
        Encoder(tiny_base, 1, trunk_dtype="int8", device="cuda")


def test_trainers_build_their_models_on_the_encoders_device(tiny_base):
    encoder = Encoder(tiny_base, 1, device="cpu")
    assert encoder.device == torch.device("cpu")
    out = encoder.trunk(["你好", "hello there"])
    assert out.hidden.device.type == "cpu" and out.mask.device.type == "cpu"
    for model in (new_sentiment_model(encoder, TrainArgs()), new_faq_model(encoder, TrainArgs())):
        assert {p.device for p in model.parameters()} == {encoder.device}
