"""Every error class rag raises, in one place.

The CLI turns every RagError into one line on stderr and exit status 1 (`PartialFailure` carries
its own status); the HTTP server answers an `ApiError` as OpenAI-style JSON with its status.
Raise them `from exc` so that `rag --debug` shows the cause.
"""


class RagError(Exception):
    """A problem the user can fix; the message says what went wrong and what to do."""


class ConfigError(RagError):
    """A setting is missing or invalid."""


class MissingExtra(ConfigError):
    """A command needs an optional part of rag that is not installed (`pip install 'rag[extra]'`)."""

    def __init__(self, extra: str, needed_for: str, alternative: str | None = None):
        instead = f", or {alternative}" if alternative else ""
        super().__init__(f"{needed_for} needs rag[{extra}]: pip install 'rag[{extra}]'{instead}")
        self.extra = extra


class IndexMissing(RagError):
    """The named index does not exist yet."""


class IndexBusy(RagError):
    """Another ingest is writing to this index."""


class IndexMismatch(RagError):
    """The index was built with another embedding model or chunking settings."""


class IndexTooNew(RagError):
    """The index was written by a newer version of rag (its schema has steps this one does not know)."""


class ModelNotFound(RagError):
    """The embedding model cannot be loaded from the package, a local path or the cache."""


class ExportError(RagError):
    """The model could not be exported to the chosen runtime (rag.embedding.export)."""


class LoadError(RagError):
    """One file could not be read; ingest reports it and goes on."""


class RayUnavailable(RagError):
    """The Ray cluster cannot be joined, or its workers cannot ingest (`rag ingest --ray`)."""


class LLMError(RagError):
    """The LLM server refused or failed; the message never carries the API key."""


class PartialFailure(RagError):
    """A command did part of its work and reports the rest as failed: the CLI prints `message` as
    its last line and exits with `exit_code` (the work that succeeded is kept)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class ApiError(Exception):
    """An HTTP error answered as OpenAI-style JSON (rag.servers): not a RagError, because its status
    and type are the client's to read, not a line for a terminal."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
class StorageError(RagError):
    """The disk, the file system or SQLite refused an index's files (I/O error, read-only, ...)."""


class DiskFull(StorageError):
    """No space left for the index's files; what was committed before is kept."""


class IndexDamaged(StorageError):
    """rag.sqlite fails SQLite's own checks: its contents cannot be trusted."""


class NotContent(LoadError):
    """The file was read, and is not content: a page of navigation links, a redirect, an image
    without text. Ingest leaves it out and counts it by this reason; it is not a failure."""


def unread_message(pages: int) -> str:
    """What to do about scanned pages nobody could read (ingest.formats.ocr, the ingest summary)."""
    return f"install tesseract-ocr to read {pages} scanned page{'s' if pages != 1 else ''}"


class NeedsOCR(LoadError):
    """Every page with content is a scanned image, and Tesseract is not installed."""

    def __init__(self, pages: int):
        self.pages = pages
        super().__init__(unread_message(pages))


class Unusable(Exception):
    """A saved vector file that cannot be used (rag.storage.vectors); the message says why, in
    words for the user. Not a RagError: the store rebuilds the file from rag.sqlite instead."""
