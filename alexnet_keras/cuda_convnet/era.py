"""Which cuda-convnet a cfg net was written for: its 2011 or its 2012 semantics.

The same cfg text computes two different nets depending on the code that
ran it (`docs/formats.md` §1.3). The one difference alexnet-keras models is
the divisor of a window mean, in average pools and in cnorm's mean: public
cuda-convnet 1 as of SVN r331/r333 (2011-09-18) divides a window's sum by
the full window area, clipped border windows included (`src/layer.cu`
l.476 `AvgPooler(_sizeX*_sizeX)`, `conv_util.cuh` l.50-65); r556
(2012-07-17), CHM's 2012 code (`src/layer.cu` l.1307) and cuda-convnet2
divide by the clipped window's pixel count (`local_layers.ContrastNormalization`
cites cnorm's lines).

`decide` picks the era of a def file, in this order:

1. the caller's choice (`--convnet-semantics 2011|2012`);
2. 2011 when a norm layer is written in cuda-convnet 1's syntax (`sizeX`,
   `scale`, `pow` in the def file): CHM's 2012 parser (`layer.py`
   l.1170-1207) rejects it, so the file was written for the 2011 code;
3. 2011 when the def file's text, whitespace aside, is one of the 2011
   files CHM's `example-layers/` copied from r331/r333 (18pct, 19pct,
   80sec, the conv-local nets, example, gc): `layers-80sec.cfg` has no
   norm layer, so only its text identifies it;
4. otherwise 2012, the semantics of every file written for CHM's code
   (`layers/`, `layers-cifar/`).
"""

import hashlib

__all__ = ["HELP", "SEMANTICS", "decide", "text_digest"]

SEMANTICS = ("2011", "2012")
# The --convnet-semantics help of every command that reads a cfg net.
HELP = (
    "The cuda-convnet a cfg net computes with: 2011 (r331-r333: average pools and cnorm's "
    "mean divide by the full window) or 2012 (CHM, r556+: by the clipped window). Default: "
    "decided from the def file."
)

# sha256 of `text_digest` of the def files of the CHM release's `example-layers/`,
# which formats.md §1.3 finds identical, whitespace aside, to cuda-convnet r331/r333's.
R333_DEF_FILES = {
    "1686da685b1663dc596a2605ecb034a527f3d9c86ea16666266e510c3e6a7210": "layers-18pct.cfg",
    "42486ee4fabf826845054a3418ff32ed19d957e042eeaa032a92afe20584bad3": "layers-19pct.cfg",
    "b4f571ad7ba7c5b1303a9960970e85a770a4f9bb0200a4962034712b4f35fd9a": "layers-80sec.cfg",
    "10dfc5300ec1e9a185432db46a20e96f2b22f8d28fad994d886e449241ac1a7b": (
        "layers-conv-local-12pct.cfg"
    ),
    "669d576ffb2edff89601ccc62f0d3213fb92eafa757f91b42348f75f9424c498": (
        "layers-conv-local-13pct.cfg"
    ),
    "083641ba0395c9451ba99d924edb93ade9cb765100dc88a973677f6847289624": "layers-example.cfg",
    "462686116f085a457a6dddf563c4088bcfd5d134a333cece9ca43c4508567b56": "layers.gc.cfg",
}


def text_digest(text):
    """sha256 of a cfg text with every line stripped and blank lines dropped.

    Example:

    >>> text_digest("[a]\\n  type=data \\n\\n") == text_digest("[a]\\ntype=data")
    True
    """
    lines = (line.strip() for line in text.splitlines())
    return hashlib.sha256("\n".join(x for x in lines if x).encode("utf-8")).hexdigest()


def decide(text, old_syntax_layers=(), given=None):
    """`(semantics, why)`: the era a def file's net computes with, and how it was decided.

    Args:
        text: the def file's text.
        old_syntax_layers: names of the norm layers written in cuda-convnet
            1 syntax (`sizeX=` in the def file).
        given: `"2011"`, `"2012"` or None (decide from the file).

    Returns:
        `("2011" | "2012", a sentence for the run's notes)`.

    Raises:
        ValueError: `given` is not one of `SEMANTICS`.

    Example:

    >>> decide("[data]\\ntype=data\\ndataIdx=0\\n")[0]
    '2012'
    >>> decide("", given="2011")
    ('2011', 'cuda-convnet 2011 semantics (given): window means divide by the full window')
    """
    if given is not None and given not in SEMANTICS:
        raise ValueError(f"semantics must be one of {SEMANTICS}. Received: {given!r}")
    pools = {"2011": "divide by the full window", "2012": "divide by the clipped window"}
    if given is not None:
        return given, f"cuda-convnet {given} semantics (given): window means {pools[given]}"
    era = "cuda-convnet 2011 semantics (r331-r333)"
    if old_syntax_layers:
        names = ", ".join(old_syntax_layers)
        return "2011", (
            f"{era}: {names} use cuda-convnet 1 syntax, which CHM's 2012 code rejects; "
            f"window means {pools['2011']}"
        )
    known = R333_DEF_FILES.get(text_digest(text))
    if known:
        return "2011", f"{era}: the def file is r331-r333's {known}; window means {pools['2011']}"
    return "2012", f"cuda-convnet 2012 semantics (CHM, r556+): window means {pools['2012']}"
