"""Whether an image shows barcode-like structure: straight edges on one grid, packed close together.

Every symbology the ladder reads is drawn on a grid: a linear or stacked code is parallel bars, a
matrix code is square modules, so the edges of a code all run along two perpendicular directions
(one for bars). The measure here is the density of such edges: in a window a few modules wide, the
gradient energy whose direction agrees modulo 90 degrees (a vector average of each gradient's angle
times four, weighted by its energy), divided by four times the grey-level variance around the
window. For sharp bars of module width w this is about 1/w whatever their contrast: 1 for one-pixel
modules, 0.1 for ten-pixel ones, and a lone edge scores 1/25 (one edge in a 25-pixel window); a copy
shrunk three times is measured too, so large or blurred modules score as small sharp ones (bars of 6
pixels blurred by a whole module still score about 0.12, by two modules 0.02). Noise, carpet and
photographed texture have edges in every direction, so their 4-fold agreement stays low; a blank page
or a smooth shade has no edges at all.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from scanner_drivers.barcodes.engines import GreyImage

# Edges per pixel below which no region looks like a code: more than the lone edge's 1/25 (the edge
# of a box or a shadow), less than any code with modules of up to about 30 pixels.
MIN_EDGE_DENSITY = 0.05

# The window is a few modules wide for the module sizes the ladder reads (1 to 8 pixels); the variance
# is taken over three times that, so that a window holding one lone edge is weighed against the
# contrast around it, not just against itself.
_WINDOW = 25
_CONTEXT = 75
_CELL = 5
# Share of a window's gradient energy that must agree in direction (modulo 90 degrees): about 1 for
# bars and module grids, under 0.3 for noise.
_AGREEMENT = 0.5
# Grey-level standard deviation under which an area counts as flat whatever its edges (sensor noise).
_FLAT_SD = 8.0
# Larger images are measured at this size (area-averaged), which bounds the test's cost.
_MAX_PIXELS = 1_000_000
# The windows suit modules of about 1 to 8 pixels; a copy shrunk this many times over (area-averaged,
# a ninth of the work) covers modules up to about 25 pixels.
_COARSE = 3

# Differences across a 2x2 cell, both taken at its centre: unlike Sobel's central differences they see
# one-pixel modules, and unlike plain forward differences the two agree on where they measure, so a
# turned edge keeps its direction.
_DX = np.array([[-0.5, 0.5], [-0.5, 0.5]], dtype=np.float32)
_DY = np.ascontiguousarray(_DX.T)


def edge_density(grey: GreyImage, *, enough: float = float("inf")) -> float:
    """The highest density of grid-aligned edges over the image's windows, at full size and shrunk
    for large modules (see the module's doc); infinite for an image too small to measure. The shrunk
    copy (a ninth of the work) is measured first, and the full size is skipped when that already
    reaches enough."""
    height, width = grey.shape[:2]
    if min(height, width) < _CONTEXT:
        return float("inf")
    if height * width > _MAX_PIXELS:
        factor = (_MAX_PIXELS / (height * width)) ** 0.5
        grey = np.asarray(cv2.resize(grey, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA))
        height, width = grey.shape[:2]
    density = 0.0
    if min(height, width) >= _WINDOW * _COARSE:
        size = (width // _COARSE, height // _COARSE)
        density = _density(np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA)))
        if density >= enough:
            return density
    return max(density, _density(grey))


def _density(grey: GreyImage) -> float:
    image = grey.astype(np.float32)
    gx = cv2.filter2D(image, cv2.CV_32F, _DX)
    gy = cv2.filter2D(image, cv2.CV_32F, _DY)
    # With g = gx + i*gy: g^2 = (gx^2 - gy^2) + i*2*gx*gy, and g^4 / |g|^2 keeps the energy |g|^2 with the
    # angle four times over, so directions 90 degrees apart add up instead of cancelling.
    gx2, gy2 = gx * gx, gy * gy
    im2 = cv2.multiply(gx, gy, scale=2.0)
    energy = gx2 + gy2 + 1e-3
    re2 = gx2 - gy2
    re4 = cv2.divide(cv2.multiply(re2 - im2, re2 + im2), energy)
    im4 = cv2.divide(cv2.multiply(re2, im2, scale=2.0), energy)
    # Windows are summed on a grid of cells (area averages, one pass each): the largest window found
    # is all the test needs, and windows a cell apart differ little.
    rows, cols = image.shape[0] // _CELL * _CELL, image.shape[1] // _CELL * _CELL
    size = (cols // _CELL, rows // _CELL)

    def cells(values: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        return np.asarray(cv2.resize(values[:rows, :cols], size, interpolation=cv2.INTER_AREA))

    window = (_WINDOW // _CELL, _WINDOW // _CELL)
    agreeing = cv2.magnitude(cv2.boxFilter(cells(re4), -1, window), cv2.boxFilter(cells(im4), -1, window))
    total = cv2.boxFilter(cells(energy), -1, window)
    context = (_CONTEXT // _CELL, _CONTEXT // _CELL)
    mean = cv2.boxFilter(cells(image), -1, context)
    variance = cv2.boxFilter(cells(image * image), -1, context) - mean * mean
    density = agreeing / (4.0 * np.maximum(variance, _FLAT_SD * _FLAT_SD))
    density[agreeing < _AGREEMENT * total] = 0.0
    return float(density.max())


def looks_featureless(grey: GreyImage) -> bool:
    """True when no region of the image has the edges of a code (edge_density under MIN_EDGE_DENSITY);
    an image smaller than the measuring windows is never called featureless (it is cheap to read)."""
    return edge_density(grey, enough=MIN_EDGE_DENSITY) < MIN_EDGE_DENSITY
