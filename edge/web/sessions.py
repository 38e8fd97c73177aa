"""Operator logins at the terminal: PIN checks, lockout with backoff, sessions kept as digests, CSRF."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge.config import TerminalConfig
from edge.errors import ConfigError

PIN_MIN = 4
MAX_SESSIONS = 256
MAX_TRACKED = 4096


class LoginFailed(PermissionError):
    """Wrong operator id or PIN."""


class LoginLocked(PermissionError):
    """Too many wrong PINs for this operator id or from this address; carries the seconds left."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many wrong PINs; try again in {int(retry_after_s) + 1} s")
        self.retry_after_s = retry_after_s


@functools.cache
def _dummy_hash() -> str:
    # Checked against when the operator id is unknown, so that a wrong id costs as long as a wrong PIN.
    return PasswordHasher().hash(secrets.token_urlsafe(8))


def hash_pin(pin: str) -> str:
    """argon2id hash of a PIN, for the `pin_hash` of an operator in the station configuration."""
    if len(pin) < PIN_MIN:
        raise ValueError(f"a PIN has at least {PIN_MIN} characters")
    return PasswordHasher().hash(pin)


@dataclass(frozen=True)
class OperatorSession:
    """A logged-in operator: who, the CSRF token unsafe requests must echo, and when it ends."""

    operator: str
    name: str
    csrf: str
    expires: float
    # Digest of the cookie: names the session (stream limits, logout) without holding the cookie itself.
    key: str


class _PinChecker:
    """The configured operators and how each one's PIN is checked."""

    def __init__(self, cfg: TerminalConfig, environ: Mapping[str, str]) -> None:
        self._hasher = PasswordHasher()
        self._hashes: dict[str, str] = {}
        self._env_pins: dict[str, str] = {}
        self.names: dict[str, str] = {}
        for op in cfg.operators:
            self.names[op.id] = op.name
            if op.pin_hash is not None:
                self._hashes[op.id] = op.pin_hash
                continue
            assert op.pin_env is not None
            pin = environ.get(op.pin_env, "")
            if len(pin) < PIN_MIN:
                # Fail closed at start-up: a missing PIN must not become an empty, always-matching one.
                raise ConfigError(
                    f"terminal.operators: {op.id}: environment variable {op.pin_env} is unset or holds"
                    f" a PIN shorter than {PIN_MIN} characters"
                )
            self._env_pins[op.id] = pin

    def check(self, operator: str, pin: str) -> bool:
        if operator in self._env_pins:
            return hmac.compare_digest(self._env_pins[operator].encode(), pin.encode())
        stored = self._hashes.get(operator)
        try:
            return self._hasher.verify(stored or _dummy_hash(), pin) and stored is not None
        except (VerificationError, InvalidHashError):
            return False


@dataclass
class _Strikes:
    failures: int = 0
    lockouts: int = 0
    locked_until: float = 0.0
    seen: float = 0.0


class Lockouts:
    """Wrong PINs per key (operator id, address): max_failures in a row lock it, longer each time."""

    def __init__(self, max_failures: int, lockout_s: float, max_lockout_s: float) -> None:
        self.max_failures, self.lockout_s, self.max_lockout_s = max_failures, lockout_s, max_lockout_s
        self._strikes: dict[str, _Strikes] = {}

    def locked_for(self, keys: list[str], now: float) -> float:
        return max((s.locked_until - now for k in keys if (s := self._strikes.get(k))), default=0.0)

    def strike(self, keys: list[str], now: float) -> dict[str, _Strikes | None]:
        """Count one wrong PIN on every key; returns the states before, for `restore`."""
        before = {k: replace(s) if (s := self._strikes.get(k)) else None for k in keys}
        for key in keys:
            s = self._strikes.setdefault(key, _Strikes())
            s.failures += 1
            s.seen = now
            if s.failures >= self.max_failures:
                s.locked_until = now + min(self.lockout_s * 2**s.lockouts, self.max_lockout_s)
                s.lockouts += 1
                s.failures = 0
        if len(self._strikes) > MAX_TRACKED:
            # Keep memory bounded against sprayed ids: forget the longest-quiet keys that are not locked.
            idle = sorted((s.seen, k) for k, s in self._strikes.items() if s.locked_until <= now)
            for _, key in idle[: len(self._strikes) - MAX_TRACKED]:
                del self._strikes[key]
        return before

    def forgive(self, key: str) -> None:
        self._strikes.pop(key, None)

    def reset_failures(self, key: str) -> None:
        s = self._strikes.get(key)
        if s is not None:
            s.failures = 0

    def restore(self, before: dict[str, _Strikes | None]) -> None:
        """Take back a provisional strike (the PIN turned out right), and the lockout it may have started."""
        for key, state in before.items():
            if state is None:
                self._strikes.pop(key, None)
            else:
                self._strikes[key] = state


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


class OperatorAuth:
    """Logins, sessions and logouts of one terminal, in memory: a station restart logs everyone out."""

    def __init__(
        self,
        cfg: TerminalConfig,
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.required = cfg.require_login
        if self.required and not cfg.operators:
            raise ConfigError(
                "terminal.operators is empty but terminal.require_login is true: add operators with a"
                " pin_hash or pin_env, or set require_login = false for a bench terminal"
            )
        self._pins = _PinChecker(cfg, os.environ if environ is None else environ)
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, OperatorSession] = {}
        self._lockouts = Lockouts(cfg.max_failures, cfg.lockout_s, cfg.max_lockout_s)

    def login(self, operator: str, pin: str, client: str) -> tuple[str, OperatorSession]:
        """Check the PIN (slow: call it off the event loop); returns the new cookie value and its session."""
        keys = [f"client:{client}"]
        if operator in self._pins.names:
            keys.append(f"operator:{operator}")
        with self._lock:
            now = self._clock()
            wait = self._lockouts.locked_for(keys, now)
            if wait > 0:
                raise LoginLocked(wait)
            # Strike first, check after: parallel guesses cannot all slip in before the count rises.
            before = self._lockouts.strike(keys, now)
        ok = self._pins.check(operator, pin)
        with self._lock:
            if not ok:
                raise LoginFailed("wrong operator id or PIN")
            self._lockouts.restore(before)
            self._lockouts.forgive(f"operator:{operator}")
            # The address's earlier typos are forgiven too; a lockout it already earned still counts.
            self._lockouts.reset_failures(keys[0])
            return self._open(operator, self._pins.names[operator])

    def bench_session(self) -> tuple[str, OperatorSession]:
        """A session without a PIN for the bench operator; only when login is not required."""
        if self.required:
            raise PermissionError("login is required at this terminal")
        with self._lock:
            return self._open(self.cfg.bench_operator, "")

    def _open(self, operator: str, name: str) -> tuple[str, OperatorSession]:
        now = self._clock()
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.expires)
            del self._sessions[oldest.key]
        cookie = secrets.token_urlsafe(32)
        session = OperatorSession(
            operator=operator,
            name=name,
            csrf=secrets.token_urlsafe(24),
            expires=now + self.cfg.session_hours * 3600,
            key=_digest(cookie),
        )
        self._sessions[session.key] = session
        return cookie, session

    def session(self, cookie: str | None) -> OperatorSession | None:
        if not cookie:
            return None
        with self._lock:
            found = self._sessions.get(_digest(cookie))
            if found is None or found.expires <= self._clock():
                return None
            return found

    def alive(self, key: str) -> bool:
        with self._lock:
            found = self._sessions.get(key)
            return found is not None and found.expires > self._clock()

    def logout(self, session: OperatorSession) -> None:
        with self._lock:
            self._sessions.pop(session.key, None)

    @staticmethod
    def csrf_ok(session: OperatorSession, presented: str) -> bool:
        return bool(presented) and hmac.compare_digest(session.csrf.encode(), presented.encode())
