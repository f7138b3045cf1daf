"""Does a trained model still draw anything? A decoder whose output has gone constant (a dead last ReLU layer: the
demo's WCT level-5 decoder on 3 x 3 relu5_1 maps, issue 30) trains on without an error and silently flattens every
image after it. At the end of a run the trainer passes one batch of its own training images through
:meth:`StyleTransfer.health_outputs` (the stylized output; WCT: also each level's decoder on its own features) and
records each output's smallest per-image pixel SD (the largest over the channels: a one-colour image has 0);
below ``FLAT_STD`` (:mod:`safin.blocks.statistics`) it is *flat*, said in the log and in ``summary.json``
(``health``). ``evaluation.degenerate`` uses the same line on the evaluation outputs."""
from __future__ import annotations

import logging

import torch

from safin.blocks.statistics import FLAT_STD, spatial_sd

log = logging.getLogger(__name__)


@torch.no_grad()
def probe(model, content: torch.Tensor, style: torch.Tensor) -> dict:
    """``{"outputs": {name: smallest per-image :func:`spatial_sd`}, "flat": [names below FLAT_STD]}`` of ``model`` (eval mode
    for the probe, its mode restored) on one batch."""
    was_training = model.training
    model.eval()
    try:
        outs = model.health_outputs(content, style)
    finally:
        model.train(was_training)
    sds = {name: round(float(spatial_sd(t).min()), 6) for name, t in outs.items()}
    flat = [name for name, sd in sds.items() if not sd >= FLAT_STD]  # NaN is flat too
    for name in flat:
        log.warning("%s: %s is flat (pixel SD %.4f < %s on a batch of training images): that part of the model "
                    "has collapsed and every output after it shows nothing", type(model).__name__, name, sds[name], FLAT_STD)
    return {"outputs": sds, "flat": flat, "flat_below": FLAT_STD}
