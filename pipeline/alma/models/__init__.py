"""The networks of the ALMA pipeline (Delli Veneri et al. 2022) and of the DECORAS baseline.

Torch modules only: no data reading, no training loop. Every constructor takes its configuration
explicitly, so a checkpoint is ``(kind, config, state_dict)`` and :func:`build_model` rebuilds
any model from the first two (:func:`save_checkpoint`, :func:`load_checkpoint`). One module per
network family, as timm keeps them:

- :mod:`.blobs_finder` :class:`BlobsFinder`: 2-D convolutional autoencoder; frequency-integrated
  dirty image in, map of where the sources are out (the paper's Table 3 at the default sizes).
- :mod:`.deep_gru` :class:`DeepGRU`: recurrent network; a source's dirty spectrum in, its clean
  spectrum out.
- :mod:`.resnet` :class:`ResNetRegressor`: one per source parameter group (:data:`PARAMETERS`);
  a spectrally focused 64 x 64 image in, numbers out (the paper's Figure 8 at the default width).
- :mod:`.decoras` :class:`Decoras` / :class:`DecorasPair`: the DECORAS baseline (Rezaei et al.
  2022) as the ALMA paper re-implemented it: two small encoder-decoders, one trained with binary
  cross-entropy, one with the mean squared logarithmic error.
- :mod:`.encoder_decoder` :class:`EncoderDecoder`: the DECORAS family, whose shape (depth, widths,
  kernels, skips, normalisation) :mod:`pipeline.automl` searches.
- :mod:`.losses`: the training losses; :mod:`.registry`: every kind by name;
  :mod:`.checkpoints`: weights saved and loaded.

Images are ``[batch, channel, y, x]`` float32; spectra ``[batch, n_channels]`` (spectral
channels). Sizes are in pixels.
"""

from pipeline.alma.models.blobs_finder import BlobsFinder, ConvBlock, UpBlock
from pipeline.alma.models.checkpoints import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    save_checkpoint,
)
from pipeline.alma.models.decoras import DECORAS_LOSSES, Decoras, DecorasPair
from pipeline.alma.models.deep_gru import DeepGRU
from pipeline.alma.models.encoder_decoder import DECORAS_SHAPE, EncoderDecoder
from pipeline.alma.models.losses import bce_dice_loss, dice_loss, focal_loss, l1_ssim_loss, msle_loss, ssim
from pipeline.alma.models.registry import MODEL_REGISTRY, build_model, count_parameters
from pipeline.alma.models.resnet import PARAMETERS, BasicBlock, ResNetRegressor

__all__ = [
    "CHECKPOINT_FORMAT",
    "DECORAS_LOSSES",
    "DECORAS_SHAPE",
    "MODEL_REGISTRY",
    "PARAMETERS",
    "BasicBlock",
    "BlobsFinder",
    "ConvBlock",
    "Decoras",
    "DecorasPair",
    "DeepGRU",
    "EncoderDecoder",
    "ResNetRegressor",
    "UpBlock",
    "bce_dice_loss",
    "build_model",
    "dice_loss",
    "focal_loss",
    "count_parameters",
    "l1_ssim_loss",
    "load_checkpoint",
    "msle_loss",
    "save_checkpoint",
    "ssim",
]
