"""The Blobs Finder (Delli Veneri et al. 2022): a 2-D convolutional autoencoder from a
frequency-integrated dirty image to a map of where the sources are, with its building blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.alma.models._checks import check_images
from pipeline.errors import InputError


class ConvBlock(nn.Sequential):
    """3x3 convolution -> LeakyReLU -> BatchNorm, as the Blobs Finder's blocks (the paper's and
    its code's order: activation before normalisation). ``stride`` 2 halves the image."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 negative_slope: float = 0.01):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.LeakyReLU(negative_slope),
            nn.BatchNorm2d(out_channels),
        )


class UpBlock(nn.Module):
    """Doubles the image: a bilinear x2 upsample (keeps ``in_channels``) concatenated with a
    stride-2 transposed convolution (``out_channels``), then a :class:`ConvBlock` to
    ``out_channels``. The fixed upsample carries the smooth part, the learned one the detail."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.01,
                 skip_channels: int = 0):
        super().__init__()
        self.transposed = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1,
                               output_padding=1, bias=False),
            nn.LeakyReLU(negative_slope),
            nn.BatchNorm2d(out_channels),
        )
        self.merge = ConvBlock(in_channels + out_channels + skip_channels, out_channels,
                               negative_slope=negative_slope)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        upsampled = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        parts = [upsampled, self.transposed(x)] + ([skip] if skip is not None else [])
        return self.merge(torch.cat(parts, dim=1))


class BlobsFinder(nn.Module):
    """Convolutional autoencoder that maps a min-max normalised, frequency-integrated dirty
    image to a map in [0, 1] of where the emission is (trained on the normalised integrated sky
    model).

    Encoder: one stride-2 :class:`ConvBlock` per entry of ``widths`` (channels), a stride-1
    block, a fully connected layer to ``latent_dim``. Decoder: a fully connected layer back to
    ``widths[-1] x bottom x bottom``, one :class:`UpBlock` per level (channels ``widths``
    reversed, ending at ``widths[0]``), a 3x3 conv block and a 1x1 convolution + sigmoid.

    The defaults are the paper's Table 3 at ``image_size`` 256 (pixels):
    [b,1,256,256] -> [b,8,128,128] -> [b,16,64,64] -> [b,32,32,32] -> [b,64,16,16] -> 1024
    -> [b,64,16,16] -> [b,32,32,32] -> [b,16,64,64] -> [b,8,128,128] -> [b,8,256,256]
    -> [b,1,256,256]. The fully connected layers fix the input size: ``image_size`` must be a
    multiple of ``2 ** len(widths)`` and images must be exactly that size.

    ``skips=True`` (this project's trained model) adds U-Net skip connections: each decoder
    block also takes the encoder's output at its resolution (the input image at the last one),
    and the bottleneck's features are added to the decoded latent. The shapes along the main
    path stay the paper's. Why: with the latent as the only path, everything about *where* the
    sources are must pass through ``latent_dim`` numbers; on 2 CPU cores in under an hour that
    did not train (a 600-step run collapsed to an empty map), while the skips carry positions
    directly and train in a few hundred steps. ``skips=False`` is the paper's network.
    """

    def __init__(self, in_channels: int = 1, widths: tuple = (8, 16, 32, 64),
                 latent_dim: int = 1024, image_size: int = 256, negative_slope: float = 0.01,
                 skips: bool = False):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths:
            raise InputError("BlobsFinder needs at least one encoder width.")
        if image_size % 2 ** len(widths):
            raise InputError(
                f"BlobsFinder image_size must be a multiple of 2**{len(widths)} "
                f"= {2 ** len(widths)} (one halving per encoder block); got {image_size}.")
        self.in_channels = in_channels
        self.image_size = image_size
        self.skips = bool(skips)
        bottom = image_size // 2 ** len(widths)
        self.bottom_shape = (widths[-1], bottom, bottom)
        flat = widths[-1] * bottom * bottom

        self.encoder = nn.ModuleList()
        channels = in_channels
        for width in widths:
            self.encoder.append(ConvBlock(channels, width, stride=2, negative_slope=negative_slope))
            channels = width
        self.bottleneck = ConvBlock(channels, channels, negative_slope=negative_slope)
        self.to_latent = nn.Sequential(nn.Flatten(), nn.Linear(flat, latent_dim))
        self.from_latent = nn.Sequential(nn.Linear(latent_dim, flat),
                                         nn.LeakyReLU(negative_slope),
                                         nn.Unflatten(1, self.bottom_shape))
        self.decoder = nn.ModuleList()
        # skip sources per decoder block, coarse to fine: encoder outputs, then the input image
        skip_widths = widths[-2::-1] + (in_channels,) if self.skips else (0,) * len(widths)
        for width, skip_width in zip(widths[-2::-1] + (widths[0],), skip_widths, strict=True):
            self.decoder.append(UpBlock(channels, width, negative_slope=negative_slope,
                                        skip_channels=skip_width))
            channels = width
        self.head = nn.Sequential(ConvBlock(channels, channels, negative_slope=negative_slope),
                                  nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """``[b, in_channels, image_size, image_size]`` -> latent ``[b, latent_dim]``."""
        return self._encode(image)[0]

    def _check_size(self, image: torch.Tensor) -> None:
        check_images("BlobsFinder", image, self.in_channels)
        if tuple(image.shape[-2:]) != (self.image_size, self.image_size):
            raise InputError(
                f"This BlobsFinder was built for {self.image_size} x {self.image_size} px images "
                f"(its fully connected layers fix the size); got {tuple(image.shape[-2:])}. "
                f"Crop or pad the integrated image to {self.image_size} px, or build the model "
                "with a matching image_size.")

    def _encode(self, image):
        """(latent, features): features are the input, each encoder block's output and the
        bottleneck's, fine to coarse."""
        self._check_size(image)
        features = [image]
        x = image
        for block in self.encoder:
            x = block(x)
            features.append(x)
        x = self.bottleneck(x)
        features[-1] = x
        return self.to_latent(x), features

    def decode(self, latent: torch.Tensor, features: list | None = None) -> torch.Tensor:
        """Latent ``[b, latent_dim]`` -> map ``[b, 1, image_size, image_size]`` in [0, 1].
        With skips, ``features`` (from the encoder) are required."""
        x = self.from_latent(latent)
        if self.skips:
            if features is None:
                raise InputError("This BlobsFinder has skip connections: decode needs the encoder features; "
                                 "call the model on an image.")
            x = x + features[-1]
            for block, skip in zip(self.decoder, features[-2::-1], strict=True):
                x = block(x, skip)
        else:
            for block in self.decoder:
                x = block(x)
        return self.head(x)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        latent, features = self._encode(image)
        return self.decode(latent, features if self.skips else None)

