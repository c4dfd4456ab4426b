"""The one progress meter: downloads, predictions, training, feature extraction.

Every long job reports in one format,
`{label}: {done}/{total} {unit}, {rate} {unit}/s, ETA 1m23s[, note]`,
on one line that is rewritten in place on a terminal (`\\r`) and as plain,
throttled lines otherwise (logs, CI). The last line always ends with a
newline, so whatever is printed next starts clean. Standard library only.
"""

import sys
import time

__all__ = ["Progress", "format_duration"]

# A terminal line is redrawn at most this often; more is flicker, not news.
TTY_INTERVAL_S = 0.25
# Without a terminal each update is a new line: this many seconds apart at most.
LINE_INTERVAL_S = 5.0


def format_duration(seconds):
    """`"42s"`, `"1m23s"` or `"2h05m"`: a duration at the precision an ETA deserves.

    Example:

    >>> from alexnet_keras.progress import format_duration
    >>> format_duration(42.4), format_duration(83), format_duration(7500)
    ('42s', '1m23s', '2h05m')
    """
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts work done and draws `label: done/total unit, rate unit/s, ETA`.

    Args:
        total: the amount of work, in the units `update` counts; `None` if
            unknown (no total and no ETA are shown).
        label: what is being done, e.g. a file name or `"predict"`.
        unit: the unit shown, e.g. `"images"`, `"img"`, `"MB"`.
        stream: where to write; default `sys.stderr` (looked up at creation).
        enabled: `False` draws nothing.
        scale: counts are divided by this for display (`1e6` shows bytes as MB).
        decimals: decimals of the displayed counts.
        interval: seconds between lines; default 0.25 on a terminal and 5
            otherwise. The final line is always drawn.
        start: work already done when the meter starts (a resumed run); the
            rate counts only what is done from here.

    Example:

    >>> import io
    >>> from alexnet_keras.progress import Progress
    >>> out = io.StringIO()
    >>> meter = Progress(4, label="predict", unit="images", stream=out, interval=0)
    >>> meter.update(2)
    >>> meter.update(4)
    >>> lines = out.getvalue().splitlines()
    >>> lines[0].startswith("predict: 2/4 images, "), lines[1].endswith(" images/s, ETA 0s")
    (True, True)
    """

    def __init__(self, total, *, label, unit, stream=None, enabled=True, scale=1, decimals=0,
                 interval=None, start=0):  # fmt: skip
        self.total, self.label, self.unit = total, label, unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(enabled)
        self.scale, self.decimals = scale, decimals
        self.tty = self.enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        default = TTY_INTERVAL_S if self.tty else LINE_INTERVAL_S
        self.interval = default if interval is None else interval
        self.start_count, self.began = start, time.monotonic()
        # The first line comes one interval in: a line at 0 % says nothing.
        self._last_drawn = self.began
        self._pending = None  # the latest update that was not drawn
        self._open = False  # a terminal line without its newline
        self._width = 0

    def line(self, done, note="", now=None):
        """The text of the progress line at `done` (no `\\r`, no newline)."""
        elapsed = max((time.monotonic() if now is None else now) - self.began, 1e-9)
        rate = (done - self.start_count) / elapsed
        shown = f"{done / self.scale:.{self.decimals}f}"
        if self.total is not None:
            shown += f"/{self.total / self.scale:.{self.decimals}f}"
        text = f"{self.label}: {shown} {self.unit}, {rate / self.scale:.1f} {self.unit}/s"
        if self.total is not None:
            eta = format_duration((self.total - done) / rate) if rate > 0 else "?"
            text += f", ETA {eta}"
        return f"{text}, {note}" if note else text

    def update(self, done, note="", *, final=None):
        """Records `done` units; draws a line unless the last one is too recent.

        Args:
            done: the work done so far (not an increment).
            note: extra text after the ETA, e.g. a loss.
            final: end the line with a newline and draw it whatever the
                interval; default: when `done` reaches `total`.
        """
        if not self.enabled:
            return
        now = time.monotonic()
        if final is None:
            final = self.total is not None and done >= self.total
        recent = now - self._last_drawn < self.interval
        if recent and not final:
            self._pending = (done, note)
            return
        self._draw(self.line(done, note, now), final)
        self._last_drawn, self._pending = now, None

    def close(self):
        """Draws the last update if it was throttled, and ends an open line."""
        if not self.enabled:
            return
        if self._pending is not None:
            done, note = self._pending
            self._draw(self.line(done, note), final=True)
            self._pending = None
        elif self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def _draw(self, text, final):
        if self.tty:
            # Pad to the previous line's length: a shorter line must not show its tail.
            self.stream.write("\r" + text.ljust(self._width) + ("\n" if final else ""))
            self._width = 0 if final else len(text)
            self._open = not final
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
