"""The paper's models: SAFIN in the wavelet base network (``safin``), its ablation without
self-attention (``safin_fin``), and SAFIN in SANet's base network (``sanet_safin``). Importing this
package registers them in :data:`safin.methods.METHODS`.

- :mod:`.modules`: the SA, FIN and SAFIN modules (paper §3);
- :mod:`.safin_net`: the wavelet base network with SAFIN, and the FIN ablation (§3, §4.2.1, Fig. 6);
- :mod:`.sanet_base`: SANet's base network, shared with ``baselines.sanet``;
- :mod:`.sanet_safin`: SAFIN modules in it (§4.1, Fig. 5).
"""
from safin.models.safin_net import SafinFinNet, SafinNet
from safin.models.sanet_safin import SANetSAFIN

__all__ = ["SafinNet", "SafinFinNet", "SANetSAFIN"]
