"""wyoming-whisper: a local Whisper speech-to-text server for Home Assistant and OpenAI clients."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wyoming-whisper")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
