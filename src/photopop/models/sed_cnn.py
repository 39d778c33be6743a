"""The 1D convolutional network of Liew-Cain et al. (2021, Fig. 2), after StarNet (Fabbro et al. 2018).

Shape: the SED (one value per band, ordered by wavelength) is a 1-channel sequence ->
Conv1d -> act -> Conv1d -> act -> MaxPool1d -> flatten -> Dense -> act -> Dense -> act -> Linear
with one output per target. Convolutions slide along wavelength, so neighbouring bands are combined
into local features (breaks, band depths) before the dense layers mix them.

The paper's per-layer hyperparameters are only in its figure; our defaults (conv filters 4 and 16,
kernel 8 with 'same' padding, max-pool 4, dense 256 and 128, ReLU, no dropout) follow StarNet's
choices and are all configurable through `SEDCNNConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError

#: log-variance clamp of heteroscedastic heads (standardised units): sigma in [e^-6, e^4] target sd
LOGVAR_MIN, LOGVAR_MAX = -12.0, 8.0

ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


@dataclass
class SEDCNNConfig:
    """Architecture of `SEDCNN`; every size is configurable.

    conv_filters / kernel_sizes: one entry per convolution layer (the paper: two layers).
    pool_size: max-pooling window (and stride) after the last convolution.
    dense_units: widths of the hidden dense layers (the paper: two).
    dropout: dropout rate after each hidden dense layer (0 = none).
    activation: one of relu, elu, gelu, tanh, leaky_relu, silu.
    in_channels: input channels per band: 1 (the standardised SED) or 2 (value with missing bands set
    to 0, plus a 0/1 presence mask: models trained to accept missing bands, nan_policy 'mask').
    """

    conv_filters: tuple[int, ...] = (4, 16)
    kernel_sizes: tuple[int, ...] = (8, 8)
    pool_size: int = 4
    dense_units: tuple[int, ...] = (256, 128)
    dropout: float = 0.0
    activation: str = "relu"
    in_channels: int = 1

    def validate(self) -> None:
        """Raise InputError for inconsistent or out-of-range settings."""
        if len(self.conv_filters) < 1 or len(self.conv_filters) != len(self.kernel_sizes):
            raise InputError(f"conv_filters {self.conv_filters} and kernel_sizes {self.kernel_sizes} "
                             "must be non-empty and of equal length")
        if any(int(v) < 1 for v in (*self.conv_filters, *self.kernel_sizes, *self.dense_units, self.pool_size)):
            raise InputError("filters, kernel sizes, dense widths and pool size must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ACTIVATIONS:
            raise InputError(f"unknown activation {self.activation!r}; use one of {sorted(ACTIVATIONS)}")
        if int(self.in_channels) not in (1, 2):
            raise InputError(f"in_channels must be 1 (values) or 2 (values + mask), got {self.in_channels}")


def _same_pad(kernel: int) -> nn.Module:
    """'same' padding (Keras convention: the extra zero goes on the right for even kernels)."""
    return nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0)


class SEDCNN(nn.Module):
    """1D CNN mapping standardised SED features (N, n_inputs) to standardised targets (N, n_outputs)."""

    def __init__(self, n_inputs: int, n_outputs: int = 1, config: SEDCNNConfig | None = None):
        super().__init__()
        self.config = config or SEDCNNConfig()
        self.config.validate()
        if n_inputs < 1 or n_outputs < 1:
            raise InputError(f"need n_inputs >= 1 and n_outputs >= 1, got {n_inputs}, {n_outputs}")
        self.n_inputs = int(n_inputs)
        self.n_outputs = int(n_outputs)
        act = ACTIVATIONS[self.config.activation]
        layers: list[nn.Module] = []
        in_ch = int(self.config.in_channels)
        for filters, kernel in zip(self.config.conv_filters, self.config.kernel_sizes):
            layers += [_same_pad(int(kernel)), nn.Conv1d(in_ch, int(filters), int(kernel)), act()]
            in_ch = int(filters)
        pool = int(self.config.pool_size)
        layers.append(nn.MaxPool1d(pool, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        n_pooled = -(-self.n_inputs // pool)  # ceil
        dense: list[nn.Module] = [nn.Flatten()]
        width = in_ch * n_pooled
        for units in self.config.dense_units:
            dense += [nn.Linear(width, int(units)), act()]
            if self.config.dropout > 0:
                dense.append(nn.Dropout(self.config.dropout))
            width = int(units)
        dense.append(nn.Linear(width, self.n_outputs))
        self.head = nn.Sequential(*dense)

    @property
    def in_channels(self) -> int:
        return int(self.config.in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, n_inputs) or (N, in_channels, n_inputs) -> (N, n_outputs)."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.head(self.features(x))

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
