"""The upstream: a Composer v2 repository the mirror reads, and the one HTTP client it reads it with.

- :mod:`.http`: the client (pooled sessions, retries, per-host limits, the fetch policy, DNS pinning,
  redaction of secrets), the only code that opens a connection.
- :mod:`.composer`: the repository's protocol: the endpoints its root names (:class:`Endpoints`),
  package and list URLs.
- :mod:`.changes` (the metadata changes feed) and :mod:`.advisories` (the security-advisories API).

Adding another kind of upstream touches this package only.
"""

from composer_mirror.upstream.http import (
    USER_AGENT,
    ClientStats,
    Downloaded,
    Fetched,
    FetchPolicy,
    PinnedAdapter,
    RetryPolicy,
    UnresolvedHost,
    UpstreamClient,
    connecting_only_to,
    parse_retry_after,
    redact,
)

__all__ = [
    "USER_AGENT",
    "ClientStats",
    "Downloaded",
    "FetchPolicy",
    "Fetched",
    "PinnedAdapter",
    "RetryPolicy",
    "UnresolvedHost",
    "UpstreamClient",
    "connecting_only_to",
    "parse_retry_after",
    "redact",
]
