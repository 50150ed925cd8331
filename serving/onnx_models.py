"""The ONNX Runtime serving path: the trunk and the tops as graphs, tokenised by `serving.tokenizer`, no torch.

`OnnxBase` is the base object of `serving.loading.load_base` when `model.runtime` is onnx: it
tokenises (`serving.tokenizer`) exactly as the torch encoder (e5's "query: " prefix, truncation to `model.max_length`),
gathers word-embedding rows from a memory-mapped table, runs the trunk graph and runs tops
(`OnnxTop`) on trunk states; it has the attributes `training.features.FeatureCache` keys its
cache by. Every graph is checked before it may serve: sha256 against its manifest, then its
probe (fixed inputs, the torch outputs) re-run here; a mismatch raises `GraphRefused`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.tokenizer import PieceTokenizer
from training.export_onnx import (
    BASE_FAQ_GRAPH,
    BASE_PROBE,
    GRAPHS_MANIFEST,
    PRECISION,
    TOKENIZER,
    TOP_GRAPH,
    TOP_PROBE,
    TRUNK_GRAPH,
    WORD_EMBEDDINGS,
)
from training.features import pad_numpy, similar_lengths
from training.model_folder import QUERY_PREFIX
from training.registry import sha256_file

log = logging.getLogger(__name__)

# How close ONNX Runtime's outputs must be to the torch float32 outputs on a probe (float32 graphs
# match them to cosine > 0.99999); a graph of another model, or a damaged one, is far below.
PROBE_MIN_COSINE = 0.999
PROBE_MAX_PROBABILITY_GAP = 0.01  # sentiment: softmax probabilities of the probe texts


class GraphRefused(RuntimeError):
    """A graph is missing, does not match its checksum, or its probe disagrees with the torch outputs."""


def _session(path: Path, arena: bool = True):
    """An ONNX Runtime session with one intra-op thread (the bot's parallelism is its worker threads).

    `arena=False` for the tops, of which every shop (and every swap) has its own: an arena keeps the largest
    batch's activations for good: 20 sessions of one FAQ top, each after a batch of 32, held 72 MB each with
    the arena and 18.5 MB each without (VmRSS), for 0.50 against 0.57 ms per one-message call.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = arena
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for an unreadable graph
        raise GraphRefused(f"{path} is not a loadable ONNX graph: {error}") from error
    release_freed_heap()
    return session


def release_freed_heap() -> None:
    """Give the C heap's free pages back to the OS (glibc `malloc_trim`; elsewhere nothing).

    Loading a graph parses its protobuf into buffers freed once the session holds its weights; glibc
    keeps them: 47 MB of VmRSS after the trunk's session alone. Called after every session is made, and by the bot
    after a swap (the old model's sessions).
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


@dataclass(frozen=True, eq=False)
class OnnxTop:
    """A merged top as an ONNX Runtime session: trunk states + mask -> logits (sentiment) or a unit embedding (FAQ)."""

    session: object
    path: Path

    @classmethod
    def load(cls, graph: Path, probe: Path, logits: bool) -> OnnxTop:
        """The graph, after its probe agrees with the torch outputs stored beside it (else `GraphRefused`)."""
        if not graph.is_file() or not probe.is_file():
            raise GraphRefused(f"{graph.parent} has no {graph.name} with {probe.name}")
        top = cls(_session(graph, arena=False), graph)
        try:
            stored = np.load(probe)
            got = top(stored["hidden"], stored["attention_mask"])
            expected = stored["expected"]
        except GraphRefused:
            raise
        except Exception as error:  # a probe file or a graph that does not fit: refused, whatever broke
            raise GraphRefused(f"probe {probe} could not be run on {graph}: {error}") from error
        if got.shape != expected.shape:
            raise GraphRefused(f"{graph} outputs {got.shape} on its probe, torch gave {expected.shape}")
        if logits:
            gap = float(np.abs(_softmax(got) - _softmax(expected)).max())
            if gap > PROBE_MAX_PROBABILITY_GAP or not np.array_equal(got.argmax(1), expected.argmax(1)):
                raise GraphRefused(f"{graph} disagrees with torch on its probe (probability gap {gap:.3f})")
        else:
            worst = float(_row_cosines(got, expected).min())
            if worst < PROBE_MIN_COSINE:
                raise GraphRefused(f"{graph} disagrees with torch on its probe (cosine {worst:.4f})")
        return top

    def __call__(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"hidden": hidden, "attention_mask": mask})[0]  # type: ignore[attr-defined]


def adapter_top(folder: Path, logits: bool) -> OnnxTop:
    """The graph an adapter folder carries (written at publish, covered by the registry's checksums)."""
    return OnnxTop.load(folder / TOP_GRAPH, folder / TOP_PROBE, logits)


class OnnxBase:
    """Tokenizer + the trunk graph + the base's FAQ top, from a folder `training.export_onnx.export_base` built."""

    def __init__(self, graphs: Path, base_folder: Path, top_layers: int):
        self.graphs = Path(graphs)
        manifest = self._verified_manifest()
        self.folder = Path(base_folder)  # the identity of the base (the feature cache's key), as the torch encoder's
        self.top_layers = top_layers
        self.max_length = int(manifest["max_length"])
        self.hidden_size = int(manifest["hidden_size"])
        self.trunk_dtype = f"onnx-{PRECISION}"  # computed by another engine: a feature cache of its own
        self.device = "cpu"
        self.tokenizer = PieceTokenizer(self.graphs / TOKENIZER, self.max_length)
        self.words = np.load(self.graphs / WORD_EMBEDDINGS, mmap_mode="r")  # only the rows of tokens seen are read
        self.session = _session(self.graphs / TRUNK_GRAPH)
        self._probe()
        self.base_faq = OnnxTop.load(self.graphs / BASE_FAQ_GRAPH, self.graphs / "faq_probe.npz", logits=False)

    def _verified_manifest(self) -> dict:
        try:
            manifest = json.loads((self.graphs / GRAPHS_MANIFEST).read_text())
            files = manifest["files"]
        except (OSError, ValueError, KeyError) as error:
            raise GraphRefused(f"{self.graphs / GRAPHS_MANIFEST} is unreadable: {error}") from error
        for name, expected in files.items():
            path = self.graphs / name
            if not path.is_file() or sha256_file(path) != expected:
                raise GraphRefused(f"{path} is missing or does not match its sha256 in {GRAPHS_MANIFEST}")
        return manifest

    def _probe(self) -> None:
        stored = np.load(self.graphs / BASE_PROBE)
        got = self._run_trunk(stored["input_ids"], stored["attention_mask"])
        mask = stored["attention_mask"].astype(bool)
        expected = stored["expected"]
        worst = min(float(_row_cosines(got[i][mask[i]][None], expected[i][mask[i]][None])[0]) for i in range(len(got)))
        if worst < PROBE_MIN_COSINE:
            raise GraphRefused(f"{self.graphs / TRUNK_GRAPH} disagrees with torch on its probe (cosine {worst:.4f})")

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input ids, attention mask), int64, padded to the longest text: as the torch encoder tokenises."""
        return self.tokenizer.encode_batch([QUERY_PREFIX + t for t in texts])

    def _run_trunk(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        embeds = np.ascontiguousarray(self.words[ids], dtype=np.float32)
        return self.session.run(None, {"inputs_embeds": embeds, "attention_mask": mask})[0]

    def trunk_features(self, texts: list[str]) -> list[np.ndarray]:
        """Trunk states (tokens, hidden) per text, unpadded, float32; run in groups of similar lengths."""
        ids, mask = self.tokenize(texts)
        lengths = mask.sum(1).tolist()
        states: list[np.ndarray] = [np.empty(0)] * len(texts)
        for group in similar_lengths(lengths, len(texts)):
            longest = max(lengths[i] for i in group)
            hidden = self._run_trunk(ids[group, :longest], mask[group, :longest])
            for row, i in enumerate(group):
                states[i] = hidden[row, : lengths[i]]
        return states

    def run_top(self, top: OnnxTop, features: Sequence[np.ndarray]) -> np.ndarray:
        """A top's outputs for one batch of trunk features."""
        return top(*pad_numpy(features))
