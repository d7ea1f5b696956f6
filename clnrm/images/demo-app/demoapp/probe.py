"""``demo-app probe URL``: the health-check command, kept free of the SDK so it starts fast."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def probe(url: str, *, timeout_s: float) -> int:
    """0 when ``url`` answers 200, 1 otherwise (the reason on stderr)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            body = response.read(4096).decode("utf-8", "replace")
            print(body)
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"{url}: HTTP {exc.code} {exc.read(4096).decode('utf-8', 'replace')}",
              file=sys.stderr)
    except (OSError, ValueError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1
