"""The catalog opened read only: for what must write nothing (a crawl replayed from the archive).

``Catalog(url)`` makes a missing SQLite file and upgrades an older schema as it opens; this one
does neither, and its engine refuses writes (SQLite ``mode=ro``, a PostgreSQL read-only
transaction), so every reading method of ``Catalog`` works and no write can slip through.
SQLite may still leave its ``-wal`` and ``-shm`` files beside a catalog in WAL mode: they hold
no data, and the next writer uses them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

from crawler.catalog.db import Catalog


def readonly_engine(url: str) -> Engine:
    """An engine on the catalog at ``url`` that cannot write (nor make a SQLite file)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not parsed.database or not path.is_file():
            raise FileNotFoundError(f"no catalog at {path}")
        target = quote(str(path.resolve()), safe="/")
        engine = create_engine(f"sqlite:///file:{target}?mode=ro&uri=true")

        def wait(dbapi_connection: object, _record: object) -> None:
            # A crawl writing meanwhile holds the lock a moment: wait for it, as Catalog does.
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        event.listen(engine, "connect", wait)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, execution_options={"postgresql_readonly": True})
    return create_engine(url)


class ReadOnlyCatalog(Catalog):
    """``Catalog``'s reading methods on a read-only engine; nothing is created or upgraded."""

    def __init__(self, url: str) -> None:  # no super().__init__: it would create and upgrade
        self.url = url
        self.engine = readonly_engine(url)
        self._lock = threading.Lock()

    def __str__(self) -> str:
        """The catalog's URL as given (not the read-only one opened), without its password."""
        return make_url(self.url).render_as_string(hide_password=True)
