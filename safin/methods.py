"""The one interface every style-transfer method implements, and the registry of methods.

A method subclasses :class:`StyleTransfer` and implements four things:

- ``encode_style(style) -> code``: everything the method needs from one style image (cacheable: one
  style can serve many contents without re-encoding);
- ``transfer(content, codes, mix, alpha) -> image``: stylize a content batch whose size is a multiple
  of ``size_multiple``; ``mix`` combines per-style feature maps (style interpolation, spatial masks);
- ``losses(content, style) -> dict``: the training losses, ``"total"`` included;
- ``trainable()``: the parameters the trainer optimises (the encoder is never among them).

:meth:`StyleTransfer.forward` adds what users expect of every method: any input size (reflect-pad to
the multiple, crop back), ``alpha``, colour preservation, several styles with weights or masks.

The registry: ``@register`` adds a class to :data:`METHODS`. The baselines live in the ``baselines``
package (which depends on this one, never the reverse); ``baselines.build(name)`` imports them all and
builds any registered method.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn
import torch.nn.functional as F

from safin.blocks.wct import coral
from safin.runtime.precision import autocast, full_precision, resolve_channels_last, resolve_precision

METHODS: dict[str, type["StyleTransfer"]] = {}


def register(cls: type["StyleTransfer"]) -> type["StyleTransfer"]:
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} registered twice")
    METHODS[cls.name] = cls
    return cls


class InputError(ValueError):
    """An input image, mask or option that cannot be used, with the reason."""


class Mixer:
    """Combines per-style feature maps into one: a single style passes through; several styles are
    blended with ``weights`` (normalised to sum 1) or placed by ``masks`` (one (H, W) mask per style
    at the padded content's resolution; resized to each feature map, normalised per position)."""

    def __init__(self, n_styles: int, weights: Sequence[float] | None = None,
                 masks: torch.Tensor | None = None):
        self.n = n_styles
        self.weights = None
        if weights is not None:
            w = torch.as_tensor(list(weights), dtype=torch.float64)  # cast to the features' dtype when used
            if w.numel() != n_styles or (w < 0).any() or float(w.sum()) <= 0:
                raise InputError(f"style weights {list(weights)}: need {n_styles} non-negative values, not all 0")
            self.weights = w / w.sum()
        self.masks = masks  # (S, H, W) float

    def __call__(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(feats) != self.n:
            raise ValueError(f"expected {self.n} feature maps, got {len(feats)}")
        if self.n == 1:
            return feats[0]
        stack = torch.stack(list(feats))  # (S, B, C, H, W)
        if self.masks is not None:
            m = F.interpolate(self.masks[:, None].to(stack), size=stack.shape[-2:], mode="bilinear",
                              align_corners=False)[:, None]  # (S, 1, 1, H, W)
            m = m / m.sum(dim=0, keepdim=True).clamp_min(1e-6)
            return (stack * m).sum(0)
        w = self.weights if self.weights is not None else torch.full((self.n,), 1.0 / self.n, dtype=torch.float64)
        return (stack * w.to(stack).view(-1, 1, 1, 1, 1)).sum(0)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad bottom/right so H and W are multiples of ``multiple``; returns (padded, (H, W))."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def as_one_batch(fn, calls):
    """``[fn(*args) for args in calls]`` for a ``fn`` made of per-sample operations only, computed as one
    call on the batch-wise concatenation when every argument position has one shape across the calls.
    ``fn`` returns a tensor, or dicts/tuples/lists of them; the results are split back per call."""
    columns = list(zip(*calls, strict=True))
    if any(len({tuple(t.shape[1:]) for t in col}) > 1 for col in columns):
        return [fn(*args) for args in calls]
    sizes = [len(args[0]) for args in calls]

    def part(x, i):
        if isinstance(x, torch.Tensor):
            return x.split(sizes)[i]
        if isinstance(x, dict):
            return {k: part(v, i) for k, v in x.items()}
        if isinstance(x, (tuple, list)):
            return type(x)(part(v, i) for v in x)
        raise TypeError(f"as_one_batch: cannot split a {type(x).__name__}")

    out = fn(*(torch.cat(col) for col in columns))
    return [part(out, i) for i in range(len(calls))]


def check_image(x: torch.Tensor, what: str, min_side: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{what}: expected a tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise InputError(f"{what}: expected shape (B, 3, H, W), got {tuple(x.shape)}")
    if min(x.shape[-2:]) < min_side:
        raise InputError(f"{what}: {x.shape[-1]}x{x.shape[-2]} px is too small; this method needs at least "
                         f"{min_side} px on each side")
    if not torch.isfinite(x).all():
        raise InputError(f"{what}: contains NaN or infinite values")


class StyleTransfer(nn.Module):
    """Base class of every method (see the module docstring)."""

    name: ClassVar[str] = ""
    #: how figures, tables and the report name the method (default: ``name``)
    label: ClassVar[str] = ""
    #: content sizes must be multiples of this inside the network (forward pads and crops back)
    size_multiple: ClassVar[int] = 8
    #: smallest content/style side the encoder can take (reflection padding needs >= 2 px at the
    #: deepest level)
    min_side: ClassVar[int] = 16
    #: how the method's reference test script resizes content and style (``safin stylize --resize reference``;
    #: :data:`safin.io.images.RESIZE_MODES`); a method without one: the longer side
    test_resize: ClassVar[str] = "longer"

    # --- to implement -----------------------------------------------------------------------------
    def encode_style(self, style: torch.Tensor) -> Any:
        raise NotImplementedError

    def transfer(self, content: torch.Tensor, codes: Sequence[Any], mix: Mixer, alpha: float) -> torch.Tensor:
        raise NotImplementedError

    def losses(self, content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def trainable(self) -> Iterable[nn.Parameter]:
        raise NotImplementedError

    #: optional: ``lr_factor(step, lr_decay) -> float``, the factor of the base lr at a step, for a method whose
    #: reference has its own schedule (StyTr²'s warm-up); None: the trainer's lr / (1 + lr_decay * step)
    lr_factor: ClassVar[Callable[[int, float], float] | None] = None

    # --- provided ---------------------------------------------------------------------------------
    #: inference compute settings (see :meth:`set_compute`); the defaults are plain float32, NCHW
    compute_dtype: torch.dtype = torch.float32
    channels_last: bool = False
    #: False: ``precision="auto"`` keeps this method in float32 (its transform amplifies rounding)
    bf16_safe: ClassVar[bool] = True
    #: False: under bf16 the encoder still runs in float32 (its features feed something sensitive)
    bf16_encoder: ClassVar[bool] = True

    def set_compute(self, precision: str = "auto", channels_last: bool | str | None = "auto") -> "StyleTransfer":
        """Choose how :meth:`forward` computes on the model's current device: ``precision`` ``"auto"``
        (bf16 where the device runs it natively and the method tolerates it), ``"bf16"`` or ``"fp32"``;
        ``channels_last`` ``"auto"``, True or False. Call after ``.to(device)``. See :mod:`safin.runtime.precision`."""
        device = next(self.parameters()).device
        dtype = resolve_precision(precision, device)
        if precision == "auto" and not self.bf16_safe:
            dtype = torch.float32
        self.compute_dtype = dtype
        if device.type == "cuda":
            # float32 means the authors' float32: cuDNN would otherwise run convolutions in TF32 (its default). Set
            # for every precision (process-wide flags): off for fp32/fp64, torch's defaults (cuDNN on, matmul off)
            # otherwise, so what ran before never decides
            exact = dtype in (torch.float32, torch.float64)
            torch.backends.cudnn.allow_tf32 = not exact
            torch.backends.cuda.matmul.allow_tf32 = False
        self.channels_last = resolve_channels_last(channels_last, device, dtype)
        # fp64 keeps the weights in float64; every other precision keeps float32 weights (autocast casts)
        self.to(torch.float64 if dtype == torch.float64 else torch.float32)
        self.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        encoder = getattr(self, "encoder", None)
        if isinstance(encoder, nn.Module):
            for m in encoder.modules():
                m.__dict__.pop("forward", None)  # undo an earlier float32 wrapper
            if dtype != torch.float32 and not self.bf16_encoder:
                # every leaf layer of the encoder, not only encoder.forward: a method may call the
                # encoder's blocks directly (SafinNet does), which would bypass a wrapped forward
                for m in encoder.modules():
                    if next(m.children(), None) is None:
                        m.forward = full_precision(type(m).forward.__get__(m))
        return self

    def health_outputs(self, content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
        """The images whose flatness tells a collapsed model (:mod:`safin.training.health`): the stylized output;
        a method with several decoders adds each one's."""
        return {"output": self(content, style)}

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def train(self, mode: bool = True):
        """Train mode for everything but the frozen ``encoder``, which always stays in eval mode."""
        super().train(mode)
        if isinstance(getattr(self, "encoder", None), nn.Module):
            self.encoder.eval()
        return self

    def frozen(self) -> Iterable[nn.Parameter]:
        ids = {id(p) for p in self.trainable()}
        return (p for p in self.parameters() if id(p) not in ids)

    def forward(self, content: torch.Tensor, style: torch.Tensor | Sequence[torch.Tensor], *,
                alpha: float = 1.0, preserve_color: bool = False, weights: Sequence[float] | None = None,
                masks: torch.Tensor | Sequence[torch.Tensor] | None = None, clamp: bool = True,
                style_cache: dict | None = None) -> torch.Tensor:
        """Stylize ``content`` (B, 3, H, W), RGB in [0, 1], with one style or several.

        - ``style``: a (B or 1, 3, Hs, Ws) tensor, or a list of them (several styles);
        - ``alpha`` in [0, 1]: content–style trade-off in feature space (1 = full style);
        - ``preserve_color``: the style images first take the content's colours (CORAL);
        - ``weights``: interpolation weights of several styles (default equal);
        - ``masks``: one (H, W) mask per style, at the content's size: style i is used where mask i is.
        - ``style_cache``: a dict kept by the caller across calls; a style tensor seen before (same
          object, same colour option) is not encoded again (one style serving many contents).
        Returns (B, 3, H, W), clamped to [0, 1] unless ``clamp=False``.
        """
        styles = [style] if isinstance(style, torch.Tensor) else list(style)
        if not styles:
            raise InputError("no style image given")
        if not 0.0 <= float(alpha) <= 1.0:
            raise InputError(f"alpha must be in [0, 1], got {alpha}")
        check_image(content, "content", self.min_side)
        for i, s in enumerate(styles):
            check_image(s, f"style {i}" if len(styles) > 1 else "style", self.min_side)
            if s.shape[0] not in (1, content.shape[0]):
                raise InputError(f"style batch {s.shape[0]} does not match content batch {content.shape[0]}")
        if weights is not None and masks is not None:
            raise InputError("give style weights or masks, not both")
        mask_t = self._check_masks(masks, len(styles), content) if masks is not None else None
        if preserve_color:
            styles = [self._preserve_color(s, content) for s in styles]
        in_dtype = content.dtype
        if self.compute_dtype == torch.float64:  # fp64: inputs follow the float64 weights
            content, styles = content.double(), [s.double() for s in styles]
        padded, (h, w) = pad_to_multiple(content, self.size_multiple)
        if mask_t is not None:
            mask_t, _ = pad_to_multiple(mask_t[None], self.size_multiple)
            mask_t = mask_t[0]
        def code(s: torch.Tensor, original: torch.Tensor):
            batch = self._layout(s.expand(content.shape[0], -1, -1, -1) if s.shape[0] == 1 else s)
            if style_cache is None or preserve_color:  # recoloured styles depend on the content
                return self.encode_style(batch)
            key = (id(original), original._version, tuple(batch.shape), self.compute_dtype, self.channels_last)
            if key not in style_cache:
                style_cache[key] = (original, self.encode_style(batch))  # keep `original` alive: ids stay unique
            return style_cache[key][1]

        originals = [style] if isinstance(style, torch.Tensor) else list(style)
        with autocast(content.device, self.compute_dtype):
            codes = [code(s, o) for s, o in zip(styles, originals)]
            out = self.transfer(self._layout(padded), codes, Mixer(len(styles), weights, mask_t), float(alpha))
        out = out[..., :h, :w].to(in_dtype).contiguous()
        return out.clamp(0, 1) if clamp else out

    def _preserve_color(self, style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        ref = content if style.shape[0] == content.shape[0] else content[:1]
        # impl_params (the method's switch, True by default): pytorch-AdaIN's coral, or the exact CORAL
        impl = getattr(self, "impl_params", True)
        return torch.stack([coral(s, c, impl_params=impl) for s, c in zip(style, ref)])

    @staticmethod
    def _check_masks(masks, n_styles: int, content: torch.Tensor) -> torch.Tensor:
        m = masks if isinstance(masks, torch.Tensor) else torch.stack([torch.as_tensor(x) for x in masks])
        if m.dim() == 4 and m.shape[1] == 1:
            m = m[:, 0]
        if m.dim() != 3 or m.shape[0] != n_styles:
            raise InputError(f"masks: expected one (H, W) mask per style ({n_styles}), got shape {tuple(m.shape)}")
        if m.shape[-2:] != content.shape[-2:]:
            raise InputError(f"masks are {m.shape[-1]}x{m.shape[-2]} px but the content is "
                             f"{content.shape[-1]}x{content.shape[-2]} px; they must match")
        m = m.float()
        if (m < 0).any() or float(m.sum(0).min()) <= 0:
            raise InputError("masks must be non-negative and cover every pixel (their sum must be > 0)")
        return m

    def count_parameters(self, trainable_only: bool = True) -> int:
        params = self.trainable() if trainable_only else self.parameters()
        return sum(p.numel() for p in params)


def load_checkpoint(path) -> dict:
    """``torch.load`` restricted to tensors and containers (``weights_only``): a checkpoint is data."""
    import numpy as np

    # a trainer checkpoint also holds numpy's RNG state (an array of uint32): its reconstruction is allowed, nothing else
    numpy_rng = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    try:
        with torch.serialization.safe_globals(numpy_rng):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise InputError(f"{path}: not a loadable checkpoint ({type(e).__name__}: {e})") from e


#: why an authors' decoder is never paired silently with this suite's encoder
AUTHORS_ENCODER = ("the authors' decoders were trained on bethgelab's vgg_normalised, and this suite's encoder "
                   "(vgg19_normalised, derived from Oxford's VGG-19 on the sample images) differs from it per "
                   "channel: pairing them shifts colours and contrast")


def load_authors_encoder(model: nn.Module, vgg, *, our_encoder: bool, what: str) -> str:
    """Give a model loading the authors' decoder the authors' encoder: their ``vgg_normalised.pth``
    (``vgg``). Without it, refuse (:class:`InputError` saying why) unless ``our_encoder`` chooses this
    suite's encoder explicitly. Records the choice in ``model.reference_encoder`` and returns it."""
    if vgg is None:
        if not our_encoder:
            raise InputError(f"{what}: no vgg_normalised.pth given with it; {AUTHORS_ENCODER}. Give their "
                             "vgg_normalised.pth as well (the last --reference file), or pass --our-encoder "
                             "(our_encoder=True) to pair them anyway")
        model.reference_encoder = "this suite's vgg19_normalised, chosen explicitly (colours may shift)"
    else:
        load_reference_vgg(model.encoder, vgg)
        model.reference_encoder = f"the authors' vgg_normalised ({vgg if not isinstance(vgg, dict) else 'state dict'})"
    return model.reference_encoder


def load_reference_vgg(encoder: nn.Module, vgg) -> None:
    """Load the authors' ``vgg_normalised.pth`` (a path or a state dict, any reference key layout)."""
    from safin.blocks.encoder import load_encoder_state, vgg_state_from_reference

    state = load_checkpoint(vgg) if not isinstance(vgg, dict) else vgg
    try:
        load_encoder_state(encoder, vgg_state_from_reference(state))
    except ValueError as e:
        raise InputError(f"{vgg}: {e}") from e


def load_into(module: nn.Module, state: dict, what: str, drop: Callable[[str], bool] = lambda k: False) -> None:
    """Strictly load ``state`` into ``module``, with a clear error; keys ``drop`` selects are neither
    loaded nor required."""
    state = {k: v for k, v in state.items() if not drop(k)}
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch
        raise InputError(f"{what}: {str(e).splitlines()[0]} {' '.join(str(e).split()[-12:])}") from e
    missing = [k for k in missing if not drop(k)]
    if missing or unexpected:
        raise InputError(f"{what}: keys do not fit; missing {sorted(missing)[:6]}, unexpected {sorted(unexpected)[:6]}")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def trained_state(model: StyleTransfer) -> dict[str, torch.Tensor]:
    """The method's own weights: everything but the (frozen, separately verified) encoder."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.")}


def save_weights(model: StyleTransfer, path, *, with_encoder: bool = False, **meta) -> None:
    """Write ``{"method", "state_dict", "meta"}`` atomically (temp file + rename). ``with_encoder``: the
    encoder's weights go too (the authors' releases: their decoders belong to their encoder, which is not
    an asset of the registry); :func:`load_weights` then loads them back."""
    from safin.io.files import atomic_path

    state = model.state_dict() if with_encoder else trained_state(model)
    with atomic_path(path) as tmp:
        torch.save({"method": model.name, "state_dict": state, "meta": meta}, tmp)


def load_weights(model: StyleTransfer, path) -> dict:
    """Load weights written by :func:`save_weights` (or a trainer checkpoint holding ``model``)."""
    ckpt = load_checkpoint(path)
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if state is None and isinstance(ckpt, dict) and "model" in ckpt:
        state = ckpt["model"]
    if state is None:
        raise InputError(f"{path}: not a weights file of this project (no 'state_dict'); for the authors' "
                         f"checkpoints use --reference")
    if ckpt.get("method") not in (None, model.name):
        raise InputError(f"{path}: holds weights of method {ckpt['method']!r}, not {model.name!r}")
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not torch.isfinite(v).all()]
    if bad:
        raise InputError(f"{path}: {len(bad)} tensor(s) hold NaN or infinite values ({', '.join(bad[:3])}); "
                         f"a diverged run's weights cannot be used")
    with_encoder = any(k.startswith("encoder.") for k in state)  # an authors' release: their encoder too
    load_into(model, state, str(path), drop=lambda k: k.startswith("encoder.") and not with_encoder)
    meta = ckpt.get("meta", {})
    if with_encoder:
        model.reference_encoder = str(meta.get("encoder", {}).get("source", f"the encoder saved in {path}"))
    return meta
