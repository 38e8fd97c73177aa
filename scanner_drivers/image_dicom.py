"""DICOM/DICOS for the image gate: the header read by pydicom without its pixel data, then the pixels.

Only `scanner_drivers.image_gate` uses this module; it raises `BadHeader` and lets the gate turn every
pydicom error into the gate's one refusal.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt

from scanner_drivers.image_headers import BadHeader, Header

# Compressed transfer syntaxes (JPEG, JPEG-LS, RLE ...) get the loosest density bound of the gate.
LOOSEST_RATIO = 4096.0


def read_dicom_header(data: bytes) -> Header:
    """Rows, Columns, frames and depth from the data set, stopping before the pixel data is read."""
    import pydicom
    from pydicom.uid import UncompressedTransferSyntaxes

    if data[128:132] != b"DICM":
        raise BadHeader("bad_header", "DICOM file has no 'DICM' prefix after its 128-byte preamble")
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    frames = _int(ds, "NumberOfFrames", 1)
    samples = _int(ds, "SamplesPerPixel", 1)
    bits = _int(ds, "BitsAllocated", 16)
    if frames < 1 or not 1 <= samples <= 4 or bits not in (1, 8, 16, 32, 64):
        raise BadHeader("bad_header", f"DICOM declares {frames} frames of {samples} samples at {bits} bits")
    raw = rows * cols * frames * samples * bits / 8
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    ratio = 1.0 if syntax in UncompressedTransferSyntaxes else LOOSEST_RATIO
    # The pixel data element follows the header: the rest of the file is all it can hold.
    need = max(0.0, (raw - 4096) / ratio)
    return Header("dicom", cols, rows, frames, samples * max(bits, 8) / 8, need, len(data))


def _int(ds: object, name: str, default: int | None = None) -> int:
    value = getattr(ds, name, default)
    if value is None:
        raise BadHeader("bad_header", f"DICOM has no {name}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadHeader("bad_header", f"DICOM {name} is not a number ({value!r})") from None


def decode_dicom(data: bytes, rows: int, cols: int, frames: int) -> npt.NDArray[np.generic]:
    """The pixel array, after the gate checked the header; its shape must be what the header declared."""
    import pydicom

    arr = np.asarray(pydicom.dcmread(io.BytesIO(data)).pixel_array)
    lead = (frames, rows, cols) if frames > 1 else (rows, cols)
    if tuple(arr.shape[: len(lead)]) != lead or arr.ndim > len(lead) + 1:
        raise BadHeader("size_mismatch", f"DICOM pixels have shape {arr.shape}, header declares {lead}")
    return arr
