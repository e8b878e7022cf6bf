"""What terminal-safe, markup-as-text and Markdown display cost `rag ask` (figures for issue 19).

    PYTHONPATH=$PWD python bench/display_cost.py [INDEX_SQLITE] [--baseline /path/to/other/checkout]

CPU time (time.process_time) wherever the figure is work done, so a loaded machine does not
inflate it; wall time only for the delay to the first visible text. Prints: the import time of rag.terminal.render (fresh processes, min of N, also for a baseline checkout);
the display work of an extractive answer (excerpts + markup as text + Sources), cold and warm;
the import of rich's Markdown stack; rendering a streamed Markdown answer on a terminal; and the
delay to the first visible text with the LLM's first token after 0 and 300 ms.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = 15


def fresh(code: str, path: str) -> list[float]:
    """Run `code` in fresh interpreters; it prints one float (ms)."""
    # bytecode cached as in a real install (this machine sets PYTHONDONTWRITEBYTECODE, which makes
    # every import compile its source), in a folder of its own so the checkout stays clean
    env = {**os.environ, "PYTHONPATH": path, "PYTHONPYCACHEPREFIX": os.path.join(tempfile.gettempdir(), "rag-bench-pyc")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = []
    for _ in range(RUNS):
        result = subprocess.run([sys.executable, "-c", code], env=env, cwd=path, capture_output=True, text=True,
                                check=True)  # cwd: `python -c` puts it first on sys.path
        out.append(float(result.stdout.strip().splitlines()[-1]))
    return out


def importtime(module: str, path: str) -> list[float]:
    """CPU time of `import module` in a fresh process, after what rag.terminal.cli has already loaded."""
    return fresh(f"import time, re, typing, click; t = time.process_time(); import {module}; "
                 f"print((time.process_time() - t) * 1000)", path)


def show(label: str, values: list[float]) -> None:
    print(f"{label}: min {min(values):.1f} ms, median {statistics.median(values):.1f} ms (n={len(values)})")


ANSWER = """To read rows as dictionaries, use `csv.DictReader` [1]: it maps each row to a dict whose keys
come from the header row.

```python
import csv

with open('names.csv', newline='') as csvfile:
    reader = csv.DictReader(csvfile)
    for row in reader:
        print(row['first_name'], row['last_name'])
```

- Pass **newline=''** to `open()` so quoted newlines survive [1].
- Since Python 3.8 the rows are plain `dict` objects, not `OrderedDict` [2].
- To write dictionaries back, use `csv.DictWriter` with the same *fieldnames* [2].

See the [csv module documentation](https://docs.python.org/3/library/csv.html) for dialects.
""" * 2


def pieces(text: str, size: int = 6) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sqlite", nargs="?", help="an index's rag.sqlite, for the extractive answer")
    parser.add_argument("--baseline", help="another checkout to compare import times with")
    args = parser.parse_args()
    here = os.getcwd()

    show("import rag.terminal.render (this checkout)", importtime("rag.terminal.render", here))
    if args.baseline:
        show("import rag.terminal.render (baseline)", importtime("rag.terminal.render", args.baseline))
    show("import rag.safety", importtime("rag.safety", here))

    if args.sqlite:
        code = f"""
import json, sqlite3, time
from rag.answer.extractive import extractive_answer
from rag.answer.sources import sources_block
from rag.types import Hit, Source
try:
    from rag.terminal.render import answer_text
except ImportError:  # the baseline printed the answer as it was
    answer_text = lambda text: text
rows = sqlite3.connect({args.sqlite!r}).execute('select heading, text from chunks').fetchall()
# rag.sqlite holds heading paths as JSON lists; a baseline from before they were tuples takes them joined
joined = 'tuple' not in str(Hit.__annotations__['heading'])
rows = [(' > '.join(json.loads(h)) if joined else tuple(json.loads(h)), t) for h, t in rows]
hits = [Hit(i, 'docs/csv.rst', None, h, t, 'csv', 0.5, 0.6) for i, (h, t) in enumerate(rows)]
sources = [Source(i + 1, 'docs/csv.rst', None, h.heading, 0.5, h.text) for i, h in enumerate(hits)]
t = time.process_time()
answer_text(extractive_answer('How do I read rows of a CSV file as dictionaries?', hits, 0.2))
sources_block(sources)
print((time.process_time() - t) * 1000)
"""
        label = "extractive answer + answer text + Sources, first call in a process"
        show(f"{label} (this checkout)", fresh(code, here))
        if args.baseline:
            show(f"{label} (baseline)", fresh(code, args.baseline))

    show("import rich.console, rich.live, rich.markdown, rich.syntax",
         fresh("import time; t = time.process_time(); import rich.console, rich.live, rich.markdown, rich.syntax; "
               "print((time.process_time() - t) * 1000)", here))

    from rich.console import Console

    from rag.terminal.render import _stream_raw, stream_markdown

    renders = []
    for _ in range(5):
        out = io.StringIO()
        t = time.process_time()
        stream_markdown(iter(pieces(ANSWER)), Console(file=out, force_terminal=True, width=100))
        renders.append((time.process_time() - t) * 1000)
    show(f"stream_markdown of a {len(ANSWER)} char answer in {len(pieces(ANSWER))} pieces, no network wait", renders)
    raw = []
    for _ in range(5):
        sink = open(os.devnull, "w")
        t = time.process_time()
        _stream_raw(iter(pieces(ANSWER)), sink)
        raw.append((time.process_time() - t) * 1000)
    show("the same answer printed raw (safe only)", raw)
    from rich.markdown import Markdown

    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    one = []
    for _ in range(20):
        t = time.process_time()
        console.render_lines(Markdown(ANSWER, hyperlinks=False), console.options, pad=False)
        one.append((time.process_time() - t) * 1000)
    show("one Markdown render of the whole answer", one)

    import rich.live  # noqa: F401  (imported: its cost is the figure above)

    def paced(every: float = 0.015):
        # a server sends on its own clock: piece i is there at start + i * every, read or not
        start = time.perf_counter()
        for i, piece in enumerate(pieces(ANSWER)):
            ahead = start + (i + 1) * every - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            yield piece

    for name, run in (("raw", lambda: _stream_raw(paced(), open(os.devnull, "w"))),
                      ("markdown", lambda: stream_markdown(paced(), Console(file=io.StringIO(), force_terminal=True,
                                                                              width=100)))):
        walls, cpus = [], []
        for _ in range(3):
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
        ideal = len(pieces(ANSWER)) * 15
        print(f"paced stream, a piece every 15 ms ({ideal} ms), printed {name}: done after min {min(walls):.0f} ms "
              f"wall, {min(cpus):.0f} ms CPU")

    for wait in (0.0, 0.3):
        code = f"""
import io, time
class First(io.StringIO):
    first = None
    def write(self, s):
        if self.first is None and 'To' in s:
            self.first = time.perf_counter()
        return super().write(s)
import re
def llm():
    time.sleep({wait})
    yield from {pieces(ANSWER)!r}
from rag.terminal.render import stream_markdown
from rich.console import Console
out = First()
t = time.perf_counter()
stream_markdown(llm(), Console(file=out, force_terminal=True, width=100))
print((out.first - t - {wait}) * 1000)
"""
        # rich.console is imported before the clock starts (the Console is the caller's): what is
        # measured is rich.live, rich.markdown and the first render, less the LLM's wait
        show(f"first visible text after the first token, LLM waits {wait * 1000:.0f} ms", fresh(code, here))


if __name__ == "__main__":
    main()
