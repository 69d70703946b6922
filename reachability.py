"""Whether a download could start: the one network probe that ``models`` (hub weights) and ``data`` (dataset
downloads) share, kept apart from both so that neither imports the other."""

from __future__ import annotations

import socket
import threading
import urllib.request
from urllib.parse import urlsplit


def reachable(url: str, timeout: float) -> bool:
    """Whether a TCP connection to the URL's host (or the proxy it would go through) opens within ``timeout``."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    outcome: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=timeout).close()
            outcome.append(True)
        except OSError:
            outcome.append(False)

    # the thread also bounds the DNS lookup, which create_connection's timeout does not cover
    probe = threading.Thread(target=connect, daemon=True, name="network-probe")
    probe.start()
    probe.join(timeout)
    return outcome == [True]
