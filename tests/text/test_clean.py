"""mailbot.text.clean: the customer's own words, against real-client fixtures and edge cases."""

from __future__ import annotations

import doctest
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.text import clean as clean_module
from mailbot.text.clean import clean, normalise
from mailbot.text.htmltext import html_to_text
from mailbot.text.mime import parse
from tests.text.eml_fixtures import EmlFixture, fixtures_with

# ---------------------------------------------------------------- fixtures


@pytest.mark.parametrize("fixture", fixtures_with("body", "sign_off_name", "quoted_contains"))
def test_fixture_clean_text(fixture: EmlFixture) -> None:
    result = clean(parse(fixture.raw).text)
    expected = fixture.expected
    if "body" in expected:
        assert result.body == expected["body"]
    if "sign_off_name" in expected:
        assert result.sign_off_name == expected["sign_off_name"]
    for fragment in expected.get("quoted_contains", []):
        assert fragment in result.quoted


@pytest.mark.parametrize("fixture", fixtures_with("html_body"))
def test_fixture_html_alternative_gives_the_same_words(fixture: EmlFixture) -> None:
    mail = parse(fixture.raw)
    assert mail.html is not None
    assert clean(html_to_text(mail.html)).body == fixture.expected["html_body"]


# ---------------------------------------------------------------- quotes


@pytest.mark.parametrize("text", [
    "Nog niets ontvangen.\n\nOp di 4 mrt 2025 om 10:12 schreef Shop <s@shop.nl>:\n> Onderweg.",
    "Nog niets ontvangen.\n\nOp di 4 mrt 2025 om 10:12 schreef Klantenservice Shop <\n"
    "klantenservice@shop.nl>:\n\n> Onderweg.",
    "Nog niets ontvangen.\n\nOp 4 mrt. 2025 om 10:12 heeft Shop het volgende geschreven:\n\n"
    "Onderweg.",
    "Nog niets ontvangen.\n\nOn Tue, Mar 4, 2025 at 10:12 AM Shop <s@shop.nl> wrote:\n> On its way.",
    "Nog niets ontvangen.\n\nOn Tue, 4 Mar 2025 at 10:12, Shop Support <\nsupport@shop.nl> wrote:\n"
    "> On its way.",
    "Nog niets ontvangen.\n\nAm 04.03.2025 um 10:12 schrieb Shop <s@shop.nl>:\n> Unterwegs.",
    "Nog niets ontvangen.\n\nLe mar. 4 mars 2025 à 10:12, Shop <s@shop.nl> a écrit :\n> En route.",
    "Nog niets ontvangen.\n\n-----Oorspronkelijk bericht-----\nVan: Shop\nOnderwerp: x",
    "Nog niets ontvangen.\n\n-----Original Message-----\nFrom: Shop\nSubject: x",
    "Nog niets ontvangen.\n\n----- Original Message -----\nFrom: Shop",
    "Nog niets ontvangen.\n________________________________\nVan: Shop <s@shop.nl>\n"
    "Verzonden: dinsdag 4 maart 2025 10:12\nAan: jan@x.nl\nOnderwerp: RE: Bestelling",
    "Nog niets ontvangen.\n\nFrom: Shop <s@shop.nl>\nSent: Tuesday, March 4, 2025 10:12 AM\n"
    "To: jan@x.nl\nSubject: RE: Order",
    "Nog niets ontvangen.\n\nVan: Shop <s@shop.nl>\nDatum: 04-03-2025 10:12 (GMT+01:00)\n"
    "Aan: jan@x.nl\nOnderwerp: Re: Retour",
    "Nog niets ontvangen.\n\nBegin forwarded message:\n\nFrom: Shop\nSubject: x",
    "Nog niets ontvangen.\n\nBegin doorgestuurd bericht:\n\nVan: Shop\nOnderwerp: x",
    "Nog niets ontvangen.\n\n---------- Forwarded message ---------\nFrom: Shop",
    "Nog niets ontvangen.\n\n---------- Doorgestuurd bericht ---------\nVan: Shop",
    "Nog niets ontvangen.\n\n-------- Doorgestuurd bericht --------\nVan: Shop",
    "Nog niets ontvangen.\n\nDoorgestuurd bericht:\nVan: Shop",
    "Nog niets ontvangen.\n\n-----Ursprüngliche Nachricht-----\nVon: Shop",
    "Nog niets ontvangen.\n\n> Uw pakket is onderweg.\n> Groet, Shop",
])
def test_quote_markers(text: str) -> None:
    result = clean(text)
    assert result.body == "Nog niets ontvangen."
    assert result.quoted


@pytest.mark.parametrize("text", [
    "On Monday I wrote: nothing arrived. Please help.",
    "Op 3 maart schreef ik u al:\ner is niets geleverd.",
    "From: my side nothing has changed.\nPlease check again.",
    "Prijs > 50 euro is te veel.",
    "Van: de winkel kreeg ik niets.\nAan: niemand heb ik wat aan.",
    "_" * 32 + "\nTotaal: 12 euro",
    "---\nTabel\n---",
])
def test_lookalikes_are_not_quotes(text: str) -> None:
    result = clean(text)
    assert result.body == normalise(text).strip()
    assert result.quoted == ""


def test_interleaved_reply_keeps_the_answers() -> None:
    text = ("Op do 6 mrt 2025 om 14:30 schreef Shop <s@shop.nl>:\n> Wat is uw ordernummer?\n\n"
            "1045555\n\n> Welk artikel is beschadigd?\n\nDe blauwe vaas.\n\nGroet,\nAlex")
    result = clean(text)
    assert result.body == "1045555\n\nDe blauwe vaas."
    assert result.sign_off_name == "Alex"
    assert "> Welk artikel is beschadigd?" in result.quoted


def test_html_blockquote_is_quoted() -> None:
    html = ("<div>Nog steeds niets.</div><div class=gmail_quote>Op ma 3 mrt 2025 om 09:00 schreef "
            "Shop &lt;s@shop.nl&gt;:<blockquote>Onderweg!<br><br>Groet</blockquote></div>")
    assert clean(html_to_text(html)).body == "Nog steeds niets."


# ---------------------------------------------------------------- signatures


@pytest.mark.parametrize(("text", "body", "name"), [
    ("Het is kapot.\n\nMet vriendelijke groet,\nJan de Vries\n06-12345678", "Het is kapot.",
     "Jan de Vries"),
    ("Het is kapot.\n\nMet vriendelijke groeten\n\nJ. de Vries", "Het is kapot.", "J. de Vries"),
    ("Het is kapot.\n\nVriendelijke groet,\nAnne-Marie van den Heuvel", "Het is kapot.",
     "Anne-Marie van den Heuvel"),
    ("Het is kapot.\n\nMvg,\nR. van der Linden\nTel 0612345678", "Het is kapot.",
     "R. van der Linden"),
    ("Het is kapot.\n\nGroetjes Anouk", "Het is kapot.", "Anouk"),
    ("Het is kapot.\n\nGroet,\nMark", "Het is kapot.", "Mark"),
    ("Het is kapot.\n\nHartelijke groet,\nFatima El Amrani", "Het is kapot.", "Fatima El Amrani"),
    ("Het is kapot.\n\nAlvast bedankt!\nSem", "Het is kapot.", "Sem"),
    ("It's broken.\n\nKind regards,\nSarah Johnson", "It's broken.", "Sarah Johnson"),
    ("It's broken.\n\nBest regards,\n\nMichael O'Brien\nNorthwind Traders Ltd.",
     "It's broken.", "Michael O'Brien"),
    ("It's broken.\n\nRegards\nKevin", "It's broken.", "Kevin"),
    ("It's broken.\n\nBest,\nPriya", "It's broken.", "Priya"),
    ("It's broken.\n\nCheers,\nTom", "It's broken.", "Tom"),
    ("It's broken.\n\nThanks,\nLinda", "It's broken.", "Linda"),
    ("It's broken.\n\nMany thanks\nEmma Clarke", "It's broken.", "Emma Clarke"),
    ("It's broken.\n\nThanks, Oliver", "It's broken.", "Oliver"),
    ("Es ist kaputt.\n\nMit freundlichen Grüßen\nKlaus Müller", "Es ist kaputt.", "Klaus Müller"),
    ("Het is kapot.\n\n-- \nJan Jansen\nHoofdstraat 1", "Het is kapot.", "Jan Jansen"),
    ("Het is kapot.\n\nMet vriendelijke groet,\nKlantenservice 24/7", "Het is kapot.", None),
    ("Het is kapot.\n\nMet vriendelijke groet,\njan", "Het is kapot.", None),
])
def test_sign_offs(text: str, body: str, name: str | None) -> None:
    result = clean(text)
    assert (result.body, result.sign_off_name) == (body, name)
    assert result.signature


@pytest.mark.parametrize("footer", [
    "Verzonden vanaf mijn iPhone", "Verstuurd vanaf mijn iPhone", "Sent from my iPhone",
    "Sent from my iPad", "Sent from my Galaxy", "Verstuurd vanaf mijn Samsung Galaxy smartphone.",
    "Sent from Outlook for Android", "Get Outlook for iOS", "Get Outlook for Android<https://aka.ms/x>",
    "Download Outlook for Android", "Outlook voor iOS downloaden",
    "Verzonden met de Mail-app voor Windows", "Sent from Mail for Windows",
    "Sent from Yahoo Mail on Android", "Von meinem iPhone gesendet",
])
def test_mobile_footers(footer: str) -> None:
    result = clean(f"Waar blijft mijn pakket?\n\n{footer}")
    assert result.body == "Waar blijft mijn pakket?"
    assert result.signature == footer
    assert result.sign_off_name is None


@pytest.mark.parametrize("text", [
    "Thanks for nothing, this is the third time I write.\nI want my money back.",
    "Groeten aan je collega, maar het pakket is nog steeds zoek.",
    "Ik kreeg geen groet en geen excuses.\nBest slecht geregeld.",
    "Bedankt voor de snelle levering, maar de doos was kapot.",
    "Regards to nobody. The parcel is lost.",
    "Sent from the warehouse on Monday, never arrived.",
    "Thanks!",                                       # nothing above: the whole mail is the body
    "Groet,\nJan",
])
def test_real_content_is_not_cut(text: str) -> None:
    result = clean(text)
    assert result.body == normalise(text)
    assert result.signature == ""


def test_sign_off_far_from_the_end_is_content() -> None:
    lines = "\n".join(f"Regel {i} van mijn uitgebreide klacht over de levering." for i in range(20))
    text = f"Inleiding.\n\nBedankt,\n\n{lines}"
    assert clean(text).body == normalise(text)


def test_postscript_keeps_the_sign_off_in_the_body() -> None:
    text = "Het is kapot.\n\nGroet,\nJan\n\nP.S. Het ordernummer is 1045872."
    assert "1045872" in clean(text).body


# ---------------------------------------------------------------- normalising


def test_whitespace_and_zero_width_characters() -> None:
    text = "\ufeffHallo\u200b \r\n\r\n\r\n\r\n\r\nDag\xa0Jan\u00ad.\t \rTot\u2028ziens\n\n\n"
    result = clean(text)
    assert result.body == "Hallo\n\nDag Jan.\nTot\nziens"


def test_empty_and_blank_input() -> None:
    assert clean("").body == ""
    assert clean(" \n\n \t\n").body == ""
    assert clean("Groet,\n").sign_off_name is None


# ---------------------------------------------------------------- speed and robustness


@pytest.mark.parametrize("text", [
    "x" * 1_000_000,
    "On " + "1" * 1_000_000 + " wrote:",
    "Op 1 mrt 2025 om 10:00 " + "schreef " * 120_000 + ":",
    "> " + "a" * 1_000_000,
    "Van: " + "x" * 1_000_000 + "\nAan: y\nOnderwerp: z",
    "Met vriendelijke groet, " + "Jan " * 250_000,
    ("Groet,\n" * 140_000),
    ("a\n" * 500_000),
])
def test_megabyte_inputs_are_linear(text: str) -> None:
    started = time.perf_counter()
    clean(text)
    assert time.perf_counter() - started < 5


def test_typical_mail_cleans_fast() -> None:
    text = ("Hallo,\n\nMijn pakket is nog niet binnen. " * 20 + "\n\nMet vriendelijke groet,\n"
            "Jan de Vries\n06-12345678\n\nOp di 4 mrt 2025 om 10:12 schreef Shop <s@shop.nl>:\n"
            + "> Uw bestelling is onderweg en wordt morgen bezorgd.\n" * 60)
    clean(text)
    runs = []
    for _ in range(30):
        started = time.perf_counter()
        clean(text)
        runs.append(time.perf_counter() - started)
    assert sorted(runs)[len(runs) // 2] < 0.005


_LINES = st.sampled_from([
    "", "> geciteerd", "Met vriendelijke groet,", "Jan de Vries", "-- ", "Sent from my iPhone",
    "Op di 4 mrt 2025 om 10:12 schreef Shop <s@shop.nl>:", "Van: Shop", "Aan: x", "Onderwerp: y",
    "-----Original Message-----", "_" * 32, "Het pakket is kapot.", "Thanks,", "P.S. nog iets",
    "\u200b", "\r", " \t", "On Tue, Mar 4, 2025 at 10:12 AM X <", "x@y.nl> wrote:",
])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=2000), st.lists(_LINES, max_size=40).map("\n".join)))
def test_clean_never_raises_and_loses_nothing(text: str) -> None:
    result = clean(text)
    for part in (result.body, result.quoted, result.signature):
        assert "\r" not in part and "\u200b" not in part
        assert "\n\n\n" not in part
    # Every line of the input ends up in exactly one of body, quoted or signature.
    kept = [line.strip() for part in (result.body, result.quoted, result.signature)
            for line in part.split("\n") if line.strip()]
    original = [line.strip() for line in normalise(text).split("\n") if line.strip()]
    assert sorted(kept) == sorted(original)
    if result.sign_off_name is not None:
        assert result.sign_off_name in result.signature


# ---------------------------------------------------------------- doctests


def test_doctests() -> None:
    result = doctest.testmod(clean_module)
    assert result.attempted > 0
    assert result.failed == 0
