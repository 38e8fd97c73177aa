"""Whether an image shows barcode-like structure: straight edges on one grid, packed close together.

Every symbology the ladder reads is drawn on a grid: a linear or stacked code is parallel bars, a
matrix code is square modules, so the edges of a code all run along two perpendicular directions
(one for bars). The measure here is the density of such edges: in a window a few modules wide, the
gradient energy whose direction agrees modulo 90 degrees (a vector average of each gradient's angle
times four, weighted by its energy), divided by four times the grey-level variance around the
window. For sharp bars of module width w this is about 1/w whatever their contrast: 1 for one-pixel
modules, 0.1 for ten-pixel ones; blur lowers it (bars of 6 pixels blurred by 3 score about 0.075). Noise,
carpet and photographed texture have edges in every direction, so their 4-fold agreement stays low;
a blank page or a smooth shade has no edges at all.
"""

from __future__ import annotations

import cv2
import numpy as np

from scanner_drivers.barcodes.engines import GreyImage

# Edges per pixel below which no region looks like a code: a sharp code with modules of up to 20
# pixels scores above it, and so does one of 6-pixel modules blurred by half a module.
MIN_EDGE_DENSITY = 0.05

# The window is a few modules wide for the module sizes the ladder reads (1 to 8 pixels); the variance
# is taken over three times that, so that a window holding one lone edge is weighed against the
# contrast around it, not just against itself.
_WINDOW = 25
_CONTEXT = 75
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


def edge_density(grey: GreyImage) -> float:
    """The highest density of grid-aligned edges over the image's windows, at full size and shrunk
    for large modules (see the module's doc); infinite for an image too small to measure."""
    height, width = grey.shape[:2]
    if min(height, width) < _CONTEXT:
        return float("inf")
    if height * width > _MAX_PIXELS:
        factor = (_MAX_PIXELS / (height * width)) ** 0.5
        grey = np.asarray(cv2.resize(grey, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA))
    density = _density(grey)
    if min(grey.shape[:2]) >= _WINDOW * _COARSE:
        coarse = cv2.resize(grey, None, fx=1 / _COARSE, fy=1 / _COARSE, interpolation=cv2.INTER_AREA)
        density = max(density, _density(np.asarray(coarse)))
    return density


def _density(grey: GreyImage) -> float:
    image = grey.astype(np.float32)
    gx = cv2.filter2D(image, cv2.CV_32F, _DX)
    gy = cv2.filter2D(image, cv2.CV_32F, _DY)
    # With g = gx + i*gy: g^2 = (gx^2 - gy^2) + i*2*gx*gy, and g^4 / |g|^2 keeps the energy |g|^2 with the
    # angle four times over, so directions 90 degrees apart add up instead of cancelling.
    energy = gx * gx + gy * gy + 1e-3
    re2 = gx * gx - gy * gy
    im2 = 2.0 * gx * gy
    re4 = (re2 * re2 - im2 * im2) / energy
    im4 = 2.0 * re2 * im2 / energy
    window = (_WINDOW, _WINDOW)
    agreeing = cv2.magnitude(cv2.boxFilter(re4, -1, window), cv2.boxFilter(im4, -1, window))
    total = cv2.boxFilter(energy, -1, window)
    context = (_CONTEXT, _CONTEXT)
    mean = cv2.boxFilter(image, -1, context)
    variance = cv2.boxFilter(image * image, -1, context) - mean * mean
    density = agreeing / (4.0 * np.maximum(variance, _FLAT_SD * _FLAT_SD))
    density[agreeing < _AGREEMENT * total] = 0.0
    return float(density.max())


def looks_featureless(grey: GreyImage) -> bool:
    """True when no region of the image has the edges of a code (edge_density under MIN_EDGE_DENSITY);
    an image smaller than the measuring windows is never called featureless (it is cheap to read)."""
    return edge_density(grey) < MIN_EDGE_DENSITY
