"""A packagist-like Composer v2 registry on 127.0.0.1: the upstream for tests, the demo and the benchmark.

It emulates what a mirror reads from packagist (root ``packages.json``, minified ``p2`` files with
Last-Modified/ETag and 304s, ``list.json``, the metadata changes feed, the security advisories API, and
GitHub-style zipball redirects to a codeload-like archive origin) and lets a test break any of it.

Usage::

    reg = Registry.from_lock("tests/fixtures/symfony-demo/composer.lock")   # or Registry.synthetic(2000)
    with RegistryServer(reg, faults=[FaultRule(r"^/p2/", "status", times=2, probability=0.3)]) as srv:
        ...  # srv.url, srv.requests, srv.count(r"^/p2/", status=503)
        reg.touch("psr/log")  # bumps Last-Modified and logs an update action in the changes feed

Fault kinds (``FaultRule.kind``):

- ``status``: answer ``status`` (default 503) with a small JSON body, plus ``Retry-After`` when set.
- ``reset``: close the connection with an RST, no response.
- ``delay``: sleep ``delay`` seconds, then answer normally.
- ``truncate``: declare the full Content-Length, send half the body, close.
- ``bad_json``: 200 with a body that is a strict prefix of the JSON (never parses).
- ``wrong_package``: a p2 request gets another package's p2 file (p2 responses only).
- ``zip_no_central_directory``: the archive cut before its central directory (archive responses only;
  match the ``/codeload/`` path, where the bytes are served, not the ``/zipball/`` redirect).
- ``slow_body``: the body in ``chunk_size`` pieces with ``delay`` (0.05 s when 0) between them.

Beyond the basics: ``reg.version(name, version)``, ``reg.versions(name, base_url, dev=...)``,
``reg.omit = frozenset({"version_normalized", "time", "dist.shasum"})`` (serve entries without
optional fields, as Satis output and hand-made repositories do), ``reg.truncate_changes_log()``
(every older ``since`` becomes stale) and ``reg.stale_since = "resync"``
(answer stale ``since`` values with a resync action, as packagist does, instead of 400);
``srv.versions(name)`` (absolute URLs), ``srv.archive_url``, ``srv.errors`` (handler tracebacks) and
``RequestRecord.server`` / ``.fault`` / ``.query`` / ``.has_authorization``, and ``srv.files`` (extra
answers by path: bytes, or a ``Response`` such as ``redirect(url)`` or ``json_response(200, doc)``).

Deliberate differences from the lock data: ``notification-url`` is dropped (the root's ``notify-batch``
replaces it, so Composer never reports installs to the public registry), ``version_normalized`` is added
as packagist does, and ``source.url`` points at an unserved ``<server>/git/<name>.git`` so a client
falling back to source fails fast on loopback instead of cloning from the internet.

Run ``python -m devtools.fixture_registry --help`` for the command line server.
"""

from __future__ import annotations

from devtools.fixture_registry.archives import crc32_combine
from devtools.fixture_registry.data import FileBody, Registry
from devtools.fixture_registry.faults import FaultRule
from devtools.fixture_registry.minifier import expand, minify
from devtools.fixture_registry.responses import Response, file_response, json_response, redirect
from devtools.fixture_registry.server import RegistryServer, RequestRecord

__all__ = [
    "FaultRule",
    "FileBody",
    "Registry",
    "RegistryServer",
    "RequestRecord",
    "Response",
    "crc32_combine",
    "expand",
    "file_response",
    "json_response",
    "minify",
    "redirect",
]
