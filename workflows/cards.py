"""A board card's HTML, built in Python.

The board prints up to a few hundred cards; through the template engine each cost ~0.2 ms of variable
lookups and escaping, most of the page's time. Every value here is escaped on its way in, and the words
the cards repeat arrive translated once per page (`words`)."""

from __future__ import annotations

from html import escape as _escape
from typing import Any

from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext


def escape(value: object) -> str:
    """As django.utils.html.escape (the same five characters), without its lazy-string wrapper: this
    runs a dozen times per card."""
    return _escape(str(value))


def card_html(
    card: dict[str, Any],
    *,
    words: dict[str, str],
    lazy_moves: bool,
    notice: str = "",
    closed: bool = False,
    moves_html: str = "",
    aarrr_labels: dict[str, str] | None = None,
) -> SafeString:
    """One `<li class="rcard">`: key, priority, SLA state, title, meta line and the Move menu.

    With `lazy_moves` the menu holds a link and loads its form from the card endpoint when opened (the
    board); otherwise it holds `moves_html`, the rendered move form (a card reloaded after a conflict)."""
    r = card["requirement"]
    url = escape(card["url"])
    key = escape(r.key)
    w = {name: escape(word) for name, word in words.items()}
    drag = ""
    if card.get("drop_targets"):
        drag = (
            f' draggable="true" data-from="{escape(card["from_stage"])}"'
            f' data-targets="{escape(card["drop_targets"])}" data-move-url="{url}move/"'
        )
    state = card["state"]
    flag = ""
    if state == "overdue":
        flag = f' <span class="pill overdue">{w["overdue"]}</span>'
    elif state == "warn":
        flag = f' <span class="pill warn">{w["warn"]}</span>'
    head = f'<div class="notice conflict" role="alert">{escape(notice)}</div>' if notice else ""
    parts = [
        f'<li class="rcard {escape(state)}" id="card-{key}"{drag}>\n',
        f'{head}<a class="key" href="{url}">{key}</a> <span class="pill {escape(r.priority.lower())}" '
        f'title="{w["priority"]}">{escape(r.priority)}</span>{flag}\n',
        f'<a class="title" href="{url}">{escape(r.title)}</a>\n<div class="meta">',
    ]
    if notice or closed:
        where = gettext("closed") if closed else gettext(r.stage.name)
        parts.append(f'<span class="pill">{escape(where)}</span> ')
    parts.append(f'<span title="{w["assignee"]}">{escape(card["assignee"])}</span>')
    if r.aarrr_stage:
        aarrr = (
            aarrr_labels.get(r.aarrr_stage, r.aarrr_stage) if aarrr_labels else r.get_aarrr_stage_display()
        )
        parts.append(f' <span class="pill">{escape(aarrr)}</span>')
    parts.append(f' <span title="{w["since"]} {escape(card["since"])}">{escape(card["age_text"])}</span>')
    if r.loop_number > 1:
        loop = gettext("loop %(n)s") % {"n": r.loop_number}
        parts.append(f' <span class="pill" title="{w["loop"]}">{escape(loop)}</span>')
    parts += [f' <span class="pill label">{escape(label)}</span>' for label in card["labels"]]
    parts.append("</div>\n")
    if card["moves"] and not closed:
        if lazy_moves:
            parts.append(
                f'<details hx-get="{url}card/?from={escape(card["from_stage"])}" hx-trigger="toggle once" '
                f'hx-target="find div"><summary>{w["move"]}</summary>'
                f'<div><a href="{url}">{w["open_to_move"]}</a></div></details>'
            )
        else:
            parts.append(f"<details><summary>{w['move']}</summary>{moves_html}</details>")
    parts.append("\n</li>")
    return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped
