"""Run hostile inputs in a child process with a timeout and an RSS cap.

A defence that fails may segfault, hang or eat memory; none of that may take
the test run down with it. `run_isolated` starts `python -c CODE` or
`python -m alexnet_keras ARGS` in its own session, kills the whole group past
the timeout or past the RSS cap (polled every 5 ms; the kernel's peak, VmHWM,
is polled too, so a spike between two polls still counts), and returns what
happened. The asserts name every way an outcome can be unclean: a signal, a
hang, memory past the cap, a traceback, more than one line on stderr, the
wrong exit code.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

__all__ = ["Outcome", "run_isolated", "assert_refused", "assert_loaded"]

DEFAULT_RSS_MB = 1500
DEFAULT_TIMEOUT = 90


@dataclasses.dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float
    timed_out: bool
    over_memory: bool

    @property
    def signal(self):
        return -self.returncode if self.returncode < 0 else None

    def describe(self):
        return (
            f"rc={self.returncode} timed_out={self.timed_out} over_memory={self.over_memory} "
            f"peak_rss={self.peak_rss_mb:.0f} MB\n--- stderr ---\n{self.stderr[-3000:]}"
            f"\n--- stdout ---\n{self.stdout[-1500:]}"
        )


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def _tree_rss_kb(pid, field="VmRSS:"):
    """RSS (or, with `field="VmHWM:"`, peak RSS) of `pid` and its descendants, in KB.

    A descendant still running its parent's command line has forked and not
    yet exec'd: `subprocess` starts children with vfork, so until the exec it
    reports the parent's very pages as its own. Counting it would count the
    parent twice (a 700 MB TensorFlow process starting a 30 MB reader read as
    1.4 GB, and CI killed a healthy child for it).
    """
    total, todo = 0, [(pid, None)]
    while todo:
        p, parent_cmdline = todo.pop()
        cmdline = _cmdline(p)
        try:
            if parent_cmdline is None or cmdline != parent_cmdline:
                with open(f"/proc/{p}/status") as f:
                    for line in f:
                        if line.startswith(field):
                            total += int(line.split()[1])
                            break
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend((int(c), cmdline) for c in f.read().split())
        except (OSError, ValueError):
            pass
    return total


def _file_size_limit(max_bytes):
    def apply():
        import resource

        # Past the limit write() fails with EFBIG, as on a full disk with ENOSPC.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def run_isolated(code=None, *, cli=None, timeout=DEFAULT_TIMEOUT, rss_mb=DEFAULT_RSS_MB,
                 env=None, cwd=None, max_file_bytes=None):  # fmt: skip
    """Runs `python -c code` or `python -m alexnet_keras *cli` under a timeout and an RSS cap.

    `max_file_bytes` caps every file the child writes (RLIMIT_FSIZE): the
    stand-in for a full disk, which a test cannot make.
    """
    if (code is None) == (cli is None):
        raise TypeError("give code or cli")
    argv = [sys.executable, "-c", code] if code is not None else [
        sys.executable, "-m", "alexnet_keras", *map(str, cli)]  # fmt: skip
    child_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONFAULTHANDLER="")
    child_env.pop("PYTHONFAULTHANDLER")
    child_env.update(env or {})
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env, cwd=cwd,
        start_new_session=True,
        preexec_fn=None if max_file_bytes is None else _file_size_limit(max_file_bytes),
    )  # fmt: skip
    state = {"over": False, "peak": 0}

    def watch():
        while proc.returncode is None:
            rss = _tree_rss_kb(proc.pid)
            # VmHWM, the kernel's peak since exec, catches a spike between polls.
            state["peak"] = max(state["peak"], rss, _tree_rss_kb(proc.pid, "VmHWM:"))
            if rss > rss_mb * 1024:
                state["over"] = True
                _kill(proc)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    streams = {}
    readers = [
        threading.Thread(target=lambda n=n, f=f: streams.__setitem__(n, f.read()), daemon=True)
        for n, f in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for reader in readers:
        reader.start()
    timer = threading.Timer(timeout, lambda: (state.__setitem__("timed_out", True), _kill(proc)))
    timer.start()
    # Not wait4's ru_maxrss: Linux carries the parent's high-water mark across
    # fork and exec, so a large pytest process would make every child look large.
    _, status = os.waitpid(proc.pid, 0)
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    _kill(proc)  # grandchildren left behind
    for reader in readers:
        reader.join()
    watcher.join()
    peak_kb = state["peak"]
    over = state["over"] or peak_kb > rss_mb * 1024
    return Outcome(proc.returncode, streams["out"].decode(errors="replace"),
                   streams["err"].decode(errors="replace"), peak_kb / 1024,
                   state.get("timed_out", False), over)  # fmt: skip


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _check_clean(outcome):
    assert not outcome.timed_out, "hang:\n" + outcome.describe()
    assert not outcome.over_memory, "memory past the cap:\n" + outcome.describe()
    assert outcome.signal is None, f"killed by signal {outcome.signal}:\n" + outcome.describe()
    assert "Traceback" not in outcome.stderr, "traceback:\n" + outcome.describe()


def assert_refused(outcome, *fragments, code=2):
    """One `Error:` line on stderr naming each fragment, exit `code`, nothing else."""
    _check_clean(outcome)
    lines = outcome.stderr.strip().splitlines()
    assert outcome.returncode == code, f"expected exit {code}:\n" + outcome.describe()
    assert len(lines) == 1 and lines[0].startswith("Error: "), (
        "not one line:\n" + outcome.describe()
    )
    for fragment in fragments:
        assert str(fragment) in lines[0], f"{fragment!r} not named:\n" + outcome.describe()
    return lines[0]


def assert_loaded(outcome):
    """Exit 0, no traceback, within the time and memory caps."""
    _check_clean(outcome)
    assert outcome.returncode == 0, "expected success:\n" + outcome.describe()
