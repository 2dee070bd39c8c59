"""The DECORAS baseline (Rezaei et al. 2022) as the ALMA paper re-implemented it: two small
encoder-decoders, one trained with binary cross-entropy, one with the mean squared logarithmic
error."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.alma.models._checks import check_images
from pipeline.alma.models.losses import msle_loss
from pipeline.errors import InputError

DECORAS_LOSSES = ("bce", "msle")


class Decoras(nn.Module):
    """DECORAS-style encoder-decoder (Rezaei et al. 2022): a few convolutional layers on a
    dirty image ``[b, in_channels, H, W]`` -> per-pixel map ``[b, 1, H, W]``.

    Encoder: per entry of ``widths``, 3x3 conv -> BatchNorm -> ReLU -> 2x2 max pool; a 3x3 conv
    block at the bottom; decoder: per level, bilinear x2 upsample -> 3x3 conv -> BatchNorm ->
    ReLU (``widths`` reversed); a 1x1 convolution. H and W must be multiples of
    ``2 ** len(widths)``. ``loss`` says what the model is (to be) trained with and what it
    predicts: ``"bce"``, binary cross-entropy on a detection map (sigmoid output, a probability)
    or ``"msle"``, mean squared logarithmic error on a brightness map (softplus output,
    non-negative and unbounded: the log in the loss is there for a wide dynamic range, so the
    target is not squeezed into [0, 1]); :meth:`criterion` returns that function.
    """

    def __init__(self, in_channels: int = 1, widths: tuple = (16, 32, 64), loss: str = "bce"):
        super().__init__()
        if loss not in DECORAS_LOSSES:
            raise InputError(f"Decoras loss must be one of {DECORAS_LOSSES}; got {loss!r}.")
        widths = tuple(int(w) for w in widths)
        self.loss = loss
        self.in_channels = in_channels
        self.depth = len(widths)

        def conv(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(c_out), nn.ReLU())

        self.encoder = nn.ModuleList()
        channels = in_channels
        for width in widths:
            self.encoder.append(nn.Sequential(conv(channels, width), nn.MaxPool2d(2)))
            channels = width
        self.bottleneck = conv(channels, channels)
        self.decoder = nn.ModuleList()
        for width in widths[::-1]:
            self.decoder.append(nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                conv(channels, width)))
            channels = width
        self.head = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid() if loss == "bce" else nn.Softplus())

    def criterion(self):
        """The training loss of this model: ``(prediction, target) -> scalar``."""
        return F.binary_cross_entropy if self.loss == "bce" else msle_loss

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_images("Decoras", image, self.in_channels)
        multiple = 2 ** self.depth
        if image.shape[-2] % multiple or image.shape[-1] % multiple:
            raise InputError(
                f"Decoras with {self.depth} levels takes images whose sides are multiples of "
                f"{multiple} px; got {tuple(image.shape[-2:])}. Crop or pad the image.")
        x = image
        for block in self.encoder:
            x = block(x)
        x = self.bottleneck(x)
        for block in self.decoder:
            x = block(x)
        return self.head(x)


class DecorasPair(nn.Module):
    """The ALMA paper's DECORAS: two :class:`Decoras` of the same shape, ``bce`` trained with
    binary cross-entropy and ``msle`` with the mean squared logarithmic error (train each on its
    own). Blobs are then detected on both maps and kept when found by both within 3 px.
    ``forward`` returns ``(bce_map, msle_map)``, each ``[b, 1, H, W]``."""

    def __init__(self, in_channels: int = 1, widths: tuple = (16, 32, 64)):
        super().__init__()
        self.bce = Decoras(in_channels, widths, loss="bce")
        self.msle = Decoras(in_channels, widths, loss="msle")

    @classmethod
    def from_models(cls, bce: Decoras, msle: Decoras) -> DecorasPair:
        """A pair made of two separately trained :class:`Decoras` (e.g. two loaded checkpoints);
        their widths may differ."""
        if (getattr(bce, "loss", None), getattr(msle, "loss", None)) != ("bce", "msle"):
            raise InputError("DecorasPair.from_models takes a Decoras trained with loss='bce' "
                             "then one trained with loss='msle'.")
        pair = cls.__new__(cls)
        nn.Module.__init__(pair)
        pair.bce, pair.msle = bce, msle
        return pair

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.bce(image), self.msle(image)

