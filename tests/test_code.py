"""Source code read by its syntax (tree-sitter grammars): each definition is a section headed by its
qualified name, comments and docstrings stay with their code, and a repository's .gitignore is
honoured."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ingest.discover import discover
from ingest.formats import loader_for
from ingest.formats.code import SPLIT_CHARS


def read(path: Path, source: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return loader_for(path)(path, path.read_bytes())


def by_heading(sections) -> dict[tuple[str, ...], str]:
    found: dict[tuple[str, ...], str] = {}
    for s in sections:
        found[s.heading] = found.get(s.heading, "") + s.text
    return found


PYTHON = '''
"""Lamp control for the lighthouse."""

import time

WICK_MM = 12


# Trimming too short starves the flame; the keeper's log says why.
@retry(times=3)
def trim(wick):
    """Cut the wick back to WICK_MM millimetres."""
    return wick[:WICK_MM]


class Lamp:
    """The lamp in the lantern room."""

    def light(self):
        return "lit"
'''


def test_python_functions_and_classes_are_sections_headed_by_their_names(tmp_path):
    _, sections, pages = read(tmp_path / "lamp.py", PYTHON)

    found = by_heading(sections)
    assert pages is None
    assert list(found) == [(), ("trim",), ("Lamp",)]
    assert found[()].startswith('"""Lamp control') and "WICK_MM = 12" in found[()]
    # the comment above it and its decorator go with the function; the docstring is inside it
    assert found[("trim",)].startswith("# Trimming too short starves the flame")
    assert "@retry(times=3)" in found[("trim",)] and "Cut the wick back" in found[("trim",)]
    assert "def light" in found[("Lamp",)]


def test_a_long_class_is_cut_into_its_methods_under_the_class_name(tmp_path):
    methods = "\n".join(f'''
    def check_{n}(self):
        """Check gauge number {n} of the lamp and note its reading in the log."""
        reading = self.gauges[{n}].read()
        self.log.append(("gauge", {n}, reading))
        return reading
''' for n in range(12))
    source = f'class Lamp:\n    """The lamp."""\n\n    lit = False\n{textwrap.indent(textwrap.dedent(methods), "    ")}'
    assert len(source) > SPLIT_CHARS

    _, sections, _ = read(tmp_path / "lamp.py", source)

    found = by_heading(sections)
    assert list(found) == [("Lamp",)] + [("Lamp", f"check_{n}") for n in range(12)]
    assert found[("Lamp",)].startswith("class Lamp:") and "lit = False" in found[("Lamp",)]
    assert "gauge number 7" in found[("Lamp", "check_7")]


def test_python_module_title_is_its_dotted_name(tmp_path):
    (tmp_path / "harbour" / "lights").mkdir(parents=True)
    (tmp_path / "harbour" / "__init__.py").write_text("")
    (tmp_path / "harbour" / "lights" / "__init__.py").write_text("")

    title, _, _ = read(tmp_path / "harbour" / "lights" / "lamp.py", PYTHON)

    assert title == "harbour.lights.lamp"


@pytest.mark.parametrize("name, source, headings", [
    ("app.ts", '''
        import { log } from "./log";

        /** Start the beacon. */
        export function start(): void { log("on"); }

        export class Beacon {
          interval = 5;
          flash(times: number) { return times; }
        }

        const stop = () => log("off");
        interface Options { colour: string }
        ''', [(), ("start",), ("Beacon",), ("stop",), ("Options",)]),
    ("server.go", '''
        package main

        // Server answers ship calls.
        type Server struct{ port int }

        // Start listens on the port.
        func (s *Server) Start() error { return nil }

        func main() { (&Server{}).Start() }
        ''', [(), ("Server",), ("Server.Start",), ("main",)]),
    ("lamp.rs", '''
        use std::fmt;

        /// A lamp.
        pub struct Lamp { lit: bool }

        impl fmt::Display for Lamp {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result { write!(f, "lamp") }
        }
        ''', [(), ("Lamp",), ("impl fmt::Display for Lamp",)]),
    ("Lamp.java", '''
        package harbour;

        /** The lamp. */
        public class Lamp {
            private boolean lit;
            public void light() { lit = true; }
        }
        ''', [(), ("Lamp",)]),
    ("lamp.c", '''
        #include <stdio.h>

        /* Turn the lamp on; returns the old state. */
        static int *lamp_on(int *state) { return state; }

        typedef struct { int lit; } lamp_t;
        ''', [(), ("lamp_on",), ("lamp_t",)]),
    ("rotate.sh", '''
        #!/bin/sh
        set -e

        # rotate the logs weekly
        rotate() { mv log log.1; }

        rotate
        ''', [(), ("rotate",)]),
    ("lamp.rb", '''
        require "time"

        # A lamp.
        class Lamp
          def light
            :lit
          end
        end
        ''', [(), ("Lamp",)]),
], ids=["typescript", "go", "rust", "java", "c", "bash", "ruby"])
def test_each_language_is_cut_at_its_definitions(tmp_path, name, source, headings):
    _, sections, _ = read(tmp_path / name, source)

    assert list(by_heading(sections)) == headings


def test_comments_above_a_definition_stay_with_it(tmp_path):
    _, sections, _ = read(tmp_path / "server.go", '''
        package main

        // Start listens on the port.
        func Start() {}
        ''')

    assert by_heading(sections)[("Start",)].startswith("// Start listens on the port.")


def test_offsets_are_characters_in_a_file_with_non_ascii_text(tmp_path):
    source = '# Fyrvokter: «lykta» og væske\n\nNAVN = "Fyr på Lindesnes"\n\n\ndef tenn():\n    """Tenn lampa før mørket."""\n'
    path = tmp_path / "fyr.py"
    path.write_text(source, encoding="utf-8")

    _, sections, _ = loader_for(path)(path, path.read_bytes())

    for s in sections:
        assert source[s.start : s.start + len(s.text)] == s.text
    assert sections[-1].heading == ("tenn",)


def test_a_file_with_a_syntax_error_is_still_read_whole(tmp_path):
    _, sections, _ = read(tmp_path / "broken.py", '''
        def ok():
            return 1

        def broken(:
            return 2
        ''')

    assert "return 2" in " ".join(s.text for s in sections)
    assert ("ok",) in by_heading(sections)


def test_a_repository_gitignore_keeps_build_output_and_vendored_code_out(tmp_path):
    for name in ["src/lamp.py", "build/lamp.py", "node_modules/x/index.js", "notes.md", "gen/keep.py"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("build/\nnode_modules/\ngen/\n")
    (tmp_path / ".ragignore").write_text("!gen/\n")  # .ragignore has the last word

    found = discover([tmp_path])

    assert sorted(p.relative_to(tmp_path).as_posix() for p in found.files) == ["gen/keep.py", "notes.md",
                                                                                "src/lamp.py"]
