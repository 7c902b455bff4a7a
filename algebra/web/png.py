"""PNG pictures for the page: images, and heat maps in a colour map with transparency.

The encoder writes a plain 8-bit RGB or RGBA PNG with :mod:`zlib` (a thumbnail or a map
takes well under a millisecond, far less than drawing a matplotlib figure). Colour maps
are interpolated from a few anchor colours: a diverging one, blue through white to red,
centred on zero for signed maps, and a sequential one, dark blue through green to yellow,
for maps of one sign.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

# Anchor colours (RGB, 0-255), evenly spaced along [0, 1].
DIVERGING = np.array(
    [[33, 102, 172], [103, 169, 207], [247, 247, 247], [239, 138, 98], [178, 24, 43]], float
)
SEQUENTIAL = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float
)


def encode_png(pixels: np.ndarray) -> bytes:
    """Encode an ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA) array of ``uint8`` as PNG.

    Parameters
    ----------
    pixels : numpy.ndarray
        ``uint8`` values, rows first.

    Returns
    -------
    bytes
        The PNG file.

    Examples
    --------
    >>> data = encode_png(np.zeros((2, 3, 3), np.uint8))
    >>> data[:8] == b"\\x89PNG\\r\\n\\x1a\\n", struct.unpack(">II", data[16:24])
    (True, (3, 2))
    >>> encode_png(np.zeros((2, 3), np.uint8))
    Traceback (most recent call last):
    ValueError: pixels: expected uint8 [H, W, 3] or [H, W, 4]; got uint8 (2, 3)
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ValueError(
            f"pixels: expected uint8 [H, W, 3] or [H, W, 4]; got {pixels.dtype} {pixels.shape}"
        )
    height, width, depth = pixels.shape
    rows = np.ascontiguousarray(pixels).reshape(height, width * depth)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()
    colour = 2 if depth == 3 else 6
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"".join(
        [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header), _chunk(b"IDAT", zlib.compress(raw, 6)),
         _chunk(b"IEND", b"")]
    )  # fmt: skip


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def image_pixels(image: np.ndarray) -> np.ndarray:
    """An image ``[C, H, W]`` (1 or 3 channels) or ``[H, W]`` as ``uint8 [H, W, 3]``, scaled
    from its own minimum and maximum to the full range.

    Examples
    --------
    >>> image_pixels(np.array([[[0.0, 0.5], [1.0, 1.0]]])).shape
    (2, 2, 3)
    >>> image_pixels(np.array([[0.0, 2.0]]))[0, :, 0].tolist()
    [0, 255]
    """
    values = np.asarray(image, dtype=np.float64)
    if values.ndim == 3:
        values = values[0] if values.shape[0] == 1 else values[:3]
        if values.ndim == 3:
            values = values.transpose(1, 2, 0)
    if values.ndim != 2 and not (values.ndim == 3 and values.shape[2] == 3):
        raise ValueError(
            f"image: expected [C, H, W] with 1 or 3 channels, or [H, W]; got {values.shape}"
        )
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    pixels = np.rint(scaled * 255).astype(np.uint8)
    return pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)


def image_png(image: np.ndarray) -> bytes:
    """An image as PNG (see :func:`image_pixels`).

    Examples
    --------
    >>> image_png(np.random.rand(3, 4, 4))[:4]
    b'\\x89PNG'
    """
    return encode_png(image_pixels(image))


def colour(values: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Map values in ``[0, 1]`` through the colour map of ``anchors``: ``float [..., 3]``.

    Examples
    --------
    >>> colour(np.array([0.0, 0.5, 1.0]), DIVERGING)[:, 0].tolist()
    [33.0, 247.0, 178.0]
    """
    where = np.clip(values, 0.0, 1.0) * (len(anchors) - 1)
    low = np.minimum(np.floor(where).astype(int), len(anchors) - 2)
    share = (where - low)[..., None]
    return anchors[low] * (1 - share) + anchors[low + 1] * share


def heat_pixels(values: np.ndarray, limit: float, signed: bool) -> np.ndarray:
    """A map ``[H, W]`` as ``uint8 [H, W, 4]``: coloured on ``[-limit, limit]`` (diverging)
    when ``signed``, else on ``[0, limit]`` (sequential), and more opaque the larger the
    value's magnitude (as its square root, so that small values still show), so that
    the image shows through where the map is near zero.

    Examples
    --------
    >>> px = heat_pixels(np.array([[-1.0, 0.0, 1.0]]), 1.0, signed=True)
    >>> px[0, :, 3].tolist(), bool(px[0, 0, 2] > px[0, 0, 0]), bool(px[0, 2, 0] > px[0, 2, 2])
    ([255, 0, 255], True, True)
    """
    values = np.nan_to_num(np.asarray(values, dtype=np.float64))
    limit = float(limit) if limit > 0 else 1.0
    if signed:
        position = 0.5 + values / (2 * limit)
        strength = np.abs(values) / limit
    else:
        position = values / limit
        strength = np.clip(values / limit, 0.0, 1.0)
    rgb = colour(position, DIVERGING if signed else SEQUENTIAL)
    alpha = 255 * np.sqrt(np.clip(strength, 0.0, 1.0))
    pixels = np.concatenate([rgb, alpha[..., None]], axis=-1)
    return np.rint(pixels).astype(np.uint8)


def heat_png(values: np.ndarray, limit: float, signed: bool) -> bytes:
    """A map as a PNG with transparency (see :func:`heat_pixels`).

    Examples
    --------
    >>> heat_png(np.random.randn(8, 8), 3.0, signed=True)[:4]
    b'\\x89PNG'
    """
    return encode_png(heat_pixels(values, limit, signed))


def colour_bar(signed: bool, width: int = 128) -> bytes:
    """A horizontal colour bar of the map's colours, one pixel high, as PNG.

    Examples
    --------
    >>> colour_bar(True)[:4]
    b'\\x89PNG'
    """
    steps = np.linspace(0.0, 1.0, width)
    rgb = np.rint(colour(steps, DIVERGING if signed else SEQUENTIAL)).astype(np.uint8)
    return encode_png(rgb[None])
