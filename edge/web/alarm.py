"""A short two-tone alarm synthesised as a WAV file, so the terminal ships no binary sound asset."""

from __future__ import annotations

import io
import wave

import numpy as np

RATE = 22050


def alarm_wav(beeps: int = 3, beep_s: float = 0.18, gap_s: float = 0.07, volume: float = 0.6) -> bytes:
    """16-bit mono PCM: alternating 880/1320 Hz beeps; a harsh, unmistakable pattern, well under 1 s."""
    if beeps < 1 or beep_s <= 0 or gap_s < 0 or not 0 < volume <= 1:
        raise ValueError("alarm needs at least one beep, a positive length and a volume in (0, 1]")
    t = np.arange(int(RATE * beep_s)) / RATE
    # A short fade at both ends of each beep avoids clicks on cheap speakers.
    ramp = np.minimum(1.0, np.minimum(t, beep_s - t) / 0.01)
    gap = np.zeros(int(RATE * gap_s))
    parts: list[np.ndarray] = []
    for i in range(beeps):
        freq = 880.0 if i % 2 == 0 else 1320.0
        # A square-ish wave (fundamental plus odd harmonics) cuts through the noise of a sorting hall.
        tone = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 3, 5))
        parts.extend([tone * ramp, gap])
    signal = np.concatenate(parts)
    signal = signal / np.max(np.abs(signal)) * volume
    pcm = (signal * 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    return buf.getvalue()
