"""The feature networks the one-shot search knows, by name, with the label shown beside their
results. Kept apart from :mod:`pipeline.oneshot.features` so that the command line (its
``--help``, a search of stored vectors) can name them without importing torch."""

DEFAULT_BACKBONE = "tf_efficientnet_lite0"

#: Backbone name -> the label shown wherever its results are shown.
BACKBONES = {
    "tf_efficientnet_lite0": "EfficientNet-Lite0 (ImageNet), not the paper's B0: no squeeze-excitation, ReLU6",
    "efficientnet_b0": "EfficientNet-B0 (ImageNet), the paper's model",
}
