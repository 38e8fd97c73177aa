"""The referral letter (移送函) as a PDF in Chinese: summary, parcels, images, legal basis, fingerprint."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from server.evidence.fonts import chinese_font
from server.web.words import words

GUIDANCE = "《国务院办公厅关于加强互联网领域侵权假冒行为治理的意见》（国办发〔2015〕77号）"
THUMB_MM = 55
MAX_IMAGES = 24


@dataclass(frozen=True)
class ReferralLetter:
    """Everything the letter says; the images are (caption, original bytes)."""

    referral_id: int
    authority: str
    case_reference: str
    sender_unit: str
    created_at: str
    created_by: str
    legal_basis: str
    items: list[dict[str, Any]]
    images: list[tuple[str, bytes]]
    fingerprint: str
    key_sha256: str
    files: int
    case_id: str | None = None
    case_title: str = ""


def _styles(font: str) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=font, fontSize=10.5, leading=16, wordWrap="CJK")
    return {
        "title": ParagraphStyle("title", parent=base, fontSize=18, leading=26, alignment=1, spaceAfter=6),
        "h": ParagraphStyle("h", parent=base, fontSize=12.5, leading=20, spaceBefore=8, spaceAfter=4),
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=8.5, leading=12),
        "mono": ParagraphStyle("mono", parent=base, fontSize=8, leading=11, wordWrap="CJK"),
    }


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _thumb(data: bytes) -> io.BytesIO | None:
    """A PNG copy small enough for the page; the original bytes stay in the bundle."""
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            im.thumbnail((800, 800))
            out = io.BytesIO()
            im.convert("RGB" if im.mode not in ("L", "RGB") else im.mode).save(out, "PNG")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    out.seek(0)
    return out


def _parcel_table(letter: ReferralLetter, st: dict[str, ParagraphStyle], w: dict[str, str]) -> Table:
    head = ["序号", "运单号", "检查地点", "过机时间", "系统判定及原因", "品类 / 申报内容", "处理决定"]
    rows: list[list[Any]] = [[_p(h, st["small"]) for h in head]]
    for n, item in enumerate(letter.items, start=1):
        reasons = "、".join(w.get(f"reason_{r}", r) for r in item["reasons"]) or "—"
        declared = item.get("manifest") or {}
        contents = f"{item.get('category') or '—'} / {declared.get('declared_name', '—')}"
        outcome = w.get(f"act_{item.get('outcome')}", item.get("outcome") or "—")
        rows.append(
            [
                _p(str(n), st["small"]),
                _p(item.get("waybill") or "—", st["small"]),
                _p(f"{item['site_id']} {item['line_id']} {item['station_id']}", st["small"]),
                _p(item["created_at"][:19].replace("T", " "), st["small"]),
                _p(f"{item['decision']}：{reasons}", st["small"]),
                _p(contents, st["small"]),
                _p(f"{outcome}（{item.get('decided_by') or '—'}）", st["small"]),
            ]
        )
    table = Table(
        rows, colWidths=[9 * mm, 28 * mm, 28 * mm, 25 * mm, 34 * mm, 31 * mm, 25 * mm], repeatRows=1
    )
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8ecf2")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def _form(labels: list[str], st: dict[str, ParagraphStyle]) -> Table:
    """Labels over blank, underlined cells for the signatures and the receipt to be written by hand."""
    table = Table(
        [[_p(f"{label}：", st["body"]) for label in labels], [""] * len(labels)], colWidths=[60 * mm] * 3
    )
    table.setStyle(
        TableStyle(
            [("LINEBELOW", (0, 1), (-1, 1), 0.6, colors.black), ("BOTTOMPADDING", (0, 1), (-1, 1), 18)]
        )
    )
    return table


def _senders(items: list[dict[str, Any]]) -> str:
    seen: dict[str, str] = {}
    for item in items:
        s = item.get("sender")
        if s is not None:
            seen[s["sender_token"]] = f"{s['name_masked']}（{s['id_masked']}）"
    return "、".join(seen.values()) or "无实名记录"


def render_referral_pdf(letter: ReferralLetter) -> bytes:
    """Render the letter; FontMissing when no font with Chinese glyphs is installed."""
    font = chinese_font()
    st = _styles(font)
    w = words("zh")
    authority = w.get(letter.authority, letter.authority)
    waybills = "、".join(i.get("waybill") or "—" for i in letter.items)
    sites = "、".join(sorted({i["site_id"] for i in letter.items}))
    story: list[Any] = [
        _p("涉嫌侵权假冒寄递物品线索移送函", st["title"]),
        _p(f"移送编号：第 {letter.referral_id} 号　　本单位案件编号：{letter.case_reference}", st["body"]),
        _p(f"接收机关：{authority}", st["body"]),
        _p(f"移送单位：{letter.sender_unit or '（未配置移送单位名称）'}", st["body"]),
        _p(f"移送日期：{letter.created_at[:10]}　　经办人：{letter.created_by}", st["body"]),
        _p("一、案件概况", st["h"]),
        _p(
            f"本单位在寄递渠道安全检查中发现涉嫌侵权假冒的寄递物品共 {len(letter.items)} 件"
            f"（运单号：{waybills}），检查地点：{sites}。"
            + (f"所属案件：{letter.case_id}（{letter.case_title}）。" if letter.case_id else "")
            + f"寄件人（脱敏）：{_senders(letter.items)}。"
            "经审查，现依法将相关线索及电子证据移送贵单位处理。寄件人实名信息以脱敏形式附于证据包内，"
            "完整信息经审计登记后方可调取。",
            st["body"],
        ),
        _p("二、涉案包裹", st["h"]),
        _parcel_table(letter, st, w),
        _p("三、图像证据", st["h"]),
    ]
    cells: list[Any] = []
    for caption, data in letter.images[:MAX_IMAGES]:
        thumb = _thumb(data)
        body: Any = (
            Image(thumb, width=THUMB_MM * mm, height=THUMB_MM * mm, kind="proportional")
            if thumb is not None
            else _p("（图像无法预览，原始文件见证据包）", st["small"])
        )
        cells.append([body, _p(caption, st["mono"])])
    if not cells:
        story.append(_p("（本案无图像证据）", st["body"]))
    else:
        grid = [cells[i : i + 3] for i in range(0, len(cells), 3)]
        grid[-1] += [""] * (3 - len(grid[-1]))
        story.append(Table(grid, colWidths=[60 * mm] * 3, style=[("VALIGN", (0, 0), (-1, -1), "TOP")]))
        if len(letter.images) > MAX_IMAGES:
            story.append(_p(f"另有 {len(letter.images) - MAX_IMAGES} 张图像见证据包。", st["small"]))
    story += [
        _p("四、法律依据", st["h"]),
        _p(letter.legal_basis, st["body"]),
        _p(f"参照{GUIDANCE}关于线索移送和行政执法与刑事司法衔接的要求。", st["body"]),
        KeepTogether(
            [
                _p("五、电子证据", st["h"]),
                _p(
                    f"随函附电子证据包一份（zip 格式，共 {letter.files} 个文件：原始图像、"
                    "寄递事件记录、系统判定及原因、识别模型版本及其 SHA-256、寄件人脱敏信息、"
                    "物品监管链、审计记录），其文件清单 manifest.sha256 已由本单位 Ed25519 密钥签名。",
                    st["body"],
                ),
                _p(f"证据包指纹（manifest.sha256 的 SHA-256）：\n{letter.fingerprint}", st["mono"]),
                _p(f"签名公钥指纹（SHA-256）：\n{letter.key_sha256}", st["mono"]),
                _p(
                    "校验方法：解压后执行 openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin "
                    "-in manifest.sha256 -sigfile manifest.sig，再执行 sha256sum -c manifest.sha256。",
                    st["small"],
                ),
            ]
        ),
        Spacer(1, 8 * mm),
        _form(["移送单位（盖章）", "经办人签字", "日期"], st),
        Spacer(1, 8 * mm),
        _p("—— 接收回执（请接收机关填写后退回） ——", st["h"]),
        _p(f"移送编号：第 {letter.referral_id} 号　　本单位案件编号：{letter.case_reference}", st["body"]),
        _form(["接收日期", "接收人", "受理案件编号"], st),
    ]
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"线索移送函 第{letter.referral_id}号",
        author=letter.sender_unit or "parcelguard",
    )
    doc.build(story)
    return buf.getvalue()
