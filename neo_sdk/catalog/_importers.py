"""Atomic importers: CSV, JSONL, RecBole atomic files and pandas DataFrames.

Every import runs in two phases. **Validate**: the whole input is read and checked (encoding,
shape, required values, types, timestamps, duplicates, references to unknown items or users);
every problem is collected with its file, line and column. **Write**: only if nothing was wrong,
all rows go in one transaction. So a bad row anywhere leaves the database exactly as before, and
:class:`CatalogImportError` lists what to fix.

Column mapping: each kind has canonical columns (below). ``columns={"id": "movieId"}`` maps a
canonical name to the source's column name. Unmapped extra columns become the item's ``fields``
(descriptive text), the user's ``features``, or are refused for interactions and relations.

============  =====================================================  ======================
kind          canonical columns (required in bold)                   extra columns become
============  =====================================================  ======================
items         **id**, **title**, entity_type (or ``entity_type=``),  ``fields``
              popularity, active, metadata (a JSON object)
users         **id**                                                 ``features``
interactions  **user_id**, **item_id**, **timestamp**, value, event  refused
relations     **src**, **relation**, **dst**                         refused
============  =====================================================  ======================
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from neo_sdk.catalog._store import Catalog, Item, Relation
from neo_sdk.errors import CatalogImportError, ImportProblem

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["items", "users", "interactions", "relations"]
Format = Literal["csv", "jsonl", "recbole"]
KINDS: tuple[str, ...] = ("items", "users", "interactions", "relations")
FORMATS: tuple[str, ...] = ("csv", "jsonl", "recbole")

_CANONICAL: dict[str, tuple[str, ...]] = {
    "items": ("id", "title", "entity_type", "popularity", "active", "metadata"),
    "users": ("id",),
    "interactions": ("user_id", "item_id", "timestamp", "value", "event"),
    "relations": ("src", "relation", "dst"),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "items": ("id", "title"),
    "users": ("id",),
    "interactions": ("user_id", "item_id", "timestamp"),
    "relations": ("src", "relation", "dst"),
}
_RECBOLE_KIND = {".item": "items", ".user": "users", ".inter": "interactions"}
_RECBOLE_DEFAULT_COLUMNS = {
    "items": {"id": "item_id"},
    "users": {"id": "user_id"},
    "interactions": {},
}


@dataclass
class ImportReport:
    """What an import wrote."""

    source: str
    kind: str
    rows: int
    inserted: int
    updated: int = 0


@dataclass
class _Record:
    line: int | None
    values: dict[str, Any]


class _Problems:
    """Collects problems; stops collecting (not validating) after ``limit`` to bound memory."""

    def __init__(self, source: str, limit: int = 1000) -> None:
        self.source = source
        self.items: list[ImportProblem] = []
        self.limit = limit

    def add(self, line: int | None, column: str | None, message: str) -> None:
        if len(self.items) < self.limit:
            self.items.append(ImportProblem(self.source, line, column, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise CatalogImportError(self.items)


# ------------------------------------------------------------------ readers
def _decode(path: Path, problems: _Problems) -> str | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.add(None, None, f"cannot read file: {exc.strerror or exc}")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problems.add(
            line, None,
            f"bad encoding: byte 0x{data[exc.start]:02x} is not valid UTF-8; re-save the file as UTF-8",
        )
        return None


def _read_csv(text: str, problems: _Problems, delimiter: str = ",") -> Iterator[_Record]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        problems.add(1, None, "empty file: expected a header row")
        return
    except csv.Error as exc:
        problems.add(1, None, f"malformed header: {exc}")
        return
    header = [h.strip() for h in header]
    dupes = {h for h in header if header.count(h) > 1}
    if dupes:
        problems.add(1, None, f"duplicate column names in header: {sorted(dupes)}")
        return
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.add(start, None, f"malformed CSV: {exc}")
            return
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != len(header):
            problems.add(
                start, None,
                f"expected {len(header)} cells (header: {', '.join(header)}), found {len(row)}",
            )
            continue
        yield _Record(start, dict(zip(header, row)))


def _read_jsonl(text: str, problems: _Problems) -> Iterator[_Record]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.add(number, None, f"invalid JSON: {exc.msg} (character {exc.colno})")
            continue
        if not isinstance(value, dict):
            problems.add(number, None, f"expected a JSON object, found {type(value).__name__}")
            continue
        yield _Record(number, value)


def _read_recbole(text: str, problems: _Problems) -> Iterator[_Record]:
    """RecBole atomic file: tab-separated, header cells ``name:type`` (token, token_seq, float...)."""
    lines = text.splitlines()
    if not lines:
        problems.add(1, None, "empty file: expected a 'name:type' header row")
        return
    names, types = [], []
    for cell in lines[0].split("\t"):
        name, sep, kind = cell.strip().partition(":")
        if not sep or kind not in ("token", "token_seq", "float", "float_seq"):
            problems.add(
                1, cell, "RecBole header cells must be 'name:type' with type token, token_seq,"
                " float or float_seq",
            )
            return
        names.append(name)
        types.append(kind)
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(names):
            problems.add(number, None, f"expected {len(names)} tab-separated cells, found {len(cells)}")
            continue
        values: dict[str, Any] = {}
        for name, kind, cell in zip(names, types, cells):
            values[name] = cell.split(" ") if kind.endswith("_seq") and cell else cell
        yield _Record(number, values)


def _read_dataframe(df: pd.DataFrame) -> Iterator[_Record]:
    for position, row in enumerate(df.to_dict("records"), start=1):
        yield _Record(position, {str(k): _from_pandas(v) for k, v in row.items()})


def _from_pandas(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            return value.item()  # numpy scalar -> python
        except (ValueError, AttributeError):
            return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# ------------------------------------------------------------------ parsing
def parse_timestamp(value: Any) -> float:
    """Seconds since the epoch from a number or an ISO-8601 string (naive times are UTC).

    Raises:
        ValueError: the value is empty or not a timestamp.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("missing timestamp")
    if isinstance(value, bool):
        raise ValueError(f"unparsable timestamp {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(
                    f"unparsable timestamp {text!r}: use seconds since 1970 or ISO 8601"
                    " (e.g. 2024-05-01T12:00:00Z)"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            number = moment.timestamp()
    if not math.isfinite(number):
        raise ValueError(f"timestamp {value!r} is not finite")
    return number


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    number = float(value)
    if not math.isfinite(number):
        raise ValueError
    return number


def _blank(value: Any) -> bool:
    return value is None or value == [] or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    if isinstance(value, list):  # a RecBole token_seq used as a scalar (e.g. a title)
        return " ".join(str(v) for v in value).strip()
    return value.strip() if isinstance(value, str) else str(value)


def _parse_active(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "t"):
        return True
    if text in ("0", "false", "no", "n", "f"):
        return False
    raise ValueError


# --------------------------------------------------------------- validation
class _Importer:
    def __init__(
        self,
        catalog: Catalog,
        kind: str,
        source: str,
        columns: Mapping[str, str] | None,
        entity_type: str | None,
        upsert: bool,
        create_users: bool,
    ) -> None:
        if kind not in KINDS:
            raise CatalogImportError(
                [ImportProblem(source, None, None, f"unknown kind {kind!r}; use one of {KINDS}")]
            )
        self.catalog = catalog
        self.kind = kind
        self.source = source
        self.problems = _Problems(source)
        unknown = set(columns or {}) - set(_CANONICAL[kind])
        if unknown:
            self.problems.add(
                None, None,
                f"column mapping names unknown fields {sorted(unknown)} for {kind};"
                f" known: {list(_CANONICAL[kind])}",
            )
        self.columns = {name: (columns or {}).get(name, name) for name in _CANONICAL[kind]}
        self.entity_type = entity_type
        self.upsert = upsert
        self.create_users = create_users
        self.types = catalog.entity_types()
        if entity_type is not None and entity_type not in self.types:
            self.problems.add(
                None, None,
                f"unknown entity type {entity_type!r} (known: {', '.join(self.types) or 'none'});"
                " declare it first (neo catalog declare)",
            )
        self._checked_header = False
        self._checked_extra = False

    def _check_header(self, record: _Record) -> bool:
        required = list(_REQUIRED[self.kind])
        if self.kind == "items" and self.entity_type is None:
            required.append("entity_type")
        missing = [name for name in required if self.columns[name] not in record.values]
        for name in missing:
            source_name = self.columns[name]
            hint = f" (map it with columns={{'{name}': '<your column>'}})" if source_name == name else ""
            self.problems.add(
                record.line, source_name,
                f"required column {source_name!r} is missing; found {sorted(record.values)}{hint}",
            )
        return not missing

    def validate(self, records: Iterator[_Record]) -> list[Any]:
        """The valid rows (items, ``(id, features)`` users, interaction tuples or relations)."""
        rows: list[Any] = []
        seen: dict[Any, int | None] = {}
        ctx = self._context()
        for record in records:
            if not self._checked_header:
                self._checked_header = True
                if not self._check_header(record):
                    return rows
            row = getattr(self, f"_{self.kind}_row")(record, seen, ctx)
            if row is not None:
                rows.append(row)
        return rows

    def _context(self) -> dict[str, Any]:
        if self.kind == "items":
            return {"existing": set(self.catalog.item_ids())}
        if self.kind == "users":
            return {"existing": set(self.catalog.user_ids())}
        return {"items": set(self.catalog.item_ids()), "users": set(self.catalog.user_ids())}

    def _get(self, record: _Record, name: str) -> Any:
        return record.values.get(self.columns[name])

    def _required(self, record: _Record, name: str, what: str) -> str | None:
        value = self._get(record, name)
        if _blank(value):
            self.problems.add(record.line, self.columns[name], f"missing {what}")
            return None
        return _text(value)

    def _duplicate(self, record: _Record, key: Any, seen: dict[Any, int | None], col: str, what: str) -> bool:
        if key in seen:
            self.problems.add(
                record.line, col, f"duplicate {what} {key!r} (first on line {seen[key]})"
            )
            return True
        seen[key] = record.line
        return False

    def _items_row(self, record: _Record, seen: dict[Any, int | None], ctx: dict[str, Any]) -> Item | None:
        line = record.line
        item_id = self._required(record, "id", "item id")
        title = self._required(record, "title", "title")
        etype = self.entity_type
        if etype is None:
            etype = self._required(record, "entity_type", "entity type")
            if etype is not None and etype not in self.types:
                self.problems.add(
                    line, self.columns["entity_type"],
                    f"unknown entity type {etype!r} (known: {', '.join(self.types) or 'none'});"
                    " declare it first (neo catalog declare)",
                )
                etype = None
        if item_id is not None:
            if self._duplicate(record, item_id, seen, self.columns["id"], "item id"):
                return None
            if item_id in ctx["existing"] and not self.upsert:
                self.problems.add(
                    line, self.columns["id"],
                    f"item id {item_id!r} already exists in the catalog; pass upsert (--upsert) to update it",
                )
                return None
        popularity = 0.0
        raw = self._get(record, "popularity")
        if not _blank(raw):
            try:
                popularity = _number(raw)
            except (TypeError, ValueError):
                self.problems.add(line, self.columns["popularity"], f"popularity {raw!r} is not a number")
        active = True
        raw = self._get(record, "active")
        if not _blank(raw):
            try:
                active = _parse_active(raw)
            except ValueError:
                self.problems.add(line, self.columns["active"], f"active {raw!r} is not true/false/1/0")
        metadata: Any = {}
        raw = self._get(record, "metadata")
        if not _blank(raw):
            metadata = raw
            if isinstance(raw, str):
                try:
                    metadata = json.loads(raw)
                except json.JSONDecodeError:
                    metadata = None
            if not isinstance(metadata, dict):
                self.problems.add(line, self.columns["metadata"], "metadata must be a JSON object")
                metadata = {}
        mapped = set(self.columns.values())
        fields = {k: v for k, v in record.values.items() if k not in mapped and not _blank(v)}
        if item_id is None or title is None or etype is None:
            return None
        return Item(item_id, etype, title, fields, metadata, popularity, active)

    def _users_row(
        self, record: _Record, seen: dict[Any, int | None], ctx: dict[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        user_id = self._required(record, "id", "user id")
        if user_id is None or self._duplicate(record, user_id, seen, self.columns["id"], "user id"):
            return None
        if user_id in ctx["existing"] and not self.upsert:
            self.problems.add(
                record.line, self.columns["id"],
                f"user id {user_id!r} already exists; pass upsert (--upsert) to update it",
            )
            return None
        features = {k: v for k, v in record.values.items() if k != self.columns["id"] and not _blank(v)}
        return (user_id, features)

    def _refuse_extra(self, record: _Record) -> bool:
        extra = set(record.values) - set(self.columns.values())
        if extra and not self._checked_extra:
            self._checked_extra = True
            self.problems.add(
                record.line, sorted(extra)[0],
                f"unexpected columns {sorted(extra)} for {self.kind}; expected"
                f" {list(self.columns.values())} (map yours with columns=...)",
            )
        return bool(extra)

    def _interactions_row(self, record: _Record, seen: dict[Any, int | None], ctx: dict[str, Any]) -> tuple[Any, ...] | None:
        line = record.line
        if self._refuse_extra(record):
            return None
        user = self._required(record, "user_id", "user id")
        item = self._required(record, "item_id", "item id")
        raw_ts = self._get(record, "timestamp")
        timestamp = None
        try:
            timestamp = parse_timestamp(raw_ts)
        except ValueError as exc:
            self.problems.add(line, self.columns["timestamp"], str(exc))
        value = None
        raw = self._get(record, "value")
        if not _blank(raw):
            try:
                value = _number(raw)
            except (TypeError, ValueError):
                self.problems.add(line, self.columns["value"], f"value {raw!r} is not a number")
        event = self._get(record, "event")
        event = "interaction" if _blank(event) else _text(event)
        if item is not None and item not in ctx["items"]:
            self.problems.add(
                line, self.columns["item_id"], f"interaction for unknown item {item!r}; import the item first"
            )
            item = None
        if user is not None and user not in ctx["users"] and not self.create_users:
            self.problems.add(
                line, self.columns["user_id"],
                f"interaction for unknown user {user!r}; import users first or pass create_users"
                " (--create-users)",
            )
            user = None
        if user is None or item is None or timestamp is None:
            return None
        return (user, item, timestamp, value, event)

    def _relations_row(self, record: _Record, seen: dict[Any, int | None], ctx: dict[str, Any]) -> Relation | None:
        if self._refuse_extra(record):
            return None
        src = self._required(record, "src", "source item id")
        relation = self._required(record, "relation", "relation name")
        dst = self._required(record, "dst", "target item id")
        for name, value in (("src", src), ("dst", dst)):
            if value is not None and value not in ctx["items"]:
                self.problems.add(record.line, self.columns[name], f"relation refers to unknown item {value!r}")
                return None
        if src is None or relation is None or dst is None:
            return None
        return Relation(src, relation, dst)

    def write(self, rows: list[Any], new_users: dict[str, None]) -> ImportReport:
        """Write validated rows in one transaction; counts new and updated rows."""
        catalog = self.catalog
        report = ImportReport(self.source, self.kind, len(rows), 0)
        with catalog.transaction():
            if self.kind == "items":
                report.updated = len(catalog.known_item_ids(item.id for item in rows))
                catalog.add_items(rows, upsert=self.upsert)
            elif self.kind == "users":
                report.updated = len(catalog.known_user_ids(user_id for user_id, _ in rows))
                catalog.add_users(rows, upsert=self.upsert)
            elif self.kind == "interactions":
                catalog.add_users((user_id, {}) for user_id in new_users)
                catalog.add_interaction_rows(rows)
            else:
                report.inserted = catalog.add_relations(rows)
                return report
        report.inserted = len(rows) - report.updated
        return report


def import_file(
    catalog: Catalog,
    path: str | Path,
    kind: Kind | None = None,
    *,
    format: Format | None = None,
    entity_type: str | None = None,
    columns: Mapping[str, str] | None = None,
    upsert: bool = False,
    create_users: bool = False,
) -> ImportReport:
    """Validate a whole file, then write it in one transaction (or write nothing and raise).

    Args:
        catalog: the target catalog.
        path: a ``.csv``, ``.jsonl`` / ``.ndjson``, or RecBole ``.item`` / ``.user`` / ``.inter`` file.
        kind: ``items``, ``users``, ``interactions`` or ``relations``; RecBole files imply it.
        format: ``csv``, ``jsonl`` or ``recbole``; guessed from the extension when omitted.
        entity_type: entity type of every imported item (instead of an ``entity_type`` column).
        columns: canonical name -> column name in the file, e.g. ``{"id": "movieId"}``.
        upsert: update items/users whose id already exists instead of refusing them.
        create_users: let interactions create users that do not exist yet.

    Raises:
        CatalogImportError: anything wrong in the file; nothing was written.
    """
    path = Path(path)
    fmt = format or _guess_format(path)
    if kind is None:
        kind = _RECBOLE_KIND.get(path.suffix)  # type: ignore[assignment]
        if kind is None:
            raise CatalogImportError(
                [ImportProblem(str(path), None, None, f"say what the file holds: kind is one of {KINDS}")]
            )
    if fmt == "recbole":
        columns = {**_RECBOLE_DEFAULT_COLUMNS.get(kind, {}), **(columns or {})}
    importer = _Importer(catalog, kind, str(path), columns, entity_type, upsert, create_users)
    text = _decode(path, importer.problems)
    if text is None:
        importer.problems.raise_if_any()
    assert text is not None
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "recbole": _read_recbole}[fmt]
    return _validate_and_write(importer, reader(text, importer.problems))


def import_dataframe(
    catalog: Catalog,
    df: pd.DataFrame,
    kind: Kind,
    *,
    entity_type: str | None = None,
    columns: Mapping[str, str] | None = None,
    upsert: bool = False,
    create_users: bool = False,
    name: str = "<DataFrame>",
) -> ImportReport:
    """Like :func:`import_file` for a pandas DataFrame; ``line`` in errors is the 1-based row."""
    importer = _Importer(catalog, kind, name, columns, entity_type, upsert, create_users)
    return _validate_and_write(importer, _read_dataframe(df))


def _validate_and_write(importer: _Importer, records: Iterator[_Record]) -> ImportReport:
    rows = importer.validate(records)
    if not importer._checked_header and not importer.problems.items:
        importer.problems.add(None, None, "no rows to import")
    importer.problems.raise_if_any()
    new_users: dict[str, None] = {}
    if importer.kind == "interactions" and importer.create_users:
        known = set(importer.catalog.user_ids())
        new_users = {r[0]: None for r in rows if r[0] not in known}
    return importer.write(rows, new_users)


def _guess_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in _RECBOLE_KIND:
        return "recbole"
    raise CatalogImportError(
        [ImportProblem(str(path), None, None, f"cannot tell the format from {suffix!r}; pass format= one of {FORMATS}")]
    )
