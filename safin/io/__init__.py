"""Weights and data I/O: the pretrained-weight registry (:mod:`.weights`), resumable downloads
(:mod:`.download`), the training/evaluation image sets (:mod:`.datasets`), image files
(:mod:`.images`), atomic writes and checksums (:mod:`.files`), and a restricted unpickler
(:mod:`.safe_pickle`)."""
