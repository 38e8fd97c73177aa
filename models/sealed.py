"""Arrays in an .npz file sealed by a sha256 over their contents: written atomically, checked on read."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.manifest import ModelLoadError

Arrays = dict[str, npt.NDArray[Any]]


def digest_arrays(arrays: Arrays) -> str:
    """sha256 over every array's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        digest.update(key.encode())
        digest.update(str(value.dtype).encode() + str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def write_sealed(path: Path, arrays: Arrays) -> str:
    """Write atomically (temp file + rename) so a crash mid-write never leaves half a file."""
    digest = digest_arrays(arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        np.savez(fh, sha256=np.asarray(digest), **arrays)  # type: ignore[arg-type]
    tmp.replace(path)
    return digest


def read_sealed(path: Path, what: str) -> tuple[Arrays, str]:
    """The arrays and their digest; a missing, unreadable or altered file is a ModelLoadError."""
    if not path.is_file():
        raise ModelLoadError(f"{what} file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"{what} file {path} is not a readable {what}: {exc}") from exc
    stored = str(arrays.pop("sha256", ""))
    if not stored or digest_arrays(arrays) != stored:
        raise ModelLoadError(f"{what} file {path} fails its sha256 check: it was changed or damaged")
    return arrays, stored
