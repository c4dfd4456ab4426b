"""Training configs as YAML: `--config FILE.yaml` read by PyYAML, `config.yaml` written here.

`load` reads a file with PyYAML's safe loader (no tags that build Python
objects), so booleans, lists and nested keys are what YAML says they are.
YAML 1.1 booleans, as PyYAML reads them: `yes`/`no`, `on`/`off` and
`true`/`false` (any of the three casings) are booleans; `y` and `n` stay
strings, which a boolean key then refuses. One addition to the safe loader: a
number with an exponent and no dot (`1e-3`) is a float, as in YAML 1.2 and
JSON, not the string YAML 1.1 makes of it.

The file is read bounded (`limits.MAX_TRAIN_CONFIG_BYTES`), and what it holds
is bounded before anything walks it: at most `_MAX_NODES` values counted with
aliases expanded (a "billion laughs" file of nested aliases is refused, not
expanded) and `_MAX_DEPTH` levels of nesting.

`dump` writes the resolved config as block YAML that `yaml.safe_load` reads
back to the same values: a string is written plain only when YAML would read
it back as that string (`no`, `null` or `1e5` are quoted).
"""

import json
import pathlib
import re

import yaml

from alexnet_keras import files
from alexnet_keras.limits import MAX_TRAIN_CONFIG_BYTES

__all__ = ["dump", "load"]

# The configs nest 1 deep (`lr_mults`); 8 leaves room and stops a hostile file early.
_MAX_DEPTH = 8
# Values in a file, aliases expanded: a resolved config has about 50.
_MAX_NODES = 10_000
_PLAIN = re.compile(r"^[A-Za-z_./][\w./:+-]*$")
_STR = "tag:yaml.org,2002:str"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, plus YAML 1.2's floats with an exponent and no dot (`1e-3`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)
_RESOLVER = _Loader("")  # `resolve` is an instance method; this one reads nothing


def _scalar(value):
    if isinstance(value, str):
        plain = _PLAIN.match(value) and _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))
        return value if plain == _STR else json.dumps(value)
    text = json.dumps(value)
    if isinstance(value, float) and re.fullmatch(r"-?\d+e[-+]\d+", text):
        text = text.replace("e", ".0e", 1)  # `1e-05` is a string to YAML 1.1; `1.0e-05` is not
    return text


def dump(config, header=""):
    """Renders a (nested) dict of JSON-compatible values as YAML text.

    Example:

    >>> import yaml
    >>> text = dump({"dataset": "no", "lr": 1e-05, "lr_mults": {"fc8": 10}}, header="x")
    >>> print(text, end="")
    # x
    dataset: "no"
    lr: 1.0e-05
    lr_mults:
      fc8: 10
    >>> yaml.safe_load(text)
    {'dataset': 'no', 'lr': 1e-05, 'lr_mults': {'fc8': 10}}
    """
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]

    def emit(mapping, indent):
        for key, value in mapping.items():
            if isinstance(value, dict) and value:
                lines.append(f"{' ' * indent}{key}:")
                emit(value, indent + 2)
            else:
                lines.append(f"{' ' * indent}{key}: {_scalar(value)}")

    emit(config, 0)
    return "\n".join(lines) + "\n"


def _check_shape(root, path):
    """Refuses a document nested deeper than `_MAX_DEPTH` or holding more than `_MAX_NODES`
    values with aliases expanded (a shared or self-referencing node counts each time)."""
    count, stack = 0, [(root, 0)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > _MAX_NODES:
            raise ValueError(f"{path}: more than {_MAX_NODES:,} values (aliases expanded)")
        if depth > _MAX_DEPTH:
            raise ValueError(f"{path}: nested more than {_MAX_DEPTH} deep")
        if isinstance(value, dict):
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]


def _where(error):
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or "not YAML"
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def load(path):
    """Reads a YAML config file: a mapping of keys to values.

    Raises:
        ValueError: one line naming the file: not UTF-8, not YAML (with the
            line), not a mapping, a key that is not a name, or too big / too
            deeply nested.

    Example:

    >>> import os, tempfile
    >>> from alexnet_keras.training import config_file
    >>> p = os.path.join(tempfile.mkdtemp(), "c.yaml")
    >>> _ = open(p, "w").write("epochs: 3  # short\\nfreeze_backbone: no\\n"
    ...                        "lr_mults:\\n  fc8: 10\\n")
    >>> config_file.load(p)
    {'epochs': 3, 'freeze_backbone': False, 'lr_mults': {'fc8': 10}}
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such config file")
    data = files.read_bounded(path, "a YAML config", MAX_TRAIN_CONFIG_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not YAML ({_where(e)})") from None
    if doc is None:  # an empty file, or comments only
        return {}
    if not isinstance(doc, dict):
        raise ValueError(
            f"{path}: must be a mapping of keys to values. Received: a {type(doc).__name__}"
        )
    _check_shape(doc, path)
    bad = [key for key in doc if not isinstance(key, str)]
    if bad:
        raise ValueError(f"{path}: keys must be names. Received: {bad[0]!r:.60}")
    return doc
