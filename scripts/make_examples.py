"""Regenerate examples/mail/*.eml, the sample support mails of the embedded default inbox.

Run once by the developers; the generated files are committed (they are the demo data).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "examples" / "mail"
T0 = datetime(2026, 11, 2, 9, 14, tzinfo=timezone(timedelta(hours=1)))

MAILS = [
    dict(name="01-nl-refund-overdue", frm="Marieke Jansen <marieke.jansen@example.nl>",
         subject="Geld nog steeds niet terug ontvangen (bestelling 2026-004512)",
         body="""Goedemiddag,

Op 12 oktober heb ik de eettafelstoelen van bestelling 2026-004512 teruggestuurd, met het
retourlabel dat ik van jullie kreeg. Volgens de track & trace zijn ze op 15 oktober bij jullie
magazijn afgeleverd. Inmiddels zijn we drie weken verder en ik heb de 249,00 euro nog steeds niet
terug. Ik heb vorige week ook al gebeld en toen werd gezegd dat het binnen vijf werkdagen geregeld
zou zijn.

Kunnen jullie het bedrag nu eindelijk overmaken?

Met vriendelijke groet,
Marieke Jansen
06-12345678
"""),
    dict(name="02-en-defect", frm="Tom Baker <tom.baker@example.co.uk>",
         subject="Kettle stopped working after 2 weeks",
         body="""Hi there,

I bought the Breville steel kettle from you on 20 October (order #558213). Since yesterday it
won't switch on at all, the light doesn't come on and nothing happens. I've tried different
sockets. Could you send me a replacement or tell me how to get it repaired?

Thanks,
Tom
"""),
    dict(name="03-nl-abusive-delivery", frm="R. de Boer <rdeboer1977@example.nl>",
         subject="WAAR IS MIJN PAKKET",
         body="""Stelletje oplichters!! Al 2 weken wacht ik op mijn bestelling NL-88231 en niemand
neemt de telefoon op. Jullie zijn echt de grootste prutsers die ik ooit ben tegengekomen. Ik wil
dat pakket morgen hebben anders zet ik het op Facebook.

Verzonden vanaf mijn iPhone
"""),
    dict(name="04-en-out-of-office", frm="Laura Smith <laura.smith@example.org>",
         subject="Automatic reply: Your order has shipped",
         headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
         body="""I am out of the office until Monday 10 November with limited access to email.
For urgent matters please contact my colleague at office@example.com.
"""),
    dict(name="05-nl-newsletter", frm="Nieuwsbrief Leverancier <nieuws@leverancier.example>",
         subject="Nieuw in november: de wintercollectie",
         headers={"List-Unsubscribe": "<mailto:unsubscribe@leverancier.example>", "Precedence": "bulk"},
         body="""Bekijk nu onze nieuwe wintercollectie met 20% introductiekorting!
"""),
    dict(name="06-nl-legal-threat", frm="Henk Visser <h.visser@example.nl>",
         subject="Ingebrekestelling bestelling 7781234",
         body="""Geachte heer, mevrouw,

Op 1 september heb ik bij u een wasmachine besteld (bestelnummer 7781234) en betaald, 649 euro.
Ondanks drie telefonische toezeggingen is deze nog altijd niet geleverd. Hierbij stel ik u in
gebreke en geef ik u tot 20 november de gelegenheid om alsnog te leveren. Blijft levering uit, dan
ontbind ik de overeenkomst en schakel ik mijn rechtsbijstandsverzekering in.

Hoogachtend,
H. Visser
"""),
    dict(name="07-en-question", frm="Priya Natarajan <priya.n@example.in>",
         subject="Do you deliver to Belgium?",
         body="""Hello,

Do you ship to Belgium, and if so how long does delivery usually take? I'd like to order the
oak side table for my sister's birthday.

Kind regards,
Priya
"""),
    dict(name="08-bounce", frm="Mail Delivery System <MAILER-DAEMON@mx.example.net>",
         subject="Undelivered Mail Returned to Sender", bounce=True, body=""),
    dict(name="09-nl-distressed", frm="Fatima el Amrani <fatima.amrani@example.nl>",
         subject="Alstublieft help mij",
         body="""Beste klantenservice,

Ik weet echt niet meer wat ik moet doen. De elektrische rolstoel die ik bij u heb gekocht
(bestelling 2026-003871) rijdt niet meer, de accu laadt niet op. Mijn moeder zit nu al vier dagen
thuis en kan nergens heen. Ik heb al twee keer gebeld maar er wordt steeds gezegd dat iemand mij
terugbelt en dat gebeurt niet. Ik ben ten einde raad.

Groetjes,
Fatima
"""),
    dict(name="10-en-praise", frm="George Miller <g.miller@example.net>",
         subject="Thank you!",
         body="""Just wanted to say thanks to Sanne who sorted out my exchange so quickly last week.
The new boots fit perfectly. Great service!

George
"""),
    dict(name="11-en-reply-thread", frm="Anna Kowalski <anna.kowalski@example.pl>",
         subject="RE: Re: Your return request 66120",
         in_reply_to="<ret-66120-2@example.com>",
         body="""Hello again,

I still did not receive the return label you promised on Monday. Can you please send it today?
The jacket is the wrong colour, I ordered navy and got black.

Best regards
Anna Kowalski

On Mon, 3 Nov 2026 at 10:12, Example Shop <support@example.com> wrote:
> Dear Anna,
>
> We are sorry to hear the jacket is not what you expected. We will email you a return label
> within one working day.
>
> Kind regards,
> Sanne de Vries
"""),
    dict(name="12-nl-own-loop", frm="Example Shop <support@example.com>",
         subject="Re: Uw bericht", body="Dit is een kopie van ons eigen antwoord.\n"),
]


def build(spec: dict, index: int) -> bytes:
    when = T0 + timedelta(minutes=37 * index)
    if spec.get("bounce"):
        return _bounce(when)
    msg = EmailMessage()
    msg["From"] = spec["frm"]
    msg["To"] = "Example Shop <support@example.com>"
    msg["Subject"] = spec["subject"]
    msg["Date"] = format_datetime(when)
    domain = spec["frm"].split("@")[1].rstrip(">")
    msg["Message-ID"] = f"<{spec['name']}.{index}@{domain}>"
    if spec.get("in_reply_to"):
        msg["In-Reply-To"] = spec["in_reply_to"]
        msg["References"] = spec["in_reply_to"]
    for key, value in spec.get("headers", {}).items():
        msg[key] = value
    msg.set_content(spec["body"])
    return bytes(msg)


def _bounce(when: datetime) -> bytes:
    """A Postfix-style delivery status notification (multipart/report), written out by hand
    because that is what real bounces look like on the wire."""
    text = f"""From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: support@example.com
Subject: Undelivered Mail Returned to Sender
Date: {format_datetime(when)}
Message-ID: <20261102101500.ABC123@mx.example.net>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
 boundary="B0UNCE-1234"

--B0UNCE-1234
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<old.customer@example.org>: host mx.example.org said: 550 5.1.1 user unknown

--B0UNCE-1234
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; old.customer@example.org
Action: failed
Status: 5.1.1

--B0UNCE-1234--
"""
    return text.replace("\n", "\r\n").encode("ascii")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.eml"):
        old.unlink()
    for index, spec in enumerate(MAILS):
        (OUT / f"{spec['name']}.eml").write_bytes(build(spec, index))
    print(f"wrote {len(MAILS)} mails to {OUT}")


if __name__ == "__main__":
    main()
