"""Each language's commands, loaded in the background: a request never waits for them."""

from __future__ import annotations

import logging
import threading

from .matcher import Commands
from .recognizer import settle

_LOGGER = logging.getLogger("wyoming_whisper.commands")  # the package's: log lines as before


class Assist:
    """Each language's ``Commands``, loaded in the background on first need: a request never
    waits for a load (its words go out as heard meanwhile), and a language Home Assistant has no
    sentences for is remembered as such."""

    def __init__(self) -> None:
        self._loaded: dict[str, Commands | None] = {}
        self._loading: set[str] = set()
        self._lock = threading.Lock()

    def get(self, language: str | None) -> Commands | None:
        """The language's commands if loaded; else start loading them and answer None."""
        code = (language or "en").split("-")[0].split("_")[0].lower()
        with self._lock:
            if code in self._loaded:
                return self._loaded[code]
            if code in self._loading:
                return None
            self._loading.add(code)
        threading.Thread(target=self.load, args=(code,), name="assist-load", daemon=True).start()
        return None

    def status(self) -> dict[str, str]:
        """Each language asked for: "loaded", "loading" or "none" (Home Assistant has no
        sentences for it, or they failed to load)."""
        with self._lock:
            found = {c: "loaded" if v is not None else "none" for c, v in self._loaded.items()}
            return {**found, **{code: "loading" for code in self._loading}}

    def load(self, code: str) -> Commands | None:
        """Blocking: build the language's commands (seconds) and keep them."""
        commands: Commands | None = None
        try:
            commands = Commands(code)
            _LOGGER.info("Home Assistant sentences for %s: %d", code, commands.frames())
        except LookupError:
            commands = None
        except Exception:  # a broken intents package must not take transcription with it
            _LOGGER.exception("Home Assistant sentences for %s failed to load", code)
            commands = None
        if commands is not None:
            settle()
        with self._lock:
            self._loaded[code] = commands
            self._loading.discard(code)
        return commands
