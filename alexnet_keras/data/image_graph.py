"""Image headers and size bounds in TensorFlow ops: the in-graph twin of `image_header`.

`header_size` is `image_header.image_size` in TensorFlow ops (bounded
`tf.while_loop`s, nothing decodes pixels), `size_problem` its size bounds, and
`image_problem` the whole check of one encoded image before it is decoded:
byte length, JPEG end marker, header and the size it claims. The serving
graph (`serving.graph`) and the dataset decoder (`data.split.decode_image`)
both use it, so a request and a dataset record meet the same bounds
(`alexnet_keras.limits`) with the same messages.
"""

import tensorflow as tf

from alexnet_keras import image_header as header
from alexnet_keras.data.image_folder import TAIL_BYTES
from alexnet_keras.image_header import JPEG_ERRORS, JPEG_WINDOW, RESIZE
from alexnet_keras.limits import (
    MAX_GIF_PIXELS,
    MAX_HEADER_STEPS,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_IMAGE_SIDE,
    MAX_RESIZED_PIXELS,
    MIN_IMAGE_SIDE,
)

__all__ = ["check", "check_size", "header_size", "image_problem", "size_problem"]

# The end-of-image marker is looked for in this many final bytes, as folders do.
_JPEG_TAIL_BYTES = TAIL_BYTES
# The formats in `tf.io.decode_image`'s order; the branch index of `header_size`.
_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WebP")
_SOF = sorted(set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC})
_I64 = tf.int64


def check(condition, message):
    """An in-graph check that fails the request with InvalidArgumentError `message`."""
    return tf.debugging.Assert(condition, [message], summarize=1)


def _i64(x):
    return tf.cast(x, _I64)


def _str(x):
    return tf.strings.as_string(x)


def size_problem(width, height):
    """`image_header.size_problem` in TensorFlow ops: a message, or "" if the size is fine."""
    width, height = tf.cast(width, _I64), tf.cast(height, _I64)
    short, long = tf.minimum(width, height), tf.maximum(width, height)
    # resize_shorter's arithmetic (float64, round half to even), as resized_pixels.
    scale = RESIZE / tf.cast(tf.maximum(short, 1), tf.float64)
    new = [tf.maximum(_I64.as_numpy_dtype(RESIZE), tf.cast(tf.round(tf.cast(side, tf.float64)
           * scale), _I64)) for side in (width, height)]  # fmt: skip
    resized = new[0] * new[1]
    size = tf.strings.join(["the image is ", _str(width), "x", _str(height), " pixels"])
    problems = [
        (short < MIN_IMAGE_SIDE, f"; at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} is needed"),
        (long > MAX_IMAGE_SIDE, f"; each side may be at most {MAX_IMAGE_SIDE}"),
        (width * height > MAX_IMAGE_PIXELS, tf.strings.join(
            [" (", _str(width * height), f"); at most {MAX_IMAGE_PIXELS} are accepted"])),
        (resized > MAX_RESIZED_PIXELS,
         tf.strings.join([f"; its shorter side resized to {RESIZE} makes ", _str(resized),
                          f" pixels, at most {MAX_RESIZED_PIXELS} are accepted (an aspect ratio "
                          f"up to {MAX_RESIZED_PIXELS // RESIZE // RESIZE}:1)"])),
    ]  # fmt: skip
    out = tf.constant("")
    for condition, text in reversed(problems):  # the first that applies wins
        out = tf.where(condition, tf.strings.join([size, text]), out)
    return out


def _bytes_at(data, n, pos, count):
    """`count` bytes of `data` from `pos` as int64, zeros past its end (`n` bytes)."""
    pos = tf.clip_by_value(_i64(pos), 0, n)
    raw = tf.io.decode_raw(tf.strings.substr(data, pos, _i64(count)), tf.uint8)
    return tf.cast(tf.pad(raw, [[0, count - tf.size(raw, out_type=_I64)]]), _I64)


def _head(data, count):
    """The first `count` bytes of `data`, padded with zeros (never past its end)."""
    return tf.strings.substr(tf.strings.join([tf.strings.substr(data, 0, count), b"\0" * count]),
                             0, count)  # fmt: skip


def _le(b, start, size):
    return sum(b[start + i] * (1 << (8 * i)) for i in range(size))


def _be(b, start, size):
    return sum(b[start + i] * (1 << (8 * (size - 1 - i))) for i in range(size))


def _jpeg_step(data, n, pos, steps):
    """One step of `image_header._jpeg`: `(pos, status, width, height)`."""
    b = _bytes_at(data, n, pos, 9)
    marker = b[1]

    def stray():  # the next 0xFF in a window, or the window's end
        window = _bytes_at(data, n, pos, JPEG_WINDOW)
        hit = tf.equal(window, 0xFF) & (tf.range(JPEG_WINDOW, dtype=_I64) < n - pos)
        found = tf.reduce_any(hit)
        short = ~found & (n < pos + JPEG_WINDOW)
        return pos + tf.where(found, tf.argmax(tf.cast(hit, tf.int32), output_type=_I64),
                              _i64(JPEG_WINDOW)), tf.where(short, _i64(2), _i64(0))  # fmt: skip

    is_sof = tf.reduce_any(tf.equal(marker, tf.constant(_SOF, _I64)))
    standalone = tf.equal(marker, 0x01) | ((marker >= 0xD0) & (marker <= 0xD7))
    length = _be(b, 2, 2)
    cases = [  # (condition, next pos, status), the first that holds applies
        (steps > MAX_HEADER_STEPS, pos, 6),
        (n < pos + 2, pos, 2),
        (tf.equal(marker, 0xFF), pos + 1, 0),
        (tf.equal(marker, 0x00), pos + 2, 0),
        (is_sof & (n < pos + 9), pos, 2),
        (is_sof, pos, 1),
        (tf.equal(marker, 0xDA) | tf.equal(marker, 0xD9), pos, 3),
        (tf.equal(marker, 0xD8), pos, 4),
        (standalone, pos + 2, 0),
        (n < pos + 4, pos, 2),
        (length < 2, pos, 5),
    ]
    new_pos, status = pos + 2 + length, tf.constant(0, _I64)
    for condition, p, s in reversed(cases):
        new_pos, status = (
            tf.where(condition, _i64(p), new_pos),
            tf.where(condition, _i64(s), status),
        )
    skip_pos, skip_status = tf.cond(
        (b[0] != 0xFF) & (steps <= MAX_HEADER_STEPS) & (n >= pos + 2),
        stray,
        lambda: (new_pos, status),
    )
    return skip_pos, tf.cast(skip_status, _I64), _be(b, 7, 2), _be(b, 5, 2)


def _jpeg_size(data, n):
    def body(pos, steps, status, width, height):
        pos, status, w, h = _jpeg_step(data, n, pos, steps + 1)
        return pos, steps + 1, status, w, h

    zero = tf.constant(0, _I64)
    _, _, status, width, height = tf.while_loop(
        lambda pos, steps, status, w, h: tf.equal(status, 0), body,
        (tf.constant(2, _I64), zero, zero, zero, zero), maximum_iterations=MAX_HEADER_STEPS + 1,
    )  # fmt: skip
    return width, height, tf.gather(tf.constant(JPEG_ERRORS), status)


def _table(flags):
    """Bytes of the colour table a GIF screen or image descriptor's flags announce."""
    return (flags // 0x80) * 3 * tf.bitwise.left_shift(_i64(2), flags % 8)


def _gif_size(data, n):
    """`image_header._gif`: the largest frame over every image descriptor, and the total."""
    b = _bytes_at(data, n, 0, 13)
    start = 13 + _table(b[10])

    def body(pos, in_blocks, frames, width, height, total, steps, done):
        b = _bytes_at(data, n, pos, 10)
        w, h = _le(b, 5, 2), _le(b, 7, 2)
        descriptor = ~in_blocks & tf.equal(b[0], 0x2C) & (n >= pos + 10)
        extension = ~in_blocks & tf.equal(b[0], 0x21)
        table = _table(b[9])
        new_pos = tf.where(
            in_blocks, pos + 1 + b[0], tf.where(extension, pos + 2, pos + 11 + table)
        )
        one = tf.cast(descriptor, _I64)
        return (new_pos, (in_blocks & (b[0] != 0)) | extension | descriptor, frames + one,
                tf.where(descriptor, tf.maximum(width, w), width),
                tf.where(descriptor, tf.maximum(height, h), height), total + one * w * h,
                steps + 1, ~(in_blocks | extension | descriptor))  # fmt: skip

    zero = tf.constant(0, _I64)
    _, _, frames, width, height, total, steps, _ = tf.while_loop(
        lambda pos, blocks, frames, w, h, total, steps, done: (pos < n) & ~done
        & (steps <= MAX_HEADER_STEPS),
        body, (start, tf.constant(False), zero, zero, zero, zero, zero, tf.constant(False)),
    )  # fmt: skip
    problem = tf.where(
        steps > MAX_HEADER_STEPS, f"a GIF with more than {MAX_HEADER_STEPS} blocks",
        tf.where(tf.equal(frames, 0), "a GIF without an image descriptor (no frame to decode)",
                 tf.where(total > MAX_GIF_PIXELS, tf.strings.join([
                     "a GIF of ", _str(frames), " frames holding ", _str(total), " pixels in all; "
                     f"the decoder keeps every frame, so at most {MAX_GIF_PIXELS} are accepted"]),
                          "")))  # fmt: skip
    truncated = "a truncated GIF header: the file ends before the image size"
    return width, height, tf.where(n < 13, truncated, problem)


def _fixed_size(data, n):
    """PNG, BMP and WebP: the size at fixed offsets of the first 32 bytes (`image_header`)."""
    b = _bytes_at(data, n, 0, 32)
    head = _head(data, 32)
    is_png = tf.strings.substr(head, 0, 8) == header.SIGNATURES["PNG"]
    is_bmp = ~is_png & (tf.strings.substr(head, 0, 2) == header.SIGNATURES["BMP"])
    core = tf.equal(_le(b, 14, 4), 12)
    bmp_w = tf.where(core, _le(b, 18, 2), _le(b, 18, 4) - (b[21] // 0x80) * (1 << 32))
    bmp_h = tf.where(core, _le(b, 20, 2), _le(b, 22, 4) - (b[25] // 0x80) * (1 << 32))
    chunk = tf.strings.substr(head, 12, 4)
    vp8l = _le(b, 21, 4)
    formats = [  # (is it, width, height, bytes needed, problem)
        (is_png, _be(b, 16, 4), _be(b, 20, 4), 24,
         tf.where(chunk == "IHDR", "", "a PNG whose first chunk is not IHDR")),
        (is_bmp, bmp_w, tf.abs(bmp_h), tf.where(core, _i64(22), _i64(26)),
         tf.where(bmp_w < 0, "a BMP with a negative width", "")),
        (chunk == "VP8 ", _le(b, 26, 2) % (1 << 14), _le(b, 28, 2) % (1 << 14), 30,
         tf.where(tf.strings.substr(head, 23, 3) == b"\x9d\x01\x2a", "",
                  "a WebP whose VP8 chunk has no key-frame start code")),
        (chunk == "VP8L", vp8l % (1 << 14) + 1, (vp8l // (1 << 14)) % (1 << 14) + 1, 25,
         tf.where(tf.equal(b[20], 0x2F), "", "a WebP whose VP8L chunk has no signature byte 0x2F")),
        (chunk == "VP8X", _le(b, 24, 3) + 1, _le(b, 27, 3) + 1, 30, ""),
    ]  # fmt: skip
    name = tf.where(is_png, "PNG", tf.where(is_bmp, "BMP", "WebP"))
    width = height = tf.constant(0, _I64)
    needed = tf.constant(20, _I64)  # a WebP's chunk name
    problem = tf.constant("a WebP whose first chunk is not VP8, VP8L or VP8X")
    for is_it, w, h, need, why in reversed(formats):
        width, height = tf.where(is_it, w, width), tf.where(is_it, h, height)
        needed, problem = (
            tf.where(is_it, tf.cast(need, _I64), needed),
            tf.where(is_it, why, problem),
        )
    truncated = tf.strings.join(
        ["a truncated ", name, " header: the file ends before the image size"]
    )
    bmp_short = is_bmp & (n < 18)  # the header size is read first
    return width, height, tf.where((n < needed) | bmp_short, truncated, problem)


def header_size(data):
    """`image_header.image_size` in TensorFlow ops: `(width, height, problem)`.

    `problem` is "" or the message `image_header` raises for the same bytes
    (tested on one table of fixtures). The JPEG and GIF walks are bounded
    `tf.while_loop`s; nothing here decodes pixels.
    """
    n = tf.cast(tf.strings.length(data), _I64)
    head = _head(data, 12)
    is_webp = (tf.strings.substr(head, 0, 4) == "RIFF") & (tf.strings.substr(head, 8, 4) == "WEBP")
    known = [tf.strings.substr(head, 0, len(header.SIGNATURES[f])) == header.SIGNATURES[f]
             for f in _FORMATS[:4]] + [is_webp & (n > 12)]  # fmt: skip
    index = tf.constant(len(_FORMATS), tf.int32)
    for i in reversed(range(len(_FORMATS))):
        index = tf.where(known[i], tf.constant(i, tf.int32), index)
    unknown = lambda: (tf.constant(0, _I64), tf.constant(0, _I64),  # noqa: E731
                       tf.constant("not a JPEG, PNG, GIF, BMP or WebP image"))  # fmt: skip
    fixed = lambda: _fixed_size(data, n)  # noqa: E731
    return tf.switch_case(index, [lambda: _jpeg_size(data, n), fixed,
                                  lambda: _gif_size(data, n), fixed, fixed, unknown])  # fmt: skip


def image_problem(data):
    """What is wrong with encoded image bytes, in TensorFlow ops: a message, or "".

    The checks `serving.graph` and `data.split.decode_image` make before
    decoding, in this order: the byte length (`MAX_IMAGE_BYTES`), a JPEG's
    end-of-image marker in its last bytes, the header (`header_size`) and
    the size it claims (`size_problem`). Nothing here allocates for pixels,
    whatever the bytes claim.

    Args:
        data: a scalar string tensor, the encoded image.

    Returns:
        A scalar string tensor: "" if the image may be decoded.

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.data.image_graph import image_problem
    >>> image_problem(tf.io.encode_png(tf.zeros((40, 50, 3), tf.uint8))).numpy()
    b''
    >>> print(image_problem(tf.io.encode_png(tf.zeros((16, 5000, 3), tf.uint8))).numpy().decode())
    the image is 5000x16 pixels; its shorter side resized to 256 makes 20480000 pixels, ...
    """
    length = tf.cast(tf.strings.length(data), _I64)
    is_jpeg = tf.strings.substr(_head(data, 3), 0, 3) == header.SIGNATURES["JPEG"]
    tail = _bytes_at(data, length, length - _JPEG_TAIL_BYTES, _JPEG_TAIL_BYTES)
    has_end = tf.reduce_any(tf.equal(tail[:-1], 0xFF) & tf.equal(tail[1:], 0xD9))
    width, height, problem = header_size(data)
    problem = tf.where(tf.equal(problem, ""), size_problem(width, height), problem)
    problems = [  # the first that applies wins
        (tf.equal(length, 0), "empty string, not an image"),
        (length > MAX_IMAGE_BYTES,
         tf.strings.join([_str(length), f" bytes; at most {MAX_IMAGE_BYTES} are accepted"])),
        (is_jpeg & ~has_end, "truncated JPEG (no end-of-image marker FFD9)"),
    ]  # fmt: skip
    for condition, text in reversed(problems):
        problem = tf.where(condition, text, problem)
    return problem


def check_size(shape, what):
    """`size_problem` of a decoded `(H, W, ...)` shape, as a check naming `what`."""
    problem = size_problem(shape[1], shape[0])
    return check(tf.equal(problem, ""), tf.strings.join([what, problem]))
