"""What each optional part of rag costs to install: disk, packages and install time.

(a) Disk, from the environment this runs in (it must have every extra installed, as `make install`
    does): for each extra in pyproject.toml, the distributions it pulls in that the core install
    does not, and their installed size (the sizes their RECORD files list). The core line is
    everything `pip install rag` installs, torch included.
(b) Time, with --time: a fresh virtual environment in a temporary folder, then `pip install -e .`
    (the core) and, for each extra in turn, `pip install -e '.[extra]'`, timed, after which the
    packages it added are uninstalled so that the next extra starts from the core again. Both go
    through constraints.txt and pip's own cache, so they time resolving, unpacking and compiling,
    not the network (on a machine with a local wheelhouse, as here, nothing is downloaded); torch
    comes from PyTorch's CPU index first when it answers, as in the Makefile.

Run by hand with `nice`, never from the tests:

    nice .venv/bin/python bench/install_size.py            # disk only, a second
    nice .venv/bin/python bench/install_size.py --time     # and install times (minutes)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
SKIPPED = ("all", "bench")  # `all` is the others together; bench (llama.cpp) is built from source, never needed


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(requirement: str) -> tuple[str, set[str]]:
    """The canonical name a requirement asks for, and the extras it asks with."""
    from packaging.requirements import Requirement

    parsed = Requirement(requirement)
    return canonical(parsed.name), set(parsed.extras)


def installed() -> dict[str, metadata.Distribution]:
    return {canonical(d.metadata["Name"]): d for d in metadata.distributions()}


def closure(requirements: list[str], dists: dict[str, metadata.Distribution]) -> set[str]:
    """Every distribution `requirements` need, themselves included, following the extras they ask
    for (pypdf[crypto] brings cryptography) and the environment markers that hold here."""
    from packaging.requirements import Requirement

    seen: set[tuple[str, str]] = set()
    stack = [(name, extra) for name, extras in map(parse, requirements) for extra in {"", *extras}]
    while stack:
        name, extra = stack.pop()
        if (name, extra) in seen or name not in dists:
            continue
        seen.add((name, extra))
        for line in dists[name].requires or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
                continue
            if not requirement.marker and extra:
                continue  # the unconditional ones came with extra ""
            wanted = canonical(requirement.name)
            stack += [(wanted, e) for e in {"", *requirement.extras}]
    return {name for name, _ in seen}


def size_of(name: str, dists: dict[str, metadata.Distribution]) -> int:
    return sum(f.size or 0 for f in dists[name].files or [])


def project() -> tuple[list[str], dict[str, list[str]]]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = {name: reqs for name, reqs in data["optional-dependencies"].items() if name not in SKIPPED}
    return data["dependencies"], extras


def disk() -> list[tuple[str, str, str, str]]:
    dists = installed()
    core_reqs, extras = project()
    core = closure(core_reqs, dists)
    rows = [("core (pip install rag)", f"{len(core)}", f"{sum(size_of(n, dists) for n in core) / 1e6:,.0f}", "")]
    for extra, reqs in extras.items():
        missing = [name for name, _ in map(parse, reqs) if name not in dists]
        if missing:
            sys.exit(f"error: {', '.join(missing)} (rag[{extra}]) not installed here: run this from `make install`'s venv")
        added = closure(reqs, dists) - core
        rows.append((f"rag[{extra}]", f"{len(added)}", f"{sum(size_of(n, dists) for n in added) / 1e6:,.1f}",
                     ", ".join(sorted(added))))
    return rows


def pip(venv: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(venv / "bin" / "pip"), *args], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def listed(venv: Path) -> set[str]:
    out = subprocess.run([str(venv / "bin" / "pip"), "list", "--format=json"], check=True, capture_output=True,
                         text=True).stdout
    return {canonical(d["name"]) for d in json.loads(out)}


def install_times() -> list[tuple[str, str, str]]:
    _, extras = project()
    folder = Path(tempfile.mkdtemp(prefix="rag-install-"))
    try:
        venv = folder / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip(venv, "install", "--quiet", "pip>=24,<27")
        constraints = ("-c", str(REPO / "constraints.txt"))
        try:  # as the Makefile: PyTorch's CPU index when it answers within seconds, else what pip reaches
            seconds = pip(venv, "install", "--quiet", "--retries", "0", "--timeout", "5", "--extra-index-url",
                          TORCH_INDEX, *constraints, "torch==2.13.0")
        except subprocess.CalledProcessError:
            seconds = pip(venv, "install", "--quiet", *constraints, "torch==2.13.0")
        seconds += pip(venv, "install", "--quiet", *constraints, "-e", ".")
        rows = [("core (torch first)", f"{seconds:.0f}", f"{len(listed(venv))}")]
        core = listed(venv)
        for extra in extras:
            seconds = pip(venv, "install", "--quiet", *constraints, "-e", f".[{extra}]")
            added = listed(venv) - core
            rows.append((f"rag[{extra}]", f"{seconds:.0f}", f"{len(added)}"))
            if added:
                pip(venv, "uninstall", "--quiet", "--yes", *sorted(added))
        seconds = pip(venv, "install", "--quiet", *constraints, "-e", ".[all,test]")
        rows.append(("rag[all,test] (make install, after the core)", f"{seconds:.0f}", f"{len(listed(venv) - core)}"))
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.ljust(w) if i in (0, len(cells) - 1) else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", action="store_true", help="also time installs in a fresh venv (minutes)")
    args = parser.parse_args()
    print(table(("install", "packages", "MB on disk", "packages only it brings"), disk()))
    if args.time:
        print()
        print(table(("install", "seconds", "packages"), install_times()))


if __name__ == "__main__":
    main()
