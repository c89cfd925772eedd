"""The table a model is mapped to, typed as the `Table` it is.

SQLAlchemy's declarative base types `Model.__table__` as any FromClause (a class may be mapped to
a join or a select), but inserts, updates and the dialects' upserts take a table. Every model of
ours is mapped to one: this says so where a statement needs it. (Once the base declares
`__table__: ClassVar[Table]`, `Model.__table__` says it alone.)
"""

from __future__ import annotations

from sqlalchemy import Table

from api.db.base import Base


def table_of(model: type[Base]) -> Table:
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is mapped to a {type(table).__name__}, not a table")
    return table
