"""The settlement slip as a PDF, in Chinese, with the national one-stop slip's headings.

Rendered with reportlab. Chinese text is set in `STSong-Light`, one of the CID fonts every
PDF reader knows (Adobe's Asian font packs; others substitute a system Song or Hei face), with
the `UniGB-UCS2-H` encoding: nothing is downloaded and no font file is shipped, and the text
stays extractable (it is written as Unicode code units). Codes and amounts are set in
Helvetica, one of the 14 standard fonts. Every amount has two decimals, in yuan.
"""

from __future__ import annotations

import functools
import io
import re
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from adjudication import PlanKind, ReasonCode, Visit
from adjudication.money import format_yuan
from api.services.runtime import SERVICE_ZONE
from api.services.slips import Slip, SlipLine

CHINESE = "STSong-Light"
LATIN = "Helvetica"
MARGIN = 15 * mm
WIDTH = A4[0] - 2 * MARGIN

TITLE = "医疗费用一站式结算单"
REVERSED = "已冲正"
SETTLED = "已结算"

PAID_HEADINGS: dict[PlanKind, str] = {
    PlanKind.BASIC: "统筹基金支付",
    PlanKind.SERIOUS_ILLNESS: "大病保险支付",
    PlanKind.MEDICAL_ASSISTANCE: "医疗救助支付",
    PlanKind.COMMERCIAL: "商业保险支付",
    PlanKind.MUTUAL_AID: "医疗互助支付",
    PlanKind.CHARITY: "慈善救助支付",  # in-kind donations included: the programme paid their price
}
KIND_NAMES: dict[PlanKind, str] = {
    PlanKind.BASIC: "基本医疗保险",
    PlanKind.SERIOUS_ILLNESS: "大病保险",
    PlanKind.MEDICAL_ASSISTANCE: "医疗救助",
    PlanKind.COMMERCIAL: "商业健康保险",
    PlanKind.MUTUAL_AID: "医疗互助",
    PlanKind.CHARITY: "慈善",
}
VISITS: dict[str, str] = {
    Visit.OUTPATIENT: "门诊",
    Visit.OUTPATIENT_CHRONIC: "门诊慢特病",
    Visit.INPATIENT: "住院",
    Visit.PHARMACY: "药店购药",
}
REASONS: dict[str, str] = {
    ReasonCode.NOT_ELIGIBLE: "不符合条件",
    ReasonCode.DEDUCTIBLE: "起付线",
    ReasonCode.CLAIM_CAP: "单次封顶线",
    ReasonCode.ANNUAL_CAP: "年度封顶线",
    ReasonCode.NOT_IN_CATALOGUE: "未纳入目录",
    ReasonCode.RESTRICTED_SCOPE: "超限定支付范围",
    ReasonCode.NOT_DUAL_CHANNEL: "非双通道",
    ReasonCode.ABOVE_STANDARD: "超支付标准",
    ReasonCode.DONATED: "捐赠",
    ReasonCode.NOT_AUTHORIZED: "未经事前审核",
    ReasonCode.NO_PATIENT_CONSENT: "未签约授权",
}
"""A reason code as a short phrase for the patient; a code not listed here is printed as is."""

LINE_HEADINGS = (
    "序号",
    "药品编码",
    "数量",
    "单价",
    "金额",
    "全自费",
    "超限价自费",
    "先行自付",
    "符合政策范围",
    "个人负担",
)
LINE_WIDTHS = (22, 96, 34, 50, 54, 48, 48, 48, 56, 54)

LATIN_RUN = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
"""Printable ASCII (spaces inside a run, not around it): what Helvetica sets better than STSong."""

_render_lock = threading.Lock()
"""reportlab keeps module-level state (its font registry, caches): one slip at a time per process."""


@functools.cache
def _register_fonts() -> None:
    """Registered once, when the first slip is rendered (nothing happens at import)."""
    pdfmetrics.registerFont(UnicodeCIDFont(CHINESE))


def _yuan(amount_fen: int) -> str:
    return format_yuan(amount_fen)


def _local(moment: datetime) -> str:
    return moment.astimezone(SERVICE_ZONE).strftime("%Y-%m-%d %H:%M:%S")


def _reasons(codes: Iterable[str]) -> str:
    return "；".join(dict.fromkeys(REASONS.get(code, code) for code in codes))


class _Styles:
    def __init__(self) -> None:
        self.title = ParagraphStyle("title", fontName=CHINESE, fontSize=16, leading=22, alignment=TA_CENTER)
        self.stamp = ParagraphStyle(
            "stamp", fontName=CHINESE, fontSize=14, leading=20, alignment=TA_CENTER, textColor=colors.red
        )
        self.section = ParagraphStyle("section", fontName=CHINESE, fontSize=10.5, leading=16, spaceBefore=6)
        self.cell = ParagraphStyle("cell", fontName=CHINESE, fontSize=8.5, leading=11, wordWrap="CJK")
        self.small = ParagraphStyle("small", fontName=CHINESE, fontSize=7.5, leading=10, wordWrap="CJK")

    def text(self, value: str, style: ParagraphStyle | None = None) -> Paragraph:
        """Text that may hold anything a person typed, escaped so that it is never read as
        markup; its runs of Latin letters and digits set in the Latin font, the rest in Chinese.
        """
        pieces: list[str] = []
        at = 0
        for run in LATIN_RUN.finditer(value):
            pieces += [escape(value[at : run.start()]), f'<font name="{LATIN}">{escape(run.group())}</font>']
            at = run.end()
        pieces.append(escape(value[at:]))
        return Paragraph("".join(pieces), style or self.cell)


def _grid(rows: Sequence[Sequence[Any]], widths: Sequence[float], extra: Sequence[tuple[Any, ...]] = ()) -> Table:
    table = Table(list(map(list, rows)), colWidths=list(widths))
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), CHINESE, 8.5),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("TOPPADDING", (0, 0), (-1, -1), 2.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
                *extra,
            ]
        )
    )
    return table


def _header(slip: Slip, styles: _Styles) -> Table:
    institution = slip.institution + (f" {slip.institution_name}" if slip.institution_name else "")
    elsewhere = (
        slip.treating_region is not None
        and slip.insured_region is not None
        and slip.treating_region != slip.insured_region
    )
    treating = (slip.treating_region or "—") + ("（异地就医）" if elsewhere else "")
    text = styles.text
    rows = [
        ("定点机构", text(institution), "结算状态", REVERSED if slip.reversed else SETTLED),
        ("结算流水号", text(slip.serial), "结算编号", text(str(slip.settlement_id))),
        ("人员编号", text(slip.person), "姓名", text(slip.name or "—")),
        ("就诊日期", text(slip.service_date.isoformat()), "就诊类型", VISITS.get(slip.visit, slip.visit)),
        ("参保地", text(slip.insured_region or "—"), "就医地", text(treating)),
        (
            "结算时间",
            text(_local(slip.settled_at)),
            "冲正时间",
            text(_local(slip.reversed_at) if slip.reversed_at else "—"),
        ),
    ]
    shaded = [("BACKGROUND", (column, 0), (column, -1), colors.whitesmoke) for column in (0, 2)]
    return _grid(rows, (22 * mm, WIDTH / 2 - 22 * mm, 22 * mm, WIDTH / 2 - 22 * mm), shaded)


def _summary(slip: Slip) -> Table:
    """The national slip's figures, two to a row: heading, amount."""
    paid = {heading: slip.paid_fen[kind] for kind, heading in PAID_HEADINGS.items()}
    figures: list[tuple[str, int]] = [
        ("医疗费总额", slip.total_fen),
        ("全自费", slip.out_of_scope_fen),
        ("超限价自费", slip.above_standard_fen),
        ("先行自付", slip.self_pay_first_fen),
        ("符合政策范围", slip.in_scope_fen),
        ("个人负担", slip.personal_account_fen + slip.cash_fen),
        *paid.items(),
        ("个人账户支付", slip.personal_account_fen),
        ("个人现金支付", slip.cash_fen),
    ]
    rows = [
        (left, _yuan(left_fen), right, _yuan(right_fen))
        for (left, left_fen), (right, right_fen) in zip(figures[::2], figures[1::2], strict=True)
    ]
    style = [
        *(("FONT", (column, 0), (column, -1), LATIN, 9) for column in (1, 3)),
        *(("ALIGN", (column, 0), (column, -1), "RIGHT") for column in (1, 3)),
        *(("BACKGROUND", (column, 0), (column, -1), colors.whitesmoke) for column in (0, 2)),
    ]
    return _grid(rows, (30 * mm, WIDTH / 2 - 30 * mm, 30 * mm, WIDTH / 2 - 30 * mm), style)


def _funds(slip: Slip, styles: _Styles) -> Table:
    rows: list[tuple[Any, ...]] = [("险种", "方案", "支付方", "支付金额", "说明")]
    for fund in slip.funds:
        kind = KIND_NAMES.get(fund.kind, fund.kind.value)
        rows.append(
            (kind, styles.text(fund.plan), styles.text(fund.payer), _yuan(fund.amount_fen), _reasons(fund.reasons))
        )
    style = [
        ("FONT", (3, 1), (3, -1), LATIN, 8.5),
        ("ALIGN", (3, 0), (3, -1), "RIGHT"),
        ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
    ]
    return _grid(rows, (28 * mm, 40 * mm, 40 * mm, 26 * mm, WIDTH - 134 * mm), style)


def _line_detail(line: SlipLine) -> str:
    parts = [line.generic_name or ""]
    if line.donated_units:
        parts.append(f"其中捐赠 {line.donated_units}")
    paid = "；".join(f"{plan} {_yuan(amount)}" for plan, amount in line.paid_by)
    parts.append(f"支付：{paid or '—'}；个人 {_yuan(line.patient_fen)}")
    if line.reasons:
        parts.append(f"说明：{_reasons(line.reasons)}")
    return "　".join(part for part in parts if part)


def _lines(slip: Slip, styles: _Styles) -> Table:
    """Each line: its figures on one row (codes and amounts only, so each reads in one piece),
    then the generic name, who paid what and the reasons on a row beneath it.
    """
    rows: list[list[Any]] = [list(LINE_HEADINGS)]
    style: list[tuple[Any, ...]] = [
        ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
        ("FONT", (0, 0), (-1, 0), CHINESE, 7.5),
        ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
    ]
    for line in slip.lines:
        figures = len(rows)
        rows.append(
            [
                str(line.index + 1),
                line.drug,
                str(line.quantity),
                *map(
                    _yuan,
                    (
                        line.unit_price_fen,
                        line.total_fen,
                        line.out_of_scope_fen,
                        line.above_standard_fen,
                        line.self_pay_first_fen,
                        line.in_scope_fen,
                        line.patient_fen,
                    ),
                ),
            ]
        )
        rows.append(["", styles.text(_line_detail(line), styles.small), *[""] * (len(LINE_HEADINGS) - 2)])
        style += [
            ("FONT", (0, figures), (-1, figures), LATIN, 8),
            ("SPAN", (1, figures + 1), (-1, figures + 1)),
            ("LINEBELOW", (0, figures), (-1, figures), 0.2, colors.lightgrey),
        ]
    scale = WIDTH / sum(LINE_WIDTHS)
    table = Table(rows, colWidths=[width * scale for width in LINE_WIDTHS], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BOX", (0, 0), (-1, -1), 0.4, colors.grey),
                ("LINEBELOW", (0, 0), (-1, 0), 0.4, colors.grey),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                *style,
            ]
        )
    )
    return table


def render(slip: Slip, *, printed_at: datetime) -> bytes:
    """The slip as a PDF document (A4, as many pages as its lines need)."""
    with _render_lock:
        _register_fonts()  # before any paragraph is made: each looks its font up when built
        return _render(slip, printed_at)


def _render(slip: Slip, printed_at: datetime) -> bytes:
    styles = _Styles()
    story: list[Any] = [Paragraph(TITLE, styles.title)]
    if slip.reversed:
        reason = f"：{slip.reversal_reason}" if slip.reversal_reason else ""
        story.append(styles.text(f"{REVERSED}{reason}", styles.stamp))
    story += [
        Spacer(1, 4 * mm),
        _header(slip, styles),
        Paragraph("费用结算（元）", styles.section),
        _summary(slip),
        Paragraph("各支付方", styles.section),
        _funds(slip, styles),
        Paragraph("费用明细", styles.section),
        _lines(slip, styles),
    ]
    footer = f"结算编号 {slip.settlement_id}　打印时间 {_local(printed_at)}（北京时间）"

    def page(canvas: Canvas, document: Any) -> None:
        canvas.saveState()
        canvas.setFont(CHINESE, 7.5)
        canvas.drawString(MARGIN, MARGIN / 2, footer)
        canvas.drawRightString(A4[0] - MARGIN, MARGIN / 2, f"第 {document.page} 页")
        if slip.reversed:  # every page says so, not only the first
            canvas.setFillColor(colors.red)
            canvas.setFont(CHINESE, 9)
            canvas.drawRightString(A4[0] - MARGIN, A4[1] - MARGIN / 2, REVERSED)
        canvas.restoreState()

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=f"{TITLE} {slip.serial}",
        author=slip.institution,
        creator="settle",
    )
    document.build(story, onFirstPage=page, onLaterPages=page)
    return buffer.getvalue()
