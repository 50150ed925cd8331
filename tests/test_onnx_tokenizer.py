"""The serving tokenizer (serving.tokenizer) gives exactly the ids `tokenizers` gives, on the model's own tokenizer.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.tokenizer import PieceTokenizer

REPO = Path(__file__).resolve().parents[1]
MAX_LENGTH = 32  # short, so that truncation is exercised often

EDGE_CASES = ["", " ", "  spaced   out  ", "\t\nnew\nline", "哈哈哈哈哈哈哈哈", "6666666", "hhhhhhhhhhhhhhh",
              "<s>hi</s>", "a<mask>b", "<unk><pad>", "query: query:", "emoji 😀🧋🧋 ok", "ＡＢＣ１２３", "e\u0301",
              "珍" * 300, "x" * 500, "能做少糖吗?", "do you deliver?", "珍珠太硬了，下次不来了", "\u200b\u00a0zero width",
              "ﬁ ligature", "Ⅻ roman", "٣ arabic digit", "𠀀 rare han", "\U0010ffff"]


@pytest.fixture(scope="module")
def pair(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory):
    """(ours, `tokenizers`' as the ONNX base used it) on the tokenizer.json the export writes."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    AutoTokenizer.from_pretrained(tiny_base).backend_tokenizer.save(str(path))  # as training.export_onnx writes it
    reference = Tokenizer.from_file(str(path))
    reference.enable_truncation(MAX_LENGTH)
    reference.enable_padding(pad_id=reference.token_to_id("<pad>"))
    return PieceTokenizer(path, MAX_LENGTH), reference


def _same(pair, texts: list[str]) -> None:
    ours, reference = pair
    ids, mask = ours.encode_batch(texts)
    expected = reference.encode_batch(texts)
    assert ids.tolist() == [e.ids for e in expected]
    assert mask.tolist() == [e.attention_mask for e in expected]


def test_demo_shop_texts_and_edge_cases_tokenise_as_tokenizers_does(pair):
    faq = json.loads((REPO / "data" / "demo" / "faq.json").read_text(encoding="utf-8"))
    texts = [text for entry in faq for lang, content in entry.items() if lang not in ("key", "topic")
             for text in [content["question"], content["answer"], *content.get("phrasings", [])]]
    with open(REPO / "data" / "demo" / "reviews.tsv", encoding="utf-8") as fh:
        texts += [row[0] for row in csv.reader(fh, delimiter="\t")][1:]
    for text in texts + EDGE_CASES:
        _same(pair, ["query: " + text])
    _same(pair, ["query: " + t for t in EDGE_CASES])  # one padded batch


ALPHABET = st.sampled_from(list("珍珠奶茶少糖冰甜好喝太了吗的是不") + list("abcdeghiklmnorstuy") + list("0123456789")
                           + list(" \t\n,.!?，。！？😀🧋…'\"-") + ["<s>", "</s>", "<mask>", "\u0301", "Ａ", "ﬁ"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(ALPHABET, max_size=60).map("".join), min_size=1, max_size=4))
def test_random_chat_texts_tokenise_as_tokenizers_does(pair, texts):
    _same(pair, texts)


def test_a_tokenizer_file_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"model": {"type": "BPE", "vocab": {}, "merges": []}, "added_tokens": []}))
    with pytest.raises(ValueError, match="Unigram"):
        PieceTokenizer(path, MAX_LENGTH)
