"""The FAQ encoder exported for sentence-transformers embeds exactly as the shop does (training.faq, shopbot export-encoder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from cli import main
from storage.store import Store
from training.args import TrainArgs
from training.encoder import EmbeddingModel, Encoder
from training.faq import embed, export_sentence_transformer, load_faq, new_faq_model, save_faq
from training.features import FeatureCache
from training.registry import AdapterRegistry

TEXTS = ["你们几点开门？", "Can I get less sugar?", "珍珠煮多久", "where is the shop", "太甜了，下次少糖"]


def adapted_faq(encoder: Encoder, folder: Path) -> Path:
    """Save an FAQ adapter whose LoRA visibly changes the embeddings (random B instead of zeros)."""
    model = new_faq_model(encoder, TrainArgs())
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    save_faq(model, folder)
    return folder


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_sentence_transformers_embeds_like_the_shops_adapted_faq_model(tiny_base, tmp_path):
    encoder = Encoder(tiny_base, 1, trunk_dtype="float32")
    cache = FeatureCache(encoder)
    shop_model, _ = load_faq(encoder, adapted_faq(encoder, tmp_path / "adapter"))
    shop = embed(shop_model, cache, TEXTS)
    base = embed(EmbeddingModel(encoder.new_top()), cache, TEXTS)
    assert cosines(shop, base).min() < 0.99  # the adapter matters, so the test sees whether it was merged

    out = export_sentence_transformer(encoder, shop_model, tmp_path / "exported")
    exported = SentenceTransformer(str(out), device="cpu").encode(TEXTS)
    assert cosines(exported, shop).min() > 0.999


def test_cli_exports_the_active_faq_adapter(tiny_base, tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\nbase = "{tiny_base}"\ntop_layers = 1\ntrunk_dtype = "float32"\n', encoding="utf-8")
    encoder = Encoder(tiny_base, 1, trunk_dtype="float32")
    with Store(tmp_path / "var" / "shopbot.db") as store:
        registry = AdapterRegistry(tmp_path / "var" / "adapters", store)
        staging = adapted_faq(encoder, registry.staging_dir("faq"))
        record = registry.publish("faq", staging, {"metrics": {}, "base_model": str(tiny_base)})
        registry.promote(record.version, ["test"])
    shop = embed(load_faq(encoder, registry.folder(record))[0], FeatureCache(encoder), TEXTS)

    assert main(["--config", str(config), "export-encoder", str(tmp_path / "exported")]) == 0
    assert record.version in capsys.readouterr().out
    exported = SentenceTransformer(str(tmp_path / "exported"), device="cpu").encode(TEXTS)
    assert cosines(exported, shop).min() > 0.999


def test_cli_exports_the_base_before_any_adapter(tiny_base, tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\nbase = "{tiny_base}"\ntop_layers = 1\ntrunk_dtype = "float32"\n', encoding="utf-8")
    assert main(["--config", str(config), "export-encoder", str(tmp_path / "exported")]) == 0
    assert "faq encoder base written" in capsys.readouterr().out
    encoder = Encoder(tiny_base, 1, trunk_dtype="float32")
    base = embed(EmbeddingModel(encoder.new_top()), FeatureCache(encoder), TEXTS)
    exported = SentenceTransformer(str(tmp_path / "exported"), device="cpu").encode(TEXTS)
    assert cosines(exported, base).min() > 0.999
