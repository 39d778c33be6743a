"""Cutout downloader against a local HTTP server (127.0.0.1, ephemeral port): retries, resume, failure log."""

from __future__ import annotations

import io
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from photopop.datasets.download import DEFAULT_BASE_URL, DownloadConfig, cutout_url, download_cutouts
from photopop.errors import InputError

# behaviour by ra: 10 -> 404, 11 -> 500 once then OK, 12 -> truncated body always, 13 -> HTML page with 200,
# 14 -> 503 twice then OK; anything else -> a JPEG whose colour encodes ra


def _jpeg(ra: float, size: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), int(ra) % 256, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    counts: Counter = Counter()
    lock = threading.Lock()

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        ra = float(q["ra"][0])
        size = int(q["width"][0])
        with self.lock:
            self.counts[ra] += 1
            n = self.counts[ra]
        if ra == 10:
            self.send_error(404, "no such object")
        elif (ra == 11 and n == 1) or (ra == 14 and n <= 2):
            self.send_error(500 if ra == 11 else 503)
        elif ra == 12:
            body = _jpeg(ra, size)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])  # connection closes early
            self.close_connection = True
        else:
            body = b"<html>server busy</html>" if ra == 13 else _jpeg(ra, size)
            self.send_response(200)
            self.send_header("Content-Type", "text/html" if ra == 13 else "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


@pytest.fixture()
def server():
    _Handler.counts = Counter()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ImgCutout/getjpeg", _Handler.counts
    httpd.shutdown()
    httpd.server_close()


def _cfg(url, **kw):
    base = dict(base_url=url, width=16, height=16, workers=4, retries=2, backoff_s=0.01, timeout_s=5.0)
    base.update(kw)
    return DownloadConfig(**base)


def test_cutout_url_matches_paper_geometry():
    url = cutout_url(150.1234567, 2.5, DownloadConfig())
    assert url == (f"{DEFAULT_BASE_URL}?ra=150.1234567&dec=2.5000000&scale=0.296&width=128&height=128")
    assert cutout_url(1, 2, DownloadConfig(base_url="https://x.org/cut?token=a")).startswith(
        "https://x.org/cut?token=a&ra=1.0000000")
    with pytest.raises(InputError):
        DownloadConfig(base_url="ftp://x").validate()


def test_download_retries_failures_and_resume(server, tmp_path):
    url, counts = server
    cat = pd.DataFrame({"objID": [1, 2, 3, 4, 5, 6, 7], "ra": [1.0, 2.0, 10.0, 11.0, 12.0, 13.0, 14.0],
                        "dec": [0.0] * 7})
    rep = download_cutouts(cat, tmp_path, _cfg(url))
    assert rep.n_ok == 4 and rep.n_skipped == 0 and rep.n_failed == 3  # ids 1, 2, 4 (retry), 7 (two retries)
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != ".photopop.json")  # marker: photopop.outputs
    assert names == ["1.jpg", "2.jpg", "4.jpg", "7.jpg", "download_failures.csv"]  # no partial files left
    assert np.asarray(Image.open(tmp_path / "4.jpg"))[0, 0, 0] == pytest.approx(11, abs=2)
    assert counts[10.0] == 1          # 404: permanent, not retried
    assert counts[11.0] == 2          # 500 then success
    assert counts[14.0] == 3          # 503, 503, success
    assert counts[12.0] == 3          # truncated every time: 1 + 2 retries
    assert counts[13.0] == 3          # undecodable body: retried
    fail = pd.read_csv(tmp_path / "download_failures.csv")
    assert fail["objID"].tolist() == [3, 5, 6]
    assert "404" in fail.loc[0, "error"]
    assert "gave up after 3" in fail.loc[1, "error"] and "ra=12.0" in fail.loc[1, "url"]
    # resume: complete files are skipped (no new requests); a corrupt file is fetched again
    (tmp_path / "2.jpg").write_bytes(b"\xff\xd8\xff garbage")
    before = counts[1.0]
    rep2 = download_cutouts(cat, tmp_path, _cfg(url))
    assert counts[1.0] == before and rep2.n_skipped == 3 and rep2.n_ok == 1
    assert counts[2.0] == 2
    assert Image.open(tmp_path / "2.jpg").size == (16, 16)


def test_bad_rows_and_columns(server, tmp_path):
    url, _ = server
    cat = pd.DataFrame({"objid": [1, 2], "RA": [1.0, np.nan], "Dec": [0.0, 0.0]})
    rep = download_cutouts(cat, tmp_path, _cfg(url))
    assert rep.n_ok == 1 and rep.failures["error"].tolist() == ["invalid ra/dec"]
    with pytest.raises(InputError, match="dec"):
        download_cutouts(pd.DataFrame({"objID": [1], "ra": [1.0]}), tmp_path, _cfg(url))
    with pytest.raises(InputError, match="duplicate"):
        download_cutouts(pd.DataFrame({"objID": [1, 1], "ra": [1.0, 2.0], "dec": [0.0, 0.0]}), tmp_path, _cfg(url))


def test_cli_download(server, tmp_path, capsys):
    from photopop.cli.main import main

    url, _ = server
    pd.DataFrame({"objID": [21, 22, 23], "ra": [1.0, 2.0, 10.0], "dec": [0.0, 0.0, 0.0]}).to_csv(
        tmp_path / "cat.csv", index=False)
    rc = main(["images", "download", str(tmp_path / "cat.csv"), "--out", str(tmp_path / "cut"), "--base-url", url,
               "--size", "16", "--retries", "1", "--backoff", "0.01", "--workers", "2", "--no-progress"])
    assert rc == 3  # one failure
    out = capsys.readouterr().out
    assert "downloaded 2" in out and "failed 1" in out
    assert sorted(p.name for p in (tmp_path / "cut").glob("*.jpg")) == ["21.jpg", "22.jpg"]
