"""Where a reextract run stands, kept in the catalog so a killed run resumes where it stopped.

``reextract_runs``: one row per run (one site), with the fingerprint of its selection (the
options, the text mode, the extractor version and the site rules): the same command started
again finds its unfinished run by it. ``reextract_done``: one row per record the run has
decided (changed, unchanged, failed), and, before a new version is written anywhere, a
``writing`` row naming the version and text key it is going to be, so a run killed halfway
through a write finishes that write instead of making the version twice.

Side tables beside the catalog's own (same database), made on first use.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from operator import attrgetter
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)

from crawler.catalog.db import insert_rows

tables = MetaData()

reextract_runs = Table(
    "reextract_runs",
    tables,
    Column("run_id", String(160), primary_key=True),
    Column("site", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("selection", Text, nullable=False),  # JSON: what the run re-extracts
    Column("host", String(255)),
    Column("pid", Integer),
    Column("started", String(32), nullable=False),
    Column("finished", String(32)),  # NULL while unfinished (running, or killed)
    Column("summary", Text),  # JSON, once finished
)
Index("ix_reextract_runs_fingerprint", reextract_runs.c.fingerprint, reextract_runs.c.site)

reextract_done = Table(
    "reextract_done",
    tables,
    Column("run_id", String(160), primary_key=True),
    Column("record_id", String(80), primary_key=True),  # the capture re-extracted
    Column("outcome", String(16), nullable=False),  # writing | changed | unchanged | failed
    Column("reason", String(32)),  # a failure's reason
    Column("detail", Text),  # a failure's detail; a writing row's JSON (what it replaces)
    Column("text_key", Text),  # the version written (or being written)
    Column("version", Integer),
    Column("records", Text),  # JSON: where its conversion and metadata records lie
    Column("at", String(32), nullable=False),
)

OUTCOMES = ("writing", "changed", "unchanged", "failed")


@dataclass(frozen=True, slots=True)
class RunRow:
    run_id: str
    site: str
    fingerprint: str
    selection: str
    started: str
    host: str | None = None
    pid: int | None = None
    finished: str | None = None
    summary: str | None = None


@dataclass(frozen=True, slots=True)
class DoneRow:
    run_id: str
    record_id: str
    outcome: str
    at: str
    reason: str | None = None
    detail: str | None = None
    text_key: str | None = None
    version: int | None = None
    records: str | None = None

    def record_places(self) -> list[dict[str, Any]]:
        """The run's own records of this capture (conversion, metadata) as location dicts."""
        return list(json.loads(self.records)) if self.records else []


_DONE = tuple(f.name for f in fields(DoneRow))


# A row's values in _DONE's order, as one tuple (in C).
_done_values: Callable[[DoneRow], tuple[Any, ...]] = attrgetter(*_DONE)


def _row(cls: type[Any], mapping: Any) -> Any:
    return cls(**{f.name: mapping[f.name] for f in fields(cls)})


class Checkpoints:
    """The reextract runs of one catalog, and what each has done."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        tables.create_all(engine)

    def start(self, run: RunRow) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(reextract_runs).values(**asdict(run)))

    def run(self, run_id: str) -> RunRow | None:
        with self.engine.connect() as conn:
            found = (
                conn.execute(select(reextract_runs).where(reextract_runs.c.run_id == run_id))
                .mappings()
                .first()
            )
        return None if found is None else _row(RunRow, found)

    def unfinished(self, fingerprint: str) -> list[RunRow]:
        """The runs of this selection not finished (killed, or running elsewhere), oldest
        first."""
        query = (
            select(reextract_runs)
            .where(
                and_(
                    reextract_runs.c.fingerprint == fingerprint,
                    reextract_runs.c.finished.is_(None),
                )
            )
            .order_by(reextract_runs.c.started, reextract_runs.c.run_id)
        )
        with self.engine.connect() as conn:
            return [_row(RunRow, r) for r in conn.execute(query).mappings()]

    def adopt(self, run_id: str, host: str, pid: int) -> None:
        """The process that resumes a run is the one its row names from now on."""
        with self.engine.begin() as conn:
            conn.execute(
                update(reextract_runs)
                .where(reextract_runs.c.run_id == run_id)
                .values(host=host, pid=pid)
            )

    def finish(self, run_id: str, when: str, summary: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(reextract_runs)
                .where(reextract_runs.c.run_id == run_id)
                .values(finished=when, summary=json.dumps(summary, sort_keys=True))
            )

    def done(self, run_ids: Iterable[str], outcome: str | None = None) -> dict[str, DoneRow]:
        """Every record these runs decided (or began to write), by record id; ``outcome``:
        only those."""
        ids = list(run_ids)
        if not ids:
            return {}
        query = select(reextract_done).where(reextract_done.c.run_id.in_(ids))
        if outcome is not None:
            query = query.where(reextract_done.c.outcome == outcome)
        with self.engine.connect() as conn:
            return {r["record_id"]: _row(DoneRow, r) for r in conn.execute(query).mappings()}

    def counts(self, run_id: str) -> dict[str, int]:
        """How many records of the run have each outcome (one query, no rows read)."""
        t = reextract_done.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.outcome, func.count()).where(t.run_id == run_id).group_by(t.outcome)
            ).all()
        return {str(outcome): int(count) for outcome, count in rows}

    def put(self, rows: Sequence[DoneRow], *, replace: Collection[str] = ()) -> None:
        """Record these outcomes in one transaction. A record in ``replace`` (its ``writing``
        row is in the table) has that row replaced (``writing`` becomes ``changed``); any
        other is inserted, and the table's key refuses it if the run decided it before."""
        latest = {(row.run_id, row.record_id): row for row in rows}
        if not latest:
            return
        by_run: dict[str, list[str]] = {}
        for run_id, record_id in latest:
            if record_id in replace:
                by_run.setdefault(run_id, []).append(record_id)
        t = reextract_done.c
        with self.engine.begin() as conn:
            for run_id, ids in by_run.items():
                for start in range(0, len(ids), 500):
                    conn.execute(
                        delete(reextract_done).where(
                            and_(t.run_id == run_id, t.record_id.in_(ids[start : start + 500]))
                        )
                    )
            # Tuples to the driver's executemany: SQLAlchemy's insert processed each row's
            # parameters in Python (8 us a record of a reextract run's parent, issue 21).
            insert_rows(conn, reextract_done, _DONE, [_done_values(row) for row in latest.values()])
