from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry

from adjudication import ErrorCode
from api.errors import ServiceError
from api.graphql.context import Info
from api.graphql.errors import Forbidden, InvalidInput, NotFound, parse_id
from api.graphql.supervision.types import Anomaly, AnomalyStatus, PrescriptionRecord, anomaly_type
from api.services import supervision

HandleResult = Annotated[Anomaly | InvalidInput | NotFound | Forbidden, strawberry.union("HandleAnomalyResult")]
PrescriptionResult = Annotated[
    PrescriptionRecord | InvalidInput | NotFound | Forbidden, strawberry.union("RecordPrescriptionResult")
]


@strawberry.input
class HandleAnomalyInput:
    id: strawberry.ID
    status: AnomalyStatus
    note: str


@strawberry.input
class PrescriptionInput:
    prescription_id: str
    person: str
    drugs: list[str]
    issued_on: date


@strawberry.type
class SupervisionMutations:
    @strawberry.mutation(description="Explain an anomaly (its institution), or explain or confirm it (a supervisor).")
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
        row = await supervision.record_prescription(
            context.runtime, context.principal, input.prescription_id, input.person, input.drugs, input.issued_on
        )
        return PrescriptionRecord(
            prescription_id=row["prescription_id"], hospital=row["hospital_code"], drugs=row["drugs"]
        )
