from __future__ import annotations

from homeassistant.components.media_player import (
    MediaPlayerEntity,
    MediaPlayerEntityFeature,
    MediaPlayerState,
)

from . import specs
from .entity import BenchEntity


async def async_setup_entry(hass, entry, add) -> None:  # type: ignore[no-untyped-def]
    add([BenchPlayer(eid, opts) for eid, opts in specs(entry, "media_player")])


class BenchPlayer(BenchEntity, MediaPlayerEntity):
    """``state`` (playing, paused, on, off), ``volume_level``, ``media_track`` (next adds one)."""

    _attr_supported_features = (
        MediaPlayerEntityFeature.PAUSE
        | MediaPlayerEntityFeature.PLAY
        | MediaPlayerEntityFeature.NEXT_TRACK
        | MediaPlayerEntityFeature.PREVIOUS_TRACK
        | MediaPlayerEntityFeature.VOLUME_SET
        | MediaPlayerEntityFeature.TURN_ON
        | MediaPlayerEntityFeature.TURN_OFF
    )

    @property
    def state(self) -> MediaPlayerState:
        return MediaPlayerState(self.values.get("state", "paused"))

    @property
    def volume_level(self) -> float:
        return float(self.values.get("volume_level", 0.5))

    @property
    def media_track(self) -> int:
        return int(self.values.get("media_track", 1))

    @property
    def media_title(self) -> str:
        return f"Track {self.media_track}"

    async def async_media_pause(self) -> None:
        self.changed(state="paused")

    async def async_media_play(self) -> None:
        self.changed(state="playing")

    async def async_media_next_track(self) -> None:
        self.changed(media_track=self.media_track + 1)

    async def async_media_previous_track(self) -> None:
        self.changed(media_track=max(1, self.media_track - 1))

    async def async_set_volume_level(self, volume: float) -> None:
        self.changed(volume_level=round(volume, 2))

    async def async_turn_on(self) -> None:
        self.changed(state="on")

    async def async_turn_off(self) -> None:
        self.changed(state="off")
