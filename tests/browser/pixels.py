"""Pixel helpers for map screenshots (Pillow + numpy)."""

from __future__ import annotations

from io import BytesIO

import numpy as np
from PIL import Image

#: the map's background (#eef1f4) where nothing is drawn
BACKGROUND = np.array([238, 241, 244])


def rgb(png: bytes) -> np.ndarray:
    """Decode a PNG screenshot into an (h, w, 3) int array."""
    return np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int)


def is_background(pixels: np.ndarray, tolerance: int = 6) -> np.ndarray:
    """Mask of pixels equal to the background colour (within ``tolerance`` per channel)."""
    return (np.abs(pixels - BACKGROUND) <= tolerance).all(axis=-1)


def dark_share(pixels: np.ndarray, limit: int = 80) -> float:
    """Share of near-black pixels (the district boundary is drawn in rgb(40, 40, 40))."""
    return float((pixels < limit).all(axis=-1).mean())


def changed_share(a: np.ndarray, b: np.ndarray, threshold: int = 30) -> float:
    """Share of pixels whose colour differs by more than ``threshold`` in some channel."""
    return float((np.abs(a - b) > threshold).any(axis=-1).mean())


def patch(pixels: np.ndarray, x: float, y: float, r: int = 2) -> np.ndarray:
    """The (2r+1)² pixels around (x, y)."""
    xi, yi = int(round(x)), int(round(y))
    return pixels[max(yi - r, 0):yi + r + 1, max(xi - r, 0):xi + r + 1].reshape(-1, 3)
