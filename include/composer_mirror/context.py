"""What every sync task builds from the settings: the store, the upstream client and its endpoints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from composer_mirror.errors import MirrorError
from composer_mirror.settings import Settings
from composer_mirror.store import Store
from composer_mirror.upstream import FetchPolicy, RetryPolicy, UpstreamClient
from composer_mirror.upstream.composer import Endpoints, read_endpoints


@dataclass
class Context:
    """What every task builds from settings: the store, the upstream client and the upstream's URLs."""

    settings: Settings
    store: Store
    client: UpstreamClient
    # The upstream's endpoints, for the tasks that make upstream requests (None for the others).
    upstream: Endpoints | None = None


def upstream_client(settings: Settings, endpoints: Endpoints | None = None) -> UpstreamClient:
    """The upstream client the settings describe; ``endpoints`` adds the upstream's own URLs to its policy.

    The one place settings become a client: the tasks, scripts and tests all build it here.
    """
    return UpstreamClient(
        FetchPolicy(settings.upstream_url, settings.dist_hosts, endpoints=endpoints.urls() if endpoints else ()),
        concurrency=settings.concurrency,
        auth=settings.upstream_auth,
        retry=RetryPolicy(backoff=settings.retry_backoff_ms / 1000),
        max_metadata_bytes=settings.max_metadata_bytes,
    )


def connect(settings: Settings, store: Store) -> Context:
    """A context for a run in one process: the upstream's endpoints read, and allowed by the client's policy.

    The DAGs do this in two tasks (read_upstream, then each task builds its client with the endpoints).
    """
    with upstream_client(settings) as probe:
        endpoints = read_endpoints(probe, settings.upstream_url)
    return Context(settings, store, upstream_client(settings, endpoints), endpoints)


def endpoints_of(ctx: Context) -> Endpoints:
    """The upstream's endpoints, for a step that makes upstream requests: its task must pass them."""
    if ctx.upstream is None:
        raise MirrorError("this step needs the upstream's endpoints (the read_upstream task's result)")
    return ctx.upstream


def run_with_context(build: Callable[[], Context], step: Callable[[Context], Any]) -> Any:
    """Build a context, run one step, always close the HTTP session."""
    ctx = build()
    try:
        return step(ctx)
    finally:
        ctx.client.close()
