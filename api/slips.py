"""The settlement slip route, beside /graphql and authorized by the same bearer token:

    GET /settlements/{id}/slip.pdf

The institution that settled it and the supervisors who see it (the treating and the insuring
regions') get the PDF, `inline` and never cached. Another role is refused (403 FORBIDDEN,
audited); a settlement that does not exist, is not the caller's to see, or is named by a
malformed id is not found (404 NOT_FOUND), the same answer whichever it is.
"""

from __future__ import annotations

import re
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.auth import Principal
from api.graphql.context import Context
from api.services import audit, slips
from api.slip_pdf import render

UNSAFE_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._-]+")


def _error(code: str, message: str, status_code: int) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status_code)


def file_name(serial: str) -> str:
    """`slip-<serial>.pdf`, the serial reduced to characters safe in a header and a file name."""
    return f"slip-{UNSAFE_IN_FILE_NAMES.sub('_', serial)[:100]}.pdf"


async def slip_pdf(request: Request, context: Context, principal: Principal) -> Response:
    runtime = context.runtime
    if not slips.may_fetch_slips(principal):
        await audit.append_alone(
            runtime.sessions,
            audit.AuditRecord(
                audit.Actor.of(principal),
                "read settlement slip",
                "denied",
                runtime.clock(),
                detail={"code": "FORBIDDEN"},
            ),
        )
        return _error("FORBIDDEN", "FORBIDDEN: your role may not print settlement slips", 403)
    given = request.path_params["id"]
    try:
        settlement_id = uuid.UUID(given)
    except ValueError:
        settlement_id = None
    found = None if settlement_id is None else await slips.slip(runtime, principal, settlement_id)
    if found is None:
        return _error("NOT_FOUND", "no such settlement", 404)
    pdf = await run_in_threadpool(render, found, printed_at=runtime.clock())
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "content-disposition": f'inline; filename="{file_name(found.serial)}"',
            "cache-control": "no-store",
        },
    )
