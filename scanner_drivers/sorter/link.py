"""The sorter link: send one divert per parcel to the line's controller and report what happened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

DivertOutcome = Literal["DIVERTED", "MISSED", "TIMEOUT"]


@dataclass(frozen=True)
class DivertResult:
    """DIVERTED: the controller confirmed; MISSED: it reported (or refused) a miss; TIMEOUT: no answer."""

    outcome: DivertOutcome
    chute: str | None
    detail: str


class SorterLink(Protocol):
    """A connection to one sorter controller; `divert` is thread-safe and never raises for a dead device.

    `divert` returns no later than `deadline_s` seconds after it was called (plus scheduling
    jitter). Only a tracking id or chute that the transport cannot carry raises (a ValueError).
    """

    url: str

    def divert(self, tracking_id: str, deadline_s: float, chute: str | None = None) -> DivertResult: ...

    def close(self) -> None: ...
