"""Stylizing image files: the ``safin stylize`` command (and, later, the 40-pair stage)."""
from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

import baselines
from safin.io.files import atomic_write_text
from safin.io.weights import ensure_encoder_weights
from safin.io.images import (RESIZE_MODES, ImageReadError, is_image_name, load_image, open_rgb, pil_to_tensor,
                             resize_for_test, save_image, shown)
from safin.methods import InputError, StyleTransfer, load_weights, resolve_device

log = logging.getLogger(__name__)


def expand_paths(spec: str) -> list[Path]:
    """A file, a directory (its image names, sorted) or a glob -> image paths; a clear error if none.
    Entries of a directory with an image name that are not readable files (a directory named ``x.jpg``,
    a broken or looping link) are kept, so that stylizing reports them instead of dropping them."""
    p = Path(spec).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if (is_image_name(f) or f.suffix.lower() == ".svg")
                       and not f.name.startswith("."))
    elif p.exists() or p.is_symlink():
        files = [p]
    else:
        files = sorted(Path(f) for f in glob.glob(os.path.expanduser(spec)) if Path(f).is_file())
    if not files:
        raise InputError(f"{spec}: no such file, or no image files match")
    return files


def build_model(method: str, *, checkpoint: str | None = None, reference: Sequence[str] = (),
                encoder_weights: str = "normalised", device: str = "auto",
                precision: str = "auto", our_encoder: bool = False) -> StyleTransfer:
    """The method ready for inference on ``device``; ``precision`` as :meth:`StyleTransfer.set_compute`.
    ``reference``: the authors' files, their ``vgg_normalised.pth`` last; without it the load refuses
    unless ``our_encoder`` (see :func:`safin.methods.load_authors_encoder`)."""
    ensure_encoder_weights(encoder_weights)
    model = baselines.build(method, encoder_weights=encoder_weights)
    if checkpoint:
        load_weights(model, checkpoint)
    elif reference:
        if not hasattr(model, "load_reference"):
            raise InputError(f"method {method!r} has no released reference checkpoints to load")
        model.load_reference(*reference, our_encoder=our_encoder)
        if our_encoder and getattr(model, "reference_encoder", "").startswith("this suite"):
            log.warning("%s: the authors' decoder runs on this suite's encoder, chosen with --our-encoder: "
                        "colours and contrast may shift", method)
    else:
        log.warning("%s: no --checkpoint or --reference given: the decoder is UNTRAINED and the output "
                    "will not look like a stylization", method)
    return model.to(resolve_device(device)).eval().set_compute(precision)


def load_sized(path: Path, size: int | None) -> torch.Tensor:
    """Image as (1, 3, H, W); ``size`` > 0 scales it so the longer side is ``size``."""
    return load_image(path, long_side=size or None)[None]


def load_for_test(path: Path, size: int | None, mode: str, like: tuple[int, int] | None = None) -> torch.Tensor:
    """Image as (1, 3, H, W) resized as the test script of ``mode`` does (:func:`safin.io.images.resize_for_test`);
    ``like``: (H, W) of the content, for a style in mode ``content``."""
    im = resize_for_test(open_rgb(path), size, mode, like=(like[1], like[0]) if like else None)
    return pil_to_tensor(im)[None]


def image_hw(path: Path) -> tuple[int, int]:
    """(H, W) of an image file as it is read (EXIF orientation applied, as :func:`open_rgb` does)."""
    w, h = open_rgb(path).size
    return h, w


def load_mask(path: Path, size: tuple[int, int], content_path: Path) -> torch.Tensor:
    """A mask image as (H, W) in [0, 1] (grayscale), resized to ``size`` = content (H, W)."""
    from PIL import Image

    im = open_rgb(path).convert("L")
    orig = open_rgb(content_path).size
    if im.size != orig:
        raise InputError(f"mask {path} is {im.size[0]}x{im.size[1]} px but content {content_path} is "
                         f"{orig[0]}x{orig[1]} px; they must match")
    im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return pil_to_tensor(im.convert("RGB"))[0]


def output_name(content: Path, styles: Sequence[Path], ext: str) -> str:
    if len(styles) == 1:
        return f"{content.stem}_stylized_{styles[0].stem}{ext}"
    return f"{content.stem}_interpolation_{'_'.join(s.stem for s in styles)}{ext}"


def stylize_files(model: StyleTransfer, contents: Sequence[Path], style_groups: Sequence[Sequence[Path]],
                  output: Path, *, alpha: float = 1.0, preserve_color: bool = False,
                  weights: Sequence[float] | None = None, masks: Sequence[Path] | None = None,
                  content_size: int | None = 512, style_size: int | None = 512, ext: str = ".png",
                  progress: bool = True, resize: str = "reference") -> list[Path]:
    """Stylize every content with every style group (a group of several styles is blended by
    ``weights`` or placed by ``masks``). ``output``: a folder, or a file when there is one job.
    ``resize``: ``reference`` = how the method's own test script resizes (``model.test_resize``), or one of
    :data:`safin.io.images.RESIZE_MODES`. Unreadable images are reported and skipped; the others are still written."""
    mode = getattr(model, "test_resize", "longer") if resize == "reference" else resize
    if mode not in RESIZE_MODES:
        raise InputError(f"--resize {resize}: expected reference or one of {', '.join(RESIZE_MODES)}")
    device = next(model.parameters()).device
    jobs = [(c, g) for g in style_groups for c in contents]
    single_file = len(jobs) == 1 and is_image_name(output)
    written, failures = [], []
    style_cache: dict[Path, torch.Tensor] = {}
    code_cache: dict = {}  # encoded styles: one style serving many contents is encoded once (same size)
    for content_path, group in tqdm(jobs, desc=f"stylize ({model.name})", unit="img", disable=not progress):
        try:
            content = load_for_test(content_path, content_size, mode).to(device)
            like, s_size = None, style_size
            if mode == "content":  # PytorchWCT: the style to the content's size when the content was resized, else kept
                resized = tuple(content.shape[-2:]) != image_hw(content_path)
                like, s_size = (tuple(content.shape[-2:]), style_size) if resized else (None, None)
            styles = []
            for s in group:
                if (s, like, s_size) not in style_cache:
                    style_cache[(s, like, s_size)] = load_for_test(s, s_size, mode, like).to(device)
                styles.append(style_cache[(s, like, s_size)])
            mask_t = None
            if masks:
                mask_t = torch.stack([load_mask(m, tuple(content.shape[-2:]), content_path) for m in masks]).to(device)
            with torch.inference_mode():
                out = model(content, styles if len(styles) > 1 else styles[0], alpha=alpha,
                            preserve_color=preserve_color, weights=weights, masks=mask_t, style_cache=code_cache)
        except (ImageReadError, InputError) as e:
            msg = str(e) if isinstance(e, ImageReadError) else f"{shown(content_path)}: {e}"
            failures.append(msg)
            log.error("skipped: %s", msg)
            continue
        target = output if single_file else output / output_name(content_path, group, ext)
        written.append(save_image(out, target))
    if failures:
        log.error("%d of %d job(s) skipped, %d written; skipped:\n  %s", len(failures), len(jobs), len(written),
                  "\n  ".join(failures))
    return written


def _pairs(params: dict):
    """(folder the pairs' paths are relative to, pairs): ``data.evaluation``'s named set or folders (every content
    × every style) when it names them, else ``data.pairs`` (the 40 embedded pairs)."""
    from safin.io.datasets import folder_pairs, read_pairs

    ev = params["data"].get("evaluation") or {}
    if ev.get("set"):  # a named benchmark set, fetched once into the cache
        from safin.io.benchmark_sets import fetch_set

        return Path("/"), folder_pairs(*fetch_set(str(ev["set"])))
    if ev.get("content") or ev.get("style"):
        if not (ev.get("content") and ev.get("style")):
            raise ValueError("data.evaluation: name both a content and a style folder (or neither: data.pairs)")
        return Path("/"), folder_pairs(Path(ev["content"]), Path(ev["style"]))
    sample_dir = Path(params["data"]["sample_dir"])
    return sample_dir, read_pairs(Path(params["data"]["pairs"]), sample_dir)


def load_pairs(params: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every evaluation pair as (content, style) tensors scaled so the longer side is ``stylize.size``;
    one tensor per style file, so a method's encoding of it is cached across pairs."""
    sample_dir, pairs = _pairs(params)
    # every method gets the same inputs (longer side = stylize.size, aspect kept), not its own test script's
    # resizing (`safin stylize --resize reference`): the metrics compare all outputs with one set of inputs
    size = int(params["stylize"]["size"])
    loaded, styles = [], {}
    for c, st in pairs:
        if st not in styles:
            styles[st] = load_sized(sample_dir / st, size)
        loaded.append((load_sized(sample_dir / c, size), styles[st]))
    return loaded


def write_pair_inputs(params: dict, loaded: list | None = None) -> list[Path]:
    """Stage ``pairs``: ``stylize.out/inputs/PAIR_{content,style}.png``, the pairs at the scale every method
    sees them, so grids, metrics and the study read what the methods saw."""
    inputs = Path(params["stylize"]["out"]) / "inputs"
    written = []
    for i, (content, style) in enumerate(loaded or load_pairs(params)):
        written += [save_image(content, inputs / f"{i:02d}_content.png"), save_image(style, inputs / f"{i:02d}_style.png")]
    return written


def stylize_method(params: dict, method: str, loaded: list | None = None) -> list[Path]:
    """Stage ``stylize@METHOD``: every evaluation pair with the trained ``method``
    (``stylize.out/METHOD/PAIR.png``), from ``train.out/METHOD/weights.pt``. ``loaded``: the pairs
    already read (:func:`load_pairs`), when one process stylizes several methods."""
    s = params["stylize"]
    out = Path(s["out"])
    torch.manual_seed(int(s.get("seed", 0)))
    loaded = loaded or load_pairs(params)
    from .seeds import replicate_seeds, seed_folder

    runs = [(Path(params["train"]["out"]) / method / "weights.pt", out / method, method)]
    for seed in replicate_seeds(params, method):  # train.seeds: each replicate's outputs beside the main ones
        runs.append((seed_folder(params["train"]["out"], method, seed) / "weights.pt", seed_folder(out, method, seed),
                     f"{method} seed {seed}"))
    written = []
    precision = str(s.get("precision", "fp32"))
    for weights, folder, label in runs:
        model = build_model(method, checkpoint=str(weights), device=s.get("device", "auto"), precision=precision)
        device = next(model.parameters()).device
        on_device = {id(style): style.to(device) for _, style in loaded}
        alpha = float(s.get("alpha", 1.0))
        reference = None  # the float32 path beside a bf16 one: its deviation is measured on these very pairs
        if model.compute_dtype != torch.float32 and model.compute_dtype != torch.float64:
            reference = build_model(method, checkpoint=str(weights), device=s.get("device", "auto"), precision="fp32")
        cache, ref_cache, diffs, nonfinite = {}, {}, [], []
        for i, (content, style) in enumerate(tqdm(loaded, desc=f"stylize {label}", unit="pair")):
            with torch.inference_mode():
                img = model(content.to(device), on_device[id(style)], alpha=alpha, style_cache=cache)
                if not torch.isfinite(img).all():  # saved as 0 where NaN: evaluate must know (degenerate outputs)
                    nonfinite.append(i)
                if reference is not None:
                    ref = reference(content.to(device), on_device[id(style)], alpha=alpha, style_cache=ref_cache)
                    diffs.append((to_8bit(img) - to_8bit(ref)).abs())
            written.append(save_image(img, folder / f"{i:02d}.png"))
        written.append(write_precision_record(folder, precision, model, diffs, nonfinite))
    return written


def to_8bit(img: torch.Tensor) -> torch.Tensor:
    """The 0..255 values :func:`save_image` writes, as float64."""
    return img.detach().double().clamp(0, 1).mul(255).round()


def write_precision_record(folder: Path, precision: str, model: StyleTransfer, diffs: list[torch.Tensor],
                           nonfinite: list[int] | None = None) -> Path:
    """``folder/precision.json``: the precision the outputs were computed in and, when it is not float32, their
    measured difference from the float32 path on the same pairs (0..255: mean, largest, pairs); and the pairs
    whose output held non-finite values (``nonfinite_pairs``: evaluation.degenerate)."""
    dtype = str(model.compute_dtype).removeprefix("torch.")
    doc: dict = {"requested": precision, "compute_dtype": dtype, "device": str(next(model.parameters()).device),
                 "authors_precision": dtype in ("float32", "float64"), "nonfinite_pairs": list(nonfinite or [])}
    if diffs:
        doc["deviation_from_float32"] = {
            "mean_abs_255": round(float(torch.stack([d.mean() for d in diffs]).mean()), 4),
            "max_abs_255": int(max(float(d.max()) for d in diffs)), "pairs": len(diffs)}
    path = folder / "precision.json"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return path



def stylize_pairs(params: dict, methods: Sequence[str] | None = None) -> dict[str, list[Path]]:
    """Every evaluation pair with every method of ``stylize.methods`` (or ``methods``), and the inputs:
    stages ``pairs`` and ``stylize@METHOD`` in one call."""
    loaded = load_pairs(params)  # read once for the inputs and every method
    write_pair_inputs(params, loaded)
    return {m: stylize_method(params, m, loaded) for m in (methods or params["stylize"]["methods"])}
