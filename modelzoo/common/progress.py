"""A progress bar for training: step, loss, samples/s, ETA (one redrawn line on a terminal)."""

from __future__ import annotations

import sys
import time


def format_bar(done: int, total: int | None, width: int = 28) -> str:
    """`[#######.....]` for done/total (a bare count when total is unknown).

    Example:
      >>> format_bar(5, 10, width=10)
      '[#####.....]'
    """
    if not total:
        return f"[{done}]"
    filled = min(width, int(width * done / total))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def format_seconds(seconds: float) -> str:
    """`m:ss` (or `h:mm:ss`).

    Example:
      >>> format_seconds(75.2), format_seconds(3725)
      ('1:15', '1:02:05')
    """
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    """Prints training progress to `stream`.

    On a terminal one line is redrawn at most `refresh` times a second; in a
    log (a pipe or file) a full line is printed every `log_every` steps, so
    logs stay readable.
    """

    def __init__(self, total_steps: int | None, batch_size: int, log_every: int = 100,
                 stream=None, refresh: float = 0.25):
        self.total, self.batch_size, self.log_every = total_steps, batch_size, log_every
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.refresh = refresh
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._loss = None

    def update(self, step: int, loss: float, samples_per_sec: float | None) -> None:
        # An exponential average shows the trend through per-batch noise.
        self._loss = loss if self._loss is None else 0.98 * self._loss + 0.02 * loss
        now = time.perf_counter()
        if self.tty:
            if now - self._last_draw < self.refresh and step != self.total:
                return
            self._last_draw = now
            self.stream.write("\r" + self._line(step, samples_per_sec, now) + "\033[K")
        elif step % self.log_every == 0 or step == self.total:
            self.stream.write(self._line(step, samples_per_sec, now) + "\n")
        self.stream.flush()

    def _line(self, step: int, samples_per_sec: float | None, now: float) -> str:
        elapsed = now - self.start
        parts = [f"{format_bar(step, self.total)} step {step}" +
                 (f"/{self.total}" if self.total else ""),
                 f"loss {self._loss:.4f}"]
        if samples_per_sec:
            parts.append(f"{samples_per_sec:,.0f} samples/s")
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if self.total and step:
            parts.append(f"eta {format_seconds(elapsed / step * (self.total - step))}")
        return "  ".join(parts)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
