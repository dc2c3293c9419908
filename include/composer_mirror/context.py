"""What every sync task builds from the settings: the store, the upstream client and its endpoints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from composer_mirror.errors import MirrorError
from composer_mirror.settings import Settings
from composer_mirror.store import Store
from composer_mirror.upstream import UpstreamClient
from composer_mirror.upstream.composer import Endpoints


@dataclass
class Context:
    """What every task builds from settings: the store, the upstream client and the upstream's URLs."""

    settings: Settings
    store: Store
    client: UpstreamClient
    # The upstream's endpoints, for the tasks that make upstream requests (None for the others).
    upstream: Endpoints | None = None


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
