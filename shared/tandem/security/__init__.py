"""Who may call a Tandem service, over what, and how much.

- ``tokens``: bearer tokens (minted, stored hashed, checked in constant time)
  and the scopes that say which methods a token may call.
- ``limits``: per-client rate (token bucket) and concurrent-call limits.
- ``interceptor``: the one server interceptor that applies both.
- ``tls``: server and channel credentials (TLS, mutual TLS) from PEM files.
- ``certs``: a local CA and node certificates for the two Macs (``tandem certs``).
- ``client``: the gateway's side of a worker link (its token, its certificate).
- ``redact``: secrets out of log lines.
- ``audit``: ``make audit``'s wrapper around pip-audit.
"""
