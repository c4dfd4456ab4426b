"""Hostile legacy pickles: each is refused in one line, in a child with a timeout and an RSS cap.

The cases are those an adversarial run found (a dtype given fields by BUILD,
`ndarray` over a buffer at a wild offset, a 200,000-deep tuple as a dict key,
a memo index of 4 G, 100 GB length claims, zip and gzip bombs) and their
neighbours. Each file is written here; `convert` must say `Error: <file>: ...`,
exit 2, and write nothing. The readers are also run directly (`python -c`),
which is cheaper. A segfault, a hang or memory past the cap fails the test.
"""

import struct
import zlib

import pytest

from tests.npy_files import npy_header_object
from tests.sandbox import assert_loaded, assert_refused, run_isolated

CONVERT_RSS_MB = 600  # `convert x.npy` refusing a file peaks at about 40 MB
READER_RSS_MB = 400
GB = 1 << 30

# -- opcodes -----------------------------------------------------------------------


def _s(text):
    data = text.encode("latin1") if isinstance(text, str) else text
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data
    return b"T" + struct.pack("<i", len(data)) + data


def _int(v):
    if -(2**31) <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    return b"\x8a\x09" + v.to_bytes(9, "little", signed=True)  # LONG1


def _tuple(*items):
    return b"(" + b"".join(items) + b"t"


def _dtype(code, order="<", flags=0, names=b"N", fields=b"N", elsize=-1, alignment=-1):
    state = _tuple(_int(3), _s(order), b"N", names, fields, _int(elsize), _int(alignment))
    state = state[:-1] + _int(flags) + b"t"
    return b"cnumpy\ndtype\n" + _tuple(_s(code), _int(0), _int(1)) + b"R" + state + b"b"


F4 = _dtype("f4")


def _array(shape, dtype, data, fortran=False, version=1):
    head = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _tuple(_int(0))
    flag = b"\x88" if fortran else b"\x89"
    state = _tuple(_int(version), _tuple(*map(_int, shape)), dtype, flag, data)
    return head + _s("b") + b"\x87R" + state + b"b"


def _layers(weights, biases=None):
    """`{"conv1": [weights, biases]}` as opcodes."""
    biases = biases or _array((2,), F4, _s(bytes(8)))
    return b"}(" + _s("conv1") + b"](" + weights + biases + b"eu"


def _npy(pickled):
    """A .npy holding a 0-d object array of the pickled object, as np.save writes it."""
    holder = _array((), _dtype("O8", "|", 63), b"](" + pickled + b"e")
    return npy_header_object() + b"\x80\x02" + holder + b"."


def _nested(depth, op=b"\x85"):
    return b"N" + op * depth


# -- bombs: a few MB that inflate past 8 GB, built from one repeated deflate block -----


def _deflate(prefix, unit, count):
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = co.compress(prefix) + co.flush(zlib.Z_FULL_FLUSH)
    # After a full flush a block refers to nothing before it, so it may be repeated.
    block = co.compress(unit) + co.flush(zlib.Z_FULL_FLUSH)
    return head + block * count + co.flush(), len(prefix) + len(unit) * count


def _zeros(total):
    return bytes(16 << 20), total // (16 << 20)


def _gzip(prefix, unit, count):
    data, _ = _deflate(prefix, unit, count)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + data + bytes(8)  # CRC never reached


def _zip(prefix, unit, count, declared=None):
    """A zip64 archive with one deflated member `data` (CRC left 0: it is never reached)."""
    data, size = _deflate(prefix, unit, count)
    size = size if declared is None else declared
    name, ff = b"data", 0xFFFFFFFF
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 45, 0, 8, 0, 0, 0, ff, ff, len(name), 20)
    local += name + struct.pack("<2H2Q", 1, 16, size, len(data))
    central = struct.pack(
        "<4s6H3I5H2I", b"PK\x01\x02", 45, 45, 0, 8, 0, 0, 0, ff, ff, len(name), 28, 0, 0, 0, 0, ff
    ) + name + struct.pack("<2H3Q", 1, 24, size, len(data), 0)  # fmt: skip
    cd_at = len(local) + len(data)
    eocd64 = struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 1, 1, len(central), cd_at)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, cd_at + len(central), 1)
    eocd = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, len(central), ff, 0)
    return local + data + central + eocd64 + locator + eocd


# -- running them ------------------------------------------------------------------------


def _convert(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    out = tmp_path / "out.weights.h5"
    outcome = run_isolated(cli=["convert", path, "-o", out], timeout=60, rss_mb=CONVERT_RSS_MB)
    line = assert_refused(outcome, path)
    assert not out.exists() and not list(tmp_path.glob("out*")), "an output file was written"
    return line


_READ = """
import sys
from {module} import {function} as read
try:
    read({path!r})
except ValueError as e:
    print("Error:", e, file=sys.stderr)
    sys.exit(2)
"""
READERS = {  # the three readers of legacy pickles
    "npy": ("alexnet_keras.caffe.npy", "read_npy"),
    "checkpoint": ("alexnet_keras.cuda_convnet.checkpoint", "read_checkpoint"),
    "batches.meta": ("alexnet_keras.cuda_convnet.batches_meta", "read_batches_meta"),
}


def _read(tmp_path, reader, data, name="hostile", timeout=60, rss_mb=READER_RSS_MB):
    path = tmp_path / name
    path.write_bytes(data)
    module, function = READERS[reader]
    code = _READ.format(module=module, function=function, path=str(path))
    return assert_refused(run_isolated(code, timeout=timeout, rss_mb=rss_mb), path)


def _pickle(reader, pickled):
    return _npy(pickled) if reader == "npy" else b"\x80\x02" + pickled + b"."


# -- memory safety: numpy's functions never see the file's arguments ------------------------

EVIL_DTYPES = {
    # The SIGSEGV: a dtype given object fields by BUILD, over raw bytes that are a pointer.
    "fields via BUILD": _dtype(
        "V8", "|", 63, names=_tuple(_s("a")),
        fields=b"}" + _s("a") + _tuple(_dtype("O8", "|", 63), _int(0)) + b"s", elsize=8,
        alignment=1,
    ),
    "f8 with object flags": _dtype("f8", "<", 63),
    "f8 with fields": _dtype("f8", names=_tuple(_s("a")), fields=b"}"),
    "object dtype over raw bytes": _dtype("O8", "|", 63),
    "string dtype": _dtype("S8", "|"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(EVIL_DTYPES))
def test_a_crafted_dtype_is_refused(case, tmp_path):
    weights = _array((1,), EVIL_DTYPES[case], _s(b"AAAAAAAA"))
    line = _convert(tmp_path, "evil.npy", _npy(_layers(weights)))
    assert "refuses" in line


@pytest.mark.parametrize("offset", [-(1 << 20), 1 << 40])
def test_ndarray_over_a_buffer_at_any_offset_is_refused(offset, tmp_path):
    call = b"cnumpy\nndarray\n" + _tuple(_tuple(_int(4)), F4, _s(bytes(16)), _int(offset)) + b"R"
    line = _convert(tmp_path, "offset.npy", _npy(_layers(call)))
    assert "refuses calling numpy.ndarray" in line


ARRAY_FORMS = {
    "data shorter than the shape": _array((4,), F4, _s(bytes(8))),
    "data longer than the shape": _array((1,), F4, _s(bytes(64))),
    "a negative dimension": _array((-1,), F4, _s(bytes(4))),
    "a huge shape": _array((1 << 30, 1 << 30), F4, _s(bytes(4))),
    "object array over a short list": _array((4,), _dtype("O8", "|", 63), b"]"),
    "state version 2": _array((1,), F4, _s(bytes(4)), version=2),
    "BUILD on an OrderedDict": b"ccollections\nOrderedDict\n)R}b",
    "BUILD twice on an array": _array((1,), F4, _s(bytes(4))) + _tuple(b"N") + b"b",
    "scalar of object dtype": b"cnumpy.core.multiarray\nscalar\n" + _tuple(
        _dtype("O8", "|", 63), _s(bytes(8))) + b"R",
    "_frombuffer of object dtype": b"cnumpy.core.numeric\n_frombuffer\n" + _tuple(
        _s(bytes(8)), _dtype("O8", "|", 63), _tuple(_int(1)), _s("C")) + b"R",
    "_frombuffer past its buffer": b"cnumpy.core.numeric\n_frombuffer\n" + _tuple(
        _s(bytes(8)), F4, _tuple(_int(1000)), _s("C")) + b"R",
    "_reconstruct with a shape": b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
    + _tuple(_int(1000)) + _s("b") + b"\x87R",
    "NEWOBJ of OrderedDict": b"ccollections\nOrderedDict\n)\x81",
    "a tuple as a dict key": b"}" + _tuple(_int(1), _int(2)) + _int(1) + b"s",
    "a huge int as a dict key": b"}\x8a\x09" + bytes(8) + b"\x01" + _int(1) + b"s",
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(ARRAY_FORMS))
def test_forms_real_files_never_write_are_refused(case, tmp_path):
    _read(tmp_path, "npy", _npy(_layers(ARRAY_FORMS[case])), "form.npy")


# -- nesting, memo, length claims ---------------------------------------------------------------

DEEP = 200_000


@pytest.mark.parametrize("reader", ["npy", "checkpoint"])
@pytest.mark.parametrize("where", ["dict key", "tuple value", "list value", "dict value"])
def test_deep_nesting_is_refused(reader, where, tmp_path):
    pickled = {
        "dict key": b"}" + _nested(DEEP) + _int(1) + b"s",
        "tuple value": b"}" + _s("conv1") + _nested(DEEP) + b"s",
        "list value": b"]" * DEEP + b"a" * (DEEP - 1),
        "dict value": _chain(DEEP),
    }[where]  # fmt: skip
    line = _read(tmp_path, reader, _pickle(reader, pickled))
    assert "deeper than 100" in line


def _chain(depth):
    # {"k": {"k": ... None}}: dicts and keys pushed, then filled from the inside out.
    return (b"}" + _s("k")) * depth + b"N" + b"s" * depth


def test_the_memo_index_bomb_is_cheap(tmp_path):
    # The memo index that made the C unpickler allocate 2 GB for its memo array.
    pickled = b"}r\xf0\xff\xff\xff0j\xf0\xff\xff\xff"  # {}, PUT, POP, GET
    line = _read(tmp_path, "npy", _npy(pickled), "memo.npy")
    assert "the dict of layers is empty" in line  # it loaded, cheaply


CLAIMS = {
    "BINBYTES8": b"\x8e" + struct.pack("<Q", 100 * GB),
    "BINUNICODE8": b"\x8d" + struct.pack("<Q", 100 * GB),
    "BYTEARRAY8": b"\x96" + struct.pack("<Q", 100 * GB),
    "FRAME": b"\x95" + struct.pack("<Q", 100 * GB),
    "LONG4": b"\x8b" + struct.pack("<i", 2**31 - 1),
    "BINSTRING": b"T" + struct.pack("<i", 2**31 - 1),
    "BINUNICODE": b"X" + struct.pack("<I", 2**32 - 1),
    "BINBYTES": b"B" + struct.pack("<I", 2**32 - 1),
}


@pytest.mark.parametrize("opcode", sorted(CLAIMS))
@pytest.mark.parametrize("reader", ["npy", "checkpoint"])
def test_length_claims_past_the_file_are_refused(opcode, reader, tmp_path):
    line = _read(tmp_path, reader, b"\x80\x04" + CLAIMS[opcode] + bytes(64))
    assert "claims" in line


def test_a_hundred_gb_claim_through_convert(tmp_path):
    line = _convert(tmp_path, "claim.npy", npy_header_object() + b"\x80\x04" + CLAIMS["BINBYTES8"])
    assert "claims 107,374,182,400 bytes" in line


def test_a_line_longer_than_the_budget_is_refused(tmp_path):
    # A protocol-0 string with no newline: read in bounded pieces, never to the end.
    _read(tmp_path, "npy", npy_header_object() + b"S'" + b"a" * (1 << 20))


def test_many_cheap_opcodes_are_refused_in_bounded_time(tmp_path):
    line = _read(tmp_path, "checkpoint", b"\x80\x02" + b"N0" * (1 << 23) + b"N.", timeout=60)
    assert "opcodes" in line


# -- zip and gzip bombs ---------------------------------------------------------------------------

BOMB_ZEROS = 9 * GB
BOMBS = {
    "zeros": b"\x80\x02",
    "claim": b"\x80\x02\x8e" + struct.pack("<Q", 8 * GB),
    "line": b"\x80\x02S'",
}
EXPECTED = {"zeros": "corrupt", "claim": "claims", "line": "text line"}


@pytest.mark.parametrize("payload", sorted(BOMBS))
def test_gzip_bombs_stop_early_with_little_memory(payload, tmp_path):
    data = _gzip(BOMBS[payload], *_zeros(BOMB_ZEROS))
    assert len(data) < 12 << 20
    line = _read(tmp_path, "checkpoint", data, timeout=60)
    assert EXPECTED[payload] in line


def test_a_zip_member_declaring_more_than_the_limit_is_refused_unread(tmp_path):
    data = _zip(BOMBS["zeros"], *_zeros(BOMB_ZEROS))
    assert len(data) < 12 << 20
    line = _read(tmp_path, "checkpoint", data, timeout=60)
    assert "declares 9,663,676,418 bytes" in line


def test_a_zip_bomb_declared_within_the_limit_streams(tmp_path):
    from alexnet_keras.limits import MAX_CHECKPOINT_BYTES

    data = _zip(BOMBS["zeros"], *_zeros(BOMB_ZEROS), declared=MAX_CHECKPOINT_BYTES)
    line = _read(tmp_path, "checkpoint", data, timeout=60)
    assert "corrupt" in line


@pytest.mark.parametrize("container", ["gzip", "zip"])
def test_decompressed_bytes_count_against_the_budget(container, tmp_path):
    """64 MB strings, each dropped after it is read: cheap to hold, but a 10 MB file may not
    decompress more than its allocation budget (4 x its size + the slack)."""
    from alexnet_keras.limits import MAX_CHECKPOINT_BYTES

    unit = b"\x8e" + struct.pack("<Q", 64 << 20) + bytes(64 << 20) + b"0"
    count = 10 * GB // len(unit)
    if container == "zip":  # zipfile stops where the member says it ends: say the limit
        data = _zip(b"\x80\x02", unit, count, declared=MAX_CHECKPOINT_BYTES)
    else:
        data = _gzip(b"\x80\x02", unit, count)
    line = _read(tmp_path, "checkpoint", data, timeout=60, rss_mb=READER_RSS_MB)
    assert "more than may still be allocated" in line


def test_a_stream_is_read_up_to_its_limit_only():
    """The decompression limit itself, on a stream larger than it (no child: nothing hostile)."""
    import io

    from alexnet_keras.safe_pickle._source import Refusal, Source

    source = Source(io.BytesIO(bytes(100)), 10, exact=False)
    assert source.read(6) == bytes(6)
    with pytest.raises(Refusal, match="claims 5 bytes, but at most this many more may be "
                       "decompressed: 4"):  # fmt: skip
        source.read(5)


def test_the_bomb_builders_make_real_archives(tmp_path):
    """The handmade zip and gzip are what zipfile and gzip read: the tests above mean something."""
    code = f"""
import gzip, zipfile
prefix = b"\\x80\\x02N."
with zipfile.ZipFile({str(tmp_path / "z")!r}) as z, z.open("data") as f:
    assert f.read(4) == prefix and f.read(1 << 20) == bytes(1 << 20)
with gzip.open({str(tmp_path / "g")!r}) as f:
    assert f.read(4) == prefix and f.read(1 << 20) == bytes(1 << 20)
"""
    (tmp_path / "z").write_bytes(_zip(b"\x80\x02N.", *_zeros(64 << 20)))
    (tmp_path / "g").write_bytes(_gzip(b"\x80\x02N.", *_zeros(64 << 20)))
    assert_loaded(run_isolated(code, timeout=60))


@pytest.mark.parametrize("case", ["deep", "claim", "dtype"])
def test_batches_meta_goes_through_the_same_reader(case, tmp_path):
    pickled = {
        "deep": b"}" + _s("data_mean") + _nested(DEEP) + b"s",
        "claim": CLAIMS["BINBYTES8"] + bytes(8),
        "dtype": b"}" + _s("data_mean") + _array((1,), EVIL_DTYPES["fields via BUILD"], _s(
            bytes(8))) + b"s",
    }[case]  # fmt: skip
    _read(tmp_path, "batches.meta", b"\x80\x02" + pickled + b".", name="batches.meta")
