"""Image headers read without decoding: real size, depth and frames of PNG, JPEG, BMP, TIFF, WebP, GIF.

Only the image gate (`scanner_drivers.image_gate`, with its DICOM part) uses this module. Every parser
works on the raw bytes with explicit bounds, never allocates in proportion to what a header claims, and
raises `BadHeader` for anything malformed. Each parser also says how many coded bytes the declared pixels
need at least and how many the file holds, so the gate can refuse a file far too small for what it
declares (a lying header, a cut file, a bomb within the size limits) before any decoder allocates for it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

# Hard caps on how far a parser walks, whatever the limits: they bound the time a header can cost.
MAX_PNG_CHUNKS = 200_000
MAX_JPEG_SEGMENTS = 10_000
MAX_TIFF_ENTRIES = 4_096
MAX_GIF_BLOCKS = 1_000_000
MAX_RIFF_CHUNKS = 100_000


class BadHeader(ValueError):
    """A header is malformed, truncated or of an unknown format; `reason` is the gate's reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Header:
    """What a header declares: the first frame's size, the frame count, the decoded bytes per pixel, and
    the size of every frame (pages of a TIFF, images of a GIF) for the limits to check them all."""

    format: str
    width: int
    height: int
    frames: int
    bytes_per_pixel: float
    # The fewest coded bytes that could expand to the declared pixels at the coding's best possible ratio,
    # and the coded bytes the file holds: fewer means a cut or lying file (checked after the size limits).
    min_coded: float = 0.0
    coded: int = 0
    frame_sizes: tuple[tuple[int, int], ...] = ()


def sniff_format(data: bytes) -> str | None:
    """The format named by the leading bytes, or None when they name none the gate knows."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[128:132] == b"DICM":
        return "dicom"
    return None


def _need(data: bytes, end: int, what: str) -> None:
    if end > len(data):
        raise BadHeader("truncated", f"file ends inside the {what} ({len(data)} bytes)")


def _min_coded(needed: float, ratio: float) -> float:
    """Coded bytes needed for `needed` decoded bytes at `ratio`, less a 4 KiB allowance for tiny images."""
    return max(0.0, (needed - 4096) / ratio)


# ---------------------------------------------------------------- PNG

_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def read_png(data: bytes) -> Header:
    _need(data, 33, "PNG IHDR chunk")
    length, kind = struct.unpack_from(">I4s", data, 8)
    if kind != b"IHDR" or length != 13:
        raise BadHeader("bad_header", "PNG does not start with a 13-byte IHDR chunk")
    if zlib.crc32(data[12:29]) != struct.unpack_from(">I", data, 29)[0]:
        raise BadHeader("bad_header", "PNG IHDR checksum is wrong (the header was altered or damaged)")
    width, height, depth, colour, compression, filt, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if width > 2**31 - 1 or height > 2**31 - 1:
        raise BadHeader("bad_header", f"PNG IHDR size {width}x{height} is beyond the PNG limit of 2^31-1")
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filt or interlace > 1:
        raise BadHeader(
            "bad_header", f"PNG IHDR is invalid (depth {depth}, colour type {colour}, method {compression})"
        )
    pos, idat, frames, chunks, ended = 33, 0, 1, 0, False
    while pos + 12 <= len(data):
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise BadHeader("bad_header", f"PNG has more than {MAX_PNG_CHUNKS} chunks")
        length, kind = struct.unpack_from(">I4s", data, pos)
        if length > 2**31 - 1:
            raise BadHeader("bad_header", f"PNG chunk {kind!r} claims {length} bytes")
        _need(data, pos + 12 + length, f"PNG chunk {kind!r}")
        if kind in (b"IDAT", b"fdAT"):
            idat += length
        elif kind == b"acTL" and length >= 8:
            frames = max(1, struct.unpack_from(">I", data, pos + 8)[0])
        elif kind == b"IEND":
            ended = True
            break
        pos += 12 + length
    if not idat:
        raise BadHeader("truncated", "PNG has no image data (no IDAT chunk)")
    if not ended:
        raise BadHeader("truncated", "PNG is truncated (no IEND chunk)")
    bits = depth * _PNG_CHANNELS[colour]
    # Deflate turns one coded byte into at most 1032 bytes; filters add one byte per row.
    need = _min_coded(height * ((width * bits + 7) // 8 + 1), 1040.0)
    return Header("png", width, height, frames, max(bits / 8, 1.0), need, idat)


# ---------------------------------------------------------------- JPEG

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def read_jpeg(data: bytes) -> Header:
    pos, segments, arithmetic = 2, 0, False
    size: tuple[int, int, int] | None = None
    while True:
        _need(data, pos + 2, "JPEG marker")
        if data[pos] != 0xFF:
            raise BadHeader("bad_header", f"JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD8, 0xD9):
            raise BadHeader("bad_header", "JPEG ends or restarts before its first scan")
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise BadHeader("bad_header", f"JPEG has more than {MAX_JPEG_SEGMENTS} header segments")
        _need(data, pos + 4, "JPEG segment length")
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            raise BadHeader("bad_header", f"JPEG segment at byte {pos} has length {length}")
        _need(data, pos + 2 + length, "JPEG header segment")
        if marker in _SOF:
            if length < 8 or size is not None:
                raise BadHeader("bad_header", "JPEG frame header is short or repeated")
            height, width, comps = struct.unpack_from(">HHB", data, pos + 5)
            if not 1 <= comps <= 4 or length < 8 + 3 * comps:
                raise BadHeader("bad_header", f"JPEG frame header names {comps} components")
            size = (width, height, comps)
            arithmetic = marker >= 0xC9
        elif marker == 0xDA:
            break
        pos += 2 + length
    if size is None:
        raise BadHeader("bad_header", "JPEG has no frame header before its first scan")
    width, height, comps = size
    if b"\xff\xd9" not in data[-4096:]:
        # libjpeg pads a cut JPEG with grey and only warns. FF D9 cannot occur inside coded data (FF is
        # stuffed there), so its absence near the end means the file was cut.
        raise BadHeader("truncated", "JPEG is truncated (no end-of-image marker)")
    # With Huffman coding every 8x8 block of the fullest component costs at least one bit, even in a
    # progressive file (512 pixels a byte); a factor of four leaves room for unusual sampling factors.
    # Arithmetic coding can spend far less than a bit on a block: no bound for it.
    need = 0.0 if arithmetic else _min_coded(width * height, 2048.0)
    return Header("jpeg", width, height, 1, float(comps), need, len(data) - pos)


# ---------------------------------------------------------------- BMP

_BMP_HEADERS = {12, 40, 52, 56, 64, 108, 124}


def read_bmp(data: bytes) -> Header:
    _need(data, 26, "BMP header")
    offset, dib = struct.unpack_from("<II", data, 10)
    if dib not in _BMP_HEADERS:
        raise BadHeader("bad_header", f"BMP information header of {dib} bytes is not a known kind")
    if dib == 12:
        width, height, planes, bpp = struct.unpack_from("<HHHH", data, 18)
        compression = 0
    else:
        _need(data, 14 + 40, "BMP information header")
        width, height, planes, bpp, compression = struct.unpack_from("<iiHHI", data, 18)
    if width < 0 or height == -(2**31):
        raise BadHeader("bad_header", f"BMP size {width}x{height} is invalid")
    height = abs(height)  # negative height means rows stored top-down
    if planes != 1 or bpp not in (1, 2, 4, 8, 16, 24, 32, 64):
        raise BadHeader("bad_header", f"BMP has {planes} planes of {bpp} bits")
    if compression not in (0, 1, 2, 3, 6):
        raise BadHeader("unsupported", f"BMP compression {compression} (embedded JPEG/PNG) is not accepted")
    if not 14 + dib <= offset <= len(data):
        raise BadHeader("truncated", f"BMP pixel data offset {offset} is outside the {len(data)}-byte file")
    coded = len(data) - offset
    if compression in (1, 2):
        # RLE: a two-byte run gives at most 255 pixels, a four-byte skip at most 255x255.
        return Header("bmp", width, height, 1, 4.0, _min_coded(width * height, 16384.0), coded)
    # Row sizes are computed on Python integers: the 32-bit overflow some decoders suffer cannot hide here.
    # One row of slack: some writers leave out the last row's padding.
    row = ((width * bpp + 31) // 32) * 4
    need = float(row * max(height - 1, 0))
    return Header("bmp", width, height, 1, max(bpp / 8, 1.0), need, coded)


# ---------------------------------------------------------------- TIFF

_TIFF_TYPES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
# Decoded bytes per coded byte: none, CCITT, LZW, JPEG, deflate, PackBits; others get the loosest.
_TIFF_RATIO = {1: 1.0, 2: 4096.0, 3: 4096.0, 4: 4096.0, 5: 4096.0, 6: 2048.0, 7: 2048.0}
_TIFF_RATIO.update({8: 1040.0, 32946: 1040.0, 32773: 64.0})


def read_tiff(data: bytes, max_frames: int) -> Header:
    """Walks the IFD chain (at most `max_frames` + 1 of them, refusing loops) and reads every page's size."""
    _need(data, 8, "TIFF header")
    if data[2:4] in (b"+\x00", b"\x00+"):
        raise BadHeader("unsupported", "BigTIFF is not accepted (no device writes it for images this small)")
    end = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(end + "I", data, 4)
    seen: set[int] = set()
    pages: list[tuple[int, int, float, float]] = []  # width, height, bytes per pixel, coded bytes needed
    while ifd:
        if ifd in seen:
            raise BadHeader("bad_header", "TIFF page chain loops back on itself")
        seen.add(ifd)
        if len(pages) > max_frames:
            raise BadHeader("too_many_frames", f"TIFF has more than {max_frames} pages")
        tags, ifd = _tiff_ifd(data, ifd, end)
        pages.append(_tiff_page(tags))
    if not pages:
        raise BadHeader("bad_header", "TIFF has no image page")
    width, height, bpp, _ = pages[0]
    need = sum(p[3] for p in pages)
    return Header(
        "tiff", width, height, len(pages), bpp, need, len(data), tuple((w, h) for w, h, _, _ in pages)
    )


def _tiff_ifd(data: bytes, pos: int, end: str) -> tuple[dict[int, tuple[int, ...]], int]:
    _need(data, pos + 2, "TIFF page directory")
    (count,) = struct.unpack_from(end + "H", data, pos)
    if count > MAX_TIFF_ENTRIES:
        raise BadHeader("bad_header", f"TIFF page has {count} tags")
    _need(data, pos + 2 + 12 * count + 4, "TIFF page directory")
    tags: dict[int, tuple[int, ...]] = {}
    for i in range(count):
        tag, kind, n = struct.unpack_from(end + "HHI", data, pos + 2 + 12 * i)
        if tag in tags:
            # Decoders disagree on which copy wins: the gate would check one size and the decoder use another.
            raise BadHeader("bad_header", f"TIFF page has tag {tag} twice")
        if tag not in (256, 257, 258, 259, 277, 322, 323) or kind not in (3, 4):
            continue  # only sizes and depths matter here; other tags are the decoder's business
        size = _TIFF_TYPES[kind]
        if n == 0 or n > 64:
            raise BadHeader("bad_header", f"TIFF tag {tag} has {n} values")
        where = pos + 2 + 12 * i + 8
        if n * size > 4:
            (where,) = struct.unpack_from(end + "I", data, where)
            _need(data, where + n * size, f"TIFF tag {tag} values")
        fmt = end + ("H" if kind == 3 else "I") * n
        tags[tag] = struct.unpack_from(fmt, data, where)
    (nxt,) = struct.unpack_from(end + "I", data, pos + 2 + 12 * count)
    return tags, nxt


def _tiff_page(tags: dict[int, tuple[int, ...]]) -> tuple[int, int, float, float]:
    if 256 not in tags or 257 not in tags:
        raise BadHeader("bad_header", "TIFF page has no ImageWidth or ImageLength")
    width, height = tags[256][0], tags[257][0]
    samples = tags.get(277, (1,))[0]
    bits = tags.get(258, (1,))
    if not 1 <= samples <= 16 or any(not 1 <= b <= 64 for b in bits):
        raise BadHeader("bad_header", f"TIFF page has {samples} samples of {bits} bits")
    for tag, side in ((322, width), (323, height)):
        # A tile far larger than its image makes some decoders allocate for the tile, not the image.
        if tag in tags and tags[tag][0] > max(side + 16, 1024):
            raise BadHeader(
                "bad_header", f"TIFF tile side {tags[tag][0]} is larger than its {side}-pixel image"
            )
    compression = tags.get(259, (1,))[0]
    raw = ((width * bits[0] * samples + 7) // 8) * height
    return (
        width,
        height,
        max(bits[0] * samples / 8, 1.0),
        _min_coded(raw, _TIFF_RATIO.get(compression, 4096.0)),
    )


# ---------------------------------------------------------------- WebP


def read_webp(data: bytes) -> Header:
    _need(data, 30, "WebP header")
    pos, frames, canvas, inner = 12, 0, None, None
    chunks = 0
    alpha = False
    while pos + 8 <= len(data):
        chunks += 1
        if chunks > MAX_RIFF_CHUNKS:
            raise BadHeader("bad_header", f"WebP has more than {MAX_RIFF_CHUNKS} chunks")
        kind, length = struct.unpack_from("<4sI", data, pos)
        body = pos + 8
        _need(data, body + length, f"WebP chunk {kind!r}")
        if kind == b"VP8X" and length >= 10:
            flags = data[body]
            alpha = bool(flags & 0x10)
            w = int.from_bytes(data[body + 4 : body + 7], "little") + 1
            h = int.from_bytes(data[body + 7 : body + 10], "little") + 1
            canvas = (w, h)
        elif kind == b"VP8 " and inner is None:
            if length < 10 or data[body + 3 : body + 6] != b"\x9d\x01\x2a":
                raise BadHeader("bad_header", "WebP lossy frame has no VP8 start code")
            w, h = struct.unpack_from("<HH", data, body + 6)
            inner = (w & 0x3FFF, h & 0x3FFF)
        elif kind == b"VP8L" and inner is None:
            if length < 5 or data[body] != 0x2F:
                raise BadHeader("bad_header", "WebP lossless frame has no VP8L signature")
            bits = int.from_bytes(data[body + 1 : body + 5], "little")
            inner = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
            alpha = alpha or bool(bits >> 28 & 1)
        elif kind == b"ANMF":
            frames += 1
        pos = body + length + (length & 1)
    if canvas is None and inner is None:
        raise BadHeader("bad_header", "WebP has no image frame")
    if canvas is not None and inner is not None and frames == 0 and canvas != inner:
        raise BadHeader("bad_header", f"WebP canvas {canvas} disagrees with its frame {inner}")
    width, height = canvas if canvas is not None else inner  # type: ignore[misc]
    # VP8's arithmetic coder can spend far under a bit per macroblock: no useful density bound.
    return Header("webp", width, height, max(frames, 1), 4.0 if alpha else 3.0)


# ---------------------------------------------------------------- GIF


def read_gif(data: bytes, max_frames: int) -> Header:
    _need(data, 13, "GIF screen descriptor")
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    frames: list[tuple[int, int]] = []
    blocks, need, coded_total = 0, 0.0, 0
    while True:
        _need(data, pos + 1, "GIF block")
        intro = data[pos]
        if intro == 0x3B:
            break
        if intro == 0x21:
            pos, _ = _gif_sub_blocks(data, pos + 2)
        elif intro == 0x2C:
            if len(frames) >= max_frames:
                raise BadHeader("too_many_frames", f"GIF has more than {max_frames} frames")
            _need(data, pos + 10, "GIF image descriptor")
            left, top, w, h, fl = struct.unpack_from("<HHHHB", data, pos + 1)
            pos += 10 + (3 * 2 ** ((fl & 7) + 1) if fl & 0x80 else 0)
            _need(data, pos + 1, "GIF image data")
            pos, coded = _gif_sub_blocks(data, pos + 1)
            # LZW codes are at least 3 bits and one code gives at most 4096 pixels.
            need += _min_coded(w * h, 11_000.0)
            coded_total += coded
            frames.append((left + w, top + h))
        else:
            raise BadHeader("bad_header", f"GIF block type 0x{intro:02x} is unknown")
        blocks += 1
        if blocks > MAX_GIF_BLOCKS:
            raise BadHeader("bad_header", "GIF has too many blocks")
    if not frames:
        raise BadHeader("truncated", "GIF has no image")
    # Decoders allocate the logical screen, grown to hold every frame.
    width = max(width, *(f[0] for f in frames))
    height = max(height, *(f[1] for f in frames))
    return Header("gif", width, height, len(frames), 4.0, need, coded_total, tuple(frames))


def _gif_sub_blocks(data: bytes, pos: int) -> tuple[int, int]:
    total = 0
    while True:
        _need(data, pos + 1, "GIF data block")
        size = data[pos]
        pos += 1
        if size == 0:
            return pos, total
        _need(data, pos + size, "GIF data block")
        total += size
        pos += size
