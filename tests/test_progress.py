"""The one progress meter: its format, ETA, terminal and plain-line modes."""

import io
import types

import pytest

from alexnet_keras import progress
from alexnet_keras.progress import Progress, format_duration


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(monotonic=clock))
    return clock


def test_format_rate_and_eta(clock):
    out = io.StringIO()
    meter = Progress(100, label="predict", unit="images", stream=out, interval=0)
    clock.now += 10
    meter.update(25)
    assert out.getvalue() == "predict: 25/100 images, 2.5 images/s, ETA 30s\n"
    clock.now += 10
    meter.update(50, "loss 0.5")
    assert (
        out.getvalue().splitlines()[1] == "predict: 50/100 images, 2.5 images/s, ETA 20s, loss 0.5"
    )


def test_eta_formats_and_unknown_totals(clock):
    assert [format_duration(s) for s in (0, 59.4, 60, 83, 3599, 3600, 7500, -3)] == [
        "0s", "59s", "1m00s", "1m23s", "59m59s", "1h00m", "2h05m", "0s"
    ]  # fmt: skip
    meter = Progress(None, label="f.bin", unit="MB", stream=io.StringIO(), scale=1e6, decimals=1)
    clock.now += 2
    assert meter.line(3_000_000) == "f.bin: 3.0 MB, 1.5 MB/s"  # no total, no ETA
    meter = Progress(10, label="x", unit="img", stream=io.StringIO())
    assert meter.line(0).endswith("ETA ?")  # nothing done yet: no rate to extrapolate


def test_a_resumed_run_counts_its_rate_from_the_start(clock):
    meter = Progress(1000, label="train", unit="img", stream=io.StringIO(), start=600)
    clock.now += 10
    # 100 images in 10 s, not 700: the ETA of the 300 left is 30 s.
    assert meter.line(700) == "train: 700/1000 img, 10.0 img/s, ETA 30s"


def test_plain_lines_are_throttled_and_the_last_is_always_drawn(clock):
    out = io.StringIO()
    meter = Progress(10**9, label="f.bin", unit="MB", stream=out, scale=1e6, decimals=1)
    for done in range(0, 10**9, 10**6):
        clock.now += 0.001
        meter.update(done)
    assert out.getvalue() == ""  # 1 s in: the first line is due at 5 s
    clock.now += 4.5
    meter.update(10**8)
    meter.update(2 * 10**8)  # too soon after the last line
    meter.update(10**9)  # the total: drawn whatever the interval
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue() and out.getvalue().endswith("\n")
    assert lines[0].startswith("f.bin: 100.0/1000.0 MB, ")
    assert lines[1].startswith("f.bin: 1000.0/1000.0 MB, ") and lines[1].endswith(" MB/s, ETA 0s")


def test_a_terminal_gets_one_rewritten_line_and_a_final_newline(clock):
    out = Terminal()
    meter = Progress(3, label="predict", unit="images", stream=out)
    for done in (1, 2):
        clock.now += 1
        meter.update(done, "x" * (3 - done))  # the second line is shorter
    assert out.getvalue().count("\r") == 2 and "\n" not in out.getvalue()
    first, second = out.getvalue().split("\r")[1:]
    assert len(second) == len(first)  # padded: no tail of the longer line stays visible
    clock.now += 1
    meter.update(3)
    last = out.getvalue().split("\r")[-1]
    assert last.rstrip() == "predict: 3/3 images, 1.0 images/s, ETA 0s" and last.endswith("\n")
    assert out.getvalue().count("\n") == 1


def test_close_draws_a_throttled_last_update_and_ends_an_open_line(clock):
    out = io.StringIO()
    meter = Progress(10, label="features", unit="img", stream=out)
    clock.now += 1
    meter.update(4)  # throttled
    meter.close()
    assert out.getvalue() == "features: 4/10 img, 4.0 img/s, ETA 2s\n"
    term = Terminal()
    meter = Progress(10, label="features", unit="img", stream=term, interval=0)
    meter.update(4)
    meter.close()
    assert term.getvalue().startswith("\rfeatures: 4/10 img") and term.getvalue().endswith("\n")


def test_final_ends_the_line_before_the_total(clock):
    term = Terminal()
    meter = Progress(100, label="train", unit="img", stream=term, interval=0)
    meter.update(50, "epoch 1/2", final=True)  # the end of an epoch: logs follow
    assert term.getvalue().endswith("epoch 1/2\n")


def test_disabled_draws_nothing(clock):
    out = Terminal()
    meter = Progress(5, label="x", unit="img", stream=out, enabled=False)
    meter.update(5)
    meter.close()
    assert out.getvalue() == ""


def test_the_default_stream_is_stderr_at_creation(capsys):
    meter = Progress(1, label="x", unit="img")
    meter.update(1)
    assert capsys.readouterr().err.startswith("x: 1/1 img, ")
