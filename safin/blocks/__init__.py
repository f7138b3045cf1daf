"""Building blocks the models and baselines share: the VGG-19 encoders (:mod:`.encoder`), Haar
wavelet pooling (:mod:`.wavelet`), instance statistics and AdaIN (:mod:`.statistics`), attention
(:mod:`.attention`), whitening/colouring and CORAL (:mod:`.wct`), the mirror decoders
(:mod:`.decoders`) and the losses (:mod:`.losses`)."""
