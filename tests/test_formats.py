"""Document formats people keep: .docx .pptx .odt .epub .ipynb .csv/.tsv .eml/.mbox.

Every fixture is written by the test with the same libraries people's tools use (python-docx,
python-pptx, odfpy, ebooklib, the stdlib email package), small, in tmp_path.
"""

from __future__ import annotations

import functools
import io
import json
import random
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from ingest.formats import loader_for, page_kind_for
from rag.errors import LoadError


def load(path: Path):
    return loader_for(path)(path, path.read_bytes())


def text_of(sections) -> str:
    return "\n".join(s.text for s in sections)


def section_with(sections, words: str):
    return next(s for s in sections if words in s.text)


# -- fixture writers ---------------------------------------------------------------------------


def write_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Lighthouse maintenance"
    document.add_paragraph("Lighthouse maintenance", style="Title")
    document.add_paragraph("This manual covers the keepers' yearly duties.")
    document.add_heading("Lamps", level=1)
    document.add_paragraph("Replace the mercury bath seals every spring.")
    document.add_heading("Spare bulbs", level=2)
    document.add_paragraph("Keep twelve spare bulbs of the 1000 watt type in the store room.")
    table = document.add_table(rows=3, cols=2)
    for row, (part, count) in zip(table.rows, [("Part", "Stock"), ("Fresnel gasket", "4"), ("Clockwork spring", "2")]):
        row.cells[0].text, row.cells[1].text = part, count
    document.add_heading("Paint", level=1)
    document.add_paragraph("The tower is repainted with limewash every third year.")
    section = document.sections[0]
    section.header.paragraphs[0].text = "INTERNAL HEADER TEXT"
    section.footer.paragraphs[0].text = "PAGE FOOTER TEXT"
    document.save(path)
    return path


def write_pptx(path: Path) -> Path:
    import pptx

    deck = pptx.Presentation()
    for title, body, notes in [
        ("Harbour expansion", "A plan for the north quay.", ""),
        ("Budget", "The dredging costs 4.2 million euros.", "Mention that the ferry company pays a third."),
        ("Timeline", "Work starts after the herring season.", ""),
    ]:
        slide = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    deck.save(path)
    return path


def write_odt(path: Path) -> Path:
    from odf.dc import Title
    from odf.opendocument import OpenDocumentText
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import H, P

    document = OpenDocumentText()
    document.meta.addElement(Title(text="Choir minutes"))
    document.text.addElement(H(outlinelevel=1, text="Rehearsals"))
    document.text.addElement(P(text="Rehearsals move to Thursday evenings in the chapel."))
    document.text.addElement(H(outlinelevel=2, text="Music"))
    document.text.addElement(P(text="The basses learn the Brahms requiem by March."))
    table = Table(name="Dues")
    table.addElement(TableColumn(numbercolumnsrepeated=2))
    for name, dues in [("Member", "Dues"), ("Astrid", "paid")]:
        row = TableRow()
        for value in (name, dues):
            cell = TableCell()
            cell.addElement(P(text=value))
            row.addElement(cell)
        table.addElement(row)
    document.text.addElement(table)
    document.save(str(path))
    return path


def write_epub(path: Path) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("sea-stories-1")
    book.set_title("Sea stories")
    book.set_language("en")
    chapters = []
    for number, (title, text) in enumerate([
        ("The harbour", "The old harbour froze solid in the winter of 1947."),
        ("The storm", "A storm tore the mainsail of the schooner Ingrid off Cape Wrath."),
    ], start=1):
        chapter = epub.EpubHtml(title=title, file_name=f"chap_{number}.xhtml", lang="en")
        chapter.content = f"<html><body><h1>{title}</h1><h2>Morning</h2><p>{text}</p></body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)
    return path


def write_ipynb(path: Path) -> Path:
    notebook = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"language": "python", "name": "python3", "display_name": "Python 3"}},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Tide analysis\n", "\n", "We fit the tides."]},
            {"cell_type": "markdown", "metadata": {}, "source": "## Loading gauges"},
            {"cell_type": "code", "metadata": {}, "execution_count": 1,
             "source": ["# read the harmonic constituents\n", "gauges = load_tide_gauges('bergen')"],
             "outputs": [{"output_type": "stream", "name": "stdout", "text": ["OUTPUT_SHOULD_NOT_BE_INDEXED\n"]},
                         {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgoAAAANSUhEUg"}, "metadata": {}}]},
        ],
    }
    path.write_text(json.dumps(notebook))
    return path


def write_csv(path: Path, rows: int = 60) -> Path:
    lines = ["station,city,rainfall_mm"] + [f"ST-{n:04d},Town {n},{n * 1.5:.1f}" for n in range(1, rows + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def mail_message(subject: str = "Boat trailer for sale") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ola Nordmann <ola@example.org>"
    message["To"] = "club@example.org"
    message["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
    message["Subject"] = subject
    message.set_content("The trailer takes boats up to five metres and has new bearings.\n")
    message.add_attachment(b"item,price\nwinch strap,120 kroner\n", maintype="text", subtype="csv",
                           filename="prices.csv")
    message.add_attachment(blank_png(), maintype="image", subtype="png", filename="photo.png")
    return message


def blank_png() -> bytes:
    """A real picture with no text in it: OCR finds nothing, so it is named, not indexed."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (120, 80), "white").save(out, format="PNG")
    return out.getvalue()


def write_eml(path: Path) -> Path:
    path.write_bytes(mail_message().as_bytes())
    return path


WRITERS = {".docx": write_docx, ".pptx": write_pptx, ".odt": write_odt, ".epub": write_epub,
           ".ipynb": write_ipynb, ".csv": write_csv, ".eml": write_eml}


# -- .docx -------------------------------------------------------------------------------------


def test_docx_headings_become_the_heading_path(tmp_path):
    title, sections, pages = load(write_docx(tmp_path / "manual.docx"))

    assert title == "Lighthouse maintenance"
    assert section_with(sections, "mercury bath").heading == ("Lamps",)
    assert section_with(sections, "twelve spare bulbs").heading == ("Lamps", "Spare bulbs")
    assert section_with(sections, "limewash").heading == ("Paint",)
    assert pages is None


def test_docx_paragraphs_keep_their_order(tmp_path):
    text = text_of(load(write_docx(tmp_path / "manual.docx"))[1])

    assert text.index("yearly duties") < text.index("mercury") < text.index("spare bulbs") < text.index("limewash")


def test_docx_two_column_table_without_a_marked_header_reads_term_and_description(tmp_path):
    _, sections, _ = load(write_docx(tmp_path / "manual.docx"))

    table = section_with(sections, "Fresnel gasket")
    assert "Part: Stock\nFresnel gasket: 4\nClockwork spring: 2" in table.text
    assert table.heading == ("Lamps", "Spare bulbs")


def test_docx_headers_and_footers_are_left_out(tmp_path):
    text = text_of(load(write_docx(tmp_path / "manual.docx"))[1])

    assert "INTERNAL HEADER TEXT" not in text and "PAGE FOOTER TEXT" not in text


def test_docx_house_style_built_on_a_heading_style_is_a_heading(tmp_path):
    import docx
    from docx.enum.style import WD_STYLE_TYPE

    document = docx.Document()
    chapter = document.styles.add_style("Chapter", WD_STYLE_TYPE.PARAGRAPH)
    chapter.base_style = document.styles["Heading 1"]
    document.add_paragraph("Moorings", style="Chapter")
    document.add_paragraph("Buoys are checked before the season opens.")
    document.save(tmp_path / "house.docx")

    _, sections, _ = load(tmp_path / "house.docx")

    assert [(s.heading, s.text) for s in sections] == [(("Moorings",), "Buoys are checked before the season opens.")]


# -- .pptx -------------------------------------------------------------------------------------


def test_pptx_has_one_section_per_slide_titled_and_numbered(tmp_path):
    title, sections, pages = load(write_pptx(tmp_path / "harbour.pptx"))

    assert title == "Harbour expansion"
    assert [(s.heading, s.page) for s in sections] == [
        (("Harbour expansion",), 1), (("Budget",), 2), (("Timeline",), 3)]
    assert pages == 3
    assert page_kind_for(tmp_path / "harbour.pptx") == "slide"


def test_pptx_speaker_notes_are_read_with_their_slide(tmp_path):
    _, sections, _ = load(write_pptx(tmp_path / "harbour.pptx"))

    budget = section_with(sections, "dredging")
    assert "the ferry company pays a third" in budget.text
    assert budget.page == 2


@pytest.mark.parametrize("writer, kind", [(write_pptx, "slide"), (write_epub, "chapter"), (write_docx, "page")],
                         ids=["pptx", "epub", "docx"])
def test_a_document_says_what_its_numbered_locations_are(tmp_path, writer, kind):
    import hashlib

    from ingest.pipeline import load_document

    suffix = {"slide": ".pptx", "chapter": ".epub", "page": ".docx"}[kind]
    path = writer(tmp_path / ("doc" + suffix))
    data = path.read_bytes()

    document = load_document(path, data, path.stat(), hashlib.sha256(data).hexdigest())

    assert document.page_kind == kind


# -- .odt --------------------------------------------------------------------------------------


def test_odt_outline_levels_become_the_heading_path(tmp_path):
    title, sections, _ = load(write_odt(tmp_path / "minutes.odt"))

    assert title == "Choir minutes"
    assert section_with(sections, "Thursday evenings").heading == ("Rehearsals",)
    assert section_with(sections, "Brahms").heading == ("Rehearsals", "Music")
    assert "Member: Dues\nAstrid: paid" in section_with(sections, "Astrid").text


# -- .epub -------------------------------------------------------------------------------------


def test_epub_chapters_are_numbered_and_head_their_sections(tmp_path):
    title, sections, pages = load(write_epub(tmp_path / "sea.epub"))

    assert title == "Sea stories"
    storm = section_with(sections, "mainsail")
    assert storm.heading == ("The storm", "Morning")  # the chapter title, then the chapter's own headings
    assert storm.page == 2
    assert section_with(sections, "froze solid").page == 1
    assert pages == 2
    assert page_kind_for(tmp_path / "sea.epub") == "chapter"


# -- .ipynb ------------------------------------------------------------------------------------


def test_notebook_reads_markdown_and_code_but_not_outputs(tmp_path):
    title, sections, _ = load(write_ipynb(tmp_path / "tides.ipynb"))
    text = text_of(sections)

    assert title == "Tide analysis"
    assert "load_tide_gauges('bergen')" in section_with(sections, "load_tide_gauges").text
    assert section_with(sections, "load_tide_gauges").heading == ("Tide analysis", "Loading gauges")
    assert "OUTPUT_SHOULD_NOT_BE_INDEXED" not in text and "iVBORw0KGgo" not in text


def test_notebook_comment_in_code_is_not_a_heading(tmp_path):
    _, sections, _ = load(write_ipynb(tmp_path / "tides.ipynb"))

    assert all("read the harmonic constituents" not in s.heading for s in sections)


# -- .csv / .tsv -------------------------------------------------------------------------------


def test_csv_rows_are_grouped_with_the_header_repeated(tmp_path):
    _, sections, _ = load(write_csv(tmp_path / "rain.csv"))

    assert len(sections) > 1
    assert all(s.text.startswith("station | city | rainfall_mm\n") for s in sections)
    rows = [line for s in sections for line in s.text.splitlines()[1:]]
    assert rows == [f"ST-{n:04d} | Town {n} | {n * 1.5:.1f}" for n in range(1, 61)]  # each row once, in order


def test_csv_section_heading_names_its_rows(tmp_path):
    _, sections, _ = load(write_csv(tmp_path / "rain.csv"))

    last = sections[-1]
    first_row = int(last.text.splitlines()[1].split(" | ")[0][3:]) + 1  # ST-0042 is on row 43
    assert last.heading == (f"rows {first_row}-61",)


def test_tsv_and_semicolon_tables_are_sniffed(tmp_path):
    (tmp_path / "a.tsv").write_text("name\tcolour\nkestrel\tbrown, grey\n")
    (tmp_path / "b.csv").write_text("name;colour\nkestrel;brown, grey\n")

    for name in ("a.tsv", "b.csv"):
        _, sections, _ = load(tmp_path / name)
        assert sections[0].text == "name | colour\nkestrel | brown, grey"


def test_csv_quoted_field_with_a_line_break_stays_one_row(tmp_path):
    (tmp_path / "notes.csv").write_text('id,note\n1,"first line\nsecond line"\n2,short\n')

    _, sections, _ = load(tmp_path / "notes.csv")

    assert sections[0].text == "id | note\n1 | first line second line\n2 | short"


# -- .eml / .mbox ------------------------------------------------------------------------------


def test_eml_subject_is_the_title_and_sender_and_date_stay_on_top(tmp_path):
    title, sections, _ = load(write_eml(tmp_path / "trailer.eml"))

    assert title == "Boat trailer for sale"
    first = sections[0].text
    assert first.startswith("From: Ola Nordmann <ola@example.org>\nTo: club@example.org\nDate: Tue, 01 Dec 2026")
    assert "new bearings" in first


def test_eml_attachment_of_a_known_type_is_read_and_others_are_named(tmp_path):
    _, sections, _ = load(write_eml(tmp_path / "trailer.eml"))

    assert section_with(sections, "winch strap").heading == ("Attachment: prices.csv", "row 2")
    assert sections[-1].text == "1 other attachment not indexed: photo.png"


def test_eml_with_only_html_is_read_through_the_html_path(tmp_path):
    message = EmailMessage()
    message["Subject"] = "Newsletter"
    message["From"] = "news@example.org"
    message.set_content("<html><head><style>p {color: red}</style></head><body><nav>Home</nav>"
                        "<p>The ferry timetable changes on Monday.</p></body></html>", subtype="html")
    (tmp_path / "news.eml").write_bytes(message.as_bytes())

    _, sections, _ = load(tmp_path / "news.eml")

    assert "The ferry timetable changes on Monday." in sections[0].text
    assert "color: red" not in sections[0].text and "Home" not in sections[0].text


def test_mbox_messages_are_headed_by_their_subjects(tmp_path):
    second = EmailMessage()
    second["From"], second["Subject"] = "club@example.org", "Winter storage"
    second.set_content("Boats go into the shed on the first of November.\n")
    mbox = b"".join(b"From club@example.org Tue Dec  1 10:00:00 2026\n" + m.as_bytes() + b"\n"
                    for m in (mail_message(), second))
    (tmp_path / "club.mbox").write_bytes(mbox)

    title, sections, _ = load(tmp_path / "club.mbox")

    assert title == "club"
    assert section_with(sections, "new bearings").heading == ("Boat trailer for sale",)
    assert section_with(sections, "into the shed").heading == ("Winter storage",)


# -- broken, protected and oversized files -----------------------------------------------------


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


BROKEN = {
    ".docx": [(b"PK\x03\x04 not really a zip", r"^not a valid \.docx \(corrupt zip\)$"),
              (zip_of({"hello.txt": b"hi"}), r"^not a valid \.docx \(")],
    ".pptx": [(b"", r"^not a valid \.pptx \(corrupt zip\)$"),
              (zip_of({"[Content_Types].xml": b"<broken"}), r"^not a valid \.pptx \(")],
    ".odt": [(b"garbage" * 10, r"^not a valid \.odt \(corrupt zip\)$"),
             (zip_of({"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<x"}),
              r"^not a valid \.odt \(")],
    ".epub": [(b"PK\x05\x06" + bytes(18) + b"junk", r"^not a valid \.epub \("),
              (zip_of({"mimetype": b"application/epub+zip"}), r"^not a valid \.epub \(")],
    ".ipynb": [(b'{"cells": [', r"^not a valid notebook \(invalid JSON at line 1\)$"),
               (b'{"worksheets": []}', r"^an old notebook format \(nbformat 3\)")],
    ".csv": [(bytes(range(256)) * 4, r"^binary content")],
    ".eml": [(b"just some words, no headers at all\n", r"^not an email message")],
    ".mbox": [(b"Subject: no From line\n\nbody\n", r"^not an mbox file")],
}


@pytest.mark.parametrize("suffix, data, reason", [(s, d, r) for s, cases in BROKEN.items() for d, r in cases],
                         ids=[f"{s}-{i}" for s, cases in BROKEN.items() for i in range(len(cases))])
def test_broken_file_is_refused_with_one_line(suffix, data, reason):
    path = Path("broken" + suffix)

    with pytest.raises(LoadError, match=reason) as refused:
        loader_for(path)(path, data)

    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("suffix", [".docx", ".pptx"])
def test_password_protected_office_file_is_refused(tmp_path, suffix):
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = WRITERS[suffix](tmp_path / f"plain{suffix}")
    locked = io.BytesIO()
    with plain.open("rb") as source:
        OOXMLFile(source).encrypt("secret", locked)

    with pytest.raises(LoadError, match=r"^the file is password-protected: save a copy without a password"):
        loader_for(plain)(plain, locked.getvalue())


def test_password_protected_odt_is_refused(tmp_path):
    manifest = (b'<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
                b'<manifest:file-entry manifest:full-path="content.xml"><manifest:encryption-data/>'
                b"</manifest:file-entry></manifest:manifest>")
    data = zip_of({"mimetype": b"application/vnd.oasis.opendocument.text", "META-INF/manifest.xml": manifest,
                   "content.xml": bytes(range(256))})

    with pytest.raises(LoadError, match=r"^the file is password-protected"):
        loader_for(Path("locked.odt"))(Path("locked.odt"), data)


def test_drm_protected_epub_is_refused(tmp_path):
    book = write_epub(tmp_path / "sea.epub")
    encryption = (b'<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                  b'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
                  b'<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
                  b"</enc:EncryptedData></encryption>")
    with zipfile.ZipFile(book, "a") as archive:
        archive.writestr("META-INF/encryption.xml", encryption)

    with pytest.raises(LoadError, match=r"^the book is DRM-protected"):
        load(book)


@functools.cache
def zip_bomb(member_bytes: int) -> bytes:
    """A zip whose one zero-filled member expands to member_bytes, written in pieces (bounded memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = bytes(1024 * 1024)
            for _ in range(member_bytes // len(block)):
                member.write(block)
    return buffer.getvalue()


@pytest.mark.parametrize("suffix", [".docx", ".pptx", ".odt", ".epub"])
def test_zip_bomb_disguised_as_a_document_is_refused_by_its_size(suffix):
    data = zip_bomb(300 * 1024 * 1024)
    assert len(data) < 1024 * 1024  # what the user has on disk is small

    with pytest.raises(LoadError, match=r"^refused: it would unpack to 300 MB, over the 200 MB limit"):
        loader_for(Path("bomb" + suffix))(Path("bomb" + suffix), data)


def test_highly_compressed_document_under_the_size_limit_is_refused_by_its_ratio():
    data = zip_bomb(50 * 1024 * 1024)

    with pytest.raises(LoadError, match=r"^refused: compressed \d+ to 1, over the 100 to 1 limit for a \.docx"):
        loader_for(Path("bomb.docx"))(Path("bomb.docx"), data)


def test_old_binary_office_file_named_docx_says_what_it_is(tmp_path):
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)

    with pytest.raises(LoadError, match=r"^not a valid \.docx: this is an old binary Office file; save it as \.docx$"):
        loader_for(Path("old.docx"))(Path("old.docx"), ole)


def damaged(data: bytes, rng: random.Random) -> bytes:
    """The file with a few bytes overwritten, cut short, or with bytes inserted: what a bad disk,
    a half-finished download or a broken sync leaves behind."""
    out = bytearray(data)
    kind = rng.randrange(3)
    if kind == 0:
        for _ in range(rng.randint(1, 20)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    elif kind == 1:
        del out[rng.randrange(len(out)):]
    else:
        at = rng.randrange(len(out))
        out[at:at] = rng.randbytes(rng.randint(1, 50))
    return bytes(out)


@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_a_damaged_document_is_read_or_refused_with_a_load_error_never_a_crash(tmp_path, suffix):
    path = WRITERS[suffix](tmp_path / ("good" + suffix))
    data, rng = path.read_bytes(), random.Random(suffix)

    for _ in range(40):
        try:
            loader_for(path)(path, damaged(data, rng))
        except LoadError as refused:
            assert "\n" not in str(refused)


# -- end to end: ingest a folder of every format, ask about each ------------------------------


def write_mbox(path: Path) -> Path:
    message = EmailMessage()
    message["From"], message["Subject"] = "harbourmaster@example.org", "Mooring fees"
    message["Date"] = "Mon, 30 Nov 2026 08:00:00 +0000"
    message.set_content("From January the mooring fee for visiting yachts is 300 kroner a night.\n")
    path.write_bytes(b"From harbourmaster@example.org Mon Nov 30 08:00:00 2026\n" + message.as_bytes())
    return path


def write_tsv(path: Path) -> Path:
    path.write_text("lighthouse\tkeeper\tyear\nRunde\tJohan Vik\t1921\nUtvaer\tMarta Berg\t1934\n")
    return path


# question -> (file, the page/slide/chapter number the answer is on)
QUESTIONS = {
    "How many spare bulbs should the lighthouse keepers keep in the store room?": ("manual.docx", None),
    "What do the dredging works cost and who pays part of them?": ("harbour.pptx", 2),
    "On which evening do choir rehearsals take place now?": ("minutes.odt", None),
    "Which schooner lost its mainsail in a storm off Cape Wrath?": ("sea.epub", 2),
    "How are the tide gauges loaded for Bergen?": ("tides.ipynb", None),
    "What rainfall was measured at station ST-0042?": ("rain.csv", None),
    "Who kept the Utvaer lighthouse, and since when?": ("keepers.tsv", None),
    "How long a boat does the trailer for sale take?": ("trailer.eml", None),
    "What is the nightly mooring fee for visiting yachts?": ("fees.mbox", None),
}


@pytest.fixture(scope="module")
def formats_index(tmp_path_factory, embedder):
    from ingest.chunk import ChunkSettings
    from ingest.pipeline import run_ingest
    from rag.storage.store import Store

    root = tmp_path_factory.mktemp("formats")
    folder = root / "documents"
    folder.mkdir()
    for name, writer in [("manual.docx", write_docx), ("harbour.pptx", write_pptx), ("minutes.odt", write_odt),
                         ("sea.epub", write_epub), ("tides.ipynb", write_ipynb), ("rain.csv", write_csv),
                         ("keepers.tsv", write_tsv), ("trailer.eml", write_eml), ("fees.mbox", write_mbox)]:
        writer(folder / name)
    store = Store.open(root / "indexes" / "default", create=True)
    report = run_ingest([folder], store, embedder, ChunkSettings())
    store.close()
    return root, report


def test_a_folder_with_every_format_ingests_without_failures(formats_index):
    _, report = formats_index

    assert report.failures == []
    assert report.added == len(QUESTIONS)


@pytest.mark.parametrize("question", QUESTIONS, ids=[name for name, _ in QUESTIONS.values()])
def test_a_question_answered_in_one_file_finds_that_file_first_with_its_location(formats_index, embedder, question):
    from rag.config import load_settings
    from rag.retrieval.search import Retriever

    root, _ = formats_index
    name, page = QUESTIONS[question]
    retriever = Retriever.open(load_settings({"index_dir": root / "indexes"}, environ={}), embedder=embedder)
    try:
        best = retriever.search(question, top_k=5).hits[0]
    finally:
        retriever.store.close()

    assert (Path(best.path).name, best.page) == (name, page)


def test_a_file_name_that_is_not_utf8_is_reported_and_the_rest_is_indexed(tmp_path, embedder):
    import os

    from ingest.chunk import ChunkSettings
    from ingest.pipeline import run_ingest
    from rag.storage.store import Store

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "moons.txt").write_text("Mars has two small moons, Phobos and Deimos.\n")
    write_csv(folder / "rain.csv", rows=3)
    bad = folder / os.fsdecode(b"caf\xe9.txt")
    bad.write_text("Un caf\u00e9 au lait.\n")
    store = Store.open(tmp_path / "indexes" / "default", create=True)
    try:
        report = run_ingest([folder], store, embedder, ChunkSettings())
        indexed = sorted(Path(d.path).name for d in store.documents())
    finally:
        store.close()

    assert indexed == ["moons.txt", "rain.csv"]
    assert [(f.path, f.reason) for f in report.failures] == [(str(bad), "file name is not valid UTF-8: rename it")]
    assert (report.added, report.failed) == (2, 1)


def test_ingest_json_and_the_summary_survive_a_name_that_is_not_utf8(tmp_path):
    import json
    import os

    from click.testing import CliRunner

    from rag.terminal.cli import main

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "moons.txt").write_text("Mars has two small moons, Phobos and Deimos.\n")
    (folder / os.fsdecode(b"caf\xe9.txt")).write_text("Un caf\u00e9.\n")

    result = CliRunner().invoke(main, ["ingest", str(folder), "--json", "--index-dir", str(tmp_path / "ix")])

    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit)
    report = json.loads(result.stdout)
    assert report["added"] == 1 and report["failures"][0]["reason"] == "file name is not valid UTF-8: rename it"


MAN_PAGE = """<html><head><title>Postfix manual - cleanup(8)</title></head><body>
<h1>cleanup(8)</h1>
<pre>
DESCRIPTION
       The cleanup(8) daemon processes inbound mail, inserts it into the incoming mail queue, and in-
       forms the queue manager of its arrival. For example, it inserts missing message headers. This
       is enabled with the local_header_re-
       write_clients parameter, which takes user-defined patterns; see the exam-
       ple below. A site may list user-
       defined patterns here too.
</pre>
<h2>EXAMPLE</h2>
<p>An example that informs the queue manager.</p>
</body></html>"""


def test_a_word_a_manual_page_breaks_over_a_pre_line_end_is_read_whole(tmp_path):
    # Postfix's manual pages are nroff output in <pre>: "local_header_re-" / "write_clients" was two
    # words to the keyword search and the embedding model, and a chunk could begin at "dard input"
    path = tmp_path / "cleanup.8.html"
    path.write_text(MAN_PAGE)

    title, sections, _ = load(path)
    text = "".join(s.text for s in sections)

    assert "local_header_rewrite_clients parameter" in text  # a name: joined whole
    assert "informs the queue manager" in text and "see the example below" in text  # words the page spells whole
    assert "A site may list user-defined patterns" in text  # a hyphen the page writes itself stays
    assert [s.heading for s in sections] == [("cleanup(8)",), ("cleanup(8)", "EXAMPLE")]
    assert sections[1].text.strip() == "An example that informs the queue manager."
    code = sections[0].code[0]
    assert sections[0].text[code[0]:code[1]].strip().startswith("DESCRIPTION")
    assert sections[0].text[code[0]:code[1]].rstrip().endswith("defined patterns here too.")


POSTSUPER = """<html><head><title>Postfix manual - postsuper(1)</title></head><body><pre>
POSTSUPER(1)                                                      POSTSUPER(1)

<b>NAME</b>
       postsuper - Postfix superintendent

<b>SYNOPSIS</b>
       <b>postsuper</b> [<b>-psSv</b>] [<b>-d</b> <i>queue</i><b>_</b><i>id</i>]

<b>DESCRIPTION</b>
       The postsuper(1) command does maintenance jobs on the Postfix queue.

       <b>-d</b> <i>queue</i><b>_</b><i>id</i>
              Delete one message with the named queue ID from the named mail
              queue(s) (default: hold, incoming, active and deferred).

<b>SEE ALSO</b>
       postqueue(1), unprivileged queue operations
</pre></body></html>"""


def test_a_manual_page_in_a_pre_block_is_cut_at_its_section_headings(tmp_path):
    # Postfix's 77 manual pages (and man2html's) are one <pre> each: read as one section, no chunk
    # said it was about the OPTIONS or the DESCRIPTION, and the running header is no heading
    path = tmp_path / "postsuper.1.html"
    path.write_text(POSTSUPER)

    title, sections, _ = load(path)

    headings = [s.heading for s in sections]
    assert headings[-4:] == [("NAME",), ("SYNOPSIS",), ("DESCRIPTION",), ("SEE ALSO",)]
    description = next(s for s in sections if s.heading == ("DESCRIPTION",))
    assert description.text.strip().startswith("The postsuper(1) command")
    assert "-d queue_id" in description.text and "SEE ALSO" not in description.text
    assert all(s.code for s in sections if s.text.strip())  # still lines of code to the chunker
