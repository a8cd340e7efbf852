"""The values a macro template sees (the table in docs/macros.md), built from one mail.

Everything that comes from the customer (name, subject, order numbers, their own words) is
only ever a *value* here; it never becomes template source, so ``{{ 7*7 }}`` in a subject is
printed as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mailbot.mail.compose import header_text, reply_subject
from mailbot.models import Analysis, CleanText, InboundMail

# Always set, whatever the mail.
ALWAYS_SET: frozenset[str] = frozenset({
    "salutation", "orders", "problem", "subject", "reply_subject", "company", "contact_person",
    "agent", "language", "category", "tone", "signals",
})
# Undefined when the mail (or the macro) does not provide them: use them inside
# ``{% if x is defined %}`` or with ``| default(...)``.
MAYBE_SET: frozenset[str] = frozenset({
    "customer_name", "order", "product", "amount", "date", "customer_words", "offer",
})
KNOWN: frozenset[str] = ALWAYS_SET | MAYBE_SET

# Which ``when.entities`` kind guarantees which variable.
ENTITY_VARIABLE: dict[str, str] = {
    "orders": "order", "products": "product", "amounts": "amount", "dates": "date",
    "customer_name": "customer_name",
}

_NUMBER = re.compile(r"\d(?:[\d.,' ]*\d)?")
_GREETING = re.compile(r"^(?:beste|hallo|hoi|hey|geachte|goedemorgen|goedemiddag|goedenavond|dear|hi|"
                       r"hello|good (?:morning|afternoon|evening)|l\.s\.|to whom)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MAX_WORDS_CHARS = 200
# Who signs and whom to ask for when the config names no contact person.
_TEAM = {"nl": "het klantenserviceteam", "en": "the customer service team"}


def template_variables(mail: InboundMail, cleaned: CleanText, analysis: Analysis, *, language: str,
                       company: Mapping[str, str], agent: str,
                       offer: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The template context for one mail; keys that are undefined for it are left out."""
    entities = analysis.entities
    orders = [str(o) for o in entities.get("orders") or []]
    products = [str(p) for p in entities.get("products") or []]
    dates = [str(d) for d in entities.get("dates") or []]
    name = entities.get("customer_name") or None
    order = orders[0] if orders else None
    product = products[0] if products else None
    amount = largest_amount(entities.get("amounts") or [])
    values: dict[str, Any] = {
        "salutation": salutation(name, language),
        "orders": orders,
        "problem": problem_sentence(language, analysis.category, analysis.signals,
                                    product=product, order=order, amount=amount),
        "subject": header_text(mail.subject),
        "reply_subject": reply_subject(mail.subject, language),
        "company": dict(company),
        "contact_person": company.get("contact_person") or _TEAM.get(language, _TEAM["en"]),
        "agent": agent or company.get("contact_person") or _TEAM.get(language, _TEAM["en"]),
        "language": language,
        "category": analysis.category,
        "tone": analysis.tone,
        "signals": list(analysis.signals),
        "customer_name": name,
        "order": order,
        "product": product,
        "amount": amount,
        "date": dates[0] if dates else None,
        "customer_words": customer_words(cleaned.body, [*orders, *products]),
        "offer": dict(offer) if offer is not None else None,
    }
    return {k: v for k, v in values.items() if v is not None}


def salutation(name: str | None, language: str) -> str:
    """
    >>> salutation("Anneke de Vries", "nl"), salutation(None, "en")
    ('Beste Anneke de Vries,', 'Dear customer,')
    """
    if language == "nl":
        return f"Beste {name}," if name else "Beste klant,"
    return f"Dear {name}," if name else "Dear customer,"


# ------------------------------------------------------------------ amounts


def amount_value(text: str) -> float | None:
    """The number in an amount as written, reading Dutch and English separators.

    >>> [amount_value(t) for t in ("89,95 euro", "€ 1.299,00", "$1,299.50", "€ 1.299", "12,-", "EUR")]
    [89.95, 1299.0, 1299.5, 1299.0, 12.0, None]
    """
    match = _NUMBER.search(text)
    if not match:
        return None
    digits = match.group().replace(" ", "").replace("'", "")
    if "," in digits and "." in digits:
        decimal = "," if digits.rfind(",") > digits.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        digits = digits.replace(thousands, "").replace(decimal, ".")
    elif "," in digits or "." in digits:
        sep = "," if "," in digits else "."
        parts = digits.split(sep)
        # "1.299" and "1,299,000" group thousands; "89,95" and "12.5" have decimals.
        if len(parts) > 2 or len(parts[-1]) == 3:
            digits = "".join(parts)
        else:
            digits = "".join(parts[:-1]) + "." + parts[-1]
    try:
        return float(digits)
    except ValueError:
        return None


def largest_amount(amounts: Sequence[Any]) -> str | None:
    """The largest amount, as the customer wrote it (unreadable amounts count as none).

    >>> largest_amount(["€ 12,50", "89,95 euro", "€ 5"])
    '89,95 euro'
    """
    best: tuple[float, str] | None = None
    for raw in amounts:
        value = amount_value(str(raw))
        if value is not None and (best is None or value > best[0]):
            best = (value, str(raw))
    return best[1] if best else None


# ------------------------------------------------------------------ the problem, reformulated


def problem_sentence(language: str, category: str, signals: Sequence[str], *, product: str | None,
                     order: str | None, amount: str | None) -> str:
    """The customer's problem in the first person, as an agent who listened would say it.

    >>> problem_sentence("nl", "defect", (), product="koffiezetapparaat", order="12345678", amount=None)
    'Ik begrijp dat uw koffiezetapparaat uit bestelling 12345678 kapot is of niet goed werkt.'
    >>> problem_sentence("en", "cancellation", ("repeat_contact",), product=None, order="555", amount=None)
    'I understand that you have contacted us before and that you would like to cancel order 555.'
    """
    nl = language == "nl"
    if nl:
        thing = (f"uw {product} uit bestelling {order}" if product and order else
                 f"uw {product}" if product else f"uw bestelling {order}" if order else "uw bestelling")
        about_order = f" voor bestelling {order}" if order else ""
    else:
        thing = (f"your {product} from order {order}" if product and order else
                 f"your {product}" if product else f"your order {order}" if order else "your order")
        about_order = f" for order {order}" if order else ""
    repeat = "repeat_contact" in signals
    if category == "refund" and repeat:
        return (f"Ik begrijp dat u al eerder contact met ons heeft gehad en dat u uw geld voor {thing} "
                "nog steeds niet terug heeft." if nl else
                f"I understand that you have contacted us before and still have not received your money "
                f"back for {thing}.")
    clause = _clause(nl, category, thing, about_order, product=product, order=order, amount=amount)
    if repeat:
        lead = ("Ik begrijp dat u al eerder contact met ons heeft gehad en dat " if nl else
                "I understand that you have contacted us before and that ")
    else:
        lead = "Ik begrijp dat " if nl else "I understand that "
    return f"{lead}{clause}."


def _clause(nl: bool, category: str, thing: str, about_order: str, *, product: str | None,
            order: str | None, amount: str | None) -> str:
    if category == "refund":
        if amount:
            return (f"u het bedrag van {amount} voor {thing} terug wilt ontvangen" if nl else
                    f"you would like the {amount} you paid for {thing} refunded")
        return f"u uw geld voor {thing} terug wilt" if nl else f"you would like your money back for {thing}"
    if category == "defect":
        return (f"{thing} kapot is of niet goed werkt" if nl else
                f"{thing} is broken or does not work properly")
    if category == "return":
        return (f"u {thing} wilt terugsturen of omruilen" if nl else
                f"you would like to return or exchange {thing}")
    if category == "delivery":
        return f"{thing} nog niet bij u is aangekomen" if nl else f"{thing} has not reached you yet"
    if category == "wrong_item":
        if product:
            return f"{thing} niet is wat u heeft besteld" if nl else f"{thing} is not what you ordered"
        return (f"u niet het juiste artikel heeft ontvangen{about_order}" if nl else
                f"you did not receive the right item{about_order}")
    if category == "cancellation":
        target = (f"bestelling {order}" if order else "uw bestelling") if nl else \
                 (f"order {order}" if order else "your order")
        return f"u {target} wilt annuleren" if nl else f"you would like to cancel {target}"
    if category == "billing":
        return (f"er iets niet klopt met uw factuur of betaling{about_order}" if nl else
                f"something is not right with your invoice or payment{about_order}")
    if category == "service":
        return ("u niet tevreden bent over hoe wij u hebben geholpen" if nl else
                "you are not happy with how we have helped you")
    if category == "question":
        if product or order:
            return f"u een vraag heeft over {thing}" if nl else f"you have a question about {thing}"
        return "u een vraag voor ons heeft" if nl else "you have a question for us"
    if category == "praise":
        target = thing if product else ("onze service" if nl else "our service")
        return f"u tevreden bent over {target}" if nl else f"you are happy with {target}"
    return (f"u ons een bericht heeft gestuurd{about_order}" if nl else
            f"you have sent us a message{about_order}")


# ------------------------------------------------------------------ the customer's own words


def customer_words(body: str, mentions: Sequence[str] = ()) -> str | None:
    """A short quote of the customer's key sentence: the first one that names an order or
    product, else the first real sentence; the greeting line is skipped.

    >>> customer_words("Beste,\\n\\nHallo. Mijn stoel 4411 is kapot. Graag snel antwoord.", ["4411"])
    'Mijn stoel 4411 is kapot.'
    >>> customer_words("Hoi,\\n\\nok") is None
    True
    """
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if lines and len(lines[0]) <= 60 and (_GREETING.match(lines[0]) or lines[0].endswith(",")):
        lines = lines[1:]
    text = " ".join(" ".join(lines).split())
    sentences = [s for s in _SENTENCE_END.split(text) if len(s.split()) >= 4]
    if not sentences:
        return None
    wanted = [m.lower() for m in mentions if m]
    key = next((s for s in sentences if any(m in s.lower() for m in wanted)), sentences[0])
    if len(key) > MAX_WORDS_CHARS:
        key = key[:MAX_WORDS_CHARS].rsplit(" ", 1)[0] + "…"
    return key
