"""The DECORAS family: encoder-decoders whose shape is a handful of choices, the networks
:mod:`pipeline.automl` searches over. :class:`~pipeline.alma.models.decoras.Decoras` is one of
them (:data:`DECORAS_SHAPE`: three levels of 16, 32, 64 channels, one 3x3 convolution per level,
batch norm, no skips), which the search starts from and is judged against."""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.alma.models._checks import check_images
from pipeline.errors import InputError

SKIPS = ("none", "add", "concat")
NORMS = ("batch", "group", "instance", "none")
OUTPUTS = ("probability", "brightness", "refinement")  # sigmoid, softplus, a correction added to the input
SCALES = ("none", "peak", "asinh")

#: the hand-designed DECORAS as a point of this family (same layers, same parameter count)
DECORAS_SHAPE = {"widths": [16, 32, 64], "kernels": [3, 3, 3], "convs": 1, "skip": "none", "norm": "batch",
                 "scale": "none"}


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(4, channels), channels)  # up to 4 groups that divide the channels
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def _block(c_in: int, c_out: int, kernel: int, convs: int, norm: str) -> nn.Sequential:
    layers = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, kernel, padding=kernel // 2, bias=norm == "none"),
                   _norm(norm, c_out), nn.ReLU()]
    return nn.Sequential(*layers)


class EncoderDecoder(nn.Module):
    """Images ``[b, in_channels, H, W]`` -> maps ``[b, out_channels, H, W]``.

    Per level of the encoder (``widths[i]`` channels, ``kernels[i]`` px square kernels): ``convs``
    convolutions, each followed by the normalisation ``norm`` and ReLU, then a 2x2 max pool; a
    block at the bottom; per level of the decoder, back up: bilinear x2 upsampling, the encoder's
    features of that level joined when ``skip`` is "add" or "concat" (U-Net), then a block; a 1x1
    convolution and the ``output``: "probability" (sigmoid, a detection map), "brightness"
    (softplus: non-negative, unbounded) or "refinement" (the input's first ``out_channels``
    channels, a classic method's answer or part of it, plus a correction that starts at zero: the
    network learns what the classic method gets wrong). H and W must be multiples of ``2 ** len(widths)``.

    How the network sees its input, ``scale``: as it is ("none"); each image divided by its peak
    ("peak", :meth:`input_scale`), a brightness answer or correction multiplied back by it, so that
    the answer scales with the sky as an image does (imaging is linear in flux); or through arcsinh
    ("asinh": linear within the noise, logarithmic for bright emission, as high-dynamic-range
    radio images are shown), the answer unscaled.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, widths=(16, 32, 64), kernels=(3, 3, 3),
                 convs: int = 1, skip: str = "none", norm: str = "batch", output: str = "probability",
                 scale: str = "none"):
        super().__init__()
        widths, kernels = [int(w) for w in widths], [int(k) for k in kernels]
        if not widths or len(kernels) != len(widths) or min(widths) < 1 or any(k % 2 == 0 for k in kernels):
            raise InputError(f"EncoderDecoder needs one odd kernel size per level; got widths {widths}, "
                             f"kernels {kernels}.")
        for name, value, allowed in (("skip", skip, SKIPS), ("norm", norm, NORMS), ("output", output, OUTPUTS),
                                     ("scale", scale, SCALES)):
            if value not in allowed:
                raise InputError(f"EncoderDecoder {name} must be one of {', '.join(allowed)}; got {value!r}.")
        self.in_channels, self.skip, self.depth = in_channels, skip, len(widths)
        self.output, self.scale = output, scale
        self.encoder = nn.ModuleList()
        channels = in_channels
        for width, kernel in zip(widths, kernels, strict=True):
            self.encoder.append(_block(channels, width, kernel, convs, norm))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _block(channels, channels, kernels[-1], convs, norm)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.decoder = nn.ModuleList()
        for width, kernel in zip(widths[::-1], kernels[::-1], strict=True):
            joined = channels + width if skip == "concat" else channels
            if skip == "add" and channels != width:
                raise InputError("skip='add' needs the decoder's channels to match the encoder's; "
                                 "use skip='concat' with widths that change.")
            self.decoder.append(_block(joined, width, kernel, convs, norm))
            channels = width
        if output == "refinement" and in_channels < out_channels:
            raise InputError(f"A refinement network adds its correction to its first {out_channels} input channels; "
                             f"it has {in_channels}.")
        activation = {"probability": nn.Sigmoid(), "brightness": nn.Softplus(), "refinement": nn.Identity()}[output]
        self.head = nn.Sequential(nn.Conv2d(channels, out_channels, 1), activation)
        if output == "refinement":  # starts as the classic answer
            nn.init.zeros_(self.head[0].weight)
            nn.init.zeros_(self.head[0].bias)

    def input_scale(self, image: torch.Tensor) -> torch.Tensor:
        """What each image is divided by before the network sees it, ``[b, 1, 1, 1]``: its peak
        absolute value over all channels with ``scale="peak"``, else 1. A brightness answer is in
        these units times this."""
        if self.scale != "peak":
            return torch.ones((len(image), 1, 1, 1), dtype=image.dtype, device=image.device)
        return image.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=torch.finfo(image.dtype).tiny)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_images("EncoderDecoder", image, self.in_channels)
        multiple = 2 ** self.depth
        if image.shape[-2] % multiple or image.shape[-1] % multiple:
            raise InputError(f"This network has {self.depth} levels and takes images whose sides are multiples "
                             f"of {multiple} px; got {tuple(image.shape[-2:])}. Crop or pad the image.")
        scale = self.input_scale(image)
        x, kept = torch.asinh(image) if self.scale == "asinh" else image / scale, []
        for block in self.encoder:
            x = block(x)
            kept.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for block, features in zip(self.decoder, kept[::-1], strict=True):
            x = self.up(x)
            if self.skip == "add":
                x = x + features
            elif self.skip == "concat":
                x = torch.cat([x, features], dim=1)
            x = block(x)
        if self.output == "probability":
            return self.head(x)
        answer = self.head(x) * scale
        return image[:, :answer.shape[1]] + answer if self.output == "refinement" else answer
