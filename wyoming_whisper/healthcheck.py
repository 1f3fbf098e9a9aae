"""``python -m wyoming_whisper.healthcheck``: exit 0 when this container's server answers /health.

Used by the images' HEALTHCHECK; it reads the port the same way the server does (flags in
WHISPER_EXTRA_ARGS, then WHISPER_PORT), so moving the port does not make the container unhealthy.
"""

from __future__ import annotations

import sys
import urllib.request

from .config import load_config


def main() -> int:
    config = load_config([])
    host = "127.0.0.1" if config.host in ("", "0.0.0.0", "::") else config.host
    if ":" in host:
        host = f"[{host}]"
    try:
        with urllib.request.urlopen(f"http://{host}:{config.port}/health", timeout=5) as resp:
            return 0 if resp.status == 200 else 1
    except OSError as err:
        print(f"unhealthy: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
