"""Source code, cut by its structure: each function, class, method or type is a section whose
heading path is its qualified name (`Command > invoke`), and the code between them (imports,
constants, a script's statements) makes top-level blocks.

The structure comes from tree-sitter grammars (the PyPI packages tree-sitter-python, -javascript,
-typescript, -go, -rust, -java, -c, -cpp, -bash, -ruby), which tolerate syntax errors, never from
regexes. Comments directly above a definition (and its decorators) stay with it, docstrings are
inside it. A class, impl or namespace longer than SPLIT_CHARS is cut into its members, under its
name; a shorter one stays whole. Invariant: sections keep the file's text as it is, in order, and
their offsets are character offsets in the decoded file.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path

from ingest.formats.text import Loaded, decode_text, require_text
from rag.types import Section

# A container (class, impl block, namespace) at most this long is one section, like a function:
# its methods read together. Longer ones are split into their members, which chunking would
# otherwise cut at arbitrary blank lines. About two chunks of the default 200 tokens.
SPLIT_CHARS = 1600


@dataclass(frozen=True)
class Grammar:
    module: str  # the PyPI grammar's module
    units: frozenset[str]  # node types that are named definitions: a section each
    containers: frozenset[str] = frozenset()  # units whose members are split out when long
    wrappers: frozenset[str] = frozenset()  # nodes around a unit (decorators, export, template)
    entry: str = "language"  # the module's function that returns the grammar


def _g(module: str, units: str, containers: str = "", wrappers: str = "", entry: str = "language") -> Grammar:
    return Grammar(module, frozenset(units.split()), frozenset(containers.split()), frozenset(wrappers.split()), entry)


_JS_UNITS = ("function_declaration generator_function_declaration class_declaration method_definition "
             "lexical_declaration variable_declaration")
_TS_UNITS = (_JS_UNITS + " abstract_class_declaration interface_declaration type_alias_declaration "
             "enum_declaration internal_module module function_signature abstract_method_signature")
_TS = ("class_declaration abstract_class_declaration internal_module module interface_declaration", "export_statement expression_statement")
_C_UNITS = "function_definition struct_specifier union_specifier enum_specifier type_definition"
_CPP_UNITS = _C_UNITS + " class_specifier namespace_definition"
GRAMMARS: dict[str, Grammar] = {
    "python": _g("tree_sitter_python", "function_definition class_definition", "class_definition",
                 "decorated_definition"),
    "javascript": _g("tree_sitter_javascript", _JS_UNITS, "class_declaration", "export_statement"),
    "typescript": _g("tree_sitter_typescript", _TS_UNITS, *_TS, entry="language_typescript"),
    "tsx": _g("tree_sitter_typescript", _TS_UNITS, *_TS, entry="language_tsx"),
    "go": _g("tree_sitter_go", "function_declaration method_declaration type_declaration"),
    "rust": _g("tree_sitter_rust", "function_item struct_item enum_item union_item trait_item impl_item mod_item "
               "macro_definition function_signature_item", "impl_item trait_item mod_item"),
    "java": _g("tree_sitter_java", "class_declaration interface_declaration enum_declaration record_declaration "
               "annotation_type_declaration method_declaration constructor_declaration",
               "class_declaration interface_declaration enum_declaration record_declaration"),
    "c": _g("tree_sitter_c", _C_UNITS),
    "cpp": _g("tree_sitter_cpp", _CPP_UNITS, "class_specifier struct_specifier namespace_definition",
              "template_declaration"),
    "bash": _g("tree_sitter_bash", "function_definition"),
    "ruby": _g("tree_sitter_ruby", "method singleton_method class module singleton_class", "class module"),
}
EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hh": "cpp", ".hpp": "cpp", ".hxx": "cpp",
    ".sh": "bash", ".bash": "bash",
    ".rb": "ruby",
}
# Function-valued declarations name a unit (`const handler = async () => ...`); others are code.
_FUNCTION_VALUES = {"arrow_function", "function_expression", "function", "generator_function", "class",
                    "class_expression"}


def load_code(path: Path, data: bytes) -> Loaded:
    text = decode_text(data)
    language = EXTENSIONS[path.suffix.lower()]
    source = text.encode("utf-8")
    blocks = Outline(source, GRAMMARS[language]).blocks()
    to_char = _CharOffsets(source) if len(source) != len(text) else None
    sections = []
    for block in blocks:
        start, end = (to_char(block.start), to_char(block.end)) if to_char else (block.start, block.end)
        if text[start:end].strip():
            sections.append(Section(text=text[start:end], heading=block.heading, start=start))
    return _title(path, language), require_text(sections), None


def _title(path: Path, language: str) -> str:
    """A Python module's dotted name (`click.core`), found from the packages around it; the file
    name otherwise."""
    if language != "python":
        return path.name
    parts = [] if path.stem == "__init__" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder != folder.parent:
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts) or path.name


@dataclass
class Block:
    start: int  # byte offsets into the UTF-8 source
    end: int
    heading: tuple[str, ...] = ()


@dataclass
class Outline:
    source: bytes
    grammar: Grammar
    found: list[Block] = field(default_factory=list)

    def blocks(self) -> list[Block]:
        import tree_sitter

        module = __import__(self.grammar.module)
        parser = tree_sitter.Parser(tree_sitter.Language(getattr(module, self.grammar.entry)()))
        tree = parser.parse(self.source)
        self._members(tree.root_node.children, ())
        return self.found

    # -- walking --------------------------------------------------------------------------------

    def _members(self, nodes, path: tuple[str, ...]) -> None:
        """Cut a run of sibling nodes into units (with their leading comments) and code blocks."""
        nodes = [n for n in nodes if n.is_named or n.end_byte - n.start_byte > 1]  # drop "{", "}", ";"
        leads = self._leads(nodes)
        code: Block | None = None
        for i, node in enumerate(nodes):
            if i in leads:
                continue  # a comment that goes with the definition below it
            unit = self._unit(node)
            if unit is None:
                if code is None:
                    code = Block(node.start_byte, node.end_byte, path)
                    self.found.append(code)
                code.end = node.end_byte
                continue
            code = None
            inner, name = unit
            start = nodes[min((j for j, u in leads.items() if u == i), default=i)].start_byte
            start = min(start, node.start_byte)
            heading = path + (name,)
            body = self._body(inner)
            if body is None or node.end_byte - start <= SPLIT_CHARS:
                self.found.append(Block(start, node.end_byte, heading))
                continue
            members = [n for n in body.children if n.is_named or n.end_byte - n.start_byte > 1]
            before = len(self.found)
            self._members(members, heading)
            added = self.found[before:]
            if added and added[0].heading == heading:  # the code before its first method: its head
                added[0].start = start
            else:  # it opens with a method: the signature line stands alone (and is merged later)
                self.found.insert(before, Block(start, added[0].start if added else node.end_byte, heading))
            self.found[-1].end = max(self.found[-1].end, node.end_byte)  # the closing brace
            code = None

    def _leads(self, nodes) -> dict[int, int]:
        """comment index -> the index of the unit it leads into: a run of comments directly above a
        definition, with no blank line between them."""
        leads: dict[int, int] = {}
        for i, node in enumerate(nodes):
            if self._unit(node) is None:
                continue
            j = i - 1
            while j >= 0 and "comment" in nodes[j].type and not self._blank_between(nodes[j], nodes[j + 1]):
                leads[j] = i
                j -= 1
        return leads

    def _blank_between(self, first, second) -> bool:
        return self.source[first.end_byte : second.start_byte].count(b"\n") > 1

    def _unit(self, node):
        """(the definition node, its name) when the node is a named definition, else None."""
        inner = node
        if node.type in self.grammar.wrappers:
            inner = node.child_by_field_name("definition") or node.child_by_field_name("declaration")
            if inner is None:
                inner = next((c for c in reversed(node.named_children) if c.type in self.grammar.units), None)
            if inner is None:
                return None
        if inner.type not in self.grammar.units:
            return None
        name = self._name(inner)
        return (inner, name) if name else None

    def _body(self, node):
        if node.type not in self.grammar.containers:
            return None
        return node.child_by_field_name("body")

    def _name(self, node) -> str | None:
        kind = node.type
        if kind in ("lexical_declaration", "variable_declaration"):
            declarators = [c for c in node.named_children if c.type == "variable_declarator"]
            if len(declarators) != 1:
                return None
            value = declarators[0].child_by_field_name("value")
            if value is None or value.type not in _FUNCTION_VALUES:
                return None
            return _text(declarators[0].child_by_field_name("name"))
        if kind == "method_declaration" and self.grammar.module == "tree_sitter_go":
            receiver = node.child_by_field_name("receiver")
            owner = _first_of(receiver, "type_identifier") if receiver is not None else None
            name = _text(node.child_by_field_name("name"))
            return f"{_text(owner)}.{name}" if owner is not None else name
        if kind == "type_declaration":  # Go: type T struct{...}
            spec = next((c for c in node.named_children if c.type in ("type_spec", "type_alias")), None)
            return _text(spec.child_by_field_name("name")) if spec is not None else None
        if kind == "impl_item":  # Rust
            trait, on = node.child_by_field_name("trait"), node.child_by_field_name("type")
            return f"impl {_text(trait)} for {_text(on)}" if trait is not None else f"impl {_text(on)}"
        if kind == "function_definition" and node.child_by_field_name("name") is None:  # C, C++
            return _declarator_name(node.child_by_field_name("declarator"))
        if kind == "type_definition":  # C: typedef struct {...} name;
            return _declarator_name(node.child_by_field_name("declarator"))
        return _text(node.child_by_field_name("name"))


def _declarator_name(node) -> str | None:
    """The identifier a C declarator declares: through pointers, arrays and parameter lists."""
    while node is not None:
        if node.type in ("identifier", "field_identifier", "type_identifier", "qualified_identifier",
                         "operator_name", "destructor_name"):
            return _text(node)
        inner = node.child_by_field_name("declarator")
        if inner is None:
            inner = next((c for c in node.named_children if "identifier" in c.type), None)
        node = inner
    return None


def _first_of(node, kind: str):
    if node.type == kind:
        return node
    for child in node.named_children:
        found = _first_of(child, kind)
        if found is not None:
            return found
    return None


def _text(node) -> str | None:
    if node is None:
        return None
    return " ".join(node.text.decode("utf-8", "replace").split())[:120] or None


class _CharOffsets:
    """Byte offset -> character offset in a UTF-8 text with multi-byte characters."""

    def __init__(self, source: bytes):
        # the byte offset at which each run of multi-byte characters ends, and the bytes saved so far
        self.marks: list[int] = []
        self.saved: list[int] = []
        saved = 0
        for at, byte in enumerate(source):
            if 0x80 <= byte < 0xC0:  # a continuation byte: one byte more than characters
                saved += 1
                self.marks.append(at + 1)
                self.saved.append(saved)

    def __call__(self, offset: int) -> int:
        i = bisect.bisect_right(self.marks, offset) - 1
        return offset - (self.saved[i] if i >= 0 else 0)
