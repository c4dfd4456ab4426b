"""What every legacy reader returns: layers in file order, arrays as stored."""

import dataclasses


@dataclasses.dataclass
class SourceLayer:
    """One layer of a legacy file.

    Attributes:
        name: the layer name in the file.
        type: normalised type: "conv", "fc", "lrn", "pool", "relu", "dropout",
            "softmax", "data", "loss", "other".
        arrays: the blobs as stored (source layout), e.g. [weights, bias].
        params: normalised hyper-parameters (see the reader's docstring).
        source_type: the type as the file spells it.
    """

    name: str
    type: str
    arrays: list = dataclasses.field(default_factory=list)
    params: dict = dataclasses.field(default_factory=dict)
    source_type: str = ""


@dataclasses.dataclass
class SourceNet:
    """A legacy net: where it came from, its layout and its layers in order.

    Attributes:
        path: the file read.
        format: "npy", "caffemodel" or "cuda-convnet".
        layout: "caffe" (conv OIHW, fc (out, in), fc6 rows in CHW order) or
            "caffe-tensorflow" (conv HWIO, fc (in, out), fc6 rows in HWC order).
        layers: `SourceLayer`s in file order.
        name: the net's own name, if the file has one.
        notes: things the reader noticed that the user should see.
    """

    path: str
    format: str
    layout: str
    layers: list
    name: str | None = None
    notes: list = dataclasses.field(default_factory=list)

    def layer(self, name):
        for layer in self.layers:
            if layer.name == name:
                return layer
        return None
