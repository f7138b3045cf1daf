"""A restricted unpickler for downloaded checkpoints that are pickles of numpy arrays.

A pickle is a program: ``pickle.load`` on a downloaded file runs whatever it says. This unpickler
admits only what a dict-of-numpy-arrays needs (array reconstruction and dtypes) and refuses every
other global, so a tampered file cannot execute code.
"""
from __future__ import annotations

import io
import os
import pickle

import numpy as np

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): None,  # filled below
    ("numpy._core.multiarray", "scalar"): None,
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
}
try:  # numpy >= 2
    from numpy._core.multiarray import scalar as _scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import scalar as _scalar  # type: ignore
_ALLOWED[("numpy.core.multiarray", "scalar")] = _scalar
_ALLOWED[("numpy._core.multiarray", "scalar")] = _scalar


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy arrays are allowed") from None


def load_numpy_pickle(path: str | os.PathLike):
    """Load a pickle that may contain only containers, numbers, strings and numpy arrays."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(f"{path}: {e}") from e
