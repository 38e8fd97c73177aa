"""The sorter link interface: divert results, what a link can carry, and the controller's requests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

from scanner_drivers.types import Code, ScanRead

DivertOutcome = Literal["DIVERTED", "MISSED", "TIMEOUT"]
SorterMode = Literal["divert", "request"]


@dataclass(frozen=True)
class DivertResult:
    """DIVERTED: the controller confirmed; MISSED: it reported (or refused) a miss; TIMEOUT: no answer."""

    outcome: DivertOutcome
    chute: str | None
    detail: str


class LinkLimitError(ValueError):
    """A tracking id or chute the link cannot carry: the caller's bug, raised before anything is sent."""


@dataclass(frozen=True)
class LinkLimits:
    """What one sorter link can carry, learnt from its URL alone (see `check_url("sorter", url)`).

    `id_pattern` and `chute_pattern` are regular expressions the whole value must match;
    `chute_max` bounds numeric chutes (Modbus registers). No chute (None or "") is always
    allowed: the controller then uses its own default chute.
    """

    link: str
    mode: SorterMode
    id_max_len: int
    id_pattern: str
    id_form: str
    chute_pattern: str
    chute_form: str
    chute_max: int | None = None
    # How many diverts may wait on the controller at once (1: strictly one after another).
    max_in_flight: int = 1

    def check_tracking_id(self, tracking_id: str) -> str:
        """Return `tracking_id` if the link can carry it, else raise LinkLimitError saying why."""
        if not tracking_id:
            raise LinkLimitError(f"{self.link}: tracking id is empty")
        if len(tracking_id) > self.id_max_len:
            raise LinkLimitError(
                f"{self.link}: tracking id {tracking_id[:24]!r} is {len(tracking_id)} characters,"
                f" the link carries at most {self.id_max_len}"
            )
        if not re.fullmatch(self.id_pattern, tracking_id):
            raise LinkLimitError(f"{self.link}: tracking id {tracking_id[:24]!r} must be {self.id_form}")
        return tracking_id

    def check_chute(self, chute: str | None) -> str | None:
        """Return `chute` if the link can carry it (None/"" is the controller's default), else raise."""
        if not chute:
            return chute
        ok = re.fullmatch(self.chute_pattern, chute) is not None
        if ok and self.chute_max is not None:
            ok = int(chute) <= self.chute_max
        if not ok:
            raise LinkLimitError(f"{self.link}: chute {chute[:24]!r} must be {self.chute_form}")
        return chute


@dataclass(frozen=True)
class DestinationRequest:
    """The controller asks where its carrier (tray, tilt tray, cross-belt cell) is to go.

    `carrier_id` is the controller's own id, to be quoted in the answer; `codes` are the barcodes
    its scanner read (none: a no-read); the controller waits `deadline_s` seconds after
    `at_monotonic` and then applies its default.
    """

    carrier_id: str
    codes: tuple[Code, ...]
    at_utc: str
    at_monotonic: float
    deadline_s: float

    @property
    def deadline(self) -> float:
        """The monotonic time after which an answer is too late."""
        return self.at_monotonic + self.deadline_s

    def as_scan_read(self, device: str) -> ScanRead:
        """The request as a scanner read, so it can enter the parcel pipeline like any other read."""
        return ScanRead(
            device=device,
            codes=self.codes,
            at_utc=self.at_utc,
            at_monotonic=self.at_monotonic,
            carrier_id=self.carrier_id,
            answer_within_s=self.deadline_s,
        )


class SorterLink(Protocol):
    """A connection to one sorter controller; `divert` is thread-safe and never raises for a dead device.

    Many threads may call `divert` at once; each waits for its own result. It returns no later
    than `deadline_s` seconds after it was called (plus scheduling jitter). Only a tracking id
    or chute beyond `limits` raises (LinkLimitError, a ValueError), before anything is sent.
    """

    url: str
    limits: LinkLimits

    def divert(self, tracking_id: str, deadline_s: float, chute: str | None = None) -> DivertResult: ...

    def probe(self, timeout_s: float) -> tuple[bool, str]:
        """Connect (if not connected) and check the controller answers, within about `timeout_s`.

        Returns (up, detail); sends no divert and never raises for a dead device.
        """
        ...

    def close(self) -> None: ...
