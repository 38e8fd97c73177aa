"""Rights-holder notifications: written from a template per language, sent by SMTP or exported, delivered,
answered; the delivery starts the reply's deadline and the reply decides the case."""

from __future__ import annotations

import json
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import Connection, select, update

from server.accounts import Principal
from server.cases.config import CasesConfig, smtp_password
from server.cases.holders import get_holder
from server.cases.store import item_rows, load_case, take_step
from server.db import iso, parse_iso
from server.errors import BadInput, Conflict, NotFound
from server.jurisdictions import DeadlineRule
from server.schema import case_notifications, manifests
from server.settings import ServerSettings
from server.sites import deadline_rule, site_zone

TEMPLATES = Path(__file__).resolve().parent / "templates"
_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined, autoescape=False)
SUBJECT = {
    "zh": "扣留侵权嫌疑货物通知（{ref}）",
    "en": "Notice of detained goods suspected of infringement ({ref})",
}


class NoticeNotSent(OSError):
    """The mail server refused or could not be reached; the notice stays to be sent or exported."""


def case_ref(case_id: int) -> str:
    return f"CASE-{case_id:06d}"


def _period(rule: DeadlineRule) -> tuple[str, str]:
    """The rule's period in words: (Chinese, English)."""
    if rule.working_days is not None:
        return (
            f"收到本通知之日起 {rule.working_days} 个工作日",
            f"{rule.working_days} working days of receiving it",
        )
    if rule.days is not None:
        return f"收到本通知之日起 {rule.days} 日", f"{rule.days} days of receiving it"
    return f"收到本通知后 {rule.hours:g} 小时", f"{rule.hours:g} hours of receiving it"


def render_notice(
    conn: Connection, settings: ServerSettings, row: Any, holder: dict[str, Any], now: datetime
) -> tuple[str, str]:
    """Subject and body of the notice for this case, in the rights holder's language."""
    rule = deadline_rule(settings, row.site_id, "detain")
    if rule is None:
        raise Conflict(
            f"site {row.site_id}'s jurisdiction sets no 'detain' deadline for the reply", "no_rule"
        )
    items = []
    for item in item_rows(conn, int(row.id)):
        m = None
        if item.waybill:
            m = conn.execute(select(manifests).where(manifests.c.waybill == item.waybill)).first()
        items.append(
            {
                "waybill": item.waybill,
                "declared_name": m.declared_name if m else None,
                "quantity": m.quantity if m else None,
                "category": item.category,
                "site_id": item.site_id,
                "created_at": item.created_at[:16].replace("T", " "),
            }
        )
    detain = json.loads(row.fields).get("detain", {})
    zh, en = _period(rule)
    lang = holder["language"]
    body = _env.get_template(f"notice_{lang}.txt").render(
        holder=holder,
        case=row,
        case_ref=case_ref(int(row.id)),
        office=settings.cases.office_name,
        legal_basis=detain.get("legal_basis", ""),
        storage_location=detain.get("storage_location", ""),
        items=items,
        rule=rule,
        period_zh=zh,
        period_en=en,
        now=now.astimezone(site_zone(settings, row.site_id)).strftime("%Y-%m-%d"),
    )
    return SUBJECT[lang].format(ref=case_ref(int(row.id))), body


def notify(conn: Connection, settings: ServerSettings, who: Principal, case_id: int, now: datetime) -> int:
    """Write the notice for a detained case (state: notified); returns the notification's id."""
    row = load_case(conn, who, case_id)
    if row.rights_holder_id is None:
        raise Conflict("name the rights holder before notifying", "no_rights_holder")
    holder = get_holder(conn, int(row.rights_holder_id))
    subject, body = render_notice(conn, settings, row, holder, now)
    channel = "smtp" if settings.cases.smtp_host and holder["email"] else "export"
    take_step(conn, settings, who, case_id, "notify", {"channel": channel}, now)
    domain = settings.cases.mail_from.rpartition("@")[2] or "localhost"
    return int(
        conn.execute(
            case_notifications.insert()
            .values(
                case_id=case_id,
                rights_holder_id=holder["id"],
                language=holder["language"],
                recipient=holder["email"],
                subject=subject,
                body=body,
                channel=channel,
                message_id=make_msgid("case", domain=domain),
                created_by=who.name,
                created_at=iso(now),
            )
            .returning(case_notifications.c.id)
        ).scalar_one()
    )


def load_notice(conn: Connection, who: Principal, case_id: int, notice_id: int) -> Any:
    load_case(conn, who, case_id)
    row = conn.execute(
        select(case_notifications).where(
            case_notifications.c.id == notice_id, case_notifications.c.case_id == case_id
        )
    ).first()
    if row is None:
        raise NotFound(f"no notification {notice_id} in case {case_id}")
    return row


def current_notice(conn: Connection, case_id: int) -> Any:
    return conn.execute(
        select(case_notifications)
        .where(case_notifications.c.case_id == case_id)
        .order_by(case_notifications.c.id.desc())
        .limit(1)
    ).first()


def message_of(notice: Any, cfg: CasesConfig) -> EmailMessage:
    """The notice as an e-mail: what SMTP sends and what an export hands over (.eml)."""
    msg = EmailMessage()
    msg["From"] = cfg.mail_from
    if notice.recipient:
        msg["To"] = notice.recipient
    msg["Subject"] = notice.subject
    msg["Date"] = format_datetime(parse_iso(notice.created_at))
    msg["Message-ID"] = notice.message_id
    msg.set_content(notice.body)
    return msg


def send_message(msg: EmailMessage, cfg: CasesConfig) -> None:
    """Hand the message to the configured mail server; any refusal becomes NoticeNotSent."""
    if not cfg.smtp_host:
        raise NoticeNotSent("no mail server is configured ([server.cases] smtp_host); export the notice")
    try:
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.smtp_timeout_s) as smtp:
            if cfg.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if cfg.smtp_username:
                smtp.login(cfg.smtp_username, smtp_password())
            smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise NoticeNotSent(f"mail server {cfg.smtp_host}:{cfg.smtp_port}: {exc}") from exc


def record_send_error(conn: Connection, notice_id: int, error: str) -> None:
    conn.execute(
        update(case_notifications).where(case_notifications.c.id == notice_id).values(send_error=error[:500])
    )


def deliver(
    conn: Connection,
    settings: ServerSettings,
    who: Principal,
    case_id: int,
    now: datetime,
    delivered_at: datetime | None = None,
    how: str = "smtp",
) -> datetime | None:
    """The notice reached the rights holder (sent, or handed over after export): the reply's time runs."""
    load_case(conn, who, case_id)  # a case beyond the caller's sites is not found, before anything else
    notice = current_notice(conn, case_id)
    if notice is None:
        raise Conflict("the case has no notification to deliver", "no_notice")
    at = delivered_at or now
    if at > now or at < parse_iso(notice.created_at):
        raise BadInput("delivered_at must lie between the notice's writing and now", "bad_time")
    take_step(conn, settings, who, case_id, "deliver", {"how": how, "delivered_at": iso(at)}, now, start=at)
    due = load_case(conn, who, case_id).due_at
    conn.execute(
        update(case_notifications)
        .where(case_notifications.c.id == notice.id)
        .values(delivered_at=iso(at), reply_due_at=due, send_error=None)
    )
    return parse_iso(due) if due else None


def record_reply(
    conn: Connection,
    settings: ServerSettings,
    who: Principal,
    case_id: int,
    reply: str,
    note: str,
    now: datetime,
) -> None:
    """The rights holder's answer (or its absence after the deadline) decides the case."""
    take_step(conn, settings, who, case_id, "reply", {"reply": reply, "note": note}, now)
    notice = current_notice(conn, case_id)
    conn.execute(
        update(case_notifications)
        .where(case_notifications.c.id == notice.id)
        .values(reply=reply, reply_at=iso(now), reply_note=note, reply_by=who.name)
    )
