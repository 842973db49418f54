"""A lean multi-row INSERT for the hot paths."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar

from django.db import connections, models, router

M = TypeVar("M", bound=models.Model)

# More rows than this (a job's batch, not a request's few) go through bulk_create, which
# splits them to fit the database's limit on parameters and packs them efficiently.
MAX_ROWS = 50


@cache
def _statement(model: type[models.Model], vendor: str, rows: int) -> tuple[str, tuple[str, ...]]:
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    ops = connections[router.db_for_write(model)].ops
    columns = ", ".join(ops.quote_name(f.column or f.name) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    table = ops.quote_name(meta.db_table)
    pk = ops.quote_name(meta.pk.column if meta.pk and meta.pk.column else "id")
    values = ", ".join([row] * rows)
    # Names quoted from the model; the values are parameters.
    sql = f"INSERT INTO {table} ({columns}) VALUES {values} RETURNING {pk}"  # noqa: S608
    return sql, tuple(f.attname for f in fields)


@cache
def _fields(model: type[models.Model], attnames: tuple[str, ...]) -> list[models.Field]:
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    return [by_attname[name] for name in attnames]


def insert_all(objs: Sequence[M]) -> Sequence[M]:
    """INSERT new rows of one model in one statement and set their ids, as
    `bulk_create` does for the few rows of one request, without building the query
    each time (the statement is made once per model and row count) or packing the
    values into arrays (PostgreSQL's UNNEST form, which pays off for many rows, not
    three). Defaults are the Python ones, as for `bulk_create`; no signals are sent.
    More than MAX_ROWS: `bulk_create` itself."""
    if not objs:
        return objs
    model = type(objs[0])
    if len(objs) > MAX_ROWS:
        return model._default_manager.bulk_create(objs)
    connection = connections[router.db_for_write(model)]
    sql, attnames = _statement(model, connection.vendor, len(objs))
    fields = _fields(model, attnames)
    params: list[Any] = []
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="insert_all")  # type: ignore[attr-defined]
        params += [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs


@cache
def _update_statement(
    model: type[models.Model], names: tuple[str, ...]
) -> tuple[str, tuple[models.Field, ...]]:
    ops = connections[router.db_for_write(model)].ops
    meta = model._meta
    by_name = {f.name: f for f in meta.concrete_fields}
    fields = tuple(by_name[name] for name in names)
    assignments = ", ".join(f"{ops.quote_name(f.column or f.name)} = %s" for f in fields)
    table = ops.quote_name(meta.db_table)
    pk = ops.quote_name(meta.pk.column if meta.pk and meta.pk.column else "id")
    # Names quoted from the model; the values are parameters.
    return f"UPDATE {table} SET {assignments} WHERE {pk} = %s", fields  # noqa: S608


def update_fields(obj: models.Model, names: Sequence[str]) -> None:
    """UPDATE these fields of a saved row, as `save(update_fields=...)` does, with the
    statement made once per model and field list (no signals; no auto_now fields)."""
    model = type(obj)
    connection = connections[router.db_for_write(model)]
    sql, fields = _update_statement(model, tuple(names))
    params = [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, obj.pk])


@cache
def _select_statement(
    model: type[models.Model], where: str, alias: str
) -> tuple[str, tuple[str, ...], tuple[tuple[int, Any, Any], ...]]:
    connection = connections[alias]
    ops, meta = connection.ops, model._meta
    fields = list(meta.concrete_fields)
    columns = ", ".join(ops.quote_name(f.column or f.name) for f in fields)
    # The model's columns and a condition written by the caller; the values are parameters.
    sql = f"SELECT {columns} FROM {ops.quote_name(meta.db_table)} WHERE {where}"  # noqa: S608
    converters = []
    for i, field in enumerate(fields):
        col = field.get_col(meta.db_table)
        for converter in ops.get_db_converters(col) + col.get_db_converters(connection):
            converters.append((i, converter, col))
    return sql, tuple(f.attname for f in fields), tuple(converters)


def select(model: type[M], where: str, params: Sequence[Any]) -> list[M]:
    """Rows of `model` matching `where` (SQL after WHERE, with %s placeholders, and any
    ORDER BY or FOR UPDATE after it), as model instances: what `Model.objects.raw` does,
    with the column list and value converters worked out once per statement."""
    alias = router.db_for_read(model)
    connection = connections[alias]
    sql, attnames, converters = _select_statement(model, where, alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found = []
    for row in rows:
        values = list(row)
        for i, converter, col in converters:
            values[i] = converter(values[i], col, connection)
        found.append(model.from_db(alias, attnames, values))
    return found
