"""Tables as rows in every format: each row on one line, each cell with its column's label; files
written by the test with the libraries people's tools use (python-docx, python-pptx, odfpy) and
HTML as documentation generators write it."""

from __future__ import annotations

from pathlib import Path

from ingest.formats import loader_for
from ingest.formats.html import html_sections
from ingest.formats.tables import table_text


def text_of(path: Path) -> str:
    _, sections, _ = loader_for(path)(path, path.read_bytes())
    return "\n\n".join(s.text for s in sections)


def html_text(body: str) -> str:
    return "\n\n".join(s.text.strip() for s in html_sections(f"<html><body>{body}</body></html>")[1])


# -- the one formatter ---------------------------------------------------------------------------


def test_a_row_under_a_header_labels_each_cell():
    grid = [["Package", "Version", "Size"], ["cryptmount", "V:3, I:4", "231"], ["gocryptfs", "V:2, I:3", "5120"]]

    assert table_text(grid, header_rows=1) == (
        "Package: cryptmount; Version: V:3, I:4; Size: 231\nPackage: gocryptfs; Version: V:2, I:3; Size: 5120"
    )


def test_empty_spacer_columns_and_empty_rows_are_dropped():
    grid = [["%d", "", "day of month: 00"], ["", "", ""], ["%j", "", "day of year: 001-366"]]

    assert table_text(grid) == "%d: day of month: 00\n%j: day of year: 001-366"


def test_a_wide_table_without_a_header_joins_its_cells():
    assert table_text([["a", "b", "c"], ["d", "e", "f"]]) == "a | b | c\nd | e | f"


def test_a_cell_of_several_lines_stays_on_its_row():
    grid = [["Typenames", "Affinity"], ["INT\nINTEGER\nBIGINT", "INTEGER"]]

    assert table_text(grid, header_rows=1) == "Typenames: INT, INTEGER, BIGINT; Affinity: INTEGER"


# -- HTML ----------------------------------------------------------------------------------------


def test_an_html_table_reads_as_rows_with_their_column_labels():
    text = html_text("""<p>The meanings are as follows:</p>
<table border="1"><tr><th>SQLITE_TEMP_STORE</th><th>Meaning</th></tr>
<tr><td align="center">0</td><td>Always use temporary files</td></tr>
<tr><td align="center">3</td><td>Always use <a href="#">memory</a></td></tr></table>
<p>The default setting is 1.</p>""")

    assert text == ("The meanings are as follows:\n\nSQLITE_TEMP_STORE: 0; Meaning: Always use temporary files\n"
                    "SQLITE_TEMP_STORE: 3; Meaning: Always use memory\n\nThe default setting is 1.")


def test_spanning_header_cells_label_every_column_they_span():
    # as compile.html in the SQLite docs writes it: no closing tags, a group label over two columns
    text = html_text("""<table border=1>
  <tr><th rowspan="2">SQLITE_DQS<th colspan="2">Double-Quoted Strings Allowed<th rowspan="2">Remarks
  <tr><th>In DDL<th>In DML
  <tr><td>3<td>yes<td>yes<td>default
  <tr><td>0<td>no<td>no<td>recommended
  </table>""")

    assert text.splitlines() == [
        "SQLITE_DQS: 3; Double-Quoted Strings Allowed In DDL: yes; Double-Quoted Strings Allowed In DML: yes; Remarks: default",
        "SQLITE_DQS: 0; Double-Quoted Strings Allowed In DDL: no; Double-Quoted Strings Allowed In DML: no; Remarks: recommended",
    ]


def test_a_definition_table_without_header_reads_term_and_description():
    text = html_text("""<table border="0"><tr><td></td><td width="10"></td><td></td></tr>
<tr><td> %d </td><td></td><td> day of month: 00</td></tr>
<tr><td> %j </td><td></td><td> day of year: 001-366</td></tr></table>""")

    assert text == "%d: day of month: 00\n%j: day of year: 001-366"


def test_a_table_that_lays_out_a_page_is_read_as_its_blocks():
    admonition = html_text("""<div class="admonitionblock"><table><tr><td class="icon"><div class="title">Note</div></td>
<td class="content">This rewrites history. Do not use it on published branches.</td></tr></table></div>""")
    with_heading = html_text("""<table><tr><td><img src="cover.jpg"></td><td><h2>SQLite Forensics</h2>
<p>Author: Paul Sanderson</p><p>A book about the file format.</p></td></tr></table>""")
    with_code = html_text("<table><tr><td><pre>CREATE TABLE t(\n  a TEXT,\n  b REAL\n);</pre></td></tr></table>")

    assert admonition == "Note\n\nThis rewrites history. Do not use it on published branches."
    assert "Author: Paul Sanderson\n\nA book about the file format." in with_heading
    assert "CREATE TABLE t(\n  a TEXT,\n  b REAL\n);" in with_code


def test_a_data_table_inside_a_layout_table_still_reads_as_rows():
    text = html_text("""<table><tr><td><h3>Results</h3>
<table><tr><th>Engine</th><th>Seconds</th></tr><tr><td>SQLite</td><td>0.9</td></tr><tr><td>MySQL</td><td>2.2</td></tr></table>
</td></tr></table>""")

    assert "Engine: SQLite; Seconds: 0.9\nEngine: MySQL; Seconds: 2.2" in text


def test_a_table_never_closed_keeps_its_text():
    text = html_text("<p>Before.</p><table><tr><th>Name</th><th>Age</th></tr><tr><td>Ada</td><td>36")

    assert "Before." in text and "Ada" in text and "36" in text


# -- office formats ------------------------------------------------------------------------------


def test_a_docx_table_with_a_header_row_labels_every_cell(tmp_path):
    import docx

    document = docx.Document()
    document.add_paragraph("Spare parts kept in the store room.")
    table = document.add_table(rows=3, cols=3)
    for row, cells in zip(table.rows, [("Part", "Stock", "Supplier"), ("Fresnel gasket", "4", "Harbour Lights Ltd"),
                                       ("Clockwork spring", "2", "Tidewater Clocks")]):
        for cell, value in zip(row.cells, cells):
            cell.text = value
    bold = document.add_table(rows=2, cols=2)  # two columns: a header only when the file marks it
    for number, (row, cells) in enumerate(zip(bold.rows, [("Bulb", "Watts"), ("Main lamp", "1000")])):
        for cell, value in zip(row.cells, cells):
            cell.paragraphs[0].add_run(value).bold = number == 0
    document.save(tmp_path / "parts.docx")

    text = text_of(tmp_path / "parts.docx")

    assert "Part: Fresnel gasket; Stock: 4; Supplier: Harbour Lights Ltd\n" in text
    assert "Part: Clockwork spring; Stock: 2; Supplier: Tidewater Clocks" in text
    assert "Bulb: Main lamp; Watts: 1000" in text


def test_a_docx_row_marked_repeat_as_header_is_the_header(tmp_path):
    import docx
    from docx.oxml import OxmlElement

    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, [("Shift", "Keeper"), ("Night", "Astrid")]):
        row.cells[0].text, row.cells[1].text = cells
    table.rows[0]._tr.get_or_add_trPr().append(OxmlElement("w:tblHeader"))
    document.save(tmp_path / "rota.docx")

    assert "Shift: Night; Keeper: Astrid" in text_of(tmp_path / "rota.docx")


def test_an_odt_table_with_header_rows_and_a_spanning_cell(tmp_path):
    from odf.opendocument import OpenDocumentText
    from odf.table import CoveredTableCell, Table, TableCell, TableColumn, TableHeaderRows, TableRow
    from odf.text import P

    document = OpenDocumentText()
    table = Table(name="Dues")
    table.addElement(TableColumn(numbercolumnsrepeated=3))
    header = TableHeaderRows()
    row = TableRow()
    for value in ("Member", "Voice", "Dues"):
        cell = TableCell()
        cell.addElement(P(text=value))
        row.addElement(cell)
    header.addElement(row)
    table.addElement(header)
    for values in (("Astrid", "alto", "paid"), ("Bo", "bass", None)):
        row = TableRow()
        for value in values[:2]:
            cell = TableCell()
            cell.addElement(P(text=value))
            row.addElement(cell)
        if values[2]:
            cell = TableCell()
            cell.addElement(P(text=values[2]))
            row.addElement(cell)
        else:
            row.addElement(CoveredTableCell())  # under the cell above, which spans two rows
        table.addElement(row)
    table.getElementsByType(TableRow)[1].childNodes[2].setAttrNS(
        "urn:oasis:names:tc:opendocument:xmlns:table:1.0", "number-rows-spanned", "2")
    document.text.addElement(table)
    document.save(str(tmp_path / "dues.odt"))

    text = text_of(tmp_path / "dues.odt")

    assert "Member: Astrid; Voice: alto; Dues: paid\nMember: Bo; Voice: bass; Dues: paid" in text


def test_a_pptx_table_labels_its_cells_with_the_first_row(tmp_path):
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    slide.shapes.title.text = "Ferry timetable"
    shape = slide.shapes.add_table(3, 3, Inches(1), Inches(2), Inches(6), Inches(2))
    for r, values in enumerate([("Route", "Departs", "Arrives"), ("Harbour to Isle", "07:15", "08:05"),
                                ("Isle to Harbour", "17:30", "18:20")]):
        for c, value in enumerate(values):
            shape.table.cell(r, c).text = value
    deck.save(tmp_path / "ferry.pptx")

    text = text_of(tmp_path / "ferry.pptx")

    assert "Route: Harbour to Isle; Departs: 07:15; Arrives: 08:05\nRoute: Isle to Harbour; Departs: 17:30; Arrives: 18:20" in text


# -- chunking and retrieval -----------------------------------------------------------------------


def test_a_long_table_is_chunked_between_its_rows(embedder):
    from ingest.chunk import ChunkSettings, chunk_sections
    from rag.types import Section

    rows = "".join(f"<tr><td>pkg{n:03d}</td><td>V:{n % 7}, I:{n % 5}</td><td>{100 + n}</td>"
                   f"<td>tool number {n} for the archive; it reads: tar, zip and cpio</td></tr>" for n in range(60))
    text = html_text(f"<table><tr><th>Package</th><th>Version</th><th>Size</th><th>Description</th></tr>{rows}</table>")
    lines = set(text.splitlines())

    chunks = chunk_sections("Packages", [Section(text=text)], embedder.token_offsets, embedder.max_tokens, ChunkSettings())

    assert len(chunks) > 3
    for chunk in chunks:
        assert set(chunk.text.splitlines()) <= lines  # whole rows only: never cut inside one
        assert all(line.startswith("Package: pkg") for line in chunk.text.splitlines())
