"""The text layer of cuda-convnet `.cfg` files: sections, keys, lines, and errors that name them.

cuda-convnet read these files with Python 2's `ConfigParser`. `read_cfg`
reads the same syntax (`[section]`, `key=value`, `#`/`;` comments) but, by
default, refuses what ConfigParser let through silently: a repeated section
or key. It keeps the line of every section and key so that `Where.fail` can
point at the line a problem is on.
"""

import dataclasses
import pathlib
import re

from alexnet_keras import limits
from alexnet_keras.files import read_bounded

__all__ = ["CfgText", "Where", "read_cfg"]


class Where:
    """Where a layer is written, for errors: `fail` raises a one-line ValueError.

    Args:
        path: the file.
        name: the layer named in the message.
        lines: `{None: section line, key: line of that key}`.
    """

    def __init__(self, path, name, lines):
        self.path, self.name, self.lines = path, name, lines
        self.alias = {}

    def key_alias(self, key, written):
        """Errors about `key` point at the line of `written` (e.g. size= read from sizeX=)."""
        self.alias[key] = written

    def fail(self, what, received, key=None):
        line = self.lines.get(self.alias.get(key, key), self.lines.get(None, 1))
        raise ValueError(f"{self.path}:{line}: layer {self.name!r} {what}. Received: {received}")


@dataclasses.dataclass(frozen=True)
class CfgText:
    """A cfg file's text held in memory, read as if it were the file `name`.

    A cfg-model weights file stores its cfg files' texts; this reads them back
    without writing them anywhere.
    """

    name: str
    text: str


@dataclasses.dataclass
class Cfg:
    """A `.cfg` file as read: values as strings, with the line of everything."""

    path: pathlib.Path
    sections: dict  # {section: {key: raw value}}
    lines: dict  # {section: {None: line of [section], key: line}}
    comments: list  # [(line, text)]
    notes: list = dataclasses.field(default_factory=list)
    text: str = ""  # what was parsed


_SECTION = re.compile(r"\[([^\]]*)\]")
_TRAILING_COMMENT = re.compile(r"(?:^|\s)[#;].*$")


def read_cfg(source, expected, lenient=False):
    """Reads a `.cfg` file (a path, or a `CfgText`) as a `Cfg`; see `parse_cfg` for what it refuses.

    `lenient` reads as Python 2's ConfigParser did for CHM: a repeated
    section continues the first one and a repeated key replaces the value;
    `notes` says where.
    """
    if isinstance(source, CfgText):
        return _parse(pathlib.Path(source.name), source.text, expected, lenient)
    path = pathlib.Path(source)
    data = read_bounded(path, expected, limits.MAX_CFG_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file, expected {expected}") from None
    return _parse(path, text, expected, lenient)


def _parse(path, text, expected, lenient):
    cfg, section = Cfg(path, {}, {}, [], text=text), None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped[0] in "#;":
            cfg.comments.append((number, stripped.lstrip("#;").strip()))
            continue
        m = _SECTION.fullmatch(stripped)
        if m:
            section = m.group(1).strip()
            if not section:
                raise ValueError(f"{path}:{number}: empty section name. Received: {stripped}")
            if section in cfg.sections:
                first = cfg.lines[section][None]
                if not lenient:
                    raise ValueError(
                        f"{path}:{number}: duplicate section [{section}]: layer '{section}' is "
                        f"already defined at line {first}. Received: {stripped}"
                    )
                cfg.notes.append(f"[{section}] at line {number} merged into line {first}")
                continue
            cfg.sections[section], cfg.lines[section] = {}, {None: number}
            continue
        if section is None:
            raise ValueError(f"{path}:{number}: expected a [section] first. Received: {stripped}")
        key, sep, value = stripped.partition("=")
        key, value = key.strip(), _TRAILING_COMMENT.sub("", value).strip()
        if not sep or not key:
            raise ValueError(
                f"{path}:{number}: layer '{section}': expected key=value. Received: {stripped}"
            )
        if key in cfg.sections[section] and lenient:
            cfg.notes.append(
                f"{section}: {key}= at line {number} replaces line {cfg.lines[section][key]}"
            )
        elif key in cfg.sections[section]:
            first = cfg.lines[section][key]
            raise ValueError(
                f"{path}:{number}: layer '{section}' gives {key}= twice, first at line {first}. "
                f"Received: {stripped}"
            )
        cfg.sections[section][key], cfg.lines[section][key] = value, number
    if not cfg.sections:
        raise ValueError(f"{path}: no [section] in the file, expected {expected}")
    return cfg
