"""The bytes an unpickler reads: a bounded source that checks every claim before it allocates.

A pickle's length fields (BINBYTES8, LONG4, FRAME, ...) are claims by the
file. The source refuses a claim larger than what can still follow (the rest
of a plain file, or what may still be decompressed from a zip or gzip
member) before anything of that size is allocated, and reads a compressed
stream in chunks, so a claim is paid for only by bytes that really arrive.
"""

import io

__all__ = ["Refusal", "Source", "UnsafePickleError", "brief"]

_CHUNK = 16 << 20  # bytes read at once from a decompressing stream


class Refusal(ValueError):
    """A bound on untrusted input was reached; the message says which, in one line."""


class UnsafePickleError(Refusal):
    """A pickle names a global outside the allow-list, or uses one as real files never do."""

    __module__ = "alexnet_keras.safe_pickle"


def brief(value, limit=80, _inner=False):
    """A short repr of an untrusted value, never the repr of something large.

    `f"{x!r:.60}"` builds the whole repr before cutting it: for a 200 MB string
    or a 100-deep list that costs memory and time, and a huge int cannot be
    printed at all. A tuple or list of a few items shows them, one level deep.

    >>> brief("a" * 10**6, 8), brief(2**100), brief((3, [[1]], None)), brief(list(range(99)))
    ("'aaaaaaaa'...", '<a 101-bit int>', '(3, <a list of 1 items>, None)', '<a list of 99 items>')
    """
    if isinstance(value, (str, bytes)):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    if isinstance(value, int) and value.bit_length() > 64:
        text = f"<a {value.bit_length()}-bit int>"
    elif value is None or isinstance(value, (int, float, complex)):
        text = repr(value)
    elif isinstance(value, (list, tuple)) and len(value) <= 8 and not _inner:
        items = ", ".join(brief(v, 20, True) for v in value)
        text = (
            f"({items}{',' if len(value) == 1 else ''})" if type(value) is tuple else f"[{items}]"
        )
    elif isinstance(value, (list, tuple, dict, set, frozenset)):
        text = f"<a {type(value).__name__} of {len(value)} items>"
    else:
        text = getattr(value, "label", None) or f"<a {type(value).__name__}>"
    return text if len(text) <= limit + 3 else text[:limit] + "..."


class Source:
    """At most `size` bytes of `file`, read through `read`/`readline` as `pickle._Unframer` does.

    Args:
        file: a binary file object positioned at the pickle.
        size: the bytes that may be read: the rest of a plain file, or the
            decompression limit of a stream.
        exact: True when `size` is what the file holds (a plain file), so a
            claim past it is a truncated file and one read can serve it;
            False for a stream, read in chunks up to the limit.
    """

    def __init__(self, file, size, *, exact):
        self._file, self._read, self._size, self.exact = file, file.read, size, exact
        self._one_read = size if exact else _CHUNK  # larger reads go through _slow_read
        self.consumed = 0
        self.line_room = None  # set by the unpickler: the bytes it can still afford

    @property
    def left(self):
        return self._size - self.consumed

    def read(self, n):
        if n > self._one_read or n > self._size - self.consumed or n < 0:
            return self._slow_read(n)
        data = self._read(n)
        if len(data) != n:
            raise EOFError
        self.consumed += n
        return data

    def _slow_read(self, n):
        left = self.left
        if n < 0:
            raise Refusal("a read without a length")
        if n == 1 and left == 0:
            return b""  # the unpickler's end of data: EOFError there
        if n > left:
            room = "the file has" if self.exact else "at most this many more may be decompressed:"
            raise Refusal(
                f"a length at byte {self.consumed:,} claims {n:,} bytes, but {room} {left:,}; "
                "truncated or corrupt pickle"
            )
        if not self.exact and self.line_room is not None and n > self.line_room():
            raise Refusal(
                f"a length at byte {self.consumed:,} claims {n:,} bytes, more than may still "
                f"be allocated ({self.line_room():,}); refused before decompressing it"
            )
        data = self._chunked(n)
        if len(data) != n:
            raise EOFError
        self.consumed += n
        return data

    def _chunked(self, n):
        # io.BytesIO.getvalue hands over its buffer, so n bytes cost n, not 2n.
        out = io.BytesIO()
        while out.tell() < n:
            chunk = self._file.read(min(_CHUNK, n - out.tell()))
            if not chunk:
                break
            out.write(chunk)
        return out.getvalue()

    def readline(self):
        room = self.left if self.line_room is None else min(self.left, self.line_room())
        line = self._file.readline(room + 1)
        if line and not line.endswith(b"\n"):
            if len(line) > room:
                raise Refusal(
                    f"a text line at byte {self.consumed:,} is longer than {room:,} bytes"
                )
            raise EOFError
        self.consumed += len(line)
        return line
