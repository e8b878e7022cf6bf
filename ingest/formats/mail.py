"""Mail: one message (.eml) or a mailbox of them (.mbox), read with the stdlib email package.

A message becomes its headers that say who and when (From, To, Date) followed by its body: the
text/plain part when there is one, else the HTML part through the HTML path. An attachment whose
name has a loader (a PDF, a .docx, a CSV...) is read with that loader and its sections follow
under the heading "Attachment: name"; any other attachment, or one that cannot be read, is
counted and named on the message's last line, so nothing vanishes silently. Attachments are
read one level deep: a mail attached to a mail is named, not opened. The subject is the title of
an .eml; in an .mbox each message's subject heads its sections and the file name is the title.
Sections carry no page: an attachment's own pages are not the mail's.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path
from typing import Callable

from ingest.formats.html import html_sections
from ingest.formats.text import Loaded, Loader, NotContent, require_text
from rag.errors import LoadError
from rag.types import Section

MAIL_SUFFIXES = (".eml", ".mbox")
# An mbox separates messages with a line "From sender date" at the start of a line
MBOX_SEPARATOR = re.compile(rb"^From [^\r\n]*\r?\n", re.M)
# The format dispatch (ingest.formats.loader_for), passed in by it: this module never imports it back
ReadAttachment = Callable[[Path], "Loader | None"]


def _parse(data: bytes) -> EmailMessage:
    from email import message_from_bytes, policy

    return message_from_bytes(data, policy=policy.default)


def _header(message: EmailMessage, name: str) -> str:
    try:
        return " ".join(str(message.get(name, "") or "").split())
    except Exception:  # a malformed header (bad encoded word, broken address list) costs only itself
        return ""


def load_eml(path: Path, data: bytes, read_attachment: ReadAttachment) -> Loaded:
    message = _parse(data)
    if not any(_header(message, h) for h in ("From", "To", "Subject", "Date")):
        raise LoadError("not an email message (no From, To, Subject or Date header)")
    subject = _header(message, "Subject")
    return subject or path.stem, require_text(_renumbered(message_sections(message, (), read_attachment))), None


def load_mbox(path: Path, data: bytes, read_attachment: ReadAttachment) -> Loaded:
    if not data.startswith(b"From "):
        raise LoadError("not an mbox file (it must start with a 'From ' line)")
    sections: list[Section] = []
    for number, raw in enumerate(MBOX_SEPARATOR.split(data)[1:], start=1):
        message = _parse(raw)
        subject = _header(message, "Subject") or f"Message {number}"
        sections += message_sections(message, (subject,), read_attachment)
    return path.stem, require_text(_renumbered(sections)), None


def message_sections(message: EmailMessage, heading: tuple[str, ...], read_attachment: ReadAttachment) -> list[Section]:
    lines = [f"{h}: {v}" for h in ("From", "To", "Date") if (v := _header(message, h))]
    body = _body(message)
    sections: list[Section] = []
    unread: list[str] = []
    for part in message.iter_attachments():
        name = part.get_filename() or ""
        read = _attachment(name, part, read_attachment)
        if not isinstance(read, list):
            unread.append((name or part.get_content_type()) + (f" ({read})" if read else ""))
            continue
        for s in read:
            sections.append(Section(text=s.text, heading=heading + (f"Attachment: {name}",) + s.heading))
    if unread:
        sections.append(Section(text=f"{len(unread)} other attachment{'s' * (len(unread) > 1)} not indexed: "
                                     + ", ".join(unread), heading=heading))
    head = Section(text="\n".join(lines) + "\n\n" + body, heading=heading)
    return [head, *sections]


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except Exception:  # an unknown charset or a broken transfer encoding
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", errors="replace")
    if part.get_content_subtype() == "html":
        return "\n\n".join(s.text.strip() for s in html_sections(content)[1])
    return content


def _attachment(name: str, part: EmailMessage, read_attachment: ReadAttachment) -> list[Section] | str:
    """The attachment's sections; else why it is not read ("" for a type we do not read)."""
    if not name or Path(name).suffix.lower() in MAIL_SUFFIXES or part.get_content_type() == "message/rfc822":
        return ""
    loader = read_attachment(Path(name))
    if loader is None:
        return ""
    try:
        _, sections, *_ = loader(Path(name), part.get_payload(decode=True) or b"")
    except NotContent:  # a picture without text: named like a type we do not read
        return ""
    except LoadError as exc:
        return f"unreadable: {exc}"
    return sections


def _renumbered(sections: list[Section]) -> list[Section]:
    """Give every section its offset in the document's full text (sections joined by blank lines)."""
    out, offset = [], 0
    for s in sections:
        out.append(Section(text=s.text, heading=s.heading, page=None, start=offset))
        offset += len(s.text) + 2
    return out
