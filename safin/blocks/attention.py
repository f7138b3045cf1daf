"""Attention, softmax(q kᵀ · scale) v, without holding the whole (Nq × Nk) map (SANet, SAFIN)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from safin.runtime.precision import full_precision


#: query x key positions from which keys and values of two widths are padded to one (CPU): below it the map is
#: small and the flash kernel at key widths up to 1472 cost more than the math path (AdaAttN's training test at 32 px
#: crops: 5.4 s padded, 3.8 s not; at 128 px crops a step took 1.2 s padded, 3.1 s not; Xeon, float32)
PAD_ABOVE = 1 << 20


@full_precision
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float = 1.0,
              memory_efficient: bool = True, chunk: int = 4096) -> torch.Tensor:
    """softmax(q kᵀ · scale) v over key positions, for q (B, Nq, C), k (B, Nk, C), v (B, Nk, Cv).

    SANet and SAFIN use ``scale=1`` (no 1/√C). The memory-efficient path never holds the full
    (Nq × Nk) map: it uses PyTorch's fused ``scaled_dot_product_attention`` (blockwise, online
    softmax) and falls back to processing ``chunk`` queries at a time. ``memory_efficient=False`` is
    the plain reference computation (used as the naive path and to test equality).
    """
    if not memory_efficient:
        return torch.softmax(torch.bmm(q, k.transpose(1, 2)) * scale, dim=-1).bmm(v)
    # the fused kernels need contiguous inputs: with the transposed views the modules produce, PyTorch
    # silently falls back to the math path, which materialises the whole map (docs/performance.md)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    cv = v.shape[-1]
    if (q.device.type == "cpu" and q.shape[-1] != cv and q.dtype != torch.float64
            and q.shape[1] * k.shape[1] >= PAD_ABOVE):
        # the CPU's flash kernel needs one width for queries, keys and values; with two (AdaAttN: keys of 448-1472
        # channels, values [v, v²]) PyTorch takes its math path, which forms the whole map (a step of AdaAttN's
        # training spent 66 % in its bmm). Zero columns change neither q kᵀ nor the values: pad to the wider width.
        # Not in float64 (the reference checks): there the padded flash kernel was 3e-9 (relative) from the exact
        # product on AdaAttN's unscaled logits, the math path 1.6e-10. Not for small maps either (PAD_ABOVE)
        width = max(q.shape[-1], cv)
        q, k = (F.pad(t, (0, width - t.shape[-1])) for t in (q, k))
        v = F.pad(v, (0, width - cv))
    try:
        if q.device.type == "cuda":
            # CUDA's fused kernels take (B, heads, N, C) only, and flash attention not float32 or C > 256:
            # allow only the fused ones, so an unsupported case fails here (and runs in chunks below)
            # instead of silently materialising the whole map in the math kernel.
            from torch.nn.attention import SDPBackend, sdpa_kernel

            with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
                return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=scale)[:, 0]
        return F.scaled_dot_product_attention(q, k, v, scale=scale)[..., :cv]
    except RuntimeError:  # pragma: no cover - kernel unavailable for this dtype/device
        out = [torch.softmax(torch.bmm(q[:, i:i + chunk], k.transpose(1, 2)) * scale, dim=-1).bmm(v)
               for i in range(0, q.shape[1], chunk)]
        return torch.cat(out, dim=1)[..., :cv]
