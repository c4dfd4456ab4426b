"""Training checkpoints: model, optimizer and RNG variables, plus the trainer's own state.

Variables are saved with `tf.train.Checkpoint` under keys made of our layer
names (stable across processes); the trainer state (epoch, step within the
epoch, global step, schedule) goes next to each checkpoint as JSON, with the
size and SHA-256 of every file of the save. Under `MultiWorkerMirroredStrategy`
every worker must save; the chief's copy is the one that counts.

A kill at any moment leaves an intact checkpoint to resume from:

- every save gets a fresh number (one past any file in the folder), so a
  listed checkpoint is never rewritten in place;
- the state file, written last and renamed into place, is what makes a save
  count: TensorFlow's `checkpoint` index is only rewritten after it;
- `restore` verifies the newest save against its recorded digests and falls
  back to the previous intact one, saying so in one line; when none is
  intact it refuses, naming the files;
- temp files of an interrupted save (TensorFlow's `ckpt-N_temp/`,
  `*.tempstate*`, our `*.tmp`) and saves without a state file are removed
  at the next start.

SHA-256 of AlexNet's 0.46 GB checkpoint (weights and momentum) takes 0.33 s
from the page cache, next to 1.5 s for TensorFlow to write it; CRC32 would
take 0.14 s but cannot tell a crafted swap from the real file.

Tests can kill the process inside a save: `ALEXNET_KERAS_TEST_KILL=KIND:STAGE`
(KIND is `step`, `epoch` or `stop`, STAGE is `written` (data and index
complete, no state file yet), `state` (state renamed in, index not updated)
or `write+SECONDS` (SIGKILL that long into TensorFlow's write)). Unset, the
hook does nothing.
"""

import errno
import hashlib
import json
import logging
import math
import os
import pathlib
import re
import shutil
import signal
import threading

from alexnet_keras import files
from alexnet_keras.limits import MAX_STATE_BYTES

__all__ = ["Checkpoints", "is_chief"]

log = logging.getLogger("alexnet_keras")

_SAVE_FILE = re.compile(r"^ckpt-(\d+)(?:\.index|\.data-\d{5}-of-\d{5}|\.state\.json)$")
_NUMBERED = re.compile(r"^ckpt-(\d+)[._]")
_STATE_NUMBER = re.compile(r"^ckpt-(\d+)\.state\.json$")
_STATE_KEYS = ("epoch", "step_in_epoch", "global_step")
_KILL_HOOK = "ALEXNET_KERAS_TEST_KILL"


def is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


def _digest(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            sha.update(chunk)
    return sha.hexdigest()


def _is_temp(name):
    """A leftover of an interrupted save: TensorFlow's or ours."""
    return (
        "tempstate" in name
        or re.match(r"^ckpt-\d+_temp", name) is not None
        or name.endswith(".tmp")
        or name.startswith("checkpoint.tmp")
    )


def _remove(path):
    """Best effort: a folder that turned read-only keeps what it holds."""
    path = pathlib.Path(path)
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _reason(error):
    """The gist of an OSError or a TensorFlow error, on one short line."""
    text = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
    text = re.sub(r"\{\{.*?\}\}|\[Op:\w+\]", "", str(text))
    return " ".join(text.split())[:300]


def _kill_hook(kind, stage):
    """SIGKILLs this process at `stage` of a `kind` save when the test variable asks for it."""
    wanted = os.environ.get(_KILL_HOOK, "")
    if not wanted.startswith(f"{kind}:"):
        return None
    at = wanted.split(":", 1)[1]
    if stage == "write" and at.startswith("write+"):
        timer = threading.Timer(float(at[6:]), os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()
        return timer
    if at == stage:
        os.kill(os.getpid(), signal.SIGKILL)
    return None


def _check_state(doc):
    """The trainer state of a state file's JSON, or a ValueError saying what is wrong."""
    state = doc.get("state") if isinstance(doc, dict) and "files" in doc else doc
    if not isinstance(state, dict):
        raise ValueError("the state is not a JSON object")
    for key in _STATE_KEYS:
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
            raise ValueError(f"`{key}` must be a step or epoch count. Received: {value!r:.40}")
    schedule = state.get("schedule")
    if not isinstance(schedule, dict):
        raise ValueError("`schedule` is missing")

    def number(value, optional=False):
        if optional and value is None:
            return True
        return type(value) in (int, float) and math.isfinite(value) and value >= 0

    bad = schedule.get("bad_epochs")
    if not (number(schedule.get("scale")) and number(schedule.get("best"), optional=True)
            and type(bad) is int and bad >= 0):  # fmt: skip
        raise ValueError(f"`schedule` is not a plateau state. Received: {schedule!r:.80}")
    return state


class Checkpoints:
    """tf.train checkpoints of the model, optimizer and RNG variables, plus the trainer state."""

    def __init__(self, strategy, model, optimizer, model_dir, max_to_keep):
        import tensorflow as tf

        self.chief = is_chief(strategy)
        folder = pathlib.Path(model_dir) / "checkpoints"
        if not self.chief:  # every worker must save; only the chief's copy is kept
            resolver = strategy.cluster_resolver
            folder = pathlib.Path(model_dir) / f".worker-{resolver.task_type}-{resolver.task_id}"
        self.folder, self.max_to_keep = folder, max_to_keep
        self.restored_from = None
        self._tf = tf

        # Keys from our layer names and positions: Keras' own variable paths
        # carry global counters ("seed_generator_3") that differ between runs.
        layers = {
            f"{layer.name}.{i}": v.value
            for layer in model.layers
            for i, v in enumerate(layer.variables)
        }
        slots = {f"{i:04d}": v.value for i, v in enumerate(optimizer.variables)}
        self.ckpt = tf.train.Checkpoint(model=layers, optimizer=slots)
        self.nbytes = sum(
            v.shape.num_elements() * v.dtype.size for v in [*layers.values(), *slots.values()]
        )
        self._last = None

    def _numbers(self, pattern=_NUMBERED):
        """The save numbers of the folder's files matching `pattern` (a regex with one group)."""
        out = set()
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if match := pattern.match(path.name):
                    out.add(int(match.group(1)))
        return out

    def _files_of(self, number):
        return sorted(p for p in self.folder.glob(f"ckpt-{number}.*") if not _is_temp(p.name))

    def save(self, state, kind="step"):
        """Writes a checkpoint under a fresh number; returns its path prefix.

        Args:
            state: the trainer state (JSON-compatible).
            kind: "step", "epoch" or "stop", for the test hook.

        Raises:
            OSError: naming the folder and the space a checkpoint needs, when
                the disk is full or the folder cannot be written.
        """
        if self._last is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._last = max(self._numbers(), default=0)
        number = self._last + 1
        self._last = number
        prefix = self.folder / f"ckpt-{number}"
        try:
            timer = _kill_hook(kind, "write")
            self.ckpt.write(str(prefix))
            if timer is not None:
                timer.cancel()
            _kill_hook(kind, "written")
            record = {p.name: {"bytes": p.stat().st_size, "sha256": _digest(p)}
                      for p in self._files_of(number)}  # fmt: skip
            text = json.dumps({"state": state, "files": record})
            tmp = pathlib.Path(f"{prefix}.state.json.tmp")
            tmp.write_text(text)
            os.replace(tmp, f"{prefix}.state.json")
        except (OSError, self._tf.errors.OpError) as e:
            self._discard(number)
            raise self._write_error(prefix, e) from None
        _kill_hook(kind, "state")
        self._prune()
        return str(prefix)

    def _write_error(self, prefix, error):
        """One line naming the save and the space a checkpoint needs (`files.write_error`);
        a failure it does not know (a folder replaced by a file...) gets TF's reason."""
        known = files.write_error(prefix, error, self.nbytes)
        if known is not None:
            return known
        code = getattr(error, "errno", None) or errno.EIO
        return OSError(code, f"cannot be written: {_reason(error)}", str(prefix))

    def _discard(self, number):
        """Removes the files of save `number` (its state file first), and temp files."""
        _remove(self.folder / f"ckpt-{number}.state.json")
        for path in self.folder.glob(f"ckpt-{number}[._]*"):
            _remove(path)

    def _prune(self):
        """Keeps the newest `max_to_keep` saves, then points TensorFlow's index at them."""
        numbers = sorted(self._numbers(_STATE_NUMBER))
        for number in numbers[: -self.max_to_keep]:
            self._discard(number)
        kept = numbers[-self.max_to_keep :]
        lines = [f"model_checkpoint_path: {json.dumps(f'ckpt-{kept[-1]}')}"]
        lines += [f"all_model_checkpoint_paths: {json.dumps(f'ckpt-{n}')}" for n in kept]
        tmp = self.folder / "checkpoint.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.folder / "checkpoint")

    def clean(self):
        """Removes temp files of an interrupted save, and saves that have no state file."""
        if not self.folder.is_dir():
            return
        complete = self._numbers(_STATE_NUMBER)
        for path in self.folder.iterdir():
            match = _NUMBERED.match(path.name)
            if _is_temp(path.name) or (match and int(match.group(1)) not in complete):
                _remove(path)

    def restore(self):
        """Restores the newest intact checkpoint; returns its trainer state, or None.

        Cleans the folder first (`clean`). A damaged newer save is named in one
        warning line and removed once an older one is restored.

        Raises:
            ValueError: saves exist but none is intact (naming each and why).
        """
        self.clean()
        damaged = []
        for number in sorted(self._numbers(_STATE_NUMBER), reverse=True):
            prefix = self.folder / f"ckpt-{number}"
            try:
                state = self._verified_state(prefix)
                self.ckpt.read(str(prefix)).assert_existing_objects_matched()
            except (ValueError, AssertionError, self._tf.errors.OpError) as e:
                damaged.append((number, _reason(e)[:200]))
                continue
            if damaged:
                names = "; ".join(f"ckpt-{n} ({why})" for n, why in damaged)
                log.warning("%s: damaged: %s; resuming from ckpt-%d", self.folder, names, number)
                for n, _ in damaged:
                    self._discard(n)
                self._prune()  # TensorFlow's index named a damaged save
            self.restored_from = str(prefix)
            return state
        if damaged:
            names = "; ".join(f"ckpt-{n} ({why})" for n, why in damaged)
            raise ValueError(
                f"{self.folder}: no intact checkpoint to resume from: {names}; "
                "move the folder away to start over"
            )
        return None

    def _verified_state(self, prefix):
        """The state of save `prefix` after checking its files against the recorded digests."""
        path = pathlib.Path(f"{prefix}.state.json")
        try:
            doc = json.loads(files.read_bounded(path, "a checkpoint state file", MAX_STATE_BYTES))
        except RecursionError:
            raise ValueError(f"{path.name}: nested too deeply") from None
        except ValueError as e:  # UnicodeDecodeError and JSONDecodeError included
            raise ValueError(f"{path.name}: not JSON ({e})") from None
        state = _check_state(doc)
        record = doc.get("files") if isinstance(doc, dict) else None
        if record is None:  # written before digests were recorded: TensorFlow's own CRCs
            return state
        if not isinstance(record, dict) or f"{prefix.name}.index" not in record:
            raise ValueError(f"{path.name}: no file list with the index")
        for name, entry in record.items():
            match = _SAVE_FILE.match(str(name))
            if not match or name.endswith(".state.json") or f"ckpt-{match.group(1)}" != prefix.name:
                raise ValueError(f"{path.name}: names a foreign file {name!r}")
            if not isinstance(entry, dict):
                raise ValueError(f"{path.name}: bad entry for {name}")
            size = files.regular_file_size(self.folder / name)
            if size is None:
                raise ValueError(f"{name} is missing")
            if size != entry.get("bytes"):
                raise ValueError(f"{name} has {size} bytes, {entry.get('bytes')} were written")
            if _digest(self.folder / name) != entry.get("sha256"):
                raise ValueError(f"{name}: SHA-256 differs from the one recorded")
        return state
