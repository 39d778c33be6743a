"""Pretrained ResNet weights for `ImageRegressor`: torchvision's ImageNet weights or a user file.

``pretrained``: 'none' (random initialisation), 'imagenet' (torchvision's ImageNet weights: read
from the torch hub cache, else downloaded with a short timeout; failure is an error), 'auto' (as
'imagenet' but falls back to random initialisation with a warning naming the file to put into the
cache) or the path of a torchvision ResNet state dict. A failed download is not retried in the same
process (one timeout per run, not one per model). ImageNet filters expect RGB; photopop's bands run
from blue to red (g, r, i), so `adapt_first_conv` reverses the first convolution's input channels
(band 0 <- B, band 1 <- G, band 2 <- R); for other band counts the RGB filters are averaged over
colour and replicated (scaled by 3 / n_bands).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pickle
import tempfile
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError

ARCHS = ("resnet18", "resnet34", "resnet50")
#: what a failed download raises: no network, timeout, HTTP error (URLError, TimeoutError: OSError),
#: a connection cut mid-transfer (http.client.IncompleteRead), a malformed URL (ValueError)
DOWNLOAD_ERRORS = (OSError, http.client.HTTPException, ValueError)
#: what torch.load raises for a damaged or foreign file
TORCH_LOAD_ERRORS = (OSError, RuntimeError, EOFError, ValueError, KeyError, TypeError, pickle.UnpicklingError)


def _weights_enum(arch: str) -> Any:
    from torchvision import models as tvm

    return {"resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1, "resnet34": tvm.ResNet34_Weights.IMAGENET1K_V1,
            "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V2}[arch]


#: URLs whose download failed in this process (not retried: one timeout per run, not one per model)
_FAILED_DOWNLOADS: dict[str, str] = {}


def _download(url: str, dest: Path, timeout: float) -> None:
    """Download `url` to `dest` atomically with a socket timeout; check torchvision's sha256 prefix."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                h.update(chunk)
        prefix = dest.stem.rsplit("-", 1)[-1]
        if not h.hexdigest().startswith(prefix):
            raise OSError(f"checksum of {url} does not start with {prefix}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_pretrained_state(arch: str, pretrained: str, download: bool = True,
                          timeout: float = 10.0) -> tuple[dict[str, torch.Tensor] | None, str]:
    """(state dict or None, description of the source) for a `pretrained` setting; see the module doc."""
    if arch not in ARCHS:
        raise InputError(f"unknown architecture {arch!r}; use one of {list(ARCHS)}")
    choice = str(pretrained)
    if choice == "none":
        return None, "random"
    if choice in ("auto", "imagenet"):
        weights = _weights_enum(arch)
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not cache.exists():
            try:
                if not download:
                    raise OSError(f"{cache} is not in the torch hub cache and downloads are off")
                if weights.url in _FAILED_DOWNLOADS:
                    raise OSError(f"download failed earlier in this process ({_FAILED_DOWNLOADS[weights.url]})")
                try:
                    _download(weights.url, cache, timeout)
                except DOWNLOAD_ERRORS as exc:
                    _FAILED_DOWNLOADS[weights.url] = f"{type(exc).__name__}: {exc}"
                    raise
            except DOWNLOAD_ERRORS as exc:  # no network, timeout, bad checksum, downloads off
                msg = (f"cannot load ImageNet weights for {arch} ({type(exc).__name__}: {exc}); "
                       f"put {Path(weights.url).name} into {cache.parent} or pass a weights file")
                if choice == "imagenet":
                    raise InputError(msg) from exc
                warnings.warn(msg + "; using RANDOM initialisation instead", RuntimeWarning, stacklevel=2)
                return None, "random (ImageNet weights unavailable)"
        return _read_state(cache), f"imagenet:{cache.name}"
    path = Path(choice)
    if not path.exists():
        raise InputError(f"pretrained weights file {path} not found (or use 'auto', 'imagenet', 'none')")
    return _read_state(path), f"file:{path.name}"


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as exc:
        raise InputError(f"{path}: cannot read a PyTorch state dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"{path}: not a state dict")
    return state


def adapt_first_conv(weight: torch.Tensor, n_bands: int) -> torch.Tensor:
    """ImageNet RGB filters -> filters for `n_bands` bands ordered blue to red."""
    if weight.shape[1] != 3:
        if weight.shape[1] == n_bands:
            return weight
        raise InputError(f"pretrained first convolution has {weight.shape[1]} input channels, the model {n_bands}")
    if n_bands == 3:
        return weight.flip(1)  # (R, G, B) -> (B, G, R): band 0 (bluest) <- B
    return weight.mean(dim=1, keepdim=True).repeat(1, n_bands, 1, 1) * (3.0 / n_bands)

