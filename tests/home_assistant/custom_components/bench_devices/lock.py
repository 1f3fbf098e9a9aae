from __future__ import annotations

from typing import Any

from homeassistant.components.lock import LockEntity

from . import specs
from .entity import BenchEntity


async def async_setup_entry(hass, entry, add) -> None:  # type: ignore[no-untyped-def]
    add([BenchLock(eid, opts) for eid, opts in specs(entry, "lock")])


class BenchLock(BenchEntity, LockEntity):
    @property
    def is_locked(self) -> bool:
        return self.values.get("state", "locked") == "locked"

    async def async_lock(self, **kwargs: Any) -> None:
        self.changed(state="locked")

    async def async_unlock(self, **kwargs: Any) -> None:
        self.changed(state="unlocked")
