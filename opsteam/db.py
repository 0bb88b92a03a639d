"""Two tools for hot paths (the transition).

PreparedQuery: a queryset compiled once per database connection and run again with other values, where
Django's compiling of the SQL costs more than the database's answer
(tests/workflows/test_transition_fast.py holds each prepared query to what the ORM runs and loads).

server_prepared(): a block whose statements PostgreSQL parses and plans once per connection and then
only executes (tests/workflows/test_server_prepared.py)."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet, ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.transaction import TransactionManagementError


@dataclass(frozen=True)
class _Plan:
    """A compiled query: its SQL, its parameters with the slots the values go into, and how a row
    becomes model instances (as Django's ModelIterable does it)."""

    sql: str | None  # None: the query can match nothing (Django runs no query then)
    params: tuple[Any, ...]
    slots: tuple[tuple[int, str], ...]
    for_update: bool
    col_count: int
    model: type[Model]
    fields: slice
    init_list: tuple[str, ...]
    related: tuple[Any, ...]
    annotations: tuple[tuple[str, int], ...]
    converters: tuple[tuple[int, tuple[Any, ...], Any], ...]


class PreparedQuery:
    """A queryset compiled once per database connection and run again with other values, for hot
    paths where Django's compiling of the SQL costs more than the database's answer.

    `build` makes the queryset from keyword values (it must be the queryset that is iterated: sliced
    for `.first()`). It is compiled with the placeholder values, each of which must reach the SQL as a
    parameter of its own type (checked); a run puts the values given in their places. The values must
    be what the field would store (an int for an id): no conversion is made. Rows become model
    instances as the queryset's would: the same columns, converters, select_related objects and
    annotations, and the same check that a locking query runs inside a transaction."""

    def __init__(self, build: Callable[..., QuerySet[Any]], **placeholders: object) -> None:
        self.build = build
        self.placeholders = placeholders
        self._plans: weakref.WeakKeyDictionary[Any, _Plan] = weakref.WeakKeyDictionary()

    def run(self, **values: object) -> list[Any]:
        queryset_db = self._alias()
        connection = connections[queryset_db]
        plan = self._plans.get(connection)
        if plan is None:
            plan = self._plans[connection] = self._compile(queryset_db)
        if plan.sql is None:
            return []
        if plan.for_update and connection.get_autocommit() and connection.features.supports_transactions:
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        params = list(plan.params)
        for index, name in plan.slots:
            params[index] = values[name]
        with connection.cursor() as cursor:
            cursor.execute(plan.sql, tuple(params))
            rows = cursor.fetchall()
        objects = []
        for found in rows:
            row = list(found[: plan.col_count])
            for position, converters, expression in plan.converters:
                value = row[position]
                for converter in converters:
                    value = converter(value, expression, connection)
                row[position] = value
            obj = plan.model.from_db(queryset_db, plan.init_list, row[plan.fields])
            for populator in plan.related:
                populator.populate(row, obj)
            for name, position in plan.annotations:
                setattr(obj, name, row[position])
            objects.append(obj)
        return objects

    def _alias(self) -> str:
        alias: str | None = getattr(self, "_alias_found", None)
        if alias is None:
            alias = self._alias_found = self.build(**self.placeholders).db
        return alias

    def _compile(self, alias: str) -> _Plan:
        queryset = self.build(**self.placeholders)
        compiler = queryset.query.get_compiler(using=alias)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            sql, params = "", ()
        slots = tuple(
            (index, name)
            for index, param in enumerate(params)
            for name, placeholder in self.placeholders.items()
            if type(param) is type(placeholder) and param == placeholder
        )
        if sql and (
            {name for _, name in slots} != set(self.placeholders)
            or any(str(placeholder) in sql for placeholder in self.placeholders.values())
        ):
            raise ImproperlyConfigured(f"Some placeholder does not reach the SQL as a parameter: {sql}")
        if not sql:
            return _Plan(None, (), (), False, 0, queryset.model, slice(0), (), (), (), ())
        klass_info, select = compiler.klass_info, compiler.select
        assert klass_info is not None
        columns = [column[0] for column in select[: compiler.col_count]]
        if compiler.has_composite_fields(columns):
            raise ImproperlyConfigured("Composite fields are not prepared.")
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        return _Plan(
            sql=sql,
            params=tuple(params),
            slots=slots,
            for_update=bool(
                queryset.query.select_for_update and compiler.connection.features.has_select_for_update
            ),
            col_count=compiler.col_count,
            model=klass_info["model"],
            fields=slice(start, end),
            init_list=tuple(column[0].target.attname for column in select[start:end]),
            related=tuple(get_related_populators(klass_info, select, alias)),  # type: ignore[call-arg]
            annotations=tuple(compiler.annotation_col_map.items()),
            converters=tuple(
                (position, tuple(converters), expression)
                for position, (converters, expression) in compiler.get_converters(columns).items()
            ),
        )


@contextmanager
def server_prepared(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Within the block, each statement on the connection binds its parameters on the server and is
    prepared there the first time: PostgreSQL parses and plans it once per connection, and from then
    on only executes it. Planning was half the database time of a move (about 1.5 ms of a 9 ms move,
    BENCHMARKS.md), because a move is a dozen small statements.

    Only for a hot path of a few fixed statements that run on every request; elsewhere Django's
    default stays (parameters bound in the client, nothing prepared): a prepared statement's generic
    plan does not suit the analytics, whose best plan depends on the team and the period. Outside
    PostgreSQL the block changes nothing. Prepared statements live on the server connection, so a
    pooler in transaction mode (PgBouncer) needs max_prepared_statements; and a schema change while a
    connection is open fails its prepared statements once (deploys migrate, then restart the app)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    raw = connection.connection
    factory, threshold = raw.cursor_factory, raw.prepare_threshold
    # Django asks its features how to show a statement it ran (captured queries, DEBUG's log): with
    # server-side parameters it composes the SQL itself.
    features = vars(connection.features)
    binding = features.get("uses_server_side_binding", _UNSET)
    raw.cursor_factory, raw.prepare_threshold = ServerBindingCursor, 0
    features["uses_server_side_binding"] = True
    try:
        yield
    finally:
        raw.cursor_factory, raw.prepare_threshold = factory, threshold
        if binding is _UNSET:
            features.pop("uses_server_side_binding", None)
        else:
            features["uses_server_side_binding"] = binding


_UNSET = object()
