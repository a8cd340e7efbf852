"""mailbot.text.screen: every skip reason, their order, and what must not be skipped."""

from __future__ import annotations

import doctest
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.models import InboundMail, SkipReason, Verdict
from mailbot.text import screen as screen_module
from mailbot.text.mime import parse
from mailbot.text.screen import screen
from tests.text.eml_fixtures import SCREEN_DEFAULTS, EmlFixture, fixtures_with

# ---------------------------------------------------------------- fixtures


@pytest.mark.parametrize("fixture", fixtures_with("verdict"))
def test_fixture_verdict(fixture: EmlFixture) -> None:
    verdict = screen(parse(fixture.raw), **fixture.screen_args())
    expected = fixture.expected["verdict"]
    if expected == "proceed":
        assert verdict == Verdict.ok()
    else:
        assert (verdict.proceed, verdict.reason) == (False, SkipReason(expected))
        assert fixture.expected.get("detail_contains", "") in verdict.detail


def test_fixtures_cover_every_skip_reason() -> None:
    seen = {fixture.expected["verdict"] for fixture in
            (param.values[0] for param in fixtures_with("verdict"))}
    assert {reason.value for reason in SkipReason} <= seen
    assert "proceed" in seen


# ---------------------------------------------------------------- building mails


def _mail(headers: str = "", body: str = "Waar blijft mijn bestelling 1045872?",
          sender: str = "Jan de Vries <jan@example.nl>",
          message_id: str = "<abc@example.nl>") -> InboundMail:
    lines = [f"From: {sender}", f"Message-ID: {message_id}", "Subject: Bestelling",
             *[line for line in headers.split("\n") if line]]
    return parse(("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8"))


def _screen(mail: InboundMail, **overrides: Any) -> Verdict:
    return screen(mail, **{**SCREEN_DEFAULTS, **overrides})


def _reason(mail: InboundMail, **overrides: Any) -> SkipReason | None:
    return _screen(mail, **overrides).reason


def test_plain_customer_mail_proceeds() -> None:
    assert _screen(_mail()) == Verdict.ok()


# ---------------------------------------------------------------- each check


@pytest.mark.parametrize("sender", ["", "Jan de Vries", "<>", "undisclosed-recipients:;"])
def test_no_sender(sender: str) -> None:
    verdict = _screen(_mail(sender=sender))
    assert verdict.reason is SkipReason.NO_SENDER
    assert verdict.detail.startswith("From:")


@pytest.mark.parametrize(("value", "reason"), [
    ("auto-replied", SkipReason.AUTO_SUBMITTED),
    ("auto-generated", SkipReason.AUTO_SUBMITTED),
    ("auto-notified; owner-email=x@y.nl", SkipReason.AUTO_SUBMITTED),
    ("No", None),
    ("no", None),
])
def test_auto_submitted(value: str, reason: SkipReason | None) -> None:
    verdict = _screen(_mail(f"Auto-Submitted: {value}"))
    assert verdict.reason is reason
    if reason:
        assert verdict.detail == f"Auto-Submitted: {value}"


@pytest.mark.parametrize(("value", "reason"), [
    ("<>", SkipReason.EMPTY_RETURN_PATH), ("< >", SkipReason.EMPTY_RETURN_PATH),
    ("<jan@example.nl>", None),
])
def test_return_path(value: str, reason: SkipReason | None) -> None:
    assert _reason(_mail(f"Return-Path: {value}")) is reason


def test_only_the_top_return_path_counts() -> None:
    assert _reason(_mail("Return-Path: <jan@example.nl>\nReturn-Path: <>")) is None


@pytest.mark.parametrize(("value", "reason"), [
    ("bulk", SkipReason.PRECEDENCE), ("List", SkipReason.PRECEDENCE),
    ("junk", SkipReason.PRECEDENCE), ("auto_reply", SkipReason.PRECEDENCE),
    ("first-class", None), ("urgent", None),
])
def test_precedence(value: str, reason: SkipReason | None) -> None:
    assert _reason(_mail(f"Precedence: {value}")) is reason


@pytest.mark.parametrize("header", [
    "List-Id: Inkoop <inkoop.lists.example.nl>",
    "List-Unsubscribe: <mailto:unsubscribe@example.nl>",
])
def test_list_mail(header: str) -> None:
    verdict = _screen(_mail(header))
    assert verdict.reason is SkipReason.LIST_MAIL
    assert verdict.detail == header


@pytest.mark.parametrize(("value", "reason"), [
    ("All", SkipReason.AUTO_RESPONSE_SUPPRESSED), ("OOF", SkipReason.AUTO_RESPONSE_SUPPRESSED),
    ("DR, RN, NRN", SkipReason.AUTO_RESPONSE_SUPPRESSED),
    ("autoreply", SkipReason.AUTO_RESPONSE_SUPPRESSED), ("None", None), ("", None),
])
def test_auto_response_suppress(value: str, reason: SkipReason | None) -> None:
    assert _reason(_mail(f"X-Auto-Response-Suppress: {value}")) is reason


@pytest.mark.parametrize(("report_type", "reason"), [
    ("delivery-status", SkipReason.DELIVERY_REPORT),
    ("disposition-notification", SkipReason.READ_RECEIPT),
    ("feedback-report", SkipReason.DELIVERY_REPORT),
])
def test_reports(report_type: str, reason: SkipReason) -> None:
    headers = (f'MIME-Version: 1.0\nContent-Type: multipart/report; report-type={report_type}; '
               f'boundary="r"')
    body = "--r\r\nContent-Type: text/plain\r\n\r\nrapport\r\n--r--\r\n"
    verdict = _screen(_mail(headers, body))
    assert verdict.reason is reason
    assert report_type in verdict.detail


def test_read_receipt_request_alone_is_no_reason() -> None:
    mail = _mail('Disposition-Notification-To: "Jan" <jan@example.nl>\n'
                 "Return-Receipt-To: jan@example.nl")
    assert _screen(mail) == Verdict.ok()


@pytest.mark.parametrize("header", ["X-Autoreply: yes", "X-Autorespond: Afwezig"])
def test_out_of_office_headers(header: str) -> None:
    verdict = _screen(_mail(header))
    assert verdict.reason is SkipReason.OUT_OF_OFFICE
    assert verdict.detail == header


@pytest.mark.parametrize("subject", [
    "Afwezig: Re: Bestelling 1045872", "Afwezig", "Automatisch antwoord: Bestelling 1045872",
    "Automatic reply: Your order", "Out of Office: Re: Refund", "Out of office",
    "AutoReply: order", "Autosvar: Beställning", "Abwesenheitsnotiz: Bestellung",
    "Réponse automatique : commande", "Niet aanwezig: Re: Retour",
])
def test_out_of_office_subjects(subject: str) -> None:
    mail = _mail().__class__(**{**_fields(_mail()), "subject": subject})
    verdict = _screen(mail)
    assert verdict.reason is SkipReason.OUT_OF_OFFICE
    assert subject in verdict.detail


@pytest.mark.parametrize("subject", [
    "Afwezig bij bezorging, pakket weer mee", "Out of office hours support?",
    "Re: Automatische incasso mislukt", "Absentie van bezorger",
])
def test_subjects_that_only_look_like_out_of_office(subject: str) -> None:
    mail = _mail().__class__(**{**_fields(_mail()), "subject": subject})
    assert _screen(mail) == Verdict.ok()


def _fields(mail: InboundMail) -> dict[str, Any]:
    return {name: getattr(mail, name) for name in mail.__slots__}


@pytest.mark.parametrize("body", [
    "Ik ben afwezig tot en met 14 maart. Voor dringende zaken kunt u bellen met 010-1234567.",
    "Beste afzender,\n\nVan 3 t/m 14 maart ben ik niet aanwezig. Uw e-mail zal ik na mijn "
    "terugkomst beantwoorden.\n\nGroet,\nAnke",
    "Ik ben met vakantie tot 17 maart en heb geen toegang tot mijn e-mail.",
    "I am out of the office until 10 March with limited access to email.",
    "I'm currently away. I will respond to your message upon my return.",
    "Thank you for your email. I am on annual leave and will be back on Monday 10 March.",
    "Ich bin bis 10.03. abwesend. In dringenden Fällen wenden Sie sich an info@example.de.",
])
def test_out_of_office_bodies(body: str) -> None:
    verdict = _screen(_mail(body=body))
    assert verdict.reason is SkipReason.OUT_OF_OFFICE
    assert verdict.detail.startswith("body phrase:")


@pytest.mark.parametrize("body", [
    "I was on holiday when the parcel came and now it is gone. I want a refund.",
    "Ik was op vakantie toen het pakket kwam. Ik ben vanaf maandag weer bereikbaar.",
    "I am out of the office until Monday, so please call me then about my broken TV.",
    "Ik ben afwezig geweest en nu ligt het pakket bij de buren.",
    # A real complaint that is long: absence phrases inside it do not make it a notice.
    "Ik ben afwezig tot en met vrijdag, neem contact op met mijn vrouw. " + "Het pakket is "
    "beschadigd aangekomen en de inhoud is kapot, ik wil mijn geld terug. " * 12,
])
def test_bodies_that_mention_absence_but_are_complaints(body: str) -> None:
    assert _screen(_mail(body=body)) == Verdict.ok()


def test_out_of_office_body_below_the_quote_is_ignored() -> None:
    body = ("Het pakket is niet aangekomen.\n\nOp di 4 mrt 2025 om 10:12 schreef Shop <s@shop.nl>:\n"
            "> Ik ben afwezig tot en met 14 maart. Voor dringende zaken: bel 010-1234567.")
    assert _screen(_mail(body=body)) == Verdict.ok()


@pytest.mark.parametrize(("sender", "reason"), [
    ("MAILER-DAEMON@mx.example.nl", SkipReason.SYSTEM_SENDER),
    ("postmaster@example.nl", SkipReason.SYSTEM_SENDER),
    ("noreply@postnl.nl", SkipReason.SYSTEM_SENDER),
    ("no-reply@accounts.example.com", SkipReason.SYSTEM_SENDER),
    ("no_reply@example.com", SkipReason.SYSTEM_SENDER),
    ("do-not-reply@example.com", SkipReason.SYSTEM_SENDER),
    ("DoNotReply@example.com", SkipReason.SYSTEM_SENDER),
    ("bounce@example.com", SkipReason.SYSTEM_SENDER),
    ("bounces+12345-abcd@em.example.com", SkipReason.SYSTEM_SENDER),
    ("noreply-shop@example.com", SkipReason.SYSTEM_SENDER),
    ("niet-beantwoorden@example.nl", SkipReason.SYSTEM_SENDER),
    ("bouncer@example.com", None),
    ("jan.noreply@example.com", None),
    ("postmaster.jan@example.com", SkipReason.SYSTEM_SENDER),
    ("info@example.com", None),
])
def test_system_senders(sender: str, reason: SkipReason | None) -> None:
    verdict = _screen(_mail(sender=sender))
    assert verdict.reason is reason
    if reason:
        assert sender.lower() in verdict.detail


@pytest.mark.parametrize(("sender", "message_id", "headers", "detail"), [
    ("Klantenservice <KlantenService@Webwinkel.NL>", "<x@example.nl>", "",
     "From: klantenservice@webwinkel.nl"),
    ("jan@example.nl", "<mailbot.1a2b@WEBWINKEL.nl>", "", "Message-ID: <mailbot.1a2b@WEBWINKEL.nl>"),
    ("jan@example.nl", "<x@example.nl>", "X-Mailbot-Loop: webwinkel.nl", "X-Mailbot-Loop"),
    ("jan@example.nl", "<x@example.nl>", "X-Mailbot: draft 42", "X-Mailbot: draft 42"),
])
def test_own_mail(sender: str, message_id: str, headers: str, detail: str) -> None:
    verdict = _screen(_mail(headers, sender=sender, message_id=message_id))
    assert verdict.reason is SkipReason.OWN_MAIL
    assert detail in verdict.detail


def test_message_id_from_a_subdomain_is_not_own_mail() -> None:
    # The shop's web server sends contact-form mails with its own host name in the id.
    assert _screen(_mail(message_id="<form.1@www.webwinkel.nl>")) == Verdict.ok()


@pytest.mark.parametrize(("sent", "limit", "reason"), [
    (0, 3, None), (2, 3, None), (3, 3, SkipReason.SENDER_LIMIT), (7, 3, SkipReason.SENDER_LIMIT),
    (0, 0, SkipReason.SENDER_LIMIT),
])
def test_sender_limit(sent: int, limit: int, reason: SkipReason | None) -> None:
    verdict = _screen(_mail(), auto_replies_last_day=sent, daily_limit=limit)
    assert verdict.reason is reason
    if reason:
        assert "jan@example.nl" in verdict.detail


# ---------------------------------------------------------------- order


_TRIGGERS: list[tuple[SkipReason, str]] = [
    (SkipReason.AUTO_SUBMITTED, "Auto-Submitted: auto-replied"),
    (SkipReason.EMPTY_RETURN_PATH, "Return-Path: <>"),
    (SkipReason.PRECEDENCE, "Precedence: bulk"),
    (SkipReason.LIST_MAIL, "List-Id: <l.example.nl>"),
    (SkipReason.AUTO_RESPONSE_SUPPRESSED, "X-Auto-Response-Suppress: All"),
    (SkipReason.DELIVERY_REPORT, "report"),
    (SkipReason.OUT_OF_OFFICE, "X-Autoreply: yes"),
    (SkipReason.SYSTEM_SENDER, "sender"),
    (SkipReason.OWN_MAIL, "X-Mailbot-Loop: webwinkel.nl"),
    (SkipReason.SENDER_LIMIT, "limit"),
]


def _with_triggers(active: list[str], sender: str = "noreply@example.com") -> Verdict:
    headers = [t for t in active if ":" in t]
    body = "Waar blijft mijn bestelling?"
    if "report" in active:
        headers.append('Content-Type: multipart/report; report-type=delivery-status; boundary="r"')
        body = "--r\r\nContent-Type: text/plain\r\n\r\nrapport\r\n--r--\r\n"
    mail = _mail("\n".join(headers), body,
                 sender=sender if "sender" in active else "jan@example.nl")
    return _screen(mail, auto_replies_last_day=99 if "limit" in active else 0)


def test_checks_run_in_the_documented_order() -> None:
    triggers = [trigger for _, trigger in _TRIGGERS]
    for index, (reason, _) in enumerate(_TRIGGERS):
        assert _with_triggers(triggers[index:]).reason is reason
    assert _with_triggers([]) == Verdict.ok()
    assert _with_triggers(triggers, sender="").reason is SkipReason.NO_SENDER


def test_screen_accepts_any_iterables() -> None:
    verdict = screen(_mail(sender="Support@Webwinkel.nl"), own_addresses=iter([" SUPPORT@webwinkel.nl "]),
                     own_domains={"@Webwinkel.nl"}, auto_replies_last_day=0, daily_limit=3)
    assert verdict.reason is SkipReason.OWN_MAIL


# ---------------------------------------------------------------- never raises


_HEADER_NAMES = st.sampled_from([
    "Auto-Submitted", "Return-Path", "Precedence", "List-Id", "List-Unsubscribe",
    "X-Auto-Response-Suppress", "X-Autoreply", "X-Autorespond", "X-Mailbot-Loop", "Subject",
    "From", "Content-Type",
])


@settings(max_examples=300, deadline=None)
@given(
    headers=st.lists(st.tuples(_HEADER_NAMES, st.text(max_size=40)), max_size=8),
    subject=st.text(max_size=80),
    text=st.text(max_size=1500),
    from_addr=st.one_of(st.just(""), st.emails().map(str.lower), st.text(max_size=30)),
    message_id=st.one_of(st.none(), st.text(max_size=40)),
    content_type=st.sampled_from(["text/plain", "multipart/report", "multipart/mixed"]),
    report_type=st.one_of(st.none(), st.text(max_size=30)),
    sent=st.integers(-5, 10),
    limit=st.integers(-5, 10),
    own=st.lists(st.text(max_size=20), max_size=3),
)
def test_screen_never_raises(headers: list[tuple[str, str]], subject: str, text: str,
                             from_addr: str, message_id: str | None, content_type: str,
                             report_type: str | None, sent: int, limit: int,
                             own: list[str]) -> None:
    mail = InboundMail(
        message_id=message_id, subject=subject, from_name="", from_addr=from_addr, to=(), cc=(),
        reply_to=None, date=None, in_reply_to=None, references=(), headers=tuple(headers),
        content_type=content_type, report_type=report_type, text=text, html=None,
        attachments=(), size=0)
    verdict = screen(mail, own_addresses=own, own_domains=own, auto_replies_last_day=sent,
                     daily_limit=limit)
    assert isinstance(verdict, Verdict)
    assert verdict.proceed == (verdict.reason is None)
    assert verdict.proceed or verdict.detail


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_screen_of_any_parsed_bytes(data: bytes) -> None:
    assert isinstance(_screen(parse(data)), Verdict)


# ---------------------------------------------------------------- doctests


def test_doctests() -> None:
    result = doctest.testmod(screen_module)
    assert result.attempted > 0
    assert result.failed == 0
