"""Where benchmarks put their results: a JSON file and a section of docs/benchmarks.md.

Each benchmark owns the text between its two marker comments in the docs;
hand-written notes outside the markers survive a rerun. The benchmarks
import this module as a sibling (they run as scripts from this folder).

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "benchmarks.md")
    >>> write_section(path, "<!-- a:begin -->", "<!-- a:end -->",
    ...               "<!-- a:begin -->\\nold\\n<!-- a:end -->\\n")
    >>> with open(path, "a") as f:
    ...     _ = f.write("notes\\n")
    >>> write_section(path, "<!-- a:begin -->", "<!-- a:end -->",
    ...               "<!-- a:begin -->\\nnew\\n<!-- a:end -->\\n")
    >>> print(open(path).read(), end="")
    # Benchmarks
    <BLANKLINE>
    <!-- a:begin -->
    new
    <!-- a:end -->
    notes
"""

import json
import os
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
DOCS = os.path.join(REPO, "docs", "benchmarks.md")


def publish(stem: str, report: dict, markdown: str, quick: bool, docs: bool,
            begin: str, end: str) -> None:
    """Writes results/<stem>.json (<stem>.partial.json for a quick run), prints
    `markdown` and, for a full run with `docs`, makes it the docs section."""
    name = stem + (".partial" if quick else "") + ".json"
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, name), "w") as f:
        json.dump(report, f, indent=2)
    print(markdown)
    if docs and not quick:
        write_section(DOCS, begin, end, markdown)


def git_commit(dirty_paths=()) -> str:
    """The repository's short HEAD commit ("unknown" without git), followed by
    e.g. " (deeprec/, csrc/ modified)" naming those of `dirty_paths`
    (relative to the repository root) that have uncommitted changes."""
    def git(*argv):
        return subprocess.run(["git", "-C", REPO, *argv], capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = [p for p in dirty_paths if git("status", "--porcelain", p)]
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    if dirty:
        commit += " (" + ", ".join(p + "/" for p in dirty) + " modified)"
    return commit


def cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot, from /proc/stat; busy
    excludes idle and iowait time. Differences between two calls give the
    machine's load over an interval."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # Fields 8 and 9 (guest time) are already counted in user time.
    total = sum(fields[:8])
    ticks = os.sysconf("SC_CLK_TCK")
    return (total - fields[3] - fields[4]) / ticks, total / ticks


class OtherCpu:
    """Context manager: the CPU that *other* processes used while it was
    entered, as a share of the machine in `share` (0 = quiet, 0.5 = one of
    two cores busy elsewhere), and the wall time it was entered in `seconds`."""

    def __enter__(self):
        self._wall = time.perf_counter()
        self._busy = cpu_seconds()[0]
        self._own = sum(os.times()[:2])
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._wall
        other = (cpu_seconds()[0] - self._busy) - (sum(os.times()[:2]) - self._own)
        self.share = (max(0.0, other) / (self.seconds * os.cpu_count())
                      if self.seconds > 0 else 0.0)


def write_section(path: str, begin: str, end: str, text: str) -> None:
    """Replaces the text from `begin` to `end` in `path` by `text` (which holds both).

    The section is appended when `path` lacks it; a missing file starts as
    "# Benchmarks".
    """
    old = "# Benchmarks\n"
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + text.rstrip("\n") + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(new)
