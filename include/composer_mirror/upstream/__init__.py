"""The upstream: a Composer v2 repository the mirror reads, and the one HTTP client it reads it with.

- :mod:`.client`: the client (metadata and archive fetches, redirects, per-host limits, credentials),
  through which every request to the upstream or an archive host goes.
- :mod:`.policy`: the fetch policy, which URLs may be requested and which addresses reached.
- :mod:`.transport`: the session, proxies, and connections pinned to the addresses the policy checked;
  :mod:`.deadline`, the transfer deadline every read of a response honours.
- :mod:`.retries`: transient failures, backoff and Retry-After.
- :mod:`.redaction`: what of a URL or an error may be logged.
- :mod:`.composer`: the repository's protocol: the endpoints its root names (:class:`Endpoints`),
  package and list URLs.
- :mod:`.changes` (the metadata changes feed) and :mod:`.advisories` (the security-advisories API).

Adding another kind of upstream touches this package only.
"""

from composer_mirror.upstream.client import ClientStats, Downloaded, Fetched, UpstreamClient
from composer_mirror.upstream.policy import FetchPolicy, UnresolvedHost
from composer_mirror.upstream.redaction import redact
from composer_mirror.upstream.retries import RetryPolicy, parse_retry_after
from composer_mirror.upstream.transport import USER_AGENT, PinnedAdapter, connecting_only_to

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
