"""The `tf.distribute` strategy a run uses, and the checks `TF_CONFIG` gets before TensorFlow.

`MultiWorkerMirroredStrategy()` reads `TF_CONFIG` and blocks until every
peer answers, forever, with no message; a wrong type in the variable gives
a traceback from deep inside TensorFlow. So `tf_config_task` validates the
variable first (one-line `ValueError`s naming the key), and `wait_for_peers`
gives the peers a bounded time (`limits.PEER_WAIT_SECONDS`, or
`$ALEXNET_KERAS_PEER_WAIT` seconds) to accept a TCP connection. While it
waits, this task listens on its own port, so that peers waiting the same way
see it before TensorFlow takes the port over.
"""

import json
import math
import os
import re
import socket
import time

from alexnet_keras.limits import MAX_CLUSTER_TASKS, MAX_TF_CONFIG_BYTES, PEER_WAIT_SECONDS

__all__ = ["make_strategy", "peer_wait_seconds", "pick_strategy", "tf_config_task",
           "wait_for_peers"]  # fmt: skip

_JOBS = ("chief", "worker", "ps", "evaluator")
_HOST = re.compile(r"^[A-Za-z0-9_.:-]{1,253}$")


def _address(entry, where):
    if not isinstance(entry, str) or entry.count(":") < 1:
        raise ValueError(f"TF_CONFIG: {where} must be a 'host:port' string. Received: {entry!r}")
    host, _, port = entry.rpartition(":")
    host = host.strip("[]")  # [::1]:2222
    if not _HOST.match(host) or not port.isdigit() or not 0 < int(port) < 65536 or len(entry) > 300:
        raise ValueError(f"TF_CONFIG: {where} must be a 'host:port' string. Received: {entry!r}")
    return host, int(port)


def tf_config_task(environ=None):
    """The validated `TF_CONFIG`: `(cluster {job: [(host, port)]}, task type, task index)`.

    Returns None when the variable is unset or empty (one worker).

    Raises:
        ValueError: `TF_CONFIG: ...`, naming what is wrong.

    Example:

    >>> env = {"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]},'
    ...                     ' "task": {"type": "worker", "index": 1}}'}
    >>> tf_config_task(env)
    ({'worker': [('a', 1), ('b', 2)]}, 'worker', 1)
    >>> tf_config_task({"TF_CONFIG": '{"cluster": {"worker": "a:1"}}'})
    Traceback (most recent call last):
    ValueError: TF_CONFIG: cluster.worker must be a list of 'host:port' strings. Received: 'a:1'
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not text.strip():
        return None
    if len(text) > MAX_TF_CONFIG_BYTES:
        raise ValueError(f"TF_CONFIG: {len(text)} characters; at most {MAX_TF_CONFIG_BYTES}")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise ValueError("TF_CONFIG: nested too deeply") from None
    except ValueError as e:
        raise ValueError(f"TF_CONFIG: not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cluster"), dict):
        raise ValueError("TF_CONFIG: must be a JSON object with a `cluster` object")
    cluster, count = {}, 0
    for job, entries in doc["cluster"].items():
        if job not in _JOBS:
            raise ValueError(f"TF_CONFIG: unknown job {job!r} in cluster (expected one of "
                             f"{', '.join(_JOBS)})")  # fmt: skip
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"TF_CONFIG: cluster.{job} must be a list of 'host:port' strings. "
                             f"Received: {entries!r}"[:300])  # fmt: skip
        count += len(entries)
        if count > MAX_CLUSTER_TASKS:
            raise ValueError(f"TF_CONFIG: more than {MAX_CLUSTER_TASKS} tasks in cluster")
        cluster[job] = [_address(e, f"cluster.{job}[{i}]") for i, e in enumerate(entries)]
    task = doc.get("task")
    if not isinstance(task, dict):
        raise ValueError("TF_CONFIG: `task` must be an object {type, index}")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in cluster:
        raise ValueError(f"TF_CONFIG: task.type {kind!r} is not a job of the cluster "
                         f"({', '.join(cluster)})")  # fmt: skip
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ValueError(f"TF_CONFIG: task.index must be 0..{len(cluster[kind]) - 1} for "
                         f"{kind}. Received: {index!r}")  # fmt: skip
    return cluster, kind, index


def peer_wait_seconds(environ=None):
    """`$ALEXNET_KERAS_PEER_WAIT` as seconds (a positive finite number), else the default."""
    text = (os.environ if environ is None else environ).get("ALEXNET_KERAS_PEER_WAIT", "")
    if not text.strip():
        return PEER_WAIT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"ALEXNET_KERAS_PEER_WAIT: expected seconds > 0. Received: {text!r}")
    return value


def _left(deadline):
    """A connect timeout: at most 1 s, and no later than the deadline (but not zero)."""
    return min(1.0, max(0.05, deadline - time.monotonic()))


def _reachable(host, port, timeout):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:  # refused, unreachable, unknown host, timed out
        return False


def wait_for_peers(cluster, kind, index, seconds):
    """Waits until every other task of `cluster` accepts a TCP connection, at most `seconds`.

    Raises:
        OSError: naming the tasks that did not answer in time, or this
            task's own port when it is taken.
    """
    own = cluster[kind][index]
    # The evaluator runs apart from the training cluster; nobody waits for it.
    peers = [(job, i, addr) for job, addrs in cluster.items() for i, addr in enumerate(addrs)
             if (job, i) != (kind, index) and job != "evaluator"]  # fmt: skip
    beacon = socket.socket(socket.AF_INET6 if ":" in own[0] else socket.AF_INET)
    beacon.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        beacon.bind(("", own[1]))
        beacon.listen(len(peers) + 8)
    except OSError as e:
        beacon.close()
        raise OSError(e.errno, f"TF_CONFIG: {kind} {index}'s port {own[1]} cannot be "
                               f"listened on ({e.strerror})") from None  # fmt: skip
    deadline = time.monotonic() + seconds
    try:
        while peers:
            peers = [p for p in peers if not _reachable(*p[2], _left(deadline))]
            if peers and time.monotonic() >= deadline:
                names = ", ".join(f"{job} {i} at {h}:{p}" for job, i, (h, p) in peers)
                raise OSError(f"TF_CONFIG: no answer from {names} after {seconds:g} s; start "
                              "every task of the cluster, or check the addresses")  # fmt: skip
            if peers:
                time.sleep(0.2)
    finally:
        beacon.close()


def pick_strategy(name, environ=None):
    """The strategy `--strategy name` means here: "auto" is "multi-worker" under a `TF_CONFIG`
    that names several training tasks.

    A set `TF_CONFIG` is validated whatever the strategy, and a cluster of
    several tasks never trains as a silent standalone run: "one-device" and
    "mirrored" refuse it.

    Raises:
        ValueError: `TF_CONFIG: ...`, a malformed variable or a strategy that
            cannot run its cluster.

    Example:

    >>> env = {"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]},'
    ...                     ' "task": {"type": "worker", "index": 0}}'}
    >>> pick_strategy("auto", env), pick_strategy("auto", {})
    ('multi-worker', 'auto')
    """
    task = tf_config_task(environ)
    if task is None:
        return name
    cluster, kind, index = task
    tasks = sum(len(addresses) for job, addresses in cluster.items() if job != "evaluator")
    if tasks < 2 or name == "multi-worker":
        return name
    if name == "auto":
        return "multi-worker"
    raise ValueError(
        f"TF_CONFIG: names a cluster of {tasks} tasks (this is {kind} {index}), and --strategy "
        f"{name} trains on this machine alone; use --strategy multi-worker (or auto), or unset "
        "TF_CONFIG"
    )


def make_strategy(name, cpu_devices=1):
    """The `tf.distribute` strategy: "auto", "one-device", "mirrored" or "multi-worker"."""
    import tensorflow as tf

    if name == "multi-worker":
        task = tf_config_task()
        if task is not None:
            wait_for_peers(*task, peer_wait_seconds())
        return tf.distribute.MultiWorkerMirroredStrategy()
    if cpu_devices > 1:  # N logical CPUs, to run a mirrored strategy on one CPU
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_devices
            )
        except RuntimeError:  # already initialised in this process
            pass
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    if name == "one-device" or gpus:
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    return tf.distribute.get_strategy()
