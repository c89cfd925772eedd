"""The service under the engine's extended scenario format: payment standards are stored per
package and the drug registry's package size converts them for split lines (拆零); what the
service cannot store yet (a standard per smallest unit, an entry's own package size, a
medical_assistance plan, an outpatient_chronic visit: their columns are 16 characters) is refused
with a typed error rather than stored wrongly or failing in the database.
"""

from __future__ import annotations

import copy

from tests.api.conftest import Service
from tests.api.documents import EMPLOYEE, GENERIC_A, MEMBER, REFERENCE_DATA, SETTLE, claim, codes


async def test_a_split_line_is_allowed_its_share_of_the_per_package_standard(service: Service) -> None:
    # GENERIC_A: standard 300.00 a package of 60 tablets (the registry's size): 5.00 a tablet
    request = claim(
        "S-SPLIT",
        person=EMPLOYEE,
        visit="OUTPATIENT",
        diagnoses=("I10",),
        lines=[
            {"drug": GENERIC_A, "quantity": 20, "unitPrice": "6.00", "traceCodes": codes(GENERIC_A, 1), "split": True}
        ],
    )

    settled = (await service.graphql(SETTLE, {"claim": request}))["settle"]

    line = settled["explanation"]["lines"][0]
    assert (line["total"], line["inScope"], line["aboveStandard"]) == ("120.00", "100.00", "20.00")


async def test_a_formulary_stating_a_standard_per_smallest_unit_is_refused(service: Service) -> None:
    document = copy.deepcopy(REFERENCE_DATA)
    document["effective_from"] = "2026-06-01"
    entry = next(entry for entry in document["formulary"]["basic"] if entry["drug"] == GENERIC_A)
    entry |= {"payment_standard": "5.00", "standard_per": "smallest", "package_units": 60}
    index = document["formulary"]["basic"].index(entry)

    refused = await service.load(document)

    assert (refused["__typename"], refused["code"]) == ("InvalidInput", "INVALID_FIELD")
    assert refused["field"] == f"document.formulary.basic[{index}].standard_per"


async def test_a_formulary_entry_stating_its_own_package_size_is_refused(service: Service) -> None:
    document = copy.deepcopy(REFERENCE_DATA)
    document["effective_from"] = "2026-06-01"
    document["formulary"]["commercial"][0]["package_units"] = 1

    refused = await service.load(document)

    assert (refused["code"], refused["field"]) == ("INVALID_FIELD", "document.formulary.commercial[0].package_units")


async def test_a_medical_assistance_plan_is_refused_until_its_kind_can_be_stored(service: Service) -> None:
    document = {
        "region": "310100",
        "effective_from": "2026-06-01",
        "plans": [
            {
                "id": "MEDAID",
                "payer": "NHSA-310100",
                "kind": "medical_assistance",
                "eligible": {"flags": ["low_income"]},
                "base": ["in_scope"],
                "ratio": {"rate": "0.70"},
            }
        ],
    }

    refused = await service.load(document)

    assert (refused["code"], refused["field"]) == ("INVALID_FIELD", "document.plans[0].kind")


async def test_an_outpatient_chronic_visit_is_refused_until_it_can_be_recorded(service: Service) -> None:
    request = claim("S-MTB", person=MEMBER, visit="OUTPATIENT_CHRONIC")

    refused = (await service.graphql(SETTLE, {"claim": request}))["settle"]

    assert (refused["__typename"], refused["code"], refused["field"]) == (
        "InvalidInput",
        "INVALID_FIELD",
        "claim.visit",
    )
