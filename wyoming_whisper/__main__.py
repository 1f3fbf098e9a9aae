"""``python -m wyoming_whisper`` / ``wyoming-whisper``: parse the config, then serve."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from .backends.ctranslate2_models import ModelResolutionError, resolve
from .backends.select import SelectionError, detect_platform, select
from .config import Config, load_config
from .malloc import cap_arenas

_LOGGER = logging.getLogger("wyoming_whisper")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level != "debug":  # the libraries' chatter is only useful when debugging
        for noisy in ("faster_whisper", "httpx", "huggingface_hub"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def download_only(config: Config) -> int:
    """Resolve (download or assemble) every model for the backend that would run, then exit.

    No device is checked: an image may be built on a machine without the GPU it will run on.
    """
    facts = detect_platform()
    mlx = config.backend == "mlx" or (
        config.backend == "auto" and facts.apple_silicon and facts.mlx_available
    )
    fetch = resolve
    if mlx:
        from .backends.mlx import resolve_mlx

        fetch = resolve_mlx
    for name in config.models:
        try:
            path = fetch(name, config.cache_dir)
        except ModelResolutionError as err:
            _LOGGER.error("%s", err)
            return 1
        _LOGGER.info("Model %s ready at %s", name, path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    cap_arenas()  # first: glibc fixes the arena limit when threads first contend
    config = load_config(argv)
    setup_logging(config.log_level)
    if config.download_only:
        return download_only(config)
    try:
        selection = select(config.backend, config.device, config.compute_type, detect_platform())
    except SelectionError as err:
        print(f"wyoming-whisper: error: {err}", file=sys.stderr)
        return 2
    _LOGGER.info(
        "Backend %s on %s (%s; %d workers%s); models: %s",
        selection.backend,
        selection.device_label,
        selection.compute_type,
        config.max_concurrency,
        f", {config.threads} threads each" if selection.device == "cpu" else "",
        ", ".join(config.models),
    )
    from .server import run_server

    try:
        asyncio.run(run_server(config, selection))
    except KeyboardInterrupt:
        pass
    except OSError as err:  # a port already in use, an address that is not ours
        print(f"wyoming-whisper: error: {err}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
