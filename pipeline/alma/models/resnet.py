"""The ResNet regressors (Delli Veneri et al. 2022): a spectrally focused image in, a source's
parameters out, one network per entry of :data:`PARAMETERS`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.alma.models._checks import check_images

#: What the ResNets estimate, one network each: the shape (major and minor FWHM and the major
#: axis's angle, together, so that the size and angle estimates agree on which axis is the
#: major one) and the flux.
PARAMETERS = ("shape", "flux")


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with BatchNorm, identity (or 1x1 strided)
    shortcut, ReLU after the sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))



class ResNetRegressor(nn.Module):
    """ResNet-18-like regressor of source parameters from a spectrally focused image
    ``[b, in_channels, 64, 64]`` (any size works: the pooling is adaptive) -> ``[b, out_features]``.

    The paper's Figure 8: 3x3 conv -> 3x3/2 max pool -> BatchNorm -> ReLU -> 4 stages of 2
    :class:`BasicBlock` (``base_width`` x 1, 2, 4, 8 channels; stages 2-4 halve the image) ->
    adaptive max pool -> latent ``[b, 8 * base_width]`` (512 by default) -> fully connected
    to ``hidden_features`` -> ReLU -> fully connected to ``out_features`` numbers. No output
    activation: the scale of the target is the training's choice. Train one per entry of
    :data:`PARAMETERS` (see :mod:`pipeline.alma.tasks` for their inputs and targets).
    """

    def __init__(self, in_channels: int = 1, base_width: int = 64, hidden_features: int = 128,
                 out_features: int = 1):
        super().__init__()
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base_width, 3, padding=1, bias=False),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.BatchNorm2d(base_width),
            nn.ReLU(),
        )
        stages, channels = [], base_width
        for i, factor in enumerate((1, 2, 4, 8)):
            width = base_width * factor
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(channels, width, stride), BasicBlock(width, width)))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.latent_dim = channels
        self.head = nn.Sequential(nn.Linear(channels, hidden_features), nn.ReLU(),
                                  nn.Linear(hidden_features, out_features))

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """The latent vector ``[b, 8 * base_width]``."""
        check_images("ResNetRegressor", image, self.in_channels)
        return torch.flatten(self.pool(self.stages(self.stem(image))), 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))

