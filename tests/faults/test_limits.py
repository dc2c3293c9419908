"""Limits: archives and metadata over their size limits, and archives that would write outside their directory.

The DAG-level refusals (an archive over composer_mirror_max_archive_bytes, a p2 file over
composer_mirror_max_metadata_bytes, a zip with a ``../`` entry) are in test_fetch_policy; here the
same limits are pushed harder: no Content-Length, a gzip bomb, symlinks, and none of it retried.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from composer_mirror.archives import check_zip
from composer_mirror.errors import ArchiveError, UpstreamError
from composer_mirror.upstream import FetchPolicy, UpstreamClient
from devtools.loopback import LoopbackServer
from tests.faults.helpers import zip_with_entries

MB = 1024 * 1024


class Endless(BaseHTTPRequestHandler):
    """``/plain``: 8 MB without a Content-Length; ``/bomb``: 16 KB of gzip that inflates to 32 MB."""

    protocol_version = "HTTP/1.0"
    requests = 0
    bomb = gzip.compress(b"\0" * 32 * MB)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        type(self).requests += 1
        self.send_response(200)
        if self.path == "/bomb":
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(self.bomb)))
            self.end_headers()
            self.wfile.write(self.bomb)
            return
        self.end_headers()
        try:
            for _ in range(8):
                self.wfile.write(b"\0" * MB)
        except OSError:
            pass


@pytest.fixture
def endless() -> Iterator[str]:
    Endless.requests = 0
    with LoopbackServer(Endless, name="endless") as server:
        yield server.url


@pytest.mark.parametrize("path", ["/plain", "/bomb"])
def test_an_archive_over_the_limit_is_refused_while_streaming_and_not_retried(
    endless: str, path: str, tmp_path: Path
) -> None:
    with (
        UpstreamClient(FetchPolicy(endless)) as client,
        open(tmp_path / "a.zip", "wb") as out,
        pytest.raises(UpstreamError, match="limit"),
    ):
        client.download(endless + path, out, max_bytes=MB)
    assert (tmp_path / "a.zip").stat().st_size <= MB
    assert Endless.requests == 1


@pytest.mark.parametrize("path", ["/plain", "/bomb"])
def test_metadata_over_the_limit_is_refused_and_not_retried(endless: str, path: str) -> None:
    with (
        UpstreamClient(FetchPolicy(endless), max_metadata_bytes=MB) as client,
        pytest.raises(UpstreamError, match="metadata limit"),
    ):
        client.get_metadata(endless + path)
    assert Endless.requests == 1


def symlink_zip(name: str, target: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pkg/composer.json", b"{}")
        info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
        info.create_system = 3
        info.external_attr = 0o120777 << 16
        archive.writestr(info, target.encode())
    return buffer.getvalue()


@pytest.mark.parametrize(
    "body",
    [
        zip_with_entries("pkg/composer.json", "pkg/../../evil.php"),
        zip_with_entries("pkg/composer.json", "../evil.php"),
        zip_with_entries("pkg/composer.json", "/etc/cron.d/evil"),
        zip_with_entries("pkg/composer.json", "C:/evil.php"),
        zip_with_entries("pkg/composer.json", "pkg\\..\\..\\evil.php"),
        symlink_zip("pkg/link", "../../../../etc"),
        symlink_zip("pkg/link", "/etc/passwd"),
        symlink_zip("pkg/a/link", "../../../evil"),
    ],
    ids=["dotdot", "leading-dotdot", "absolute", "drive", "backslashes", "symlink-up", "symlink-abs", "symlink-deep"],
)
def test_an_archive_that_would_write_outside_its_directory_is_refused(body: bytes, tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(body)
    with pytest.raises(ArchiveError, match=r"unsafe|outside"):
        check_zip(str(path), url="http://up.test/a.zip?token=secret")


def test_symlinks_that_stay_inside_the_archive_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(symlink_zip("pkg/bin/tool", "../src/tool.php"))
    assert check_zip(str(path), url="http://up.test/a.zip") == 2
