"""The pure text stage: bytes -> InboundMail -> CleanText, and the screening Verdict.

    mailbot.text.mime.parse(data)          raw RFC 5322 bytes to an InboundMail; never raises
    mailbot.text.clean.clean(text)         the customer's own words, quotes and signature apart
    mailbot.text.screen.screen(mail, ...)  may this mail get an automatic reply?
    mailbot.text.htmltext.html_to_text()   HTML bodies as readable text

No I/O and no module state: every function here is pure. The functions are deliberately
not re-exported here: ``clean`` and ``screen`` would shadow the submodules of those names.
"""
