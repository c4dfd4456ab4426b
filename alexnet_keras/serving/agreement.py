"""The agreement gate: a quantized model is written only if it still answers like fp32.

On held-out real images (`serving.calibration`), both models classify every
image; the gate measures the top-1 agreement (the share of images whose top
class is the same) and, where the dataset's classes are the model's, the
top-1 accuracy of each. Below the threshold (default 99 % agreement) the
export is refused, unless `--force`.
"""

import dataclasses

import numpy as np

__all__ = ["THRESHOLD", "Agreement", "check", "measure", "top1"]

THRESHOLD = 0.99
_BATCH = 16


@dataclasses.dataclass
class Agreement:
    """What the gate measured.

    Attributes:
        mode: `"int8"` or `"bf16"`.
        images: how many held-out images.
        agreement: the share with the same top-1 class as fp32.
        accuracy: `(fp32, quantized)` top-1 accuracy, or `None` where the
            held-out classes are not the model's.
        source: the held-out set's name.
    """

    mode: str
    images: int
    agreement: float
    accuracy: tuple
    source: str

    def lines(self):
        """The export report's lines."""
        line = (
            f"agree    {self.agreement:.2%} top-1 agreement with fp32 on {self.images} "
            f"held-out images of {self.source}"
        )
        if self.accuracy is None:
            return [line, "accuracy n/a: the held-out classes are not the model's"]
        fp32, quantized = self.accuracy
        return [
            line,
            f"accuracy top-1 fp32 {fp32:.2%}, {self.mode} {quantized:.2%} "
            f"({100 * (quantized - fp32):+.2f} points)",
        ]


def top1(session, images):
    """The top class of each image: an `onnxruntime.InferenceSession` of an export."""
    out, start = [], 0
    while start < len(images):
        # One batch per run of equal shapes: shorter-side images differ in width.
        end = start + 1
        while (
            end < len(images) and end - start < _BATCH and images[end].shape == images[start].shape
        ):
            end += 1
        batch = np.stack(images[start:end]).astype(np.float32)
        out.append(session.run(["top_k_indices"], {"images": batch})[0][:, 0])
        start = end
    return np.concatenate(out)


def _model_classes(dataset_names, model_labels, model_ids):
    """The model's class of each dataset class (by label or id), or -1."""
    index = {str(name): i for i, name in enumerate(model_labels)}
    index.update({str(i): k for k, i in enumerate(model_ids or []) if i is not None})
    return np.array([index.get(str(name), -1) for name in dataset_names])


def measure(fp32, quantized, held_out, *, mode, model_labels, model_ids=None):
    """Runs both sessions on the held-out `ImageSet`; returns an `Agreement`.

    Example:

    >>> import numpy as np
    >>> class Fixed:  # a stand-in session that always answers class `c`
    ...     def __init__(self, c): self.c = c
    ...     def run(self, names, feeds): return [np.full((len(feeds["images"]), 1), self.c)]
    >>> from alexnet_keras.serving.calibration import ImageSet
    >>> s = ImageSet([np.zeros((4, 4, 3))] * 4, [0, 1, 0, 1], ["a", "b"], "toy")
    >>> a = measure(Fixed(0), Fixed(0), s, mode="int8", model_labels=["a", "b"])
    >>> a.agreement, a.accuracy
    (1.0, (0.5, 0.5))
    """
    want, got = top1(fp32, held_out.images), top1(quantized, held_out.images)
    classes = _model_classes(held_out.class_names, model_labels, model_ids)
    truth = classes[np.asarray(held_out.labels)]
    known = truth >= 0
    accuracy = None
    if known.any():
        accuracy = (float(np.mean(want[known] == truth[known])),
                    float(np.mean(got[known] == truth[known])))  # fmt: skip
    return Agreement(mode, len(want), float(np.mean(want == got)), accuracy, held_out.name)


def check(agreement, *, threshold=THRESHOLD, force=False):
    """Raises the one-line refusal below `threshold`, unless `force`."""
    if agreement.agreement >= threshold or force:
        return
    raise ValueError(
        f"--quantize {agreement.mode}: top-1 agreement with fp32 is {agreement.agreement:.2%} "
        f"on {agreement.images} held-out images, below {threshold:.0%}; nothing written "
        "(pass --force to write it anyway)"
    )
