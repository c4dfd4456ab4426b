"""The weights-file reader, run as a child process: `python -m alexnet_keras.weights._reader`.

libhdf5 can crash or loop on a corrupt file, so no check inside the process
that parses the file can make that process safe. This one limits itself
(address space, CPU time, 1 MiB of file writes for its stderr, no core dump)
before it opens the
file, then walks the whole HDF5 tree and accepts only what Keras writes:

- hard links only (no soft, external or user-defined link), each object
  linked once, at most `MAX_WEIGHTS_OBJECTS` objects `MAX_WEIGHTS_DEPTH` deep;
- attributes only where Keras and alexnet-keras put them (`name` on a `vars`
  group, the metadata on the root), scalar strings;
- datasets of little-endian float32, contiguous, allocated inside the file,
  with no external storage, no filter and the default fill value (so a chunked
  fill-value bomb, a virtual dataset or bytes from another file are refused);
- with kind `alexnet`, metadata of the documented schema and exactly the
  layers and shapes `geometry.layer_plan` gives for it.

Only then does it read the arrays, streaming them to stdout as a header (the
metadata and the shapes, JSON) and raw bytes; the parent checks all of it again.
A refusal is one line on stderr and exit status 2.
"""

import json
import os
import resource
import struct
import sys

from alexnet_keras import limits
from alexnet_keras.weights._schema import (
    METADATA_KEY,
    Refusal,
    check_metadata,
    expected_arrays,
    parse_metadata,
)

MAGIC = b"AKW1"
HEADER = struct.Struct("<4sQ")
REFUSED = 2

# Errors h5py raises on a corrupt file: libhdf5's failures come as OSError,
# KeyError, ValueError or RuntimeError (300 fuzzed files raised only these),
# a type h5py cannot map as TypeError. Anything else is a bug here: exit 1.
_CORRUPT = (OSError, KeyError, ValueError, RuntimeError, TypeError)


def _limit_self(file_size):
    """Bounds this process before libhdf5 sees a byte of the file."""
    address = limits.WEIGHTS_READER_BASE_BYTES + 2 * file_size
    resource.setrlimit(resource.RLIMIT_AS, (address, address))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # It writes a pipe and its stderr file only; SIGXFSZ past 1 MiB.
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    seconds = read_seconds(file_size) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))


def read_seconds(file_size):
    """The time a reader gets for a file of `file_size` bytes."""
    return limits.WEIGHTS_READ_SECONDS + file_size // limits.WEIGHTS_READ_BYTES_PER_S


def _name(key):
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    if not text or len(text) > 256 or not text.isprintable():
        raise Refusal(f"an object name {text[:40]!r} is not what Keras writes")
    return text


def _string_attr(obj, where, key, limit):
    """A scalar string attribute, its size checked where the file states it."""
    import h5py

    attr = h5py.h5a.open(obj.id, key.encode())
    kind = attr.get_type()
    if kind.get_class() != h5py.h5t.STRING or attr.shape != ():
        raise Refusal(f"attribute `{where}@{key}` is not a scalar string")
    if not kind.is_variable_str() and attr.get_storage_size() > limit:
        raise Refusal(f"attribute `{where}@{key}` has {attr.get_storage_size():,} bytes")
    value = obj.attrs[key]
    value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if not isinstance(value, str) or len(value) > limit:
        raise Refusal(f"attribute `{where}@{key}` is longer than {limit:,} characters")
    return value


def _attributes(obj, where, allowed):
    import h5py

    if h5py.h5o.get_info(obj.id).num_attrs > len(allowed):
        raise Refusal(f"`{where}` has attributes Keras does not write")
    for key in obj.attrs:
        if key not in allowed:
            raise Refusal(f"`{where}` has an attribute `{_name(key)}` Keras does not write")


def _check_dataset(dset, where, file_size):
    """Refuses anything but a float32 array stored contiguously inside this file."""
    import h5py

    _attributes(dset, where, ())
    if not dset.id.get_type().equal(h5py.h5t.IEEE_F32LE):
        kind = dset.id.get_type()
        raise Refusal(f"dataset `{where}` holds HDF5 type class {kind.get_class()} of "
                      f"{kind.get_size()} bytes, not little-endian float32")  # fmt: skip
    space = dset.id.get_space()
    if (
        space.get_simple_extent_type() != h5py.h5s.SIMPLE
        or not 1 <= space.get_simple_extent_ndims() <= 4
    ):
        raise Refusal(f"dataset `{where}` is not an array of rank 1 to 4")
    shape = space.get_simple_extent_dims()
    if space.get_simple_extent_dims(True) != shape or min(shape) < 1:
        raise Refusal(f"dataset `{where}` has an empty or resizable shape {shape}")
    plist = dset.id.get_create_plist()
    if plist.get_external_count():
        raise Refusal(f"dataset `{where}` keeps its bytes in another file (external storage)")
    if plist.get_layout() != h5py.h5d.CONTIGUOUS:
        raise Refusal(f"dataset `{where}` is chunked, compact or virtual; Keras writes contiguous")
    if plist.get_nfilters():
        raise Refusal(f"dataset `{where}` has filters (compression); Keras writes none")
    if plist.fill_value_defined() != h5py.h5d.FILL_VALUE_DEFAULT:
        raise Refusal(f"dataset `{where}` has a fill value; Keras writes none")
    nbytes = 4 * _product(shape)
    offset = dset.id.get_offset()
    if offset is None or dset.id.get_storage_size() != nbytes or offset + nbytes > file_size:
        raise Refusal(f"dataset `{where}` declares {nbytes:,} bytes that the file does not hold")
    return shape


def _product(shape):
    out = 1
    for n in shape:
        out *= int(n)
    return out


class _Walk:
    """One pass over the tree: every link, object and attribute, nothing read yet."""

    def __init__(self, file_size):
        self.file_size = file_size
        self.seen = set()
        self.arrays = {}  # vars group's layer name -> [(dataset, shape)]
        self.total = 0

    def group(self, group, where, depth):
        import h5py

        if depth > limits.MAX_WEIGHTS_DEPTH:
            raise Refusal(f"`{where}` is nested deeper than {limits.MAX_WEIGHTS_DEPTH} groups")
        layer = vars_group = where.rsplit("/", 1)[-1] == "vars"
        if vars_group:
            self._attributes(group, where, ("name",))
            layer = _string_attr(group, where, "name", 256) if "name" in group.attrs else None
        elif depth:
            self._attributes(group, where, ())
        datasets = []
        if group.id.get_num_objs() > limits.MAX_WEIGHTS_OBJECTS:
            raise Refusal(f"`{where or '/'}` holds more than {limits.MAX_WEIGHTS_OBJECTS} objects")
        for raw in list(group.id):
            name = _name(raw)
            path = f"{where}/{name}"
            link = group.id.links.get_info(raw).type
            if link != h5py.h5l.TYPE_HARD:
                kind = {h5py.h5l.TYPE_SOFT: "soft", h5py.h5l.TYPE_EXTERNAL: "external"}
                raise Refusal(f"`{path}` is {kind.get(link, 'a user-defined')} link; "
                              "a weights file holds only its own objects")  # fmt: skip
            info = h5py.h5o.get_info(group.id, raw)
            if (
                info.rc != 1
                or info.addr in self.seen
                or len(self.seen) >= limits.MAX_WEIGHTS_OBJECTS
            ):
                raise Refusal(f"`{path}`: an object linked twice, or too many objects")
            self.seen.add(info.addr)
            if info.type == h5py.h5o.TYPE_GROUP:
                self.group(group[raw], path, depth + 1)
            elif info.type == h5py.h5o.TYPE_DATASET and vars_group:
                datasets.append((name, group[raw], path))
            else:
                raise Refusal(f"`{path}` is not a group or a dataset of a `vars` group")
        if datasets and layer is None:
            raise Refusal(f"`{where}` holds arrays but no layer `name` attribute")
        if datasets:
            self._layer(layer, datasets, where)

    def _attributes(self, obj, where, allowed):
        _attributes(obj, where or "/", allowed)

    def _layer(self, layer, datasets, where):
        if layer in self.arrays:
            raise Refusal(f"layer '{layer}' has two `vars` groups")
        names = sorted(name for name, _, _ in datasets)
        if names != [str(i) for i in range(len(names))]:
            raise Refusal(f"`{where}` holds datasets {names[:4]}; Keras numbers them 0, 1...")
        entries = []
        for _, dset, path in sorted(datasets, key=lambda d: int(d[0])):
            shape = _check_dataset(dset, path, self.file_size)
            self.total += 4 * _product(shape)
            if self.total > self.file_size:
                raise Refusal("the datasets declare more bytes than the file holds")
            entries.append((dset, shape))
        self.arrays[layer] = entries


def _match_plan(arrays, meta):
    """Refuses a file whose layers or shapes differ from the plan its metadata gives."""
    want = expected_arrays(meta)
    for layer, shapes in want.items():
        if layer not in arrays:
            raise Refusal(f"has no weights for layer '{layer}'")
        got = [shape for _, shape in arrays[layer]]
        if got != shapes:
            raise Refusal(f"layer '{layer}' expects shapes {shapes}. Received: {got}")
    if extra := sorted(set(arrays) - set(want)):
        raise Refusal(f"has weights for layer '{extra[0][:60]}', which {meta['variant']} lacks")


def _metadata(f, kind):
    _attributes(f, "/", (METADATA_KEY,))
    if METADATA_KEY not in f.attrs:
        if kind == "any":
            return None
        raise Refusal(
            "a weights file without alexnet-keras metadata; "
            "write it with `alexnet-keras convert` or alexnet_keras.weights.save_weights"
        )
    raw = _string_attr(f, "/", METADATA_KEY, limits.MAX_METADATA_BYTES)
    meta = parse_metadata(raw)
    return check_metadata(meta) if kind == "alexnet" else meta


def inspect(path, kind, file_size):
    """`(metadata, {layer: [(dataset, shape)]}, file)` after every check; the file stays open."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError:
        raise Refusal("not an HDF5 file (expected a .weights.h5)") from None
    meta = _metadata(f, kind)
    walk = _Walk(file_size)
    walk.seen.add(h5py.h5o.get_info(f.id).addr)  # a link back to the root is a second link
    walk.group(f, "", 0)
    if kind == "alexnet":
        _match_plan(walk.arrays, meta)
    return meta, walk.arrays, f


def _send(out, meta, arrays, with_arrays):
    import numpy as np

    listed = [[layer, index, list(shape)] for layer, entries in arrays.items()
              for index, (_, shape) in enumerate(entries)] if with_arrays else []  # fmt: skip
    header = json.dumps({"metadata": meta, "arrays": listed}).encode()
    out.write(HEADER.pack(MAGIC, len(header)) + header)
    if with_arrays:
        for entries in arrays.values():
            for dset, shape in entries:
                array = np.empty(shape, "<f4")
                dset.read_direct(array)
                out.write(memoryview(array).cast("B"))
                del array
    out.write(MAGIC)
    out.flush()


def main(argv):
    """`PATH FILE_SIZE (metadata|arrays) (alexnet|any)`: the checked file on stdout, or exit 2."""
    path, file_size, mode, kind = argv[0], int(argv[1]), argv[2], argv[3]
    _limit_self(file_size)
    try:
        if os.stat(path).st_size != file_size:
            raise Refusal("changed while being read")
        meta, arrays, f = inspect(path, kind, file_size)
        with f:
            _send(sys.stdout.buffer, meta, arrays, mode == "arrays")
    except Refusal as e:
        return _refuse(str(e))
    except MemoryError:
        return _refuse("a corrupt HDF5 file (the reader ran out of memory)")
    except _CORRUPT as e:
        return _refuse(f"a corrupt HDF5 file ({type(e).__name__}: {e})")
    return 0


def _refuse(message):
    print(" ".join(message.split())[:500], file=sys.stderr)
    return REFUSED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
