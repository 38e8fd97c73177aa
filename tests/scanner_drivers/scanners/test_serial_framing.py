"""Frame assembly (property-tested over arbitrary chunking), message interpretation and scanner URLs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner_drivers.framing import FrameAssembler, FramingError
from scanner_drivers.scanners.presets import PRESETS, FramingConfig, PresetError, parse_bytes, split_aim
from scanner_drivers.scanners.serial_messages import CompiledFraming, interpret
from scanner_drivers.scanners.serial_scanner import parse_scanner_url
from scanner_drivers.types import DeviceUrlError

DELIMS = [(b"", b"\r"), (b"", b"\r\n"), (b"\x02", b"\x03"), (b"<<", b">>")]


def _feed_all(asm: FrameAssembler, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for c in chunks:
        out.extend(asm.feed(c))
    return out


def _summary(asm: FrameAssembler) -> tuple[int, int, int, int, int]:
    s = asm.stats
    return (s.frames, s.overlong, s.empty, s.aborted, s.dropped_bytes + asm.pending)


@settings(max_examples=300, deadline=None)
@given(
    delims=st.sampled_from(DELIMS),
    pieces=st.lists(
        st.one_of(
            st.binary(max_size=12),
            st.sampled_from([b"\r", b"\n", b"\r\n", b"\x02", b"\x03", b"<<", b">>", b"\xff\xfe", b"\x00"]),
        ),
        max_size=40,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=30),
    max_len=st.integers(min_value=1, max_value=20),
)
def test_any_chunking_gives_the_same_frames(
    delims: tuple[bytes, bytes], pieces: list[bytes], cuts: list[int], max_len: int
) -> None:
    prefix, suffix = delims
    stream = b"".join(pieces)
    whole = FrameAssembler(suffix, prefix, max_len)
    expected = whole.feed(stream)
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    split = FrameAssembler(suffix, prefix, max_len)
    assert _feed_all(split, chunks) == expected
    assert _summary(split) == _summary(whole)
    one_by_one = FrameAssembler(suffix, prefix, max_len)
    assert _feed_all(one_by_one, [stream[i : i + 1] for i in range(len(stream))]) == expected
    assert all(0 < len(f) <= max_len for f in expected)


def test_stx_etx_resynchronises_and_drops_garbage() -> None:
    asm = FrameAssembler(b"\x03", b"\x02", 64)
    assert asm.feed(b"noise\x02AB") == []
    # A new STX before ETX: the torn frame is dropped, the next one read.
    assert asm.feed(b"\x02CD\x03junk\x02EF\x03") == [b"CD", b"EF"]
    assert asm.stats.aborted == 1
    assert asm.stats.dropped_bytes == len(b"noise") + len(b"AB") + len(b"junk")


def test_overlong_run_is_dropped_and_reading_resumes() -> None:
    asm = FrameAssembler(b"\r", b"", 8)
    assert asm.feed(b"X" * 5000) == []
    assert asm.pending <= 8
    assert asm.feed(b"tail\rOK\r") == [b"OK"]
    assert asm.stats.overlong == 1


def test_crlf_split_between_reads_and_port_loss_mid_frame() -> None:
    asm = FrameAssembler(b"\r\n")
    assert asm.feed(b"EA1\r") == []
    assert asm.feed(b"\nEA2") == [b"EA1"]
    assert asm.reset() == 3
    assert asm.feed(b"EA3\r\n") == [b"EA3"]
    assert asm.stats.aborted == 1


@pytest.mark.parametrize(
    ("suffix", "prefix", "max_len"), [(b"", b"", 10), (b"\r", b"", 0), (b"\x03", b"\x03", 9)]
)
def test_framing_that_cannot_work_is_refused(suffix: bytes, prefix: bytes, max_len: int) -> None:
    with pytest.raises(FramingError):
        FrameAssembler(suffix, prefix, max_len)


def _msg(preset: str, payload: bytes, **over: object) -> tuple[str, list[tuple[str, str]], bool]:
    cfg = FramingConfig.model_validate({**PRESETS[preset].model_dump(), **over})
    m = interpret(payload, CompiledFraming.of(cfg))
    return m.kind, [(c.text, c.symbology) for c in m.codes], m.bad_text


def test_vendor_messages_are_interpreted() -> None:
    assert _msg("zebra", b"MOTEVTHB:017") == ("heartbeat", [], False)
    assert _msg("zebra", b"NR")[0] == "noread"
    assert _msg("datalogic", b"EA123456785CN,003401234500000014")[1] == [
        ("EA123456785CN", "unknown"),
        ("003401234500000014", "unknown"),
    ]
    assert _msg("datalogic", b"NoRead,NoRead")[0] == "noread"
    assert _msg("cognex", b"||0:12[OK]")[0] == "heartbeat"
    assert _msg("sick", b"A;NoRead;B")[1] == [("A", "unknown"), ("B", "unknown")]
    assert _msg("honeywell", b"\x06")[0] == "reply"
    assert _msg("generic", b"\x00\x00\r\n")[0] == "empty"


def test_aim_identifiers_are_mapped_and_control_bytes_inside_kept() -> None:
    assert _msg("honeywell", b"]E09780201379629", aim_ids=True)[1] == [("9780201379629", "EAN13")]
    assert _msg("honeywell", b"]C1\x1d0034", aim_ids=True)[1] == [("\x1d0034", "GS1-128")]
    assert _msg("honeywell", b"]Q1EA1", aim_ids=True)[1] == [("EA1", "QRCode")]
    # Without aim_ids the identifier is part of the text, exactly as sent.
    assert _msg("honeywell", b"]Q1EA1")[1] == [("]Q1EA1", "unknown")]
    assert split_aim("]X0abc") == ("unknown", "abc")
    assert split_aim("no id") == ("unknown", "no id")


def test_invalid_utf8_is_kept_and_flagged() -> None:
    kind, codes, bad = _msg("generic", b"EA\xff\xfe12")
    assert kind == "read" and bad
    assert codes[0][0] == "EA\ufffd\ufffd12"
    assert _msg("generic", "运单12".encode("gb18030"), encoding="gb18030")[1] == [("运单12", "unknown")]


def test_parse_bytes() -> None:
    assert parse_bytes("CR+LF") == b"\r\n"
    assert parse_bytes("SYN+T+CR") == b"\x16T\r"
    assert parse_bytes("||>TRIGGER ON+CR+LF") == b"||>TRIGGER ON\r\n"
    assert parse_bytes("\\x02") == b"\x02"
    assert parse_bytes("crlf") == b"\r\n"
    with pytest.raises(PresetError):
        parse_bytes("运单")


def test_scanner_url_with_preset_and_overrides() -> None:
    cfg = parse_scanner_url(
        "serial:///dev/serial/by-id/usb-Honeywell?preset=honeywell&suffix=CRLF&baudrate=9600"
    )
    assert cfg.port_url == "/dev/serial/by-id/usb-Honeywell"
    assert cfg.framing.suffix == "CRLF" and cfg.framing.baudrate == 9600
    assert cfg.framing.trigger_on == "SYN+T+CR"
    sock = parse_scanner_url("socket://10.1.2.3:2001?preset=sick&no_read=NoRead,?????&heartbeat=HB%5Cd%2B")
    assert sock.port_url == "socket://10.1.2.3:2001"
    assert sock.framing.no_read == ("NoRead", "?????") and sock.framing.heartbeats == (r"HB\d+",)
    assert parse_scanner_url("rfc2217://h:7000?logging=debug").port_url == "rfc2217://h:7000?logging=debug"
    assert parse_scanner_url("loop://?aim=1").framing.aim_ids


@pytest.mark.parametrize(
    "url",
    [
        "serial://dev/ttyUSB0",
        "serial:///dev/ttyUSB0?preset=acme",
        "serial:///dev/ttyUSB0?baudrate=fast",
        "serial:///dev/ttyUSB0?baudrate=12",
        "serial:///dev/ttyUSB0?parity=Q",
        "serial:///dev/ttyUSB0?bytesize=9",
        "serial:///dev/ttyUSB0?suffix=NONE",
        "serial:///dev/ttyUSB0?heartbeat=(",
        "serial:///dev/ttyUSB0?encoding=klingon",
        "serial:///dev/ttyUSB0?max_frame=2",
        "serial:///dev/ttyUSB0?colour=blue",
        "serial:///dev/ttyUSB0?logging=debug",
        "socket://host",
        "socket://:99",
        "usb:///dev/ttyUSB0",
    ],
)
def test_bad_scanner_urls(url: str) -> None:
    with pytest.raises(DeviceUrlError):
        parse_scanner_url(url)
