"""The sandbox's memory cap counts each process of the tree once, and every exec'd descendant."""

from tests.sandbox import run_isolated

_FORK_HOLDING = """
import os, signal, time
block = bytearray(300 << 20)  # touched: 300 MB resident in this process
for i in range(0, len(block), 4096):
    block[i] = 1
pid = os.fork()  # the copy shares those pages until it writes or execs
if pid == 0:
    time.sleep(3)
    os._exit(0)
time.sleep(2)
os.kill(pid, signal.SIGKILL)
print("done")
"""

_EXEC_EATING = """
import subprocess, sys
code = ("b = bytearray(400 << 20)\\nfor i in range(0, len(b), 4096): b[i] = 1\\n"
        "import time; time.sleep(5)")
subprocess.run([sys.executable, "-c", code])
"""


def test_a_fork_not_yet_execd_is_not_counted_twice():
    # vfork'd children (subprocess's way) show their parent's pages as their own until
    # the exec; counted twice, a 700 MB TensorFlow parent starting a reader hit 1.5 GB.
    outcome = run_isolated(_FORK_HOLDING, timeout=30, rss_mb=500)
    assert outcome.returncode == 0 and not outcome.over_memory, outcome.describe()
    assert outcome.stdout.strip() == "done"


def test_an_execd_grandchild_past_the_cap_is_caught():
    outcome = run_isolated(_EXEC_EATING, timeout=30, rss_mb=300)
    assert outcome.over_memory, outcome.describe()
