"""`convert(src, ...)`: a release name, a Caffe file or a cuda-convnet checkpoint to Keras weights.

The dispatch that `alexnet-keras convert` runs: the source kind (a folder or
`fmt="cuda-convnet"` is a cuda-convnet checkpoint; anything else goes to
`caffe.convert.convert_file`), the options each kind takes, the cache for
release names, the class-names file, and `--verify-images` against the
source's numpy reference. Side files are checked before anything is
written, so bad input leaves no output file.
"""

import dataclasses
import os
import pathlib

from alexnet_keras import pretrained, registry
from alexnet_keras.converters.verify import find_images, verify, verify_checkpoint
from alexnet_keras.files import existing_file

__all__ = ["ConvertReport", "convert"]


@dataclasses.dataclass
class ConvertReport:
    """What `convert` did; `str(report)` is what `alexnet-keras convert` prints.

    Attributes:
        output: the weights file, written now or found in the cache.
        conversion: the converter's report (`caffe.convert.ConversionReport`
            or `cuda_convnet.convert.ConvnetReport`); None when a release was
            already converted.
        verify: the `verify.VerifyResult` with `verify_images`, else None.
        warnings: lines for stderr.
        source: what was asked for (named when already converted).
        reference: the numpy reference the verification ran.
    """

    output: pathlib.Path
    conversion: object = None
    verify: object = None
    warnings: list = dataclasses.field(default_factory=list)
    source: str = ""
    reference: str = ""

    @property
    def failure(self):
        """The one-line error when verification failed, else None."""
        if self.verify is None or self.verify.passed:
            return None
        return (
            f"{self.output}: the converted model disagrees with the {self.reference} reference "
            f"(max relative logit error {self.verify.max_rel:.3g})"
        )

    def __str__(self):
        if self.conversion is None:
            return f"{self.source}: already converted: {self.output}"
        parts = [self.conversion] + ([self.verify] if self.verify is not None else [])
        return "\n".join(map(str, parts))


def convert(
    src,
    output=None,
    *,
    fmt="auto",
    variant=None,
    prototxt=None,
    to="keras",
    class_names=None,
    meta=None,
    layers_cfg=None,
    params_cfg=None,
    verify_images=None,
    verify_count=8,
    progress=True,
    semantics=None,
):
    """Converts a legacy AlexNet release to a Keras weights file (or a caffe-tensorflow `.npy`).

    Args:
        src: a release name (`"bvlc_alexnet"`: downloaded and verified unless
            cached), a `.npy`, a `.caffemodel`, a `.weights.h5` (with
            `to="npy"`), or a cuda-convnet checkpoint (a folder, or any file
            with `fmt="cuda-convnet"`).
        output: destination; default `<cache>/<release>-<sha256[:8]>.weights.h5`.
        fmt: "auto", "npy", "caffemodel", "keras" or "cuda-convnet".
        variant, prototxt, to: Caffe sources only (see `caffe.convert.convert_file`).
        class_names: Caffe sources only: a text file with one class name per
            line, in fc8 order (or the list of names).
        meta, layers_cfg, params_cfg: cuda-convnet only: `batches.meta` and
            the net's cfg files (see `cuda_convnet.convert.convert_checkpoint`).
        verify_images: a folder of images: compare the written model's logits
            with the source's numpy reference on `verify_count` of them.
        verify_count: how many images to verify on.
        progress: draw a download progress line on stderr.
        semantics: cuda-convnet only: `"2011"` or `"2012"`, the era of the
            code that trained the checkpoint; default: decided from the def file.

    Returns:
        A `ConvertReport`; its `failure` is set if verification failed.

    Raises:
        ValueError: bad input, in one line naming the file; nothing is written.
        registry.OfflineError: a release that is not cached and cannot be downloaded.

    Example:

    >>> from alexnet_keras.converters import convert
    >>> convert("missing.npy")
    Traceback (most recent call last):
    ...
    ValueError: missing.npy: no such file
    """
    src = os.fspath(src)
    if fmt == "cuda-convnet" or (fmt == "auto" and os.path.isdir(src)):
        if prototxt or to != "keras" or variant or class_names:
            raise ValueError(
                "a cuda-convnet checkpoint takes -o, --meta, --layers, --params, "
                "--convnet-semantics and --verify-images only"
            )
        return _checkpoint(src, output, meta, (layers_cfg, params_cfg, semantics), verify_images,
                           verify_count)  # fmt: skip
    if meta or layers_cfg or params_cfg or semantics:
        raise ValueError(
            "--meta, --layers, --params and --convnet-semantics are for --format cuda-convnet"
        )
    if not os.path.exists(src) and src in registry.release_names():
        cached = registry.converted_path(src)
        if cached is not None and not (output or verify_images or to != "keras"):
            return ConvertReport(cached, source=src)
        src = pretrained.release_source(src, None if fmt == "auto" else fmt, progress=progress)
    if verify_images and to != "keras":
        raise ValueError("--verify-images checks a Keras weights file; drop --to npy")
    if verify_images:  # before converting: bad input must not leave an output file
        find_images(verify_images, verify_count)
    names = _class_names(class_names)
    from alexnet_keras.caffe.convert import convert_file

    report = convert_file(
        src, output, fmt=fmt, variant=variant, prototxt=prototxt, to=to, class_names=names
    )
    checked = None
    if verify_images:
        checked = verify(report.output, report.net, verify_images, verify_count)
    return ConvertReport(
        report.output, report, checked, list(report.warnings), str(src), "numpy Caffe"
    )


def _checkpoint(src, output, meta, cfg, verify_images, verify_count):
    """A cuda-convnet checkpoint: convert, then verify against numpy cuda-convnet.

    `cfg` is `(layers_cfg, params_cfg, semantics)`.
    """
    layers_cfg, params_cfg, semantics = cfg
    if verify_images is not None:
        if layers_cfg is None:
            raise ValueError(
                "--verify-images with a cuda-convnet checkpoint needs --layers and --params: "
                "the numpy reference walks the cfg's graph"
            )
        find_images(verify_images, verify_count)
    from alexnet_keras.cuda_convnet.convert import convert_checkpoint

    report = convert_checkpoint(
        src, output, meta=meta, layers_cfg=layers_cfg, params_cfg=params_cfg, semantics=semantics
    )
    checked = None
    if verify_images is not None:
        checked = verify_checkpoint(
            report.output,
            report.net,
            report.arrays,
            report.batches,
            verify_images,
            verify_count,
            chm2012=report.chm2012,
        )
    return ConvertReport(report.output, report, checked, [], src, "numpy cuda-convnet")


def _class_names(class_names):
    """The names of a `--class-names` file, one per non-empty line (a list passes through)."""
    if class_names is None or isinstance(class_names, (list, tuple)):
        return class_names
    text = existing_file(class_names, "a text file of class names").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]
