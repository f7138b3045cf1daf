"""The one bootstrap of the per-pair analyses: a percentile CI of a mean over pairs (scipy.stats.bootstrap).
Used for the metric means (stage ``evaluate``) and for the paired differences of the claims."""
from __future__ import annotations

import numpy as np
from scipy.stats import bootstrap


def bootstrap_ci(values, *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap CI of the mean over pairs."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2 or np.all(x == x[0]):
        return float(x.mean()), float(x.mean()), float(x.mean())
    res = bootstrap((x,), np.mean, n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                    random_state=np.random.default_rng(seed))
    return float(x.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)
