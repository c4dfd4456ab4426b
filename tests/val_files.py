"""An ILSVRC-2012 val folder and its label files, made from `../shared/data/imagenet-sample`.

The sample holds one real ImageNet image per class. `make_val_folder` copies
`count` of them (classes spread over the 1000) flat into a folder as
`ILSVRC2012_val_00000001.JPEG`..., and the writers give the same labels in
each form users hold: Caffe's `val.txt`, the devkit's ground truth with a
`map_clsloc.txt` or a `meta.mat` (written here to the MATLAB 5 spec), and
Kaggle's `LOC_val_solution.csv`.
"""

import dataclasses
import pathlib
import shutil
import struct
import zlib

import numpy as np

from alexnet_keras.variants import imagenet_classes

WNIDS = [wnid for wnid, _ in imagenet_classes()]
# The devkit numbers its classes in its own order (ILSVRC2012_ID 1 is n02119789,
# not the first sorted wnid): a seeded permutation stands in for it.
ID_ORDER = [WNIDS[i] for i in np.random.default_rng(2012).permutation(len(WNIDS))]


@dataclasses.dataclass
class ValFolder:
    folder: pathlib.Path
    names: list  # file names, in order
    labels: list  # class index of each, sorted-wnid order
    sources: list  # the sample images they were copied from


def make_val_folder(sample, folder, count=20):
    folder.mkdir(parents=True, exist_ok=True)
    step = len(WNIDS) // count
    names, labels, sources = [], [], []
    for n in range(count):
        label = (n * step + 7 * n) % len(WNIDS)
        source = sorted((sample / WNIDS[label]).glob("*.JPEG"))[0]
        name = f"ILSVRC2012_val_{n + 1:08d}.JPEG"
        shutil.copy(source, folder / name)
        names.append(name)
        labels.append(label)
        sources.append(source)
    return ValFolder(folder, names, labels, sources)


def write_caffe(val, path):
    path.write_text("".join(f"{n} {y}\n" for n, y in zip(val.names, val.labels, strict=True)))
    return path


def write_kaggle(val, path):
    rows = ["ImageId,PredictionString"]
    for name, label in zip(val.names, val.labels, strict=True):
        wnid = WNIDS[label]
        rows.append(f"{name.removesuffix('.JPEG')},{wnid} 10 20 200 220 {wnid} 1 2 30 40 ")
    path.write_text("\n".join(rows) + "\n")
    return path


def write_ground_truth(val, path):
    ids = [ID_ORDER.index(WNIDS[y]) + 1 for y in val.labels]
    path.write_text("".join(f"{i}\n" for i in ids))
    return path


def write_map_clsloc(path):
    path.write_text("".join(f"{w} {i} name_{i}\n" for i, w in enumerate(ID_ORDER, 1)))
    return path


# -- MATLAB 5 MAT-file, from MathWorks' "MAT-File Format" (ch. 1) --


def _element(kind, payload, small=False):
    if small and len(payload) <= 4:
        return struct.pack("<HH", kind, len(payload)) + payload.ljust(4, b"\0")
    return struct.pack("<II", kind, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def _matrix(cls, dims, name, *body):
    head = _element(6, struct.pack("<II", cls, 0)) + _element(
        5, struct.pack(f"<{len(dims)}i", *dims)
    )
    return _element(14, head + _element(1, name.encode()) + b"".join(body))


def _double(value, name=""):
    # MATLAB stores a double that fits as miUINT8 or miUINT16 (the reader must widen it).
    if float(value).is_integer() and 0 <= value < 65536:
        return _matrix(6, [1, 1], name, _element(4, struct.pack("<H", int(value)), small=True))
    return _matrix(6, [1, 1], name, _element(9, struct.pack("<d", value)))


def _char(text, name=""):
    return _matrix(4, [1, len(text)], name, _element(4, text.encode("utf-16-le")))


def _struct(name, fields, records):
    length = 32
    names = b"".join(f.encode().ljust(length, b"\0") for f in fields)
    body = [_element(5, struct.pack("<i", length), small=True), _element(1, names)]
    for record in records:  # column-major: element by element, fields in order
        body += [record[f] for f in fields]
    return _matrix(2, [len(records), 1], name, *body)


def write_meta_mat(path, compressed=True, order=None, extra=None):
    """A devkit-like meta.mat: `synsets`, 1000 leaves then some inner nodes (IDs > 1000)."""
    order = ID_ORDER if order is None else order
    fields = ["ILSVRC2012_ID", "WNID", "words", "num_children", "children"]
    records = [
        {"ILSVRC2012_ID": _double(i), "WNID": _char(w), "words": _char(f"words {i}"),
         "num_children": _double(0), "children": _matrix(6, [1, 0], "", _element(9, b""))}
        for i, w in enumerate(order, 1)
    ]  # fmt: skip
    records += [
        {"ILSVRC2012_ID": _double(1000 + i), "WNID": _char(f"n0999999{i}"), "words": _char("x"),
         "num_children": _double(2.5), "children": _matrix(6, [1, 2], "", _element(9, struct.pack("<2d", 1, 2)))}  # noqa: E501
        for i in range(1, 4)
    ]  # fmt: skip
    element = _struct("synsets", fields, records)
    if compressed:  # MATLAB's default since v7: zlib, and no padding after it
        packed = zlib.compress(element)
        element = struct.pack("<II", 15, len(packed)) + packed
    header = b"MATLAB 5.0 MAT-file, written by the alexnet-keras tests".ljust(116, b" ")
    header += b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    path.write_bytes(header + (extra or b"") + element)
    return path
