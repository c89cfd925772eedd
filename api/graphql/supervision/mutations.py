from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry

from adjudication import ErrorCode
from api.errors import ServiceError
from api.graphql.context import Info
from api.graphql.errors import AnomalyDecided, Forbidden, InvalidInput, NotFound, parse_id
from api.graphql.supervision.types import Anomaly, AnomalyStatus, PrescriptionRecord, anomaly_type
from api.services import supervision

HandleRefusal = InvalidInput | NotFound | Forbidden | AnomalyDecided
HandleResult = Annotated[Anomaly | HandleRefusal, strawberry.union("HandleAnomalyResult")]
PrescriptionRefusal = InvalidInput | NotFound | Forbidden
PrescriptionResult = Annotated[PrescriptionRecord | PrescriptionRefusal, strawberry.union("RecordPrescriptionResult")]


@strawberry.input(description="One step in handling an anomaly.")
class HandleAnomalyInput:
    id: strawberry.ID
    status: AnomalyStatus = strawberry.field(
        description="The status the step leads to: EXPLAINED (its institution), CONFIRMED or DISMISSED (a "
        "supervisor of its region). OPEN is no step (INVALID_FIELD)."
    )
    note: str = strawberry.field(
        description="The explanation, or the reason for the decision: required, at most 1,000 characters."
    )


@strawberry.input
class PrescriptionInput:
    prescription_id: str
    person: str
    drugs: list[str]
    issued_on: date


@strawberry.type
class SupervisionMutations:
    @strawberry.mutation(
        description="Take a step in handling an anomaly, kept beside the earlier ones (none is overwritten): its "
        "institution explains it (EXPLAINED; 20 explanations at most) until it is decided; a supervisor of "
        "its region confirms or dismisses it (CONFIRMED, DISMISSED) with the reason, and the decision is final "
        "(AnomalyDecided after it). The other's step is Forbidden; an anomaly out of sight is NotFound."
    )
    async def handle_anomaly(self, info: Info, input: HandleAnomalyInput) -> HandleResult:
        context = info.context
        anomaly_id = parse_id(input.id)
        if anomaly_id is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"no anomaly {input.id}", "input.id")
        row = await supervision.handle(context.runtime, context.principal, anomaly_id, input.status.value, input.note)
        return anomaly_type(row)

    @strawberry.mutation(description="Record an electronic prescription (the prescribing hospital).")
    async def record_prescription(self, info: Info, input: PrescriptionInput) -> PrescriptionResult:
        context = info.context
        recorded = await supervision.record_prescription(
            context.runtime, context.principal, input.prescription_id, input.person, input.drugs, input.issued_on
        )
        return PrescriptionRecord(
            prescription_id=recorded.prescription_id, hospital=recorded.hospital, drugs=list(recorded.drugs)
        )
