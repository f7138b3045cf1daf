"""A writer of Torch7's binary serialisation, for tests: just enough (numbers, strings, tables, torch
objects, FloatTensor/FloatStorage) to write an ``nn.Sequential`` the way Torch7's ``torch.save`` lays it
out (torch7 File.lua / generic/Tensor.c), so that ``torchfile`` reads it back. Written by hand because
no maintained package writes .t7 files; it is only ever used to make synthetic test files."""
from __future__ import annotations

import struct

import numpy as np

NIL, NUMBER, STRING, TABLE, TORCH = 0, 1, 2, 3, 4


class Module:
    """A Torch7 object: class name and its fields (a Lua table)."""

    def __init__(self, typename: str, **fields):
        self.typename, self.fields = typename, fields


class Writer:
    def __init__(self, f):
        self.f, self.next_index = f, 1

    def _int(self, v: int) -> None:
        self.f.write(struct.pack("<i", v))

    def _long(self, v: int) -> None:
        self.f.write(struct.pack("<q", v))  # torchfile reads C long: 8 bytes on x86-64 Linux

    def _string(self, s: str | bytes) -> None:
        b = s.encode() if isinstance(s, str) else s
        self._int(len(b))
        self.f.write(b)

    def _index(self) -> None:
        self._int(self.next_index)
        self.next_index += 1

    def obj(self, value) -> None:
        if value is None:
            self._int(NIL)
        elif isinstance(value, bool):
            self._int(5)
            self._int(int(value))
        elif isinstance(value, (int, float)):
            self._int(NUMBER)
            self.f.write(struct.pack("<d", float(value)))
        elif isinstance(value, (str, bytes)):
            self._int(STRING)
            self._string(value)
        elif isinstance(value, np.ndarray):
            self._tensor(value.astype(np.float32))
        elif isinstance(value, Module):
            self._int(TORCH)
            self._index()
            self._string("V 1")
            self._string(value.typename)
            self.obj(value.fields)
        elif isinstance(value, (list, dict)):
            items = list(enumerate(value, start=1)) if isinstance(value, list) else list(value.items())
            self._int(TABLE)
            self._index()
            self._int(len(items))
            for k, v in items:
                self.obj(k)
                self.obj(v)
        else:
            raise TypeError(type(value))

    def _tensor(self, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a)
        self._int(TORCH)
        self._index()
        self._string("V 1")
        self._string("torch.FloatTensor")
        self._int(a.ndim)
        for n in a.shape:
            self._long(n)
        for s in (np.array(a.strides) // a.itemsize):
            self._long(int(s))
        self._long(1)  # storage offset, 1-based
        self._int(TORCH)
        self._index()
        self._string("V 1")
        self._string("torch.FloatStorage")
        self._long(a.size)
        self.f.write(a.tobytes())


def save_sequential(path, modules: list[Module]) -> None:
    with open(path, "wb") as f:
        Writer(f).obj(Module("nn.Sequential", modules=modules, train=False))


def conv(cout: int, cin: int, k: int, rng: np.random.Generator) -> Module:
    scale = (2.0 / (cin * k * k)) ** 0.5  # He initialisation: activations stay finite through 13 layers
    return Module("nn.SpatialConvolution", weight=(scale * rng.standard_normal((cout, cin, k, k))).astype(np.float32),
                  bias=(0.01 * rng.standard_normal(cout)).astype(np.float32), nInputPlane=cin, nOutputPlane=cout,
                  kW=k, kH=k, dW=1, dH=1, padW=0, padH=0)
