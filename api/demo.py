"""The demo data set: one load document (api/services/loading.py) for the pooling region of Shanghai.

`demo_document()` returns a fresh, deterministic document: the region's payers, three hospitals and a
dual-channel pharmacy, twenty innovative drugs, the 2026 basic formulary and commercial catalogue, the
plans of every payer, one hundred insured people and the prepayment grants. Nothing here is read from
a clock or drawn at random, so every call returns the same data. The constants below name the ids
that tests and the README rely on.
"""

from __future__ import annotations

from typing import NamedTuple

DEMO_REGION = "310100"
DEMO_EFFECTIVE_FROM = "2026-01-01"
DEMO_PERSON = "3101000000000001"
DEMO_HOSPITAL = "H31010100001"
DEMO_PHARMACY = "P31010100001"
DEMO_DRUG = "XL01FF03121"
DEMO_DRUG_PRICE = "1080.00"
"""DEMO_DRUG's payment standard per vial, which is also the price the demo institutions charge."""

FUND = "NHSA-310100"
HUHUIBAO = "INS-HUHUIBAO"
PINGAN = "INS-PINGAN-HEALTH"
UNION = "MA-SH-UNION"
CHARITY = "CHARITY-CPAF"
PEOPLE = 100

_PAYERS: tuple[tuple[str, str, str], ...] = (
    (FUND, "上海市医疗保障局 基本医疗保险统筹基金", "fund"),
    (HUHUIBAO, "沪惠保 上海城市定制型商业补充医疗保险共保体", "insurer"),
    (PINGAN, "平安健康保险股份有限公司上海分公司", "insurer"),
    (UNION, "上海市职工保障互助会", "mutual_aid"),
    (CHARITY, "中国初级卫生保健基金会 患者援助项目", "charity"),
)

_INSTITUTIONS: tuple[tuple[str, str, str, int], ...] = (
    (DEMO_HOSPITAL, "上海浦江大学附属肿瘤医院", "hospital", 3),
    ("H31010100002", "上海市静安区江宁路中心医院", "hospital", 2),
    ("H31010100003", "上海市黄浦区南京东路街道社区卫生服务中心", "hospital", 1),
    (DEMO_PHARMACY, "上海国大益和大药房 双通道定点药店", "pharmacy", 1),
)


class _Drug(NamedTuple):
    code: str
    generic_name: str
    specification: str
    package_units: int
    manufacturer: str  # a key of _MAKERS
    trace_prefix: str
    listed_on: str


_MAKERS: dict[str, str] = {
    "astrazeneca": "AstraZeneca AB",
    "beigene-gz": "BeiGene (Guangzhou) Biologics Co., Ltd.",
    "beigene-sz": "BeiGene (Suzhou) Co., Ltd.",
    "biogen": "Biogen Netherlands B.V.",
    "cttq": "Chia Tai Tianqing Pharmaceutical Group Co., Ltd.",
    "eisai": "Eisai Co., Ltd.",
    "fosun-kite": "Fosun Kite Biotechnology Co., Ltd.",
    "genzyme": "Genzyme Ireland Ltd.",
    "hansoh": "Jiangsu Hansoh Pharmaceutical Co., Ltd.",
    "hengrui": "Jiangsu Hengrui Pharmaceuticals Co., Ltd.",
    "innovent": "Innovent Biologics (Suzhou) Co., Ltd.",
    "junshi": "Shanghai Junshi Biosciences Co., Ltd.",
    "jw": "JW Therapeutics (Shanghai) Co., Ltd.",
    "msd": "MSD Ireland (Carlow)",
    "novartis": "Novartis Pharma Stein AG",
    "roche": "Roche Pharma (Schweiz) AG",
}

_DRUGS: tuple[_Drug, ...] = (
    _Drug(DEMO_DRUG, "sintilimab", "100 mg/10 ml, 1 vial", 1, "innovent", "8612401", "2018-12-24"),
    _Drug("XL01FF03342", "tislelizumab", "100 mg/10 ml, 1 vial", 1, "beigene-gz", "8613702", "2019-12-26"),
    _Drug("XL01FF03215", "camrelizumab", "200 mg powder, 1 vial", 1, "hengrui", "8610553", "2019-05-29"),
    _Drug("XL01FF03067", "toripalimab", "240 mg/6 ml, 1 vial", 1, "junshi", "8611904", "2018-12-17"),
    _Drug("XL01FF02018", "pembrolizumab", "100 mg/4 ml, 1 vial", 1, "msd", "8690105", "2018-07-25"),
    _Drug("XL01FD01012", "trastuzumab", "440 mg/20 ml multi-dose, 1 vial", 1, "roche", "8690216", "2002-09-12"),
    _Drug("XL01FD02033", "pertuzumab", "420 mg/14 ml, 1 vial", 1, "roche", "8690327", "2018-12-18"),
    _Drug("XL01EB04051", "osimertinib", "80 mg × 30 tablets", 30, "astrazeneca", "8690438", "2017-03-22"),
    _Drug("XL01EB09076", "almonertinib", "55 mg × 20 tablets", 20, "hansoh", "8613549", "2020-03-17"),
    _Drug("XL01EB01009", "gefitinib", "250 mg × 10 tablets", 10, "astrazeneca", "8690540", "2005-02-25"),
    _Drug("XL01XK01027", "olaparib", "150 mg × 56 tablets", 56, "astrazeneca", "8690651", "2018-08-22"),
    _Drug("XL01EX08044", "lenvatinib", "4 mg × 30 capsules", 30, "eisai", "8690762", "2018-09-04"),
    _Drug("XL01EX16085", "anlotinib", "12 mg × 7 capsules", 7, "cttq", "8612873", "2018-05-08"),
    _Drug("XL01EL03098", "zanubrutinib", "80 mg × 64 capsules", 64, "beigene-sz", "8613984", "2020-06-02"),
    _Drug("XL01EH05063", "pyrotinib", "160 mg × 14 tablets", 14, "hengrui", "8610595", "2018-08-12"),
    _Drug("XL01EA01002", "imatinib", "100 mg × 120 tablets", 120, "novartis", "8690106", "2002-04-10"),
    _Drug("XM09AX07015", "nusinersen", "12 mg/5 ml intrathecal, 1 vial", 1, "biogen", "8690217", "2019-02-22"),
    _Drug("XL01XL03101", "axicabtagene ciloleucel", "2×10^6 cells/kg, 1 bag", 1, "fosun-kite", "8614328", "2021-06-22"),
    _Drug("XL01XL05112", "relmacabtagene autoleucel", "100×10^6 cells, 1 bag", 1, "jw", "8614439", "2021-09-01"),
    _Drug("XA16AB07024", "alglucosidase alfa", "50 mg powder, 1 vial", 1, "genzyme", "8690548", "2015-10-30"),
)

TRASTUZUMAB = "XL01FD01012"
AXICABTAGENE = "XL01XL03101"


class _Listing(NamedTuple):
    drug: str
    category: str
    payment_standard: str
    negotiated: bool
    dual_channel: bool
    diagnoses: tuple[str, ...] = ()
    visits: tuple[str, ...] = ()
    own_ratio: str | None = None


_BASIC: tuple[_Listing, ...] = (
    _Listing(DEMO_DRUG, "B", DEMO_DRUG_PRICE, True, True),
    _Listing("XL01FF03342", "B", "1450.00", True, True),
    _Listing("XL01FF03215", "B", "2928.00", True, True, ("C15", "C22", "C34")),
    _Listing("XL01FF03067", "B", "1912.00", True, True),
    _Listing(TRASTUZUMAB, "B", "5500.00", False, True, ("C50", "C16")),
    _Listing("XL01FD02033", "B", "4650.00", True, False, ("C50",), ("inpatient", "outpatient")),
    _Listing("XL01EB04051", "B", "170.00", True, True, ("C34",)),
    _Listing("XL01EB09076", "B", "88.00", True, True, ("C34",)),
    _Listing("XL01EB01009", "A", "55.00", False, False, ("C34",)),
    _Listing("XL01XK01027", "B", "46.00", True, True, ("C56", "C61")),
    _Listing("XL01EX08044", "B", "37.00", True, True, ("C22", "C73")),
    _Listing("XL01EX16085", "B", "348.00", True, True),
    _Listing("XL01EL03098", "B", "76.00", True, True, ("C83", "C91"), (), "0.15"),
    _Listing("XL01EH05063", "B", "110.00", True, True, ("C50",)),
    _Listing("XL01EA01002", "A", "20.00", False, True),
    _Listing("XM09AX07015", "B", "33000.00", True, False, ("G12",), ("inpatient",), "0.20"),
)

# (drug, insurer, confidential settlement price, list price on the bill)
_COMMERCIAL: tuple[tuple[str, str, str, str], ...] = (
    (AXICABTAGENE, HUHUIBAO, "999000.00", "1200000.00"),
    ("XL01XL05112", HUHUIBAO, "1050000.00", "1290000.00"),
    ("XL01FF02018", HUHUIBAO, "13800.00", "17918.00"),
    ("XA16AB07024", HUHUIBAO, "3950.00", "5280.00"),
    (AXICABTAGENE, PINGAN, "1020000.00", "1200000.00"),
)

# prepayment per payer at (level-3 hospital, level-2 hospital, level-1 hospital, pharmacy); the
# charity donates in kind and advances no money
_GRANTS: dict[str, tuple[str, str, str, str]] = {
    FUND: ("500000.00", "200000.00", "50000.00", "100000.00"),
    HUHUIBAO: ("200000.00", "50000.00", "10000.00", "50000.00"),
    PINGAN: ("100000.00", "30000.00", "10000.00", "30000.00"),
    UNION: ("50000.00", "20000.00", "5000.00", "10000.00"),
}

_SURNAMES = "张王李赵刘陈杨黄周吴徐孙朱马胡郭林何高罗"
_GIVEN_NAMES: tuple[tuple[str, bool], ...] = (  # (given name, male)
    ("伟", True), ("芳", False), ("敏", False), ("静", False), ("强", True), ("磊", True),
    ("洋", True), ("艳", False), ("勇", True), ("娟", False), ("军", True), ("杰", True),
    ("秀英", False), ("建华", True), ("丽", False), ("明", True),
)  # fmt: skip
_DISTRICTS = (
    "310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112",
    "310113", "310114", "310115", "310116", "310117", "310118", "310120", "310151",
)  # fmt: skip
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def demo_document() -> dict[str, object]:
    """The whole demo load document, built afresh on every call."""
    return {
        "$comment": "demo data set of pooling region 310100 (Shanghai); every name and number is illustrative",
        "region": DEMO_REGION,
        "effective_from": DEMO_EFFECTIVE_FROM,
        "payers": [{"code": c, "name": n, "kind": k, "region": DEMO_REGION} for c, n, k in _PAYERS],
        "institutions": [
            {"code": c, "name": n, "kind": k, "level": level, "region": DEMO_REGION} for c, n, k, level in _INSTITUTIONS
        ],
        "drugs": [_drug(drug) for drug in _DRUGS],
        "people": [_person(index) for index in range(PEOPLE)],
        "formulary": _formulary(),
        "plans": _plans(),
        "grants": _grants(),
    }


def _drug(drug: _Drug) -> dict[str, object]:
    return {
        "code": drug.code,
        "generic_name": drug.generic_name,
        "specification": drug.specification,
        "package_units": drug.package_units,
        "manufacturer": _MAKERS[drug.manufacturer],
        "trace_prefixes": [drug.trace_prefix],
        "listed_on": drug.listed_on,
    }


# --- formulary -------------------------------------------------------------------------------


def _formulary() -> dict[str, object]:
    return {
        "basic": [_basic_entry(listing) for listing in _BASIC],
        "self_pay_first_ratio": "0.10",
        "commercial": [
            {
                "$comment": f"list price {listed}; the settlement price is confidential to {insurer}",
                "drug": drug,
                "insurer": insurer,
                "settlement_price": price,
            }
            for drug, insurer, price, listed in _COMMERCIAL
        ],
    }


def _basic_entry(listing: _Listing) -> dict[str, object]:
    entry: dict[str, object] = {
        "drug": listing.drug,
        "category": listing.category,
        "payment_standard": listing.payment_standard,
        "negotiated": listing.negotiated,
        "dual_channel": listing.dual_channel,
    }
    if listing.diagnoses:
        entry["restricted_diagnoses"] = list(listing.diagnoses)
    if listing.visits:
        entry["restricted_visits"] = list(listing.visits)
    if listing.own_ratio is not None:
        entry["self_pay_first_ratio"] = listing.own_ratio
    return entry


# --- plans -----------------------------------------------------------------------------------


def _plans() -> list[dict[str, object]]:
    """Every payer's plan, listed in waterfall order (the order within a kind is its priority)."""
    return [
        _basic_employee(),
        _basic_resident(),
        _serious_illness(),
        _huhuibao(),
        _pingan(),
        _mutual_aid(),
        _charity(),
    ]


def _by_level(one: str, two: str, three: str) -> dict[str, str]:
    return {"1": one, "2": two, "3": three}


def _basic_employee() -> dict[str, object]:
    return {
        "$comment": "employee basic medical insurance: in-scope costs after an annual deductible, by level",
        "id": "BASIC-310100-EMP",
        "payer": FUND,
        "kind": "basic",
        "eligible": {"insurance_types": ["employee"], "regions": [DEMO_REGION]},
        "base": ["in_scope"],
        "deductible": {"amount": "1500.00", "per": "year"},
        "ratio": {"by_level": _by_level("0.90", "0.85", "0.80")},
        "caps": {"annual": "590000.00"},
        "variants": [
            {
                "when": {"flags": ["retired"]},
                "deductible": {"amount": "700.00", "per": "year"},
                "ratio": {"by_level": _by_level("0.95", "0.925", "0.90")},
            }
        ],
    }


def _basic_resident() -> dict[str, object]:
    return {
        "$comment": "resident basic medical insurance: the deductible and ratio depend on the hospital level",
        "id": "BASIC-310100-RES",
        "payer": FUND,
        "kind": "basic",
        "eligible": {"insurance_types": ["resident"], "regions": [DEMO_REGION]},
        "base": ["in_scope"],
        "deductible": {"amount": {"by_level": _by_level("300.00", "500.00", "800.00")}, "per": "year"},
        "ratio": {"by_level": _by_level("0.80", "0.70", "0.60")},
        "caps": {"annual": "300000.00"},
        "variants": [{"when": {"flags": ["low_income"]}, "deductible": {"amount": "0.00", "per": "year"}}],
    }


def _serious_illness() -> dict[str, object]:
    return {
        "$comment": "serious-illness insurance on what basic insurance left of in-scope costs, in bands",
        "id": "SERIOUS-310100",
        "payer": FUND,
        "kind": "serious_illness",
        "eligible": {"regions": [DEMO_REGION]},
        "base": ["in_scope"],
        "deductible": {"amount": "15000.00", "per": "year"},
        "ratio": {"bands": _bands("0.60", "0.65", "0.70")},
        "caps": {"annual": "400000.00"},
        "variants": [
            {
                "when": {"flags": ["low_income"]},
                "deductible": {"amount": "7500.00", "per": "year"},
                "ratio": {"bands": _bands("0.65", "0.70", "0.75")},
            }
        ],
    }


def _bands(low: str, middle: str, high: str) -> list[dict[str, object]]:
    return [
        {"upto": "100000.00", "rate": low},
        {"upto": "300000.00", "rate": middle},
        {"upto": None, "rate": high},
    ]


def _huhuibao() -> dict[str, object]:
    return {
        "$comment": "city Huiminbao: commercial-catalogue drugs only (CAR-T, rare diseases); 30% if pre-existing",
        "id": "HUHUIBAO-DRUGS",
        "payer": HUHUIBAO,
        "kind": "commercial",
        "eligible": {"regions": [DEMO_REGION]},
        "base": ["in_scope", "self_pay_first", "above_standard", "out_of_scope"],
        "only_catalogue": "commercial",
        "deductible": {"amount": "10000.00", "per": "year"},
        "ratio": {"rate": "0.70"},
        "caps": {"annual": "1000000.00"},
        "variants": [{"when": {"flags": ["pre_existing"]}, "ratio": {"rate": "0.30"}}],
    }


def _pingan() -> dict[str, object]:
    return {
        "$comment": "an employer group medical policy: the patient's own share of any drug, after a deductible",
        "id": "PINGAN-MEDICAL",
        "payer": PINGAN,
        "kind": "commercial",
        "eligible": {"insurance_types": ["employee"], "regions": [DEMO_REGION]},
        "base": ["self_pay_first", "above_standard", "out_of_scope"],
        "deductible": {"amount": "10000.00", "per": "year"},
        "ratio": {"rate": "0.90"},
        "caps": {"claim": "500000.00", "annual": "2000000.00"},
    }


def _mutual_aid() -> dict[str, object]:
    return {
        "$comment": "trade-union mutual aid: half of in-scope and pay-first costs after a per-claim deductible",
        "id": "MA-310100-UNION",
        "payer": UNION,
        "kind": "mutual_aid",
        "eligible": {"memberships": [UNION]},
        "base": ["in_scope", "self_pay_first"],
        "deductible": {"amount": "500.00", "per": "claim", "subsequent": "200.00"},
        "ratio": {"rate": "0.50"},
        "caps": {"claim": "3000.00", "annual": "30000.00"},
    }


def _charity() -> dict[str, object]:
    return {
        "$comment": "patient-assistance programme: after 3 vials of trastuzumab in a year, 3 more are donated",
        "id": "PAP-CPAF-TRASTUZUMAB",
        "payer": CHARITY,
        "kind": "charity",
        "eligible": {"flags": ["low_income"], "drugs": [TRASTUZUMAB]},
        "in_kind": {"drug": TRASTUZUMAB, "after_units": 3, "free_units": 3},
    }


# --- people and grants -----------------------------------------------------------------------


def _person(index: int) -> dict[str, object]:
    """The index-th insured person; index 0 is DEMO_PERSON (an employee, union member, low income)."""
    resident = index % 5 == 3
    birth_year = 1945 + (index * 17 + 33) % 60
    given, male = _GIVEN_NAMES[index * 7 % len(_GIVEN_NAMES)]
    flags = []
    if not resident and birth_year <= 1965:
        flags.append("retired")
    if index % 8 == 0:
        flags.append("low_income")
    if index % 6 == 5:
        flags.append("pre_existing")
    return {
        "psn_no": f"{DEMO_REGION}{index + 1:010d}",
        "id_number": _id_number(index, birth_year, male),
        "name": _SURNAMES[index % len(_SURNAMES)] + given,
        "insurance_type": "resident" if resident else "employee",
        "region": DEMO_REGION,
        "memberships": [UNION] if not resident and index % 3 == 0 else [],
        "flags": sorted(flags),
    }


def _id_number(index: int, birth_year: int, male: bool) -> str:
    """A resident ID number of GB 11643: area, birth date, sequence (odd for men), check digit."""
    area = _DISTRICTS[index * 3 % len(_DISTRICTS)]
    birth = f"{birth_year:04d}{index * 5 % 12 + 1:02d}{index * 11 % 28 + 1:02d}"
    sequence = 10 + index * 37 % 980
    if sequence % 2 != int(male):  # odd sequence numbers for men, even for women
        sequence += 1
    body = f"{area}{birth}{sequence:03d}"
    return body + check_digit(body)


def check_digit(body: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits of an ID number."""
    return _ID_CHECK[sum(int(digit) * weight for digit, weight in zip(body, _ID_WEIGHTS, strict=True)) % 11]


def _grants() -> list[dict[str, object]]:
    institutions = [code for code, *_ in _INSTITUTIONS]
    pairs = [
        (payer, code, amount)
        for payer, amounts in _GRANTS.items()
        for code, amount in zip(institutions, amounts, strict=True)
    ]
    return [
        {
            "reference": f"GRANT-2026-{number:04d}",
            "payer": payer,
            "institution": institution,
            "amount": amount,
            "note": "2026年第一季度预付金",
        }
        for number, (payer, institution, amount) in enumerate(pairs, start=1)
    ]
