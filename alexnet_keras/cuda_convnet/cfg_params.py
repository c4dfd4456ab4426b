"""The training half of a cuda-convnet net: a layer parameter file read against its def file.

`chm_cfg.training_config` is the public entry point and documents the result;
this module builds it from two files read by `chm_text.read_cfg`. The keys and
defaults follow CHM `layer.py`'s `add_params` methods (`WeightLayerParser`,
`NormLayerParser`, `CostParser`, `HiddenSexLayerParser`, `PoolLayerParser`).
"""

import re

from alexnet_keras.cuda_convnet import cfg_rules as rules
from alexnet_keras.cuda_convnet import lr_schedule
from alexnet_keras.cuda_convnet.cfg_text import Where

__all__ = ["parse_schedule", "read_training_config"]

_SCHEDULE = re.compile(r"\s*(\w+)\s*(?:\[([^\]]*)\])?\s*")
_RESULT = re.compile(r"logprob:\s*([-+.\deE]+)\s*,\s*([-+.\deE]+)(?:\s*,\s*([-+.\deE]+))?")
_EPOCH = re.compile(r"epoch\s+(\d+)\s*:\s*(.*)")
_OLD_KEY = ("the release's layer.py never reads sched= (only schedW/schedB, l.739-740); read "
            "as the older parsers did, for weights and biases")  # fmt: skip


def _number(text):
    try:
        return rules.parse_scalar(text, int)
    except ValueError:
        return rules.parse_scalar(text, float)


def parse_schedule(text, where=None, key="schedW"):
    """A learning-rate schedule such as `dexp[tgtFactor=10,noiseStdev=0,numSteps=2]`.

    Returns:
        `{"name", "args" (positional numbers), "kwargs" (named ones), "text"}`.

    >>> parse_schedule("linear[1,1]")
    {'name': 'linear', 'args': (1, 1), 'kwargs': {}, 'text': 'linear[1,1]'}
    """
    m = _SCHEDULE.fullmatch(text)
    args, kwargs = [], {}
    try:
        if not m:
            raise ValueError("must look like name or name[a,b,...]")
        for item in m.group(2).split(",") if m.group(2) and m.group(2).strip() else []:
            name, sep, value = item.rpartition("=")
            if sep:
                kwargs[name.strip()] = _number(value)
            else:
                args.append(_number(value))
    except ValueError as e:
        if where is None:
            raise
        where.fail(f"{key}= {e}", f"{key}={text}", key)
    return {"name": m.group(1), "args": tuple(args), "kwargs": kwargs, "text": text.strip()}


class _Section:
    """One layer's parameter-file section, with its def file's input count for list lengths."""

    def __init__(self, raw, where, inputs, def_path):
        self.raw, self.where, self.inputs, self.def_path = raw or {}, where, inputs, def_path

    def get(self, key, kind=float, per_input=False, default=None):
        if key not in self.raw:
            return default
        text = self.raw[key]
        items = text.split(",")
        if per_input and len(items) != len(self.inputs):
            self.where.fail(
                f"gives {len(items)} value(s) for {key}= but has {len(self.inputs)} input(s) "
                f"in {self.def_path}",
                f"{key}={text}, inputs={','.join(self.inputs)}",
                key,
            )
        if not per_input and len(items) != 1:
            self.where.fail(f"takes one value for {key}=", f"{key}={text}", key)
        try:
            values = tuple(rules.parse_scalar(item, kind) for item in items)
        except ValueError as e:
            self.where.fail(f"{key}= {e}", f"{key}={text}", key)
        return values if per_input else values[0]


def _weights(section, old_forms):
    zeros = (0.0,) * len(section.inputs)
    entry = {key: section.get(key, per_input=True) for key in ("epsW", "momW")}
    entry.update({key: section.get(key) for key in ("epsB", "momB")})
    entry.update({key: section.get(key, per_input=True, default=zeros) for key in ("wc", "wball")})
    entry.update(_schedules(section, old_forms))
    return entry


def _schedules(section, old_forms):
    """`schedW`/`schedB`, checked by `lr_schedule.read`; `sched=` (older parsers) sets both.

    `old_forms` collects `{(key, text, note): [(layer, line)]}` for the notes.
    """
    raw, where = section.raw, section.where
    both = raw.get("sched")
    if both is not None and ("schedW" in raw or "schedB" in raw):
        where.fail("has sched= (an older parser's key for both schedules) beside "
                   "schedW=/schedB=", f"sched={both}", "sched")  # fmt: skip
    out = {}
    for key in ("schedW", "schedB"):
        written = key if both is None else "sched"
        text = raw.get(written, "default")
        parsed = parse_schedule(text, where, written)
        try:
            _, note = lr_schedule.read(parsed)
        except ValueError as e:
            where.fail(f"{written}= {e}", f"{written}={text}", written)
        out[key] = parsed
        if written == "sched":
            if key == "schedB":
                continue  # one note for both
            note = "; ".join(filter(None, (_OLD_KEY, note)))
        if note:
            line = where.lines.get(written, where.lines.get(None, 1))
            old_forms.setdefault((written, parsed["text"], note), []).append((where.name, line))
    return out


def _form_notes(file_name, old_forms):
    """One note per schedule written in an older parser's form, naming its layers and lines."""
    out = []
    for (key, text, note), where in old_forms.items():
        shown = ", ".join(f"{layer} (l.{line})" for layer, line in where)
        out.append(f"{file_name}: {key}={text} in {shown}: {note}")
    return out


def _norm(kind, section, definition, notes):
    """Constants from the params file, or from the def file in cuda-convnet 1 syntax."""
    name = section.where.name
    size = definition.get("size", int)
    if size is None:
        size = definition.get("sizeX", int)
    entry = {"size": size}
    for key in ("scale", "pow"):
        entry[key] = section.get(key)
        if entry[key] is None and key in definition.raw:
            entry[key] = definition.get(key)
            notes.append(f"{name}: {key} taken from the def file (cuda-convnet 1 syntax)")
    entry["minDiv"] = section.get("minDiv", default=1.0)
    if kind != "cmrnorm" and "minDiv" in section.raw:
        entry["minDiv"] = 1.0
        notes.append(f"{name}: minDiv ignored; CHM's {kind} kernel takes none (k = 1)")
    scale = entry["scale"]
    divisor = None if size is None else size if kind == "cmrnorm" else size**2
    entry["coefficient"] = None if scale is None or not divisor else scale / divisor
    return entry


def read_training_config(defs, params, strict=True):
    """The config dict of `chm_cfg.training_config` from two read `.cfg` files."""
    notes = [f"{params.path.name}: {note}" for note in params.notes]
    for name, lines in params.lines.items():
        if name in defs.sections:
            continue
        if strict:
            Where(params.path, name, lines).fail(
                f"has a section, but {defs.path} defines no such layer", f"[{name}]"
            )
        notes.append(f"{params.path.name}: [{name}] ignored: {defs.path.name} has no such layer")
    layers, old_forms = {}, {}
    for name, raw in defs.sections.items():
        kind, given = raw.get("type", ""), params.sections.get(name)
        takes = kind in rules.WEIGHT_TYPES + rules.NORM_TYPES + ("hs",) or kind.startswith("cost.")
        if given is None and not takes:
            continue
        inputs = tuple(x.strip() for x in raw.get("inputs", "").split(",") if x.strip())
        where = Where(params.path, name, params.lines.get(name, {None: 1}))
        section = _Section(given, where, inputs, defs.path)
        definition = _Section(raw, Where(defs.path, name, defs.lines[name]), inputs, defs.path)
        entry = {"type": kind}
        entry.update({key: rules.parse_value(text) for key, text in section.raw.items()})
        if kind in rules.WEIGHT_TYPES:
            entry.update(_weights(section, old_forms))
        elif kind in rules.NORM_TYPES:
            entry.update(_norm(kind, section, definition, notes))
        elif kind.startswith("cost."):
            entry["coeff"] = section.get("coeff")
            if kind == "cost.logreg":
                entry["topk"] = section.get("topk", int, default=1)
        elif kind == "hs":
            entry["keep"] = definition.get("keep")
            entry["enable"] = section.get("enable", bool)
        elif kind == "pool" and "doMax" in section.raw:
            entry["doMax"] = section.get("doMax", bool)
        layers[name] = entry
    notes += _form_notes(params.path.name, old_forms)
    comments = [(line, text) for line, text in params.comments]
    first = min(lines[None] for lines in params.lines.values())
    results = []
    for _, text in comments:
        m = _RESULT.search(text)
        if m:
            results.append(tuple(float(v) for v in m.groups() if v is not None))
    epochs = tuple(
        (int(m.group(1)), m.group(2).strip())
        for m in (_EPOCH.search(text) for _, text in comments)
        if m
    )
    return {
        "source": str(params.path),
        "def_file": str(defs.path),
        "layers": layers,
        "header": tuple(text for line, text in comments if line < first),
        "comments": tuple(text for _, text in comments),
        "results": tuple(results),
        "epochs": epochs,
        "notes": tuple(notes),
    }
