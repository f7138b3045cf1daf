"""Methods from other packages: discovery by entry point, one-off ``package.module:Class`` specs, and the
contract check that runs before anything is trained.

A plugin is an installed distribution that declares, in its own ``pyproject.toml``::

    [project.entry-points."safin.methods"]
    mymethod = "my_package.module:MyMethod"

The entry point's name is the method's name (``MyMethod.name`` must equal it): list it in ``params.yaml``
and every stage takes it like a built-in method. For a one-off, ``safin train --method my_package.module:MyMethod``
(and ``stylize``, ``bench``) imports the class directly. ``docs/methods.md`` ("Add your own method")
states the contract that :func:`check_contract` tests.

Errors are :class:`PluginError`: one line naming the plugin, where it comes from, and the problem.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata as md
import inspect
import json
from collections.abc import Iterable, Mapping

import torch

from safin.methods import METHODS, StyleTransfer, register

#: the entry-point group plugins declare their methods in
GROUP = "safin.methods"


class PluginError(ValueError):
    """A method that cannot be used: it does not import, or breaks the contract (one line, naming it)."""


def _entry_points() -> dict[str, md.EntryPoint]:
    return {ep.name: ep for ep in md.entry_points(group=GROUP)}


def _where(ep: md.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{ep.value}, from {dist.name} {dist.version}" if dist is not None else ep.value


def _accept(cls, name: str | None, where: str) -> type[StyleTransfer]:
    if not (inspect.isclass(cls) and issubclass(cls, StyleTransfer)):
        raise PluginError(f"method {name or where!r} ({where}): {cls!r} is not a subclass of "
                          "safin.methods.StyleTransfer")
    if not isinstance(cls.name, str) or not cls.name.isidentifier():
        raise PluginError(f"method {name or where!r} ({where}): its class attribute `name` must be an identifier "
                          f"(letters, digits, _), got {cls.name!r}")
    if name is not None and cls.name != name:
        raise PluginError(f"method {name!r} ({where}): the entry point is named {name!r} but the class's `name` "
                          f"is {cls.name!r}; they must be equal")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        other = METHODS[cls.name]
        raise PluginError(f"method {cls.name!r} ({where}): the name is taken by {other.__module__}.{other.__qualname__}")
    return register(cls)


def resolve(spec: str) -> type[StyleTransfer]:
    """The class of method ``spec``: a registered name (the built-ins), an installed plugin's entry-point
    name, or ``package.module:Class``. Registers it. :class:`PluginError` (one line) when it cannot."""
    if spec in METHODS:
        return METHODS[spec]
    if ":" in spec:
        module, _, attr = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except Exception as e:  # noqa: BLE001 - any failure of foreign code is reported, not raised through
            raise PluginError(f"method {spec!r}: cannot import it ({type(e).__name__}: {e})") from None
        return _accept(cls, None, spec)
    eps = _entry_points()
    if spec not in eps:
        plugins = ", ".join(sorted(eps)) or "none installed"
        from . import BEYOND_PAPER

        raise PluginError(f"unknown method {spec!r}; built in: {', '.join((*builtin_names(), *BEYOND_PAPER))}; plugins "
                          f"({GROUP!r} entry points): {plugins}; or name a class as package.module:Class")
    ep = eps[spec]
    try:
        cls = ep.load()
    except Exception as e:  # noqa: BLE001
        raise PluginError(f"plugin {spec!r} ({_where(ep)}): fails to import ({type(e).__name__}: {e})") from None
    return _accept(cls, spec, _where(ep))


def builtin_names() -> tuple[str, ...]:
    from . import METHOD_NAMES

    return METHOD_NAMES


def is_builtin(cls: type[StyleTransfer]) -> bool:
    return cls.__module__.split(".")[0] in ("safin", "baselines")


def distribution(cls: type[StyleTransfer], packages: Mapping[str, list[str]] | None = None) -> tuple[str, str] | None:
    """(distribution name, version) of the installed package that holds ``cls``, if any. ``packages``:
    ``importlib.metadata.packages_distributions()``, when the caller has it already (it reads every installed
    distribution's file list: 0.3-0.8 s each time on our venv, once per method before it was shared)."""
    top = cls.__module__.split(".")[0]
    for dist in (md.packages_distributions() if packages is None else packages).get(top, []):
        try:
            return dist, md.version(dist)
        except md.PackageNotFoundError:
            continue
    return None


def describe(cls: type[StyleTransfer], packages: Mapping[str, list[str]] | None = None) -> dict:
    """What the pipeline records about a method (``outputs/methods/NAME.json``): name, label, class,
    origin and a digest of the code that trains it (so a changed plugin re-runs its stages). ``packages``: as for
    :func:`distribution`."""
    from safin.training.code import training_code_digest

    digests = training_code_digest(cls.__module__)
    dist = distribution(cls, packages)
    return {"name": cls.name, "label": label(cls), "class": f"{cls.__module__}:{cls.__qualname__}",
            "builtin": is_builtin(cls), "distribution": dist[0] if dist else None,
            "version": dist[1] if dist else None, "size_multiple": cls.size_multiple,
            "code_sha256": hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()}


def label(cls: type[StyleTransfer]) -> str:
    return getattr(cls, "label", "") or cls.name


def _fail(cls, problem: str) -> PluginError:
    return PluginError(f"method {cls.name!r} ({cls.__module__}:{cls.__qualname__}): {problem}")


def check_contract(cls: type[StyleTransfer], encoder_weights="normalised", side: int = 40) -> None:
    """Try the method on tiny random images the way the pipeline will use it: construct it, stylize
    (shape, range, finiteness), compute its losses (a finite scalar ``total`` whose gradient reaches
    ``trainable()``), and save and reload its weights. Seconds on a CPU. :class:`PluginError` on the
    first problem."""
    from safin.methods import load_weights, save_weights

    for hook in ("encode_style", "transfer", "losses", "trainable"):
        if getattr(cls, hook) is getattr(StyleTransfer, hook):
            raise _fail(cls, f"does not implement {hook}() (see docs/methods.md, 'Add your own method')")
    if not isinstance(cls.size_multiple, int) or cls.size_multiple < 1:
        raise _fail(cls, f"size_multiple must be a positive int, got {cls.size_multiple!r}")
    try:
        model = cls(encoder_weights=encoder_weights)
    except Exception as e:  # noqa: BLE001
        raise _fail(cls, f"cannot be constructed as {cls.__name__}(encoder_weights=...) "
                         f"({type(e).__name__}: {e})") from None
    side = max(side, cls.min_side, cls.size_multiple)
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, side, side + 8, generator=g)
    style = torch.rand(1, 3, side + 4, side, generator=g)
    model.eval()
    try:
        with torch.no_grad():
            out = model(content, style, clamp=False)
    except Exception as e:  # noqa: BLE001
        raise _fail(cls, f"stylizing a {side + 8}x{side} image failed ({type(e).__name__}: {e})") from None
    if not isinstance(out, torch.Tensor) or out.shape != content.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise _fail(cls, f"stylizing a (1, 3, {side}, {side + 8}) content returned {shape}; transfer() must return "
                         f"(B, 3, H, W) for a (B, 3, H, W) content whose sides are multiples of size_multiple")
    if not torch.isfinite(out).all():
        raise _fail(cls, "stylizing random images gave NaN or infinite values")
    trainable = list(model.trainable())
    if not trainable or not all(isinstance(p, torch.nn.Parameter) for p in trainable):
        raise _fail(cls, "trainable() must return the (non-empty) list of parameters the trainer optimises")
    model.train()
    try:
        losses = model.losses(torch.rand(2, 3, side, side, generator=g), torch.rand(2, 3, side, side, generator=g))
    except Exception as e:  # noqa: BLE001
        raise _fail(cls, f"losses() failed on a batch of 2 ({type(e).__name__}: {e})") from None
    if not isinstance(losses, dict) or "total" not in losses:
        raise _fail(cls, "losses() must return a dict of scalar tensors with a 'total' entry, got "
                         f"{type(losses).__name__}{sorted(losses) if isinstance(losses, dict) else ''}")
    total = losses["total"]
    if not (isinstance(total, torch.Tensor) and total.dim() == 0 and torch.isfinite(total)):
        raise _fail(cls, f"losses()['total'] must be a finite scalar tensor, got {total!r}"[:300])
    if not total.requires_grad:
        raise _fail(cls, "losses()['total'] does not depend on the trainable parameters (no gradient)")
    total.backward()
    if not any(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in trainable):
        raise _fail(cls, "the gradient of losses()['total'] reaches none of trainable()")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/weights.pt"
        try:
            save_weights(model, path)
            again = cls(encoder_weights=encoder_weights)
            load_weights(again, path)
        except Exception as e:  # noqa: BLE001
            raise _fail(cls, f"its weights do not save and load back ({type(e).__name__}: {e})") from None
        with torch.no_grad():
            if not torch.equal(again.eval()(content, style, clamp=False), model.eval()(content, style, clamp=False)):
                raise _fail(cls, "a copy loaded from its saved weights stylizes differently: state_dict() "
                                 "misses part of the model")


def check_methods(names: Iterable[str], encoder_weights="normalised") -> tuple[dict[str, dict], list[str]]:
    """Resolve every name, and check the contract of every method that is not built in.
    ``({name: describe(...)}, [one line per problem])``."""
    info, problems = {}, []
    packages = md.packages_distributions()
    for name in dict.fromkeys(names):
        try:
            cls = resolve(name)
            if not is_builtin(cls):
                check_contract(cls, encoder_weights)
            info[name] = describe(cls, packages)
        except PluginError as e:
            problems.append(str(e))
    return info, problems
