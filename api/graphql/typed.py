"""strawberry's resolver decorators, typed for mypy.

`strawberry.field(...)` and `strawberry.mutation(...)` called with options (a description, a
permission) are typed as returning `Any`, which leaves every resolver they decorate untyped
under `mypy --strict`. These are the same decorators, typed as keeping the resolver's type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import strawberry
from strawberry.permission import BasePermission

Resolver = TypeVar("Resolver", bound=Callable[..., Any])


def field(
    *, description: str | None = None, permission_classes: Sequence[type[BasePermission]] = ()
) -> Callable[[Resolver], Resolver]:
    decorator = strawberry.field(description=description, permission_classes=list(permission_classes))
    return cast("Callable[[Resolver], Resolver]", decorator)


def mutation(*, description: str | None = None) -> Callable[[Resolver], Resolver]:
    return cast("Callable[[Resolver], Resolver]", strawberry.mutation(description=description))
