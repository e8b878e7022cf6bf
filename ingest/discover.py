"""Discovery: which files an ingest reads.

Folders are walked recursively (following symlinks, each real folder visited once so a link loop
ends). Hidden files and folders are skipped, and so is anything matched by a `.gitignore` or
`.ragignore` (gitignore syntax; .ragignore wins) in the folder or any folder above it up to the one named; as in git, the
deepest file that has a say about a path wins, so a nested `!pattern` can re-include. Files of
other types inside a folder are counted by suffix, not failed. Problems (a dangling link, a link
loop, a folder we may not read, a name that is not valid UTF-8, a FIFO or device named on the
command line) are reported and the walk goes on. Only regular files are ever listed: FIFOs,
devices and sockets inside a folder are passed over like other non-files.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ingest.formats import loader_for

IGNORE_FILE = ".ragignore"
# A repository's .gitignore keeps build output, vendored code and virtualenvs out as well
IGNORE_FILES = (".gitignore", IGNORE_FILE)


BAD_NAME = "file name is not valid UTF-8: rename it"


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)  # folders whose vanished files may be pruned
    skipped_types: dict[str, int] = field(default_factory=dict)  # files of other types in folders, by suffix
    problems: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return sum(self.skipped_types.values())

    def skip(self, path: Path) -> None:
        suffix = path.suffix.lower() or "(no extension)"
        self.skipped_types[suffix] = self.skipped_types.get(suffix, 0) + 1


def utf8_name(path: Path | str) -> bool:
    """Whether the name can be stored and shown: the index keeps paths as UTF-8 text, and a name
    that is not (bytes decoded with surrogate escapes) cannot even be written to SQLite."""
    try:
        os.fsencode(str(path)).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _load_ignore(folder: Path):
    lines: list[str] = []
    for name in IGNORE_FILES:  # .ragignore last: its rules win over .gitignore's in the same folder
        path = folder / name
        try:  # in a folder we may not search, even this check fails; the listing reports it
            if path.is_file():
                lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
    if not lines:
        return None
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _ignored(specs: list[tuple[Path, object]], path: Path, is_dir: bool) -> bool:
    for base, spec in reversed(specs):  # the nearest .ragignore first
        rel = path.relative_to(base).as_posix() + ("/" if is_dir else "")
        verdict = spec.check_file(rel).include  # True: ignored, False: re-included by "!", None: silent
        if verdict is not None:
            return verdict
    return False


def walk(root: Path, found: Discovery) -> None:
    seen: set[tuple[int, int]] = set()

    def visit(folder: Path, specs: list[tuple[Path, object]], ancestors: tuple[tuple[int, int], ...]) -> None:
        try:
            st = folder.stat()
        except OSError as exc:
            found.problems.append((folder, describe_os_error(exc)))
            return
        key = (st.st_dev, st.st_ino)
        if key in ancestors:  # a link back up the tree: report it, but read its files only once
            found.problems.append((folder, "symlink loop (links back to a folder above it)"))
            return
        if key in seen:
            return  # a second link to a folder already walked: its files are already listed
        seen.add(key)
        ancestors += (key,)
        spec = _load_ignore(folder)
        if spec is not None:
            specs = specs + [(folder, spec)]
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            found.problems.append((folder, describe_os_error(exc)))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            try:
                is_dir = entry.is_dir()  # follows symlinks
                is_file = entry.is_file()
            except OSError as exc:
                found.problems.append((path, describe_os_error(exc)))
                continue
            if not is_dir and not is_file:
                if entry.is_symlink():
                    found.problems.append((path, _dangling_reason(path)))
                continue
            if _ignored(specs, path, is_dir):
                continue
            if not utf8_name(entry.name):
                # a folder with such a name is reported once; the files under it are not read
                found.problems.append((path, BAD_NAME))
            elif is_dir:
                visit(path, specs, ancestors)
            elif loader_for(path) is None:
                found.skip(path)
            else:
                found.files.append(path)

    visit(root, [], ())


def _dangling_reason(path: Path) -> str:
    try:
        path.stat()
    except OSError as exc:
        return describe_os_error(exc)
    return "not a regular file"


def describe_os_error(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT:
        return "broken symlink or vanished file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def not_regular(mode: int) -> str | None:
    """Why a file of this mode is not read: a FIFO blocks a reader forever and a device never ends
    (`/dev/zero`), so only regular files are ever opened."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "a special file")
    return f"not a regular file ({kind}): name a file or a folder"


def discover(paths: list[Path]) -> Discovery:
    """Files to ingest from the paths named on the command line (made absolute, symlinks kept).
    A named FIFO, device or socket is reported before anything opens it."""
    found = Discovery()
    for given in paths:
        path = Path(os.path.abspath(given))
        if not utf8_name(path):
            found.problems.append((path, BAD_NAME))
        elif path.is_dir():
            found.roots.append(path)
            walk(path, found)
        else:
            try:
                problem = not_regular(path.stat().st_mode)
            except OSError:  # missing or unreadable: the reader reports it with its reason
                problem = None
            if problem:
                found.problems.append((path, problem))
            else:
                found.files.append(path)
    # the same file named twice (or inside two named folders) is read once
    found.files = list(dict.fromkeys(found.files))
    return found
