"""The core of the suite: what SAFIN is made of, and what the baselines share with it.

- :mod:`safin.methods`: the one interface every method implements, and the registry of methods;
- :mod:`safin.models`: the paper's models (SAFIN, its FIN ablation, SAFIN in SANet);
- :mod:`safin.blocks`: shared building blocks (encoder, wavelet, statistics, attention, WCT, losses);
- :mod:`safin.training`: the one trainer, its data stream and checkpoints;
- :mod:`safin.io`: pretrained weights, downloads, datasets, image files;
- :mod:`safin.runtime`: precision, the CPU's instruction set, memory.

Importing ``safin`` imports none of these (``survey`` uses :mod:`safin.io.files` without torch).
"""
