"""The template variables: the reformulated problem, amounts, the customer's own words."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from mailbot.models import CATEGORIES
from mailbot.respond import render, variables
from mailbot.respond.variables import (
    amount_value,
    customer_words,
    largest_amount,
    problem_sentence,
    template_variables,
)
from tests.respond.conftest import COMPANY, analysis, mail


@pytest.mark.parametrize("module", [variables, render], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(("language", "category", "signals", "entities", "expected"), [
    ("nl", "defect", (), {"product": "koffiezetapparaat", "order": "12345678"},
     "Ik begrijp dat uw koffiezetapparaat uit bestelling 12345678 kapot is of niet goed werkt."),
    ("en", "defect", (), {"product": "coffee machine"},
     "I understand that your coffee machine is broken or does not work properly."),
    ("nl", "refund", ("repeat_contact",), {"order": "4411"},
     "Ik begrijp dat u al eerder contact met ons heeft gehad en dat u uw geld voor uw bestelling 4411 "
     "nog steeds niet terug heeft."),
    ("en", "refund", (), {"amount": "€ 89,95"},
     "I understand that you would like the € 89,95 you paid for your order refunded."),
    ("nl", "delivery", (), {}, "Ik begrijp dat uw bestelling nog niet bij u is aangekomen."),
    ("en", "wrong_item", (), {"order": "77"},
     "I understand that you did not receive the right item for order 77."),
    ("nl", "cancellation", (), {"order": "77"}, "Ik begrijp dat u bestelling 77 wilt annuleren."),
    ("nl", "service", ("repeat_contact",), {},
     "Ik begrijp dat u al eerder contact met ons heeft gehad en dat u niet tevreden bent over hoe wij u "
     "hebben geholpen."),
    ("en", "praise", (), {}, "I understand that you are happy with our service."),
])
def test_the_problem_reformulated_in_the_first_person(language: str, category: str, signals: tuple[str, ...],
                                                      entities: dict[str, str], expected: str) -> None:
    sentence = problem_sentence(language, category, signals, product=entities.get("product"),
                                order=entities.get("order"), amount=entities.get("amount"))
    assert sentence == expected


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("language", ["nl", "en"])
def test_every_category_has_a_sentence_in_both_languages(language: str, category: str) -> None:
    sentence = problem_sentence(language, category, (), product=None, order=None, amount=None)
    assert sentence.startswith("Ik begrijp dat " if language == "nl" else "I understand that ")
    assert sentence.endswith(".") and "None" not in sentence


@pytest.mark.parametrize(("text", "value"), [
    ("€ 1.234.567,89", 1234567.89), ("1,234,567.89 USD", 1234567.89), ("EUR 12", 12.0), ("0,99", 0.99),
    ("€12.5", 12.5), ("150,-", 150.0), ("geen bedrag", None),
])
def test_amounts_as_written_in_dutch_and_english(text: str, value: float | None) -> None:
    assert amount_value(text) == value


def test_largest_amount_keeps_the_customers_spelling() -> None:
    assert largest_amount(["€ 9,99", "€ 1.299", "12 euro"]) == "€ 1.299"
    assert largest_amount([]) is None and largest_amount(["veel"]) is None


def test_customer_words_picks_the_sentence_about_their_order() -> None:
    body = ("Goedemiddag,\n\nIk heb al drie keer gebeld vandaag. De lamp uit bestelling 556677 doet het "
            "niet meer sinds gisteren. Wat gaan jullie doen?")
    key = "De lamp uit bestelling 556677 doet het niet meer sinds gisteren."
    assert customer_words(body, ["556677"]) == key
    assert customer_words(body, []) == "Ik heb al drie keer gebeld vandaag."
    long = "Dit is een hele lange zin " + "met heel veel woorden " * 30 + "."
    quoted = customer_words(long)
    assert quoted is not None and len(quoted) <= 201 and quoted.endswith("…")


def test_variables_for_a_mail_without_entities_leave_the_optional_ones_undefined() -> None:
    m, cleaned = mail("Vraag", "Hoi, ok.", sender="jan@example.nl")
    values = template_variables(m, cleaned, analysis("question"), language="nl", company=COMPANY,
                                agent="Piet")
    assert not variables.MAYBE_SET & set(values)
    assert values["salutation"] == "Beste klant,"
    assert values["orders"] == [] and values["reply_subject"] == "Re: Vraag"
    assert values["contact_person"] == "Sanne de Vries" and values["agent"] == "Piet"
    assert values["company"]["phone"] == "+31 20 123 4567"
    assert set(values) == variables.ALWAYS_SET
