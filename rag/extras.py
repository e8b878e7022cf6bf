"""The optional parts of rag (pyproject.toml's extras) and the one check that a command's part is there.

`pip install rag` gives ingest, ask, chat, status, ls, rm and eval. What only some people need is
an extra: `map` (openTSNE, matplotlib), `serve` (starlette, uvicorn), `mcp` (the MCP SDK), `ray`
and `int8` (NNCF, for the openvino-int8 runtime, which "auto" picks only where NNCF is
installed). `make install` installs them all. A command that needs a missing one stops with one
line naming it, before any work is done.
"""

from __future__ import annotations

import importlib.util

from rag.errors import MissingExtra


def installed(module: str) -> bool:
    """Whether `module` can be imported. find_spec, not an import: the check costs nothing (a module
    set to None in sys.modules, as tests simulate a missing one, counts as missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def require(extra: str, needed_for: str, *modules: str, alternative: str | None = None) -> None:
    """Raise MissingExtra naming `extra` unless every module in `modules` is installed; the command
    imports what it needs when it needs it."""
    if not all(installed(module) for module in modules):
        raise MissingExtra(extra, needed_for, alternative)
