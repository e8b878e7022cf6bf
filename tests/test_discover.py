"""Discovery: which files an ingest of a folder reads, and what it reports instead of reading."""

from __future__ import annotations

import os
from pathlib import Path

from ingest.discover import discover
from tests.helpers import needs_file_modes


def make(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"text of {name}\n")


def found_names(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in discover([root]).files)


def test_folders_are_walked_recursively(tmp_path):
    make(tmp_path, "a.md", "one/b.txt", "one/two/three/c.rst", "one/two/d.html", "e.pdf")

    assert found_names(tmp_path) == ["a.md", "e.pdf", "one/b.txt", "one/two/d.html", "one/two/three/c.rst"]


def test_hidden_files_and_folders_are_skipped(tmp_path):
    make(tmp_path, "visible.md", ".hidden.md", ".git/notes.txt", "sub/.cache/page.html", "sub/ok.txt")

    assert found_names(tmp_path) == ["sub/ok.txt", "visible.md"]


def test_a_hidden_file_named_explicitly_is_read(tmp_path):
    make(tmp_path, ".notes.txt")

    assert discover([tmp_path / ".notes.txt"]).files == [tmp_path / ".notes.txt"]


def test_other_file_types_in_folders_are_counted_as_skipped_not_failed(tmp_path):
    make(tmp_path, "keep.md", "song.mp3", "data.sqlite", "sub/archive.zip", "Makefile")

    found = discover([tmp_path])

    assert [p.name for p in found.files] == ["keep.md"]
    assert found.skipped == 4
    assert found.problems == []


def test_skipped_files_are_counted_by_type(tmp_path):
    make(tmp_path, "keep.md", "a.mp3", "b.MP3", "sub/c.mp3", "d.zip", "Makefile")

    found = discover([tmp_path])

    assert found.skipped_types == {".mp3": 3, ".zip": 1, "(no extension)": 1}
    assert found.skipped == 5


def test_document_formats_are_found(tmp_path):
    names = ["a.docx", "b.pptx", "c.odt", "d.epub", "e.ipynb", "f.csv", "g.tsv", "h.eml", "i.mbox"]
    make(tmp_path, *names)

    assert found_names(tmp_path) == names


def test_a_file_name_that_is_not_utf8_is_reported_and_the_rest_is_found(tmp_path):
    make(tmp_path, "good.txt")
    bad = tmp_path / os.fsdecode(b"caf\xe9.txt")  # Latin-1 bytes, as an old archive unpacks them
    bad.write_text("un caf\u00e9\n")
    bad_folder = tmp_path / os.fsdecode(b"r\xe9sum\xe9s")
    bad_folder.mkdir()
    (bad_folder / "cv.txt").write_text("cv\n")

    found = discover([tmp_path])

    assert [p.name for p in found.files] == ["good.txt"]
    assert sorted(found.problems) == sorted([(bad, "file name is not valid UTF-8: rename it"),
                                             (bad_folder, "file name is not valid UTF-8: rename it")])


def test_a_file_named_explicitly_with_a_name_that_is_not_utf8_is_reported(tmp_path):
    bad = tmp_path / os.fsdecode(b"caf\xe9.txt")
    bad.write_text("x\n")

    found = discover([bad])

    assert found.files == []
    assert found.problems == [(bad, "file name is not valid UTF-8: rename it")]


def test_ragignore_patterns_exclude_files_and_folders(tmp_path):
    make(tmp_path, "guide.md", "build/out.html", "src/build/gen.txt", "drafts/idea.md", "notes.txt")
    (tmp_path / ".ragignore").write_text("# generated output\nbuild/\n/drafts\n*.txt\n")

    assert found_names(tmp_path) == ["guide.md"]


def test_ragignore_path_pattern_matches_only_that_nested_folder(tmp_path):
    make(tmp_path, "docs/private/secret.md", "docs/public/open.md", "other/private/kept.md")
    (tmp_path / ".ragignore").write_text("docs/private/\n")

    assert found_names(tmp_path) == ["docs/public/open.md", "other/private/kept.md"]


def test_ragignore_negation_reincludes_a_file(tmp_path):
    make(tmp_path, "a.md", "b.md", "important.md")
    (tmp_path / ".ragignore").write_text("*.md\n!important.md\n")

    assert found_names(tmp_path) == ["important.md"]


def test_ragignore_in_a_subfolder_applies_relative_to_that_folder(tmp_path):
    make(tmp_path, "top/old.md", "sub/old.md", "sub/new.md")
    (tmp_path / "sub" / ".ragignore").write_text("old.md\n")

    assert found_names(tmp_path) == ["sub/new.md", "top/old.md"]


def test_nested_ragignore_can_reinclude_what_a_parent_ignored(tmp_path):
    make(tmp_path, "logs/day1.txt", "reports/summary.txt", "reports/raw.txt")
    (tmp_path / ".ragignore").write_text("*.txt\n")
    (tmp_path / "reports" / ".ragignore").write_text("!summary.txt\n")

    assert found_names(tmp_path) == ["reports/summary.txt"]


def test_symlink_to_a_parent_folder_is_reported_and_the_walk_ends(tmp_path):
    make(tmp_path, "a.md", "sub/b.md")
    (tmp_path / "sub" / "up").symlink_to("..", target_is_directory=True)

    found = discover([tmp_path])

    assert sorted(p.relative_to(tmp_path).as_posix() for p in found.files) == ["a.md", "sub/b.md"]
    assert found.problems == [(tmp_path / "sub" / "up", "symlink loop (links back to a folder above it)")]


def test_self_referencing_file_link_is_reported(tmp_path):
    make(tmp_path, "a.md")
    (tmp_path / "loop.md").symlink_to("loop.md")

    found = discover([tmp_path])

    assert [p.name for p in found.files] == ["a.md"]
    assert found.problems == [(tmp_path / "loop.md", "symlink loop")]


def test_dangling_symlink_is_reported(tmp_path):
    (tmp_path / "gone.md").symlink_to(tmp_path / "deleted.md")

    found = discover([tmp_path])

    assert found.files == []
    assert found.problems == [(tmp_path / "gone.md", "broken symlink or vanished file")]


def test_two_links_to_one_folder_read_its_files_once_without_complaint(tmp_path):
    make(tmp_path, "shared/a.md")
    (tmp_path / "link1").symlink_to(tmp_path / "shared", target_is_directory=True)
    (tmp_path / "link2").symlink_to(tmp_path / "shared", target_is_directory=True)

    found = discover([tmp_path])

    assert len(found.files) == 1
    assert found.problems == []


def test_a_file_named_twice_is_read_once(tmp_path):
    make(tmp_path, "a.md")

    found = discover([tmp_path / "a.md", tmp_path, Path(os.path.relpath(tmp_path / "a.md"))])

    assert found.files == [tmp_path / "a.md"]


def test_folders_named_become_prune_roots_but_files_do_not(tmp_path):
    make(tmp_path, "dir/a.md", "b.md")

    found = discover([tmp_path / "dir", tmp_path / "b.md"])

    assert found.roots == [tmp_path / "dir"]


@needs_file_modes
def test_unreadable_folder_is_reported_and_the_rest_is_found(tmp_path):
    make(tmp_path, "ok.md", "locked/secret.md")
    (tmp_path / "locked").chmod(0)
    try:
        found = discover([tmp_path])
    finally:
        (tmp_path / "locked").chmod(0o755)

    assert [p.name for p in found.files] == ["ok.md"]
    assert found.problems == [(tmp_path / "locked", "permission denied")]
