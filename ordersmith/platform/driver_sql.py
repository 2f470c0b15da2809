"""Hot statements: Core built once, compiled once, run on the driver connection (per tenant schema).

Most SQL names tenant tables unqualified and lets the transaction's `search_path` pick
the schema (database.py). That costs PostgreSQL a re-plan whenever a pooled connection
moves to another tenant: a cached plan is only valid under the search_path it was made
with. For the few statements on the hottest path (order placement, idempotency keys)
that re-planning was a third of the database's time, so they are rendered per schema
instead: schema-qualified text, one prepared statement per tenant per connection,
planned once (ADR 0010). They skip SQLAlchemy's execution layer too and run on the
asyncpg connection itself, with parameters passed in the compiled statement's order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec
from sqlalchemy import ARRAY
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import JSON

from ordersmith.platform.database import Driver

_DIALECT = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
_PLACEHOLDER = "__[SCHEMA__none]."
# Tables with a schema of their own (platform.outbox) get a placeholder of their own too.
_NAMED_SCHEMA = re.compile(r"__\[SCHEMA_([A-Za-z][A-Za-z0-9_]*)\]")


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _is_json(type_: Any) -> bool:
    return isinstance(type_, JSON)


class DriverStatement:
    """One Core statement as SQL text for asyncpg; its unqualified (tenant) tables in a given schema."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled: Any = statement.compile(dialect=_DIALECT, schema_translate_map={None: "tenant"})
        self._template = _NAMED_SCHEMA.sub(r"\1", compiled.string)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        binds = compiled.binds
        # Constants of the statement itself (a literal key name, say) travel as parameters too.
        self._fixed = {name: binds[name].value for name in self.names if not binds[name].required}
        # The driver connection's json codecs take text, as SQLAlchemy would have sent it.
        self._json = frozenset(name for name in self.names if _is_json(binds[name].type))
        self._json_arrays = frozenset(
            name
            for name in self.names
            if isinstance(binds[name].type, ARRAY) and _is_json(binds[name].type.item_type)
        )
        self._by_schema: dict[str, str] = {}

    def sql(self, schema: str | None) -> str:
        """The statement's text in `schema`; the same string object every time (cheap cache lookups).

        `schema` is None for a statement on platform tables only.
        """
        text = self._by_schema.get(schema or "")
        if text is None:
            if schema is None:
                assert _PLACEHOLDER not in self._template, "a statement on tenant tables needs a schema"
                text = self._by_schema[""] = self._template
                return text
            quoted = _DIALECT.identifier_preparer.quote_schema(schema) + "."
            text = self._by_schema[schema] = self._template.replace(_PLACEHOLDER, quoted)
        return text

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        """The positional arguments of `parameters`, by bind name."""
        values = []
        for name in self.names:
            value = parameters[name] if name in parameters else self._fixed[name]
            if name in self._json and value is not None:
                value = _encode_json(value)
            elif name in self._json_arrays:
                value = [_encode_json(item) for item in value]
            values.append(value)
        return values

    async def fetch(self, connection: Driver, schema: str | None, parameters: Mapping[str, Any]) -> list[Any]:
        rows: list[Any] = await connection.fetch(self.sql(schema), *self.arguments(parameters))
        return rows

    async def fetchrow(self, connection: Driver, schema: str | None, parameters: Mapping[str, Any]) -> Any:
        return await connection.fetchrow(self.sql(schema), *self.arguments(parameters))

    async def execute(self, connection: Driver, schema: str | None, parameters: Mapping[str, Any]) -> None:
        await connection.execute(self.sql(schema), *self.arguments(parameters))
