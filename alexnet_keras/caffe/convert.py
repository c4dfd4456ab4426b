"""`convert_file`: a legacy file (or a weights file) in, a checked weights file out.

It reads the source with the restricted readers, identifies a known release
by hash, maps and checks every array, and writes the Keras weights file (or
a caffe-tensorflow `.npy`) atomically. TensorFlow is never imported here, so
a 233 MB conversion takes seconds.
"""

import dataclasses
import pathlib
import time

from alexnet_keras.caffe import mapper
from alexnet_keras.files import existing_file

__all__ = ["ConversionReport", "convert_file", "default_output", "detect_format", "read_source"]

FORMATS = ("auto", "npy", "caffemodel", "keras")
_NPY_MAGIC = b"\x93NUMPY"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclasses.dataclass
class ConversionReport:
    """What `convert_file` did; `str(report)` is the CLI's report."""

    source: str
    format: str
    output: pathlib.Path
    to: str
    variant: str
    classes: int
    input_size: int
    shapes: dict
    digests: dict
    release: str | None = None
    release_file: dict | None = None
    notes: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    net: object = dataclasses.field(default=None, repr=False)  # the source, for `verify`

    def __str__(self):
        if self.release:
            key = "sha256" if self.release_file.get("sha256") else "sha1"
            known = (
                f"{self.release} ({self.release_file['filename']}, {key} "
                f"{self.digests[key][:12]}... matches the manifest)"
            )
        else:
            known = f"not a known release (sha256 {self.digests['sha256'][:12]}...)"
        lines = [
            f"source   {self.source}",
            f"format   {self.format}",
            f"release  {known}",
            f"variant  {self.variant}, {self.classes} classes, input {self.input_size}",
            "layers   "
            + "\n         ".join(
                f"{name:<6} {_fmt(src)} -> {_fmt(dst)}" for name, (src, dst) in self.shapes.items()
            ),
        ]
        lines += [f"note     {n}" for n in self.notes]
        lines += [f"output   {self.output} ({self.to})", f"time     {self.seconds:.1f} s"]
        return "\n".join(lines)


def _fmt(shapes):
    return " ".join("x".join(map(str, s)) for s in shapes)


def detect_format(path):
    """ "npy", "caffemodel" or "keras", from the file's first bytes."""
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(_NPY_MAGIC) or head.startswith(b"\x80"):
        return "npy"
    if head == _HDF5_MAGIC:
        return "keras"
    if path.suffix == ".caffemodel" or head[:1] in (b"\x0a", b"\x12", b"\xa2"):
        # NetParameter starts with `name` (1), `layers` (2) or `layer` (100).
        return "caffemodel"
    raise ValueError(
        f"{path}: unknown format (not .npy, .caffemodel or .weights.h5); pass --format"
    )


def read_source(path, fmt="auto"):
    """Reads `path` with the reader for `fmt` (detected when "auto")."""
    path = existing_file(path, "a weights file")
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}. Received: {fmt!r}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "npy":
        from alexnet_keras.caffe.npy import read_npy

        return read_npy(path)
    if fmt == "caffemodel":
        from alexnet_keras.caffe.caffemodel import read_caffemodel

        return read_caffemodel(path)
    return None


def _keras_source(path, variant):
    """A weights file written here, as a Mapping (for `--to npy`)."""
    from alexnet_keras import weights

    meta = weights.read_metadata(path)
    if variant is not None and variant != meta["variant"]:
        raise ValueError(f"{path}: holds {meta['variant']} weights. Received: --variant {variant}")
    stored = weights.read_arrays(path)
    arrays = {k: stored[k] for k in mapper.WEIGHTED if k in stored}
    shapes = {k: ([a.shape for a in v],) * 2 for k, v in arrays.items()}
    return mapper.Mapping(meta["variant"], meta["classes"], arrays, shapes, []), meta


def default_output(src, digests=None):
    """Where `convert_file(src)` writes by default: `<cache>/<release>-<sha256[:8]>.weights.h5`.

    A file the manifest does not know is named after its stem (with
    `-unverified` when the stem is a release name), so the same file always
    maps to the same cached output. `digests` (`registry.file_digests` of
    `src`) saves reading the file when the caller has them.
    """
    from alexnet_keras import registry

    path = existing_file(src, "a weights file")
    digests = digests or registry.file_digests(path)
    found = registry.identify(digests)
    return _default_output(path, found[0] if found else None, digests, "keras")


def _default_output(path, release, digests, to):
    from alexnet_keras import registry

    stem = release or path.name.split(".")[0]
    if to == "npy":
        return path.with_name(f"{stem}.npy")
    if not release and stem in registry.release_names():
        # Only a hash-verified file may become what AlexNet(weights=<release>) loads.
        stem = f"{stem}-unverified"
    return registry.converted_name(stem, digests["sha256"])


def _named_like_a_release(path):
    """A file named like a release file that has no published checksum (bvlc_alexnet.npy)."""
    from alexnet_keras import registry

    for name in registry.release_names():
        for f in registry.get_release(name)["files"]:
            if f["filename"] == path.name and not (f.get("sha1") or f.get("sha256")):
                return name
    return None


def convert_file(
    src,
    output=None,
    *,
    fmt="auto",
    variant=None,
    prototxt=None,
    to="keras",
    class_names=None,
    digests=None,
):
    """Converts a legacy AlexNet file to a Keras weights file (or to a `.npy`).

    Args:
        src: `bvlc_alexnet.npy` (either flavour), a `.caffemodel`, or (with
            `to="npy"`) a `.weights.h5` written by alexnet-keras.
        output: destination; defaults to `<cache>/<release>-<sha256[:8]>.weights.h5`
            (design.md §5), or `<name>.npy` next to the source for `to="npy"`.
        fmt: "auto", "npy", "caffemodel" or "keras".
        variant: "bvlc" or "caffenet"; None detects it where the file tells.
        prototxt: optional `deploy.prototxt` checked against a `.caffemodel`.
        to: "keras" (a `.weights.h5` with metadata) or "npy" (caffe-tensorflow's
            dict of lists, for tools that expect `bvlc_alexnet.npy`).
        class_names: optional list of class names for the metadata; defaults
            to the ImageNet classes (Caffe order) when fc8 has 1000 outputs.
        digests: `registry.file_digests(src)`, when the caller has them (a
            233 MB file is then not read a second time for its hashes).

    Returns:
        A `ConversionReport`.

    Raises:
        ValueError: a one-line message naming the file and the problem; no
            output file is left behind.

    Example:

    >>> from alexnet_keras.caffe.convert import convert_file
    >>> convert_file("missing.npy")
    Traceback (most recent call last):
    ...
    ValueError: missing.npy: no such file
    """
    from alexnet_keras import registry

    start = time.perf_counter()
    if to not in ("keras", "npy"):
        raise ValueError(f"--to must be keras or npy. Received: {to!r}")
    path = existing_file(src, "a weights file")
    net = read_source(path, fmt)
    digests = digests or registry.file_digests(path)
    found = registry.identify(digests)
    release, release_file = found if found else (None, None)
    warnings = []
    if not found:
        warning, variant = _unknown_file(path, net, variant)
        warnings.append(warning)
    mapping, meta = _mapping(path, net, variant, release, prototxt, to)
    fmt_name = net.format if net is not None else "keras"
    notes = (net.notes if net else []) + mapping.notes
    output = pathlib.Path(output) if output else _default_output(path, release, digests, to)
    if not found and to == "keras":
        # Only a hash-verified file becomes what `--weights <release>` finds: say how to use it.
        notes.append(f"use it with --weights {output}")
    source = {
        "path": str(path.resolve()),
        "format": fmt_name,
        "sha256": digests["sha256"],
        "sha1": digests["sha1"],
        "size": digests["size"],
        "release": release,
        "converter": "alexnet_keras.converters",
    }
    if to == "npy":
        _write_npy(output, mapping, path)
    else:
        _write_keras(output, mapping, meta, source, class_names)
    return ConversionReport(
        source=str(path),
        format=fmt_name,
        output=output,
        to=to,
        variant=mapping.variant,
        classes=mapping.classes,
        input_size=meta["input_size"] if meta else 227,
        shapes=mapping.shapes,
        digests=digests,
        release=release,
        release_file=release_file,
        notes=notes,
        warnings=warnings,
        seconds=time.perf_counter() - start,
        net=net,
    )


def _mapping(path, net, variant, release, prototxt, to):
    """`(mapping, metadata or None)`: the source's arrays in Keras layout, checked."""
    from alexnet_keras import registry

    if net is None:  # a .weights.h5 written here
        if to != "npy":
            raise ValueError(f"{path}: is already a Keras weights file; pass --to npy to export it")
        return _keras_source(path, variant)
    if variant is None and release:
        variant = registry.get_release(release)["variant"]
    if prototxt is not None:
        if net.format != "caffemodel":
            raise ValueError(f"--prototxt checks a .caffemodel. Received: a {net.format} file")
        _check_prototxt(prototxt, net)
    return mapper.to_keras(net, variant), None


def _unknown_file(path, net, variant):
    """The warning for a file the manifest does not know, and the variant its name implies."""
    from alexnet_keras import registry

    like = _named_like_a_release(path)
    if not like:
        return f"{path}: not a known release; converting it anyway", variant
    if variant is None and net is not None and net.format == "npy":
        variant = registry.get_release(like)["variant"]
    return (
        f"{path}: named like {like}'s file, which has no published checksum, so it cannot "
        "be verified; converted as an unverified file"
    ), variant


def _write_npy(output, mapping, path):
    if mapping.variant not in mapper.CAFFE_VARIANTS:
        raise ValueError(
            f"{path}: holds {mapping.variant} weights; a caffe-tensorflow .npy can only "
            "hold bvlc or caffenet weights"
        )
    from alexnet_keras.caffe.npy import write_npy

    write_npy(output, mapping.arrays)


def _write_keras(output, mapping, meta, source, class_names):
    from alexnet_keras import weights
    from alexnet_keras.variants import imagenet_classes

    if class_names is None and meta is not None:
        class_names = meta.get("class_names")
    if class_names is None and mapping.classes == 1000:
        class_names = imagenet_classes()
    if class_names is not None and len(class_names) != mapping.classes:
        raise ValueError(
            f"--class-names lists {len(class_names)} classes; fc8 has {mapping.classes}. "
            f"Received: {len(class_names)}"
        )
    weights.write_arrays(
        output,
        mapping.arrays,
        variant=mapping.variant,
        class_names=class_names,
        source=source,
        protocol="bvlc",  # BVLC measured 57.1/80.2 on 256x256 warped images
    )


def _check_prototxt(prototxt, net):
    from alexnet_keras.caffe.prototxt import check_against, read_prototxt

    check_against(read_prototxt(prototxt), net)
