"""Random identifiers and values through the query builder: exact round trips, no injection."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from dictamesh_connectors.postgresql import query_builder as qb

from .conftest import unique

pytestmark = pytest.mark.integration

SYSTEM_COLUMNS = {"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid"}
HOSTILE = [
    'x"; DROP TABLE canary; --',
    "'); DROP TABLE canary; --",
    "a%s",
    "%(p0)s",
    "%%",
    "Robert'); DELETE FROM canary;--",
    "ünïcødé ☃ 表",
    "semi;colon",
    'quote"quote',
    "back\\slash",
    "tab\there",
]

# PostgreSQL truncates identifiers to 63 bytes, and text cannot hold NUL.
identifiers = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(min_size=1, max_size=20).filter(
        lambda s: "\x00" not in s and len(s.encode()) <= 63 and s not in SYSTEM_COLUMNS
    ),
)

TYPES = {
    "bigint": st.integers(-(2**63), 2**63 - 1),
    "text": st.one_of(st.text().filter(lambda s: "\x00" not in s), st.sampled_from(HOSTILE)),
    "double precision": st.floats(allow_nan=False),
    "bytea": st.binary(),
    "boolean": st.booleans(),
}


@st.composite
def tables(draw):
    names = draw(st.lists(identifiers, min_size=2, max_size=5, unique=True))
    key, *others = names
    types = [draw(st.sampled_from(sorted(TYPES))) for _ in others]
    row = {key: draw(TYPES["bigint"])}
    for name, type_ in zip(others, types, strict=True):
        row[name] = draw(st.one_of(st.none(), TYPES[type_]))
    updates = {
        name: draw(st.one_of(st.none(), TYPES[t])) for name, t in zip(others, types, strict=True)
    }
    return draw(identifiers), key, list(zip(others, types, strict=True)), row, updates


@pytest.fixture
def canary_db(make_db, admin):
    """A connector whose search_path holds a table literally named "canary".

    The hostile strings try to DROP / DELETE FROM canary: if any of them ever
    ran as SQL, this table would lose its rows or vanish.
    """
    schema = unique("canary")
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    admin.execute(sql.SQL("CREATE TABLE {}.canary (v int)").format(sql.Identifier(schema)))
    admin.execute(sql.SQL("INSERT INTO {}.canary VALUES (1), (2)").format(sql.Identifier(schema)))
    yield make_db(schema=schema)
    admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=tables())
def test_builder_round_trips_exactly_and_never_injects(canary_db, spec):
    db = canary_db
    table_name, key, columns, row, updates = spec
    table = (unique("qb"), table_name)  # a unique schema keeps examples apart
    schema = sql.Identifier(table[0])
    db.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    try:
        definition = sql.SQL(", ").join(
            [sql.SQL("{} bigint PRIMARY KEY").format(sql.Identifier(key))]
            + [sql.SQL("{} " + t).format(sql.Identifier(n)) for n, t in columns]
        )
        db.execute(sql.SQL("CREATE TABLE {} ({})").format(qb.identifier(table), definition))

        inserted = db.execute(*qb.insert(table, row, returning=list(row)))
        assert inserted.rows_affected == 1
        assert inserted.columns == list(row)
        assert all(inserted.rows[0][c] == v for c, v in row.items())

        fetched = db.query(*qb.select(table, where={key: row[key]}))
        assert fetched.columns == list(row) and len(fetched) == 1
        assert all(fetched.rows[0][c] == v for c, v in row.items())

        assert db.execute(*qb.update(table, updates, where={key: row[key]})).rows_affected == 1
        after = db.query(*qb.select(table, list(updates), where={key: row[key]})).first()
        assert all(after[c] == v for c, v in updates.items())

        upserted = db.execute(*qb.upsert(table, row, conflict=[key], returning=[key]))
        assert upserted.rows_affected == 1 and upserted.scalar() == row[key]
        assert db.query(*qb.select(table)).rowcount == 1

        assert db.execute(*qb.delete(table, where={key: row[key]})).rows_affected == 1
        assert db.query(*qb.select(table)).rowcount == 0
    finally:
        db.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))
    # Nothing hostile ran: the canary table is intact.
    assert db.query("SELECT count(*) FROM canary").scalar() == 2
