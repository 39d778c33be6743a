"""Mixed precision: the autocast context training and prediction run their forward passes under.

On CUDA, autocast runs convolutions and matrix products in bf16 where the GPU supports it (else fp16,
which training pairs with gradient scaling); everywhere else, and whenever it is off, the context is
`contextlib.nullcontext` and every operation stays in float32.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the GPU supports it, else fp16 (CUDA); bf16 on CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def autocast(device: torch.device, enabled: bool, dtype: torch.dtype | None = None) -> Any:
    """``torch.autocast`` on `device` in `dtype` (default `amp_dtype`) when `enabled`, else a null context."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype or amp_dtype(device))
