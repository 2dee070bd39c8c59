"""The Deep GRU (Delli Veneri et al. 2022): a source's dirty spectrum in, its clean spectrum out."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.errors import InputError


class DeepGRU(nn.Module):
    """Recurrent denoiser of a source's spectrum: standardised dirty spectrum ``[b, n_channels]``
    in (any number of spectral channels), clean spectrum ``[b, n_channels]`` in [0, 1] out
    (a GRU over the channels, then a fully connected layer + sigmoid on each channel).

    The paper's figure shows two GRU layers, its released code one bidirectional layer of 32
    units; the default follows the paper (``num_layers=2``, one direction), and
    ``DeepGRU(num_layers=1, bidirectional=True)`` is the released code. ``dropout`` acts between
    GRU layers only. The sigmoid bounds the output: targets must be scaled to [0, 1].
    """

    def __init__(self, hidden_size: int = 32, num_layers: int = 2, bidirectional: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        self.gru = nn.GRU(input_size=1, hidden_size=hidden_size, num_layers=num_layers,
                          batch_first=True, bidirectional=bidirectional,
                          dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), 1)

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        if spectrum.ndim != 2:
            raise InputError(
                f"DeepGRU takes spectra shaped [batch, n_channels]; got {list(spectrum.shape)}. "
                "Add the batch axis (spectrum[None]) or drop a trailing unit axis.")
        hidden, _ = self.gru(spectrum.unsqueeze(-1))
        return torch.sigmoid(self.head(hidden)).squeeze(-1)

