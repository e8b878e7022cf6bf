"""Domain errors. The CLI turns every RagError into one line on stderr and exit status 1."""


class RagError(Exception):
    """A problem the user can fix; the message says what went wrong and what to do."""


class ConfigError(RagError):
    """A setting is missing or invalid."""


class IndexMissing(RagError):
    """The named index does not exist yet."""


class IndexBusy(RagError):
    """Another ingest is writing to this index."""


class IndexMismatch(RagError):
    """The index was built with another embedding model or chunking settings."""


class ModelNotFound(RagError):
    """The embedding model cannot be loaded from the package, a local path or the cache."""


class LoadError(RagError):
    """One file could not be read; ingest reports it and goes on."""


class LLMError(RagError):
    """The LLM server refused or failed; the message never carries the API key."""


class StorageError(RagError):
    """The disk, the file system or SQLite refused an index's files (I/O error, read-only, ...)."""


class DiskFull(StorageError):
    """No space left for the index's files; what was committed before is kept."""


class IndexDamaged(StorageError):
    """rag.sqlite fails SQLite's own checks: its contents cannot be trusted."""
