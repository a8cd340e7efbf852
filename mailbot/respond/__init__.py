"""Reply macros and the policy (issue 4; the file formats are in docs/macros.md).

    macros/*.yaml + snippets  --lint.load_set-->  MacroSet (frozen)  <--reload.Reloader (hot swap)
    Analysis --catalog.select--> macro --policy.evaluate--> action + rule --engine.try_render--> draft

``Responder`` (responder.py) is the one object the rest of mailbot uses.
"""

from mailbot.respond.responder import MacroStatus, Responder, build_responder

__all__ = ["MacroStatus", "Responder", "build_responder"]
