"""Download SDSS colour cutouts (the paper's 128 x 128 pixels at 0.296"/pixel) for a catalogue.

For each (objID, ra, dec) the request is ``{base_url}?ra=..&dec=..&scale=0.296&width=128&height=128`` (SDSS DR14
SkyServer ImgCutout by default; the base URL is configurable). Downloads run in parallel threads with retries
(exponential backoff) on network errors, HTTP 408/429/5xx and bodies that do not decode as an image (truncated
transfers); HTTP 4xx other than 408/429 fail at once. Each file is written to a temporary name, decoded, and
only then renamed to ``<objID>.jpg``, so a partial download never looks complete; files already present and
decodable are skipped (resume). Every failure is written to ``download_failures.csv`` (objID, url, error).
"""

from __future__ import annotations

import concurrent.futures as cf
import http.client
import io
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import write_table_atomic

DEFAULT_BASE_URL = "http://skyserver.sdss.org/dr14/SkyServerWS/ImgCutout/getjpeg"
FAILURES_FILE = "download_failures.csv"
RETRY_STATUS = (408, 429, 500, 502, 503, 504)


@dataclass
class DownloadConfig:
    """Settings of `download_cutouts`."""

    base_url: str = DEFAULT_BASE_URL
    scale: float = 0.296          # arcsec per pixel
    width: int = 128
    height: int = 128
    extension: str = "jpg"
    workers: int = 8
    retries: int = 4              # extra attempts after the first
    backoff_s: float = 1.0        # wait before retry k (0-based): backoff_s * 2**k, capped at backoff_max_s
    backoff_max_s: float = 60.0
    timeout_s: float = 30.0
    extra_params: dict[str, str] = field(default_factory=dict)  # e.g. {"opt": "G"} for SkyServer overlays

    def validate(self) -> None:
        if self.workers < 1 or self.retries < 0 or self.width < 1 or self.height < 1 or not self.scale > 0:
            raise InputError("download settings: workers >= 1, retries >= 0, width/height >= 1, scale > 0")
        if urllib.parse.urlparse(self.base_url).scheme not in ("http", "https"):
            raise InputError(f"base URL must be http(s)://..., got {self.base_url!r}")


def cutout_url(ra: float, dec: float, cfg: DownloadConfig | None = None) -> str:
    """The cutout request URL for one position (degrees)."""
    cfg = cfg or DownloadConfig()
    params = {"ra": f"{float(ra):.7f}", "dec": f"{float(dec):.7f}", "scale": f"{cfg.scale:g}",
              "width": str(int(cfg.width)), "height": str(int(cfg.height))}
    params.update(cfg.extra_params)
    sep = "&" if urllib.parse.urlparse(cfg.base_url).query else "?"
    return f"{cfg.base_url}{sep}{urllib.parse.urlencode(params)}"


def image_errors() -> tuple[type[BaseException], ...]:
    """What PIL raises for a file that is not a complete image: OSError (unidentified or truncated; also
    unreadable), SyntaxError / ValueError / EOFError (broken chunks in some decoders), a decompression bomb."""
    from PIL import Image

    return (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def is_valid_image(path: str | os.PathLike) -> bool:
    """True if the file fully decodes as an image (PIL)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
        return True
    except image_errors():
        return False


class _Transient(Exception):
    """A failure worth retrying."""


def _fetch(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code in RETRY_STATUS:
            raise _Transient(f"HTTP {exc.code}") from exc
        raise RuntimeError(f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError, OSError) as exc:
        raise _Transient(f"{type(exc).__name__}: {exc}") from exc
    from PIL import Image

    try:
        with Image.open(io.BytesIO(body)) as im:
            im.load()
    except image_errors() as exc:
        raise _Transient(f"response is not a decodable image ({len(body)} bytes: {exc})") from exc
    return body


def _download_one(oid: int, url: str, dest: Path, cfg: DownloadConfig) -> tuple[str, str]:
    """Returns (status, error) with status 'ok' / 'skipped' / 'failed'."""
    if dest.exists() and is_valid_image(dest):
        return "skipped", ""
    error = ""
    for attempt in range(cfg.retries + 1):
        try:
            body = _fetch(url, cfg.timeout_s)
        except _Transient as exc:
            error = str(exc)
            if attempt < cfg.retries:
                time.sleep(min(cfg.backoff_s * 2.0**attempt, cfg.backoff_max_s))
            continue
        except RuntimeError as exc:  # permanent (e.g. 404)
            return "failed", str(exc)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return "ok", ""
    return "failed", f"gave up after {cfg.retries + 1} attempt(s): {error}"


@dataclass
class DownloadReport:
    """Counts of a download run and the failures table (objID, url, error)."""

    n_ok: int
    n_skipped: int
    failures: pd.DataFrame

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    def __str__(self) -> str:
        return f"downloaded {self.n_ok}, already present {self.n_skipped}, failed {self.n_failed}"


def _columns(catalog: pd.DataFrame) -> tuple[str, str, str]:
    lower = {str(c).lower(): c for c in catalog.columns}
    names = []
    for want in (("objid", "id"), ("ra",), ("dec",)):
        hit = next((lower[w] for w in want if w in lower), None)
        if hit is None:
            raise InputError(f"catalogue needs columns objID (or id), ra, dec; missing {want[0]!r}")
        names.append(hit)
    return names[0], names[1], names[2]


def download_cutouts(catalog: pd.DataFrame, out_dir: str | os.PathLike, cfg: DownloadConfig | None = None,
                     progress: bool = False, overwrite: bool = False) -> DownloadReport:
    """Download one cutout per catalogue row into `out_dir` (resumable); writes download_failures.csv.

    `out_dir` follows the output-folder contract (`photopop.outputs`): a cutout folder downloaded with
    the same service settings is resumed (more catalogue rows may be added); one of other settings
    (URL, scale, size) is emptied and refilled only with `overwrite`.
    """
    from dataclasses import asdict

    from ..outputs import claim_output

    cfg = cfg or DownloadConfig()
    cfg.validate()
    settings = {k: v for k, v in asdict(cfg).items() if k in ("base_url", "scale", "width", "height", "extension", "extra_params")}
    with claim_output(out_dir, "image-cutouts", settings, overwrite=overwrite, in_place=True,
                      clear=("*.jpg", "*.jpeg", "*.png", "*.fits", FAILURES_FILE)):
        return _download_cutouts(catalog, Path(out_dir), cfg, progress)


def _download_cutouts(catalog: pd.DataFrame, out_dir: Path, cfg: DownloadConfig, progress: bool) -> DownloadReport:
    c_id, c_ra, c_dec = _columns(catalog)
    ids = catalog[c_id].astype(np.int64).to_numpy()
    ra = catalog[c_ra].to_numpy(dtype=np.float64)
    dec = catalog[c_dec].to_numpy(dtype=np.float64)
    if len(np.unique(ids)) != len(ids):
        raise InputError("catalogue has duplicate objIDs: each cutout is named by its objID")
    bad = ~np.isfinite(ra) | ~np.isfinite(dec) | (dec < -90) | (dec > 90)
    out = Path(out_dir)
    failures: list[dict[str, object]] = [{"objID": int(i), "url": "", "error": "invalid ra/dec"} for i in ids[bad]]
    jobs = [(int(i), cutout_url(r, d, cfg), out / f"{int(i)}.{cfg.extension}")
            for i, r, d in zip(ids[~bad], ra[~bad], dec[~bad])]
    n_ok = n_skip = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="img", desc="downloading")
    with cf.ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        futures = {pool.submit(_download_one, oid, url, dest, cfg): (oid, url) for oid, url, dest in jobs}
        for fut in cf.as_completed(futures):
            oid, url = futures[fut]
            try:
                status, err = fut.result()
            except OSError as exc:  # writing the image (or reading an old one) failed: record, never lose it
                status, err = "failed", f"{type(exc).__name__}: {exc}"
            if status == "ok":
                n_ok += 1
            elif status == "skipped":
                n_skip += 1
            else:
                failures.append({"objID": oid, "url": url, "error": err})
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    fail = pd.DataFrame(failures, columns=["objID", "url", "error"]).sort_values("objID").reset_index(drop=True)
    write_table_atomic(fail, out / FAILURES_FILE)
    return DownloadReport(n_ok, n_skip, fail)
