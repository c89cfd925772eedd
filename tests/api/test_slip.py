"""The one-stop settlement slip (一站式结算单): `GET /settlements/{id}/slip.pdf`, in Chinese,
with every figure of the settlement as the API shows it; for the institution that settled it
and the supervisors who see it, and not found for everyone else who may print slips.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from adjudication import PlanKind, ReasonCode, Visit
from adjudication.money import format_yuan, parse_yuan
from api.services.slips import SlipDoesNotAddUp, SlipFacts, slip_of
from api.settlement import FundShare, Settlement, SettlementStatus
from api.slip_pdf import KIND_NAMES, PAID_HEADINGS, REASONS, VISITS
from tests.api.conftest import Service
from tests.api.documents import (
    CAR_T,
    GENERIC_A,
    HOSPITAL,
    MEMBER,
    OWN_SHARE,
    PHARMACY,
    REGION,
    REVERSE,
    SECOND_REGION,
    SETTLE,
    SETTLEMENT_FIELDS,
    SMALL_HOSPITAL,
    TRASTUZUMAB,
    claim,
    second_region_data,
)
from tests.api.test_identity import audit_rows

HEADINGS = (
    "医疗费总额",
    "全自费",
    "超限价自费",
    "先行自付",
    "符合政策范围",
    "统筹基金支付",
    "大病保险支付",
    "医疗救助支付",
    "商业保险支付",
    "医疗互助支付",
    "慈善救助支付",
    "个人账户支付",
    "个人现金支付",
)
"""The national slip's headings (互助 and 慈善 as 医疗互助支付 and 慈善救助支付)."""
BY_ID = f"query($id: ID!) {{ settlement(id: $id) {{ {SETTLEMENT_FIELDS} }} }}"
SLIP_LINES = [
    {"drug": TRASTUZUMAB, "quantity": 2, "unitPrice": "1600.00"},  # the year's 4th and 5th units: donated
    {"drug": OWN_SHARE, "quantity": 2, "unitPrice": "8000.00"},  # category B: 20% paid first
    {"drug": GENERIC_A, "quantity": 1, "unitPrice": "320.00"},  # 20.00 above its standard
    {"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00"},  # INS-A's catalogue drug
]


@dataclass
class Fetched:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(self.body)).pages)


async def fetch(caller: Service, settlement_id: str) -> Fetched:
    response = await caller.client.get(
        f"/settlements/{settlement_id}/slip.pdf", headers={"authorization": f"Bearer {caller.token}"}
    )
    return Fetched(response.status_code, dict(response.headers), response.content)


async def settle(cashier: Service, request: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (await cashier.graphql(SETTLE, {"claim": request}))["settle"]
    assert result["__typename"] == "Settlement", result
    return result


def figure(text: str, heading: str) -> str:
    """The amount printed after a heading (its first occurrence: the summary comes first)."""
    found = re.search(rf"(?<![^\s]){re.escape(heading)}\s+(-?\d+\.\d\d)(?!\d)", text)
    assert found is not None, f"{heading} has no amount on the slip"
    return found.group(1)


def paid_by_kind(settlement: dict[str, Any]) -> dict[str, str]:
    """What the plans of each kind paid, from the API's explanation of benefits."""
    paid = dict.fromkeys(PlanKind, 0)
    for fund in settlement["explanation"]["funds"]:
        paid[PlanKind(fund["kind"])] += parse_yuan(fund["amount"])
    return {kind: format_yuan(amount) for kind, amount in paid.items()}


@pytest.fixture
async def slipped(service: Service) -> dict[str, Any]:
    """Region 310100's member's second claim of the year at its level-3 hospital, read back
    through GraphQL: several lines, a donation, a commercial catalogue drug, mutual aid.
    """
    await settle(service, claim("S-FIRST", lines=[{"drug": TRASTUZUMAB, "quantity": 3, "unitPrice": "1600.00"}]))
    settled = await settle(service, claim("S-SLIP", diagnoses=("C50.9", "C83.3"), lines=SLIP_LINES))
    shown: dict[str, Any] = (await service.graphql(BY_ID, {"id": settled["id"]}))["settlement"]
    kinds = paid_by_kind(shown)
    assert all(
        kinds[kind] != "0.00" for kind in (PlanKind.BASIC, PlanKind.COMMERCIAL, PlanKind.MUTUAL_AID, PlanKind.CHARITY)
    ), kinds  # a slip worth checking: each of these paid something
    return shown


def keep(tmp_path: Path, fetched: Fetched, name: str) -> Path:
    """The PDF under the test's output, and page 1 as a PNG where poppler's pdftoppm is installed."""
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(fetched.body)
    print(f"\nslip: {path}")
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "100", "-f", "1", "-l", "1", path, tmp_path / name], check=True)
        print(f"page 1: {next(tmp_path.glob(f'{name}*.png'))}")
    return path


async def test_the_hospitals_slip_shows_every_heading_and_every_figure_of_the_settlement(
    service: Service, slipped: dict[str, Any], tmp_path: Path
) -> None:
    fetched = await fetch(service, slipped["id"])
    keep(tmp_path, fetched, "slip")

    assert fetched.status == 200
    assert fetched.headers["content-type"] == "application/pdf"
    assert fetched.headers["content-disposition"] == 'inline; filename="slip-S-SLIP.pdf"'
    assert fetched.headers["cache-control"] == "no-store"
    text = fetched.text
    explanation = slipped["explanation"]
    kinds = paid_by_kind(slipped)
    assert {heading: figure(text, heading) for heading in HEADINGS} == {
        "医疗费总额": explanation["total"],
        "全自费": explanation["outOfScope"],
        "超限价自费": explanation["aboveStandard"],
        "先行自付": explanation["selfPayFirst"],
        "符合政策范围": explanation["inScope"],
        **{PAID_HEADINGS[kind]: kinds[kind] for kind in PlanKind},
        "个人账户支付": "0.00",  # no personal account yet
        "个人现金支付": explanation["patientCash"],
    }
    for fund in explanation["funds"]:  # each plan on its own row, with its reasons
        row = rf"{KIND_NAMES[PlanKind(fund['kind'])]}\s+{fund['plan']}\s+{fund['payer']}\s+{fund['amount']}"
        reasons = r"\s+".join(REASONS[reason["code"]] for reason in fund["reasons"])
        assert re.search(rf"{row}\s+{reasons}", text), fund
    for line in explanation["lines"]:
        figures = (
            *(line["unitPrice"], line["total"], line["outOfScope"], line["aboveStandard"]),
            *(line["selfPayFirst"], line["inScope"], line["patientCash"]),
        )
        row = r"\s+".join((str(line["index"] + 1), line["drug"], str(line["quantity"]), *figures))
        assert re.search(rf"(?<!\S){row}(?!\S)", text), line
        for payment in line["payments"]:
            assert f"{payment['plan']} {payment['amount']}" in text, payment
        for reason in line["reasons"]:
            assert REASONS[reason["code"]] in text, reason
    assert "其中捐赠 2" in text and "trastuzumab" in text and "axicabtagene ciloleucel" in text


async def test_the_slips_header_names_the_settlement_and_the_patient_by_insurance_number(
    service: Service, slipped: dict[str, Any]
) -> None:
    text = (await fetch(service, slipped["id"])).text

    for label, value in (
        ("定点机构", f"{HOSPITAL} Level-3 hospital"),
        ("结算流水号", "S-SLIP"),
        ("结算编号", slipped["id"]),
        ("人员编号", MEMBER),
        ("姓名", "Zhang Wei"),  # the hospital may read its patient's name
        ("就诊日期", "2026-03-15"),
        ("就诊类型", "住院"),
        ("结算状态", "已结算"),
        ("参保地", REGION),
        ("就医地", REGION),
    ):
        assert re.search(rf"{label}\s+{re.escape(value)}", text), label
    assert "310101198001010012" not in text  # never the ID number
    decrypted = [row for row in await audit_rows(service.database_url) if row["action"] == "decrypt people.name_ct"]
    assert [(row["org"], row["target"]) for row in decrypted] == [(HOSPITAL, f"person:{MEMBER}")]


async def test_a_reversed_settlements_slip_says_so(service: Service, slipped: dict[str, Any], tmp_path: Path) -> None:
    reason = "退费 <b>refund</b> & </para>"  # markup in a cashier's words is printed as typed
    reversed_ = await service.graphql(REVERSE, {"input": {"id": slipped["id"], "reason": reason}})
    assert reversed_["reverseSettlement"]["__typename"] == "Reversal"

    fetched = await fetch(service, slipped["id"])
    keep(tmp_path, fetched, "reversed")

    assert fetched.status == 200
    assert re.search(r"结算状态\s+已冲正", fetched.text)
    assert f"已冲正：{reason}" in fetched.text
    assert figure(fetched.text, "医疗费总额") == slipped["explanation"]["total"]  # the figures as they settled


async def test_the_treating_regions_supervisor_may_fetch_the_slip_and_others_get_not_found_or_forbidden(
    service: Service, slipped: dict[str, Any]
) -> None:
    tokens = service.tokens
    supervisor = await fetch(service.as_(tokens.supervisor(REGION)), slipped["id"])
    assert supervisor.status == 200 and figure(supervisor.text, "医疗费总额") == slipped["explanation"]["total"]
    for token in (
        tokens.mint("hospital", SMALL_HOSPITAL),
        tokens.mint("pharmacy", PHARMACY),
        tokens.supervisor(SECOND_REGION),
    ):
        fetched = await fetch(service.as_(token), slipped["id"])
        assert (fetched.status, fetched.headers["content-type"]) == (404, "application/json")
        assert b"NOT_FOUND" in fetched.body
    for token in (tokens.payer("insurer", "INS-A"), tokens.payer("mutual_aid", "MA-UNION"), tokens.admin):
        fetched = await fetch(service.as_(token), slipped["id"])  # INS-A and MA-UNION paid on it all the same
        assert fetched.status == 403 and b"FORBIDDEN" in fetched.body


async def test_an_unknown_or_malformed_id_is_not_found_and_no_token_is_unauthenticated(service: Service) -> None:
    for given in (str(uuid.uuid4()), "not-an-id", "0" * 200, "%00"):
        fetched = await fetch(service, given)
        assert fetched.status == 404 and b"NOT_FOUND" in fetched.body, given
    anonymous = await service.client.get(f"/settlements/{uuid.uuid4()}/slip.pdf")
    assert anonymous.status_code == 401


async def test_a_slip_of_a_claim_treated_elsewhere_is_for_both_regions_supervisors_and_the_name_for_the_insurings(
    service: Service, tmp_path: Path
) -> None:
    assert (await service.load(second_region_data()))["__typename"] == "LoadSummary"
    treating_hospital = service.as_(service.tokens.mint("hospital", "H320003"))
    away = await settle(treating_hospital, claim("S-AWAY", person=MEMBER, institution="H320003"))

    at_window = await fetch(treating_hospital, away["id"])
    insuring = await fetch(service.as_(service.tokens.supervisor(REGION)), away["id"])
    treating = await fetch(service.as_(service.tokens.supervisor(SECOND_REGION)), away["id"])
    third = await fetch(service.as_(service.tokens.supervisor("330100")), away["id"])
    home_hospital = await fetch(service, away["id"])
    keep(tmp_path, at_window, "elsewhere")

    assert (at_window.status, insuring.status, treating.status) == (200, 200, 200)
    assert (third.status, home_hospital.status) == (404, 404)
    for fetched in (at_window, insuring, treating):
        assert re.search(rf"参保地\s+{REGION}\s+就医地\s+{SECOND_REGION}（异地就医）", fetched.text)
        assert figure(fetched.text, "统筹基金支付") == "960.00" and figure(fetched.text, "个人现金支付") == "1220.00"
    assert "Zhang Wei" in at_window.text and "Zhang Wei" in insuring.text
    assert "Zhang Wei" not in treating.text and re.search(r"姓名\s+—", treating.text)  # not a person of its region


def test_every_reason_visit_and_plan_kind_has_its_words_on_the_slip() -> None:
    assert set(REASONS) == set(ReasonCode)
    assert set(VISITS) == set(Visit)
    assert set(PAID_HEADINGS) == set(KIND_NAMES) == set(PlanKind)
    assert set(PAID_HEADINGS.values()) <= set(HEADINGS)


def test_a_settlement_whose_payments_do_not_make_its_total_is_never_printed() -> None:
    fund = FundShare("BASIC-EMP", uuid.uuid4(), "NHSA-310100", PlanKind.BASIC, 900, 1000, 0, 900, 0, ())
    view = Settlement(
        id=uuid.uuid4(),
        institution=HOSPITAL,
        region=REGION,
        insured_region=REGION,
        serial="S-BAD",
        request_hash="-",
        person=MEMBER,
        person_id=uuid.uuid4(),
        service_date=date(2026, 3, 15),
        year=2026,
        visit=Visit.INPATIENT,
        diagnoses=("C50.9",),
        drg_group=None,
        prescribing_hospital=None,
        formulary_version_id=uuid.uuid4(),
        status=SettlementStatus.SETTLED,
        settled_at=datetime(2026, 3, 15, tzinfo=UTC),
        reversed_at=None,
        reversal_reason=None,
        total_fen=1000,
        in_scope_fen=1000,
        self_pay_first_fen=0,
        above_standard_fen=0,
        out_of_scope_fen=0,
        patient_fen=50,  # 900 + 50 is not 1000
        funds=(fund,),
        lines=(),
    )

    with pytest.raises(SlipDoesNotAddUp):
        slip_of(view, SlipFacts(None, REGION, REGION, None, {}))
