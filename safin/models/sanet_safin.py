"""SAFIN in SANet's base network (paper §4.1, Fig. 5: ``sanet_safin``).

Both SANet blocks become SAFIN(512) modules (:class:`safin.models.modules.SAFIN`); everything else —
merge conv, decoder, losses, recipe — is SANet's (:mod:`safin.models.sanet_base`), so SANet and this
model train on identical terms, which is what the paper's Fig. 5b compares. The two SAFIN modules are
stored as ``transform.safin4_1`` and ``transform.safin5_1``; weights written before they had these names
(``transform.sanet4_1`` / ``sanet5_1``) still load.
"""
from __future__ import annotations

from safin.methods import register
from safin.models.modules import SAFIN
from safin.models.sanet_base import SANetBase

LEGACY_KEY = "sanet"


@register
class SANetSAFIN(SANetBase):
    name = "sanet_safin"
    label = "SAFIN in SANet"
    test_resize = "shorter"  # SANet's base network and test script: transforms.Resize(size), the shorter side
    block_key = "safin"

    def make_block(self, channels: int) -> SAFIN:
        return SAFIN(channels, memory_efficient=self.memory_efficient, impl_params=self.impl_params)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.transform.register_load_state_dict_pre_hook(_rename_legacy_keys)


def _rename_legacy_keys(module, state_dict, prefix, *args) -> None:
    """``{prefix}sanet4_1.*`` -> ``{prefix}safin4_1.*`` (and 5_1) in place: earlier weights files."""
    for key in [k for k in state_dict if k.startswith(prefix + LEGACY_KEY)]:
        rest = key[len(prefix + LEGACY_KEY):]
        if rest[:3] in ("4_1", "5_1"):
            state_dict[prefix + "safin" + rest] = state_dict.pop(key)
