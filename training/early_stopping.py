"""Early stopping on a validation score: keep the trainable weights of the best epoch (nanoGPT-style)."""

from __future__ import annotations

import math

from torch import nn

# Below this many validation examples a score is noise (one example = 4% at n=24): a lucky early
# epoch, e.g. one predicting the majority class, would be kept. Train the full budget instead.
MIN_VALIDATION = 50


class EarlyStopping:
    """step() after each epoch says whether to stop; restore() puts the best epoch's weights back."""

    def __init__(self, patience: int, keep: tuple[str, ...], baseline: float = -math.inf):
        self.patience = patience
        self.keep = keep  # substrings of the parameter names that are trained (LoRA, heads)
        self.best = baseline
        self.state: dict | None = None
        self._bad_epochs = 0

    def step(self, model: nn.Module, score: float | None) -> bool:
        """Record an epoch's validation score (None: no validation data, keep the latest); True = stop."""
        if score is None or score > self.best:
            self.best = self.best if score is None else score
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()
                          if any(part in k for part in self.keep)}
            self._bad_epochs = 0
            return False
        self._bad_epochs += 1
        return self._bad_epochs > self.patience

    def restore(self, model: nn.Module) -> bool:
        """Load the best epoch's weights into `model`; False when no epoch beat the baseline."""
        if self.state is None:
            return False
        model.load_state_dict(self.state, strict=False)
        return True
