"""Training configs as YAML: a strict subset, written and read without PyYAML.

The trainer writes `config.yaml` and reads `--config FILE.yaml`. The package's
dependencies do not include PyYAML, so this module handles the subset the
configs use: `key: value` lines, `#` comments, nested mappings by two-space
indentation, and scalar values written as YAML 1.2 JSON-compatible scalars
(numbers, `true`/`false`, `null`, plain or quoted strings, `[a, b]` lists,
`{k: v}` maps). Anything else is an error naming the file and the line; the
files this module writes are valid YAML for any YAML reader.
"""

import json
import pathlib
import re

from alexnet_keras import files
from alexnet_keras.limits import MAX_TRAIN_CONFIG_BYTES

__all__ = ["dump", "load"]

_MAX_DEPTH = 9
_PLAIN = re.compile(r"^[A-Za-z_./][\w./:+-]*$")


def _scalar(value):
    if isinstance(value, str) and _PLAIN.match(value) and value not in ("true", "false", "null"):
        return value
    return json.dumps(value)


def dump(config, header=""):
    """Renders a (nested) dict as YAML text; values are JSON-compatible."""
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


def _parse_value(text, where):
    text = text.strip()
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    if text[0] in "[{":
        # Flow collections: quote bare words so JSON can read them.
        quoted = re.sub(r"(?<=[\[{,:\s])\s*([A-Za-z_][\w./-]*)\s*(?=[,\]}:])", r'"\1"', text)
        try:
            return json.loads(quoted)
        except RecursionError:
            raise ValueError(f"{where}: nested too deeply") from None
        except ValueError:
            raise ValueError(f"{where}: cannot read {text!r} (use JSON-style lists/maps)") from None
    try:
        return json.loads(text)
    except ValueError:
        if text[0] in "\"'":
            return text[1:-1] if text[-1] == text[0] else text
        return text


def load(path):
    """Reads a config file written in the subset above.

    Raises:
        ValueError: naming the file and line, for anything outside the subset.

    Example:

    >>> import os, tempfile
    >>> from alexnet_keras.training import config_file
    >>> p = os.path.join(tempfile.mkdtemp(), "c.yaml")
    >>> _ = open(p, "w").write("epochs: 3  # short\\nlr_mults:\\n  fc8: 10\\n")
    >>> config_file.load(p)
    {'epochs': 3, 'lr_mults': {'fc8': 10}}
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such config file")
    data = files.read_bounded(path, "a YAML config", MAX_TRAIN_CONFIG_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start})") from None
    root = {}
    stack = [(-1, root)]
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        match = re.match(r"^\s*([A-Za-z_][\w.-]*)\s*:(.*)$", line)
        if match is None or "\t" in line[:indent]:
            raise ValueError(f"{where}: expected `key: value`. Received: {raw.strip()!r}")
        while indent <= stack[-1][0]:
            stack.pop()
        key, rest = match.group(1), match.group(2)
        parent = stack[-1][1]
        if rest.strip():
            parent[key] = _parse_value(rest, where)
        else:
            parent[key] = {}
            stack.append((indent, parent[key]))
            if len(stack) > _MAX_DEPTH:  # the configs nest 1 deep (lr_mults)
                raise ValueError(f"{where}: mappings nested more than {_MAX_DEPTH - 1} deep")
    return root
