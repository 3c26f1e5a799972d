"""query_builder: identifiers quoted, values always parameters (no server)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.postgresql import query_builder as qb

HOSTILE = 'x"; DROP TABLE users; --'


def text(statement):
    return statement.sql.as_string(None)


def test_select():
    s = qb.select(
        "users", ["id", "name"], where={"id": 7, "deleted_at": None}, order_by=["id"], limit=5
    )
    assert text(s) == (
        'SELECT "id", "name" FROM "users" WHERE "id" = %(p0)s AND "deleted_at" IS NULL '
        'ORDER BY "id" LIMIT %(p1)s'
    )
    assert s.params == {"p0": 7, "p1": 5}
    assert text(qb.select(("s", "t"))) == 'SELECT * FROM "s"."t"'


def test_insert_update_delete_upsert():
    assert text(qb.insert("t", {"a": 1, "b": "x"}, returning=["id"])) == (
        'INSERT INTO "t" ("a", "b") VALUES (%(p0)s, %(p1)s) RETURNING "id"'
    )
    u = qb.update("t", {"a": 2}, where={"id": 1}, returning="*")
    assert text(u) == 'UPDATE "t" SET "a" = %(p0)s WHERE "id" = %(p1)s RETURNING *'
    assert u.params == {"p0": 2, "p1": 1}
    assert text(qb.delete("t", where={"id": 1})) == 'DELETE FROM "t" WHERE "id" = %(p0)s'
    # Only the string "*" means every column: a column may be named "*".
    assert text(qb.delete("t", where={"a": 1}, returning=["*"])).endswith('RETURNING "*"')
    up = qb.upsert("t", {"id": 1, "a": 2, "b": 3}, conflict=["id"])
    assert text(up) == (
        'INSERT INTO "t" ("id", "a", "b") VALUES (%(p0)s, %(p1)s, %(p2)s) ON CONFLICT ("id") '
        'DO UPDATE SET "a" = EXCLUDED."a", "b" = EXCLUDED."b"'
    )
    nothing = qb.upsert("t", {"id": 1}, conflict="id", update=[])
    assert text(nothing).endswith('ON CONFLICT ("id") DO NOTHING')


def test_hostile_identifiers_are_quoted_and_values_never_inlined():
    s = qb.insert(HOSTILE, {HOSTILE: "'); DROP TABLE users; --"})
    sql_text = text(s)
    assert (
        sql_text
        == 'INSERT INTO "x""; DROP TABLE users; --" ("x""; DROP TABLE users; --") VALUES (%(p0)s)'
    )
    assert "');" not in sql_text
    assert s.params == {"p0": "'); DROP TABLE users; --"}


def test_percent_in_names_is_escaped_for_parameter_binding():
    s = qb.select("a%s", ["b%(p0)s"], where={"c%": 1})
    assert text(s) == 'SELECT "b%%(p0)s" FROM "a%%s" WHERE "c%%" = %(p0)s'
    # The public identifier() is for parameterless statements (COPY, DDL): no escaping.
    assert qb.identifier("a%s").as_string(None) == '"a%s"'


@pytest.mark.parametrize(
    "call",
    [
        lambda: qb.update("t", {"a": 1}, where={}),
        lambda: qb.delete("t", where={}),
        lambda: qb.insert("t", {}),
        lambda: qb.insert("", {"a": 1}),
        lambda: qb.insert("t", {"a\x00": 1}),
        lambda: qb.select(("a", "b", "c")),
        lambda: qb.select("t", limit=-1),
        lambda: qb.select("t", limit=True),
        lambda: qb.upsert("t", {"a": 1}, conflict=[]),
        lambda: qb.insert("t", {"a": 1}, returning=[]),
        lambda: qb.select(42),
    ],
)
def test_bad_arguments_raise_invalid_config_error(call):
    with pytest.raises(InvalidConfigError):
        call()


names = st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s)
values = st.one_of(st.none(), st.integers(), st.text(), st.binary(), st.floats(allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(table=names, row=st.dictionaries(names, values, min_size=1, max_size=5))
def test_any_names_and_values_stay_out_of_the_sql_text(table, row):
    s = qb.insert(table, row, returning=list(row))
    # Every value is a parameter, in order, under generated names.
    assert list(s.params.values()) == list(row.values())
    assert list(s.params) == [f"p{i}" for i in range(len(row))]

    # The SQL text is exactly our keywords, the quoted names and placeholders.
    def quoted(name):
        return '"' + name.replace('"', '""').replace("%", "%%") + '"'

    cols = ", ".join(quoted(c) for c in row)
    placeholders = ", ".join(f"%(p{i})s" for i in range(len(row)))
    assert text(s) == (
        f"INSERT INTO {quoted(table)} ({cols}) VALUES ({placeholders}) RETURNING {cols}"
    )
