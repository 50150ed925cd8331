"""Recipe ablation for review sentiment: every row on the same splits and seed, accuracy with a 95% interval.

One script on purpose (over 300 lines): a benchmark is read top to bottom, set-up, run and report together.

    python bench/ablation.py --train ../shared/datasets/zh-reviews-sentiment/train.tsv \
        --test ../shared/datasets/zh-reviews-sentiment/test.tsv --limit 3000 --test-limit 1500

Rows (pick some with --rows): a character n-gram baseline, a linear probe on the frozen model,
the shipped recipe (`TrainArgs()` on `model.top_layers` from config.toml, int8 trunk), and one
change of it per row: adapted layers, fp32 trunk features, full fine-tuning of the adapted
layers, learning rate, epochs, class balancing, a SetFit-style contrastive step before the head,
and ensembles with the character n-gram model. `ceiling` fully fine-tunes all 12 layers in fp32
(slow; run once). Trunk features are computed in one pass per precision, capturing every split
point, and cached under --cache so re-runs only train. Each row saves its test probabilities,
so ensembles are rows too; a paired bootstrap gives each row's difference to the shipped recipe.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import time
from dataclasses import replace
from pathlib import Path

import common  # puts the repo on sys.path
import numpy as np
import torch
from common import base_folder, read_tsv, save
from torch import nn

from settings import load_settings
from storage.text import stable_split
from training.args import TrainArgs
from training.encoder import Encoder, _layer_out, extended_mask, mean_pool
from training.estimate import wilson_interval
from training.features import FeatureCache, length_batches, pad_batch
from training.recipe import CharNgramModel
from training.sentiment import ReviewClassifier, SentimentTrainer
from training.tasks import SentimentSpec

SPLIT_LAYERS = (6, 8, 10)  # trunk depth for top_layers 6 / 4 / 2


def trunk_states(base: Path, texts: list[str], quantize: bool, max_length: int, cache: Path) -> dict[int, list[torch.Tensor]]:
    """{trunk depth: per-text hidden states} for every depth in SPLIT_LAYERS and 12, in one pass."""
    import hashlib

    key = hashlib.sha1(json.dumps([str(base), quantize, max_length, texts], ensure_ascii=False).encode()).hexdigest()[:16]
    path = cache / f"states-{key}.pt"
    if path.exists():
        return torch.load(path)
    encoder = Encoder(base, 1, max_length)
    layers = nn.ModuleList(list(encoder.trunk_layers) + list(encoder.pristine_top))
    if quantize:
        layers = torch.ao.quantization.quantize_dynamic(copy.deepcopy(layers), {nn.Linear}, dtype=torch.qint8)
    depths = (*SPLIT_LAYERS, 12)
    out: dict[int, list[torch.Tensor]] = {d: [None] * len(texts) for d in depths}  # type: ignore[list-item]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(order), 32):
            idx = order[start:start + 32]
            batch = encoder.tokenize([texts[i] for i in idx])
            mask = batch["attention_mask"]
            x = encoder.embeddings(input_ids=batch["input_ids"], token_type_ids=torch.zeros_like(batch["input_ids"]))
            ext = extended_mask(mask, x.dtype)
            lengths = mask.sum(1).tolist()
            for depth, layer in enumerate(layers, start=1):
                x = _layer_out(layer(x, attention_mask=ext))
                if depth in out:
                    for j, i in enumerate(idx):
                        out[depth][i] = x[j, : int(lengths[j])].to(torch.float16).clone()
    print(f"trunk states for {len(texts)} texts ({'int8' if quantize else 'fp32'}): {time.perf_counter() - started:.0f} s", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def filled_cache(encoder: Encoder, texts: list[str], states: list[torch.Tensor]) -> FeatureCache:
    """A feature cache holding precomputed trunk states (no disk, no trunk runs)."""
    cache = FeatureCache(encoder)
    cache.put(texts, states)
    return cache


def pooled(states: list[torch.Tensor]) -> np.ndarray:
    """Mean-pooled, L2-normalised vectors (the e5 sentence embedding when the states are the last layer)."""
    vectors = torch.stack([s.float().mean(0) for s in states])
    return nn.functional.normalize(vectors, dim=-1).numpy()


class Bench:
    """Shared data and features for all rows of one dataset."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        rng = random.Random(13)
        train_rows, test_rows = read_tsv(args.train), read_tsv(args.test)
        rng.shuffle(train_rows)
        rng.shuffle(test_rows)
        train_rows = train_rows[: args.limit] if args.limit else train_rows
        self.test = test_rows[: args.test_limit] if args.test_limit else test_rows
        self.train = [r for r in train_rows if stable_split(r[0]) != "validation"]
        self.validation = [r for r in train_rows if stable_split(r[0]) == "validation"]
        self.labels = tuple(sorted({y for _, y in train_rows}))
        self.y_test = np.array([self.labels.index(y) for _, y in self.test])
        self.base = base_folder(args.base)
        self.settings = load_settings(args.config)
        self.texts = list(dict.fromkeys([t for t, _ in self.train + self.validation + self.test]))
        self._states: dict[bool, dict[int, list[torch.Tensor]]] = {}
        self._encoders: dict[tuple[int, bool], Encoder] = {}

    def states(self, quantize: bool, depth: int) -> list[torch.Tensor]:
        if quantize not in self._states:
            self._states[quantize] = trunk_states(self.base, self.texts, quantize, self.settings.model.max_length,
                                                  Path(self.args.cache))
        return self._states[quantize][depth]

    def cache(self, top_layers: int, quantize: bool) -> FeatureCache:
        key = (top_layers, quantize)
        if key not in self._encoders:
            self._encoders[key] = Encoder(self.base, top_layers, self.settings.model.max_length,
                                          "int8" if quantize else "float32")
        return filled_cache(self._encoders[key], self.texts, self.states(quantize, 12 - top_layers))

    def shipped_args(self) -> TrainArgs:
        return TrainArgs(progress=False)

    def trained(self, top_layers: int | None = None, quantize: bool = True, **changes) -> tuple[np.ndarray, float]:
        """Test probabilities and training seconds of the shipped trainer with `changes`."""
        top = top_layers or self.settings.model.top_layers
        cache = self.cache(top, quantize)
        trainer = SentimentTrainer(cache.encoder, cache, replace(self.shipped_args(), **changes), self.labels)
        result = trainer.train(self.train, self.validation)
        head_only = ReviewClassifier(result.model, cache, self.labels)  # no n-gram blend
        return head_only.predict_proba([t for t, _ in self.test]), result.seconds


def blended(bench: Bench, top_layers: int | None = None, quantize: bool = True, **changes) -> tuple[np.ndarray, float]:
    """The product's sentiment spec (encoder head + n-gram blend weighted on validation) with `changes`."""
    cache = bench.cache(top_layers or bench.settings.model.top_layers, quantize)
    spec = SentimentSpec(cache, replace(bench.shipped_args(), **changes), bench.labels)
    started = time.perf_counter()
    model = spec.fit(bench.train, bench.validation)
    seconds = time.perf_counter() - started
    print(f"  n-gram share chosen on validation: {model.char_weight}", flush=True)
    return model.predict_proba([t for t, _ in bench.test]), seconds


def row_char_ngram(bench: Bench) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    model = CharNgramModel.fit([t for t, _ in bench.train], [y for _, y in bench.train], bench.labels)
    return model.predict_proba([t for t, _ in bench.test]), time.perf_counter() - started


def row_probe(bench: Bench, quantize: bool = True) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    lookup = dict(zip(bench.texts, bench.states(quantize, 12)))
    fit = bench.train + bench.validation
    started = time.perf_counter()
    x = pooled([lookup[t] for t, _ in fit])
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(x, [bench.labels.index(y) for _, y in fit])
    return clf.predict_proba(pooled([lookup[t] for t, _ in bench.test])), time.perf_counter() - started


def row_setfit(bench: Bench) -> tuple[np.ndarray, float]:
    """SetFit's shape: a contrastive epoch on the adapted layers (same label = close), then a logistic head."""
    from sklearn.linear_model import LogisticRegression

    from training.faq import embed, new_faq_model
    from training.faq_index import SCALE

    top = bench.settings.model.top_layers
    cache = bench.cache(top, True)
    args = bench.shipped_args()
    started = time.perf_counter()
    model = new_faq_model(cache.encoder, args)
    fit = bench.train + bench.validation
    feats = cache.get_many([t for t, _ in fit])
    y = torch.tensor([bench.labels.index(label) for _, label in fit])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate / 3, weight_decay=0.01)
    model.train()
    for idx in length_batches([f.shape[0] for f in feats], 32, shuffle=True, seed=args.seed):
        if len(idx) < 2:
            continue
        z = model(*pad_batch([feats[i] for i in idx]))
        same = (y[idx][:, None] == y[idx][None, :]).float()
        logits = SCALE * z @ z.T - torch.eye(len(idx)) * 1e4
        log_prob = logits.log_softmax(-1)
        positives = same - torch.eye(len(idx))
        loss = -(log_prob * positives).sum(1) / positives.sum(1).clamp(min=1)  # supervised contrastive
        loss.mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(embed(model, cache, [t for t, _ in fit]), y.numpy())
    probs = clf.predict_proba(embed(model, cache, [t for t, _ in bench.test]))
    return probs, time.perf_counter() - started


def row_ceiling(bench: Bench) -> tuple[np.ndarray, float]:
    """All 12 layers fine-tuned in fp32 (lr 5e-5, 3 epochs, mean pooling + linear head): what this base can do.

    Token embeddings stay frozen: with a 250k-piece vocabulary they are 96M of the 118M weights, and
    only the few thousand pieces a dataset uses would move.
    """
    from transformers import AutoModel

    from training.model_folder import QUERY_PREFIX

    torch.manual_seed(13)
    tokenizer = Encoder(bench.base, 1, bench.settings.model.max_length).tokenizer
    model = AutoModel.from_pretrained(bench.base, add_pooling_layer=False)
    head = nn.Linear(model.config.hidden_size, len(bench.labels))
    model.embeddings.requires_grad_(False)  # the 250k-piece vocabulary: 96M parameters Adam would touch every step
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    fit = bench.train + bench.validation
    epochs, batch_size = 3, 16
    steps = epochs * math.ceil(len(fit) / batch_size)
    optimizer = torch.optim.AdamW(params, lr=5e-5, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=5e-5, total_steps=steps, pct_start=0.1,
                                                    anneal_strategy="linear")
    y = torch.tensor([bench.labels.index(label) for _, label in fit])

    def forward(texts: list[str]) -> torch.Tensor:
        batch = tokenizer([QUERY_PREFIX + t for t in texts], padding=True, truncation=True,
                          max_length=bench.settings.model.max_length, return_tensors="pt")
        return head(mean_pool(model(**batch).last_hidden_state, batch["attention_mask"]))

    started = time.perf_counter()
    lengths = [len(t) for t, _ in fit]
    for epoch in range(epochs):
        model.train()
        for n, idx in enumerate(length_batches(lengths, batch_size, shuffle=True, seed=13 + epoch)):
            loss = nn.functional.cross_entropy(forward([fit[i][0] for i in idx]), y[idx])
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            if n % 50 == 0:
                print(f"ceiling epoch {epoch + 1} step {n} loss {loss.item():.3f} {time.perf_counter() - started:.0f} s",
                      flush=True)
    model.eval()
    test_texts = [t for t, _ in bench.test]
    probs = np.zeros((len(test_texts), len(bench.labels)), dtype=np.float32)
    with torch.no_grad():
        for idx in length_batches([len(t) for t in test_texts], 64, shuffle=False):
            probs[idx] = forward([test_texts[i] for i in idx]).softmax(-1).numpy()
    return probs, time.perf_counter() - started


ROWS = {
    "char_ngram": ("character 1-3-gram TF-IDF + logistic regression (baseline)", row_char_ngram),
    "probe": ("logistic regression on the frozen model's sentence embedding", row_probe),
    "shipped": ("the recipe before this ablation: LoRA r=8 on the top layers, int8 trunk, TrainArgs()",
                lambda b: b.trained()),
    "layers4": ("4 adapted layers", lambda b: b.trained(top_layers=4)),
    "layers6": ("6 adapted layers", lambda b: b.trained(top_layers=6)),
    "fp32": ("fp32 trunk features (train and test)", lambda b: b.trained(quantize=False)),
    "full": ("full fine-tuning of the adapted layers (lr 1e-4)", lambda b: b.trained(adapter="full", learning_rate=1e-4)),
    "lr3e-4": ("learning rate 3e-4", lambda b: b.trained(learning_rate=3e-4)),
    "lr3e-3": ("learning rate 3e-3", lambda b: b.trained(learning_rate=3e-3)),
    "epochs2": ("2 epochs (min_steps 150)", lambda b: b.trained(epochs=2, min_steps=150)),
    "epochs8": ("8 epochs", lambda b: b.trained(epochs=8)),
    "unbalanced": ("no class balancing", lambda b: b.trained(class_balance=False)),
    "blend": ("shipped trainer + n-gram model blended, share chosen on validation", blended),
    "layers4_blend": ("4 adapted layers + n-gram blend", lambda b: blended(b, top_layers=4)),
    "fp32_probe": ("fp32 features: logistic regression on the frozen sentence embedding", lambda b: row_probe(b, False)),
    "fp32_blend": (("SHIPPED NOW: fp32 features (the product's bfloat16 trunk matches them to cosine 0.99998), "
                    "LoRA on the top layers, n-gram blend"), lambda b: blended(b, quantize=False)),
    "fp32_layers4_blend": ("fp32 features: 4 adapted layers + n-gram blend", lambda b: blended(b, 4, False)),
    "fp32_epochs2_blend": ("fp32 features: 2 epochs + n-gram blend", lambda b: blended(b, quantize=False, epochs=2,
                                                                                        min_steps=150)),
    "setfit": ("SetFit-style: a contrastive epoch on the adapted layers, then a logistic head", row_setfit),
    "ceiling": ("ceiling: all 12 layers fully fine-tuned (embeddings frozen), fp32, 3 epochs, lr 5e-5", row_ceiling),
}


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, rounds: int = 2000) -> tuple[float, float]:
    """95% interval of accuracy(a) - accuracy(b) on the same test examples."""
    rng = np.random.default_rng(13)
    n = len(correct_a)
    diffs = [(correct_a[i] - correct_b[i]).mean() for i in (rng.integers(0, n, n) for _ in range(rounds))]
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="training rows (random, seed 13)")
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--rows", default=",".join(r for r in ROWS if r != "ceiling"))
    parser.add_argument("--ensemble", default="shipped,full,fp32,layers4", help="rows also averaged with char_ngram")
    parser.add_argument("--config", type=Path, default=common.REPO / "config.toml")
    parser.add_argument("--base", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", default=str(common.REPO / ".cache" / "ablation"))
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    bench = Bench(args)
    name = args.name or args.train.parent.name
    probs_dir = Path(args.cache) / f"probs-{name}-{len(bench.train)}-{len(bench.test)}"
    probs_dir.mkdir(parents=True, exist_ok=True)
    print(f"{name}: train {len(bench.train)}, validation {len(bench.validation)}, test {len(bench.test)}, "
          f"labels {bench.labels}; shipped config: top_layers={bench.settings.model.top_layers}, "
          f"max_length={bench.settings.model.max_length}, {bench.shipped_args()}", flush=True)
    results: dict[str, dict] = {}
    probs: dict[str, np.ndarray] = {}
    wanted = [r for r in args.rows.split(",") if r]
    for row in [*wanted, "char_ngram"]:
        saved = probs_dir / f"{row}.npz"
        if saved.exists():
            data = np.load(saved)
            probs[row], seconds = data["probs"], float(data["seconds"])
        else:
            print(f"row {row} ...", flush=True)
            probs[row], seconds = ROWS[row][1](bench)
            np.savez(saved, probs=probs[row], seconds=seconds)
        results[row] = {"what": ROWS[row][0], "train_seconds": round(seconds, 1)}
    for saved in sorted(probs_dir.glob("*.npz")):  # rows run before (e.g. the ceiling) stay in the table
        row = saved.stem
        if row not in probs and row in ROWS:
            data = np.load(saved)
            probs[row] = data["probs"]
            results[row] = {"what": ROWS[row][0], "train_seconds": round(float(data["seconds"]), 1)}
    for row in [r for r in args.ensemble.split(",") if r in probs and r != "char_ngram"]:
        probs[f"{row}+char"] = (probs[row] + probs["char_ngram"]) / 2
        results[f"{row}+char"] = {"what": f"{row} averaged with char_ngram (probabilities, equal weight)",
                                  "train_seconds": results[row]["train_seconds"] + results["char_ngram"]["train_seconds"]}
    reference = (probs["shipped"].argmax(1) == bench.y_test).astype(float) if "shipped" in probs else None
    for row, p in probs.items():
        correct = (p.argmax(1) == bench.y_test).astype(float)
        low, high = wilson_interval(int(correct.sum()), len(correct))
        results[row] |= {"accuracy": round(float(correct.mean()), 4), "interval": [round(low, 4), round(high, 4)]}
        if reference is not None and row != "shipped":
            d_low, d_high = paired_bootstrap(correct, reference)
            results[row]["vs_shipped"] = [round(d_low, 4), round(d_high, 4)]
    out = {"dataset": name, "n_train": len(bench.train), "n_validation": len(bench.validation),
           "n_test": len(bench.test), "labels": list(bench.labels), "seed": 13,
           "shipped_config": {"top_layers": bench.settings.model.top_layers, "max_length": bench.settings.model.max_length,
                              "train_args": {k: v for k, v in vars(bench.shipped_args()).items() if k != "max_train_seconds"}},
           "rows": results}
    for row, r in sorted(results.items(), key=lambda kv: -kv[1]["accuracy"]):
        print(f"  {row:18s} {100 * r['accuracy']:5.1f}%  [{100 * r['interval'][0]:.1f}, {100 * r['interval'][1]:.1f}]"
              f"  vs shipped {r.get('vs_shipped', '')}  {r['train_seconds']:7.1f} s  {r['what']}", flush=True)
    save(f"ablation-{name}", out)
    return out


if __name__ == "__main__":
    main()
