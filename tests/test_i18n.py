"""The Simplified Chinese catalog: complete, compiled, and used.

The .po file is parsed with the standard library only, so these tests need neither polib nor msgfmt.
"""

from __future__ import annotations

import ast
import gettext
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from opsteam.exceptions import RequirementClosed

LC_MESSAGES = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"
PO_PATH = LC_MESSAGES / "django.po"
MO_PATH = LC_MESSAGES / "django.mo"

# What a string may carry that a translation must keep exactly: %(name)s / %(n)d, %s, {x}, `code`.
PLACEHOLDER = re.compile(r"%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[sdifr]|%[sdifr]|\{\w*\}|`[^`]*`")


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    line: int = 0

    @property
    def fuzzy(self) -> bool:
        return "fuzzy" in self.flags

    @property
    def is_header(self) -> bool:
        return self.msgid == "" and self.msgctxt is None

    def catalog_items(self) -> dict[object, str]:
        """The keys and values gettext.GNUTranslations would hold for this entry once compiled."""
        msgid = self.msgid if self.msgctxt is None else f"{self.msgctxt}\x04{self.msgid}"
        if self.msgid_plural is None:
            return {msgid: self.msgstr.get(0, "")}
        return {(msgid, n): text for n, text in self.msgstr.items()}


def parse_po(path: Path) -> list[Entry]:
    """A small PO parser: enough for what `makemessages` writes. Obsolete (#~) entries are skipped."""
    entries: list[Entry] = []
    current = Entry()
    target: tuple[str, int | None] | None = None
    seen_keyword = False

    def finish() -> None:
        nonlocal current, target, seen_keyword
        if seen_keyword:
            entries.append(current)
        current, target, seen_keyword = Entry(), None, False

    def append(text: str) -> None:
        assert target is not None, "string continuation without a keyword"
        name, index = target
        if name == "msgstr":
            assert index is not None
            current.msgstr[index] = current.msgstr.get(index, "") + text
        else:
            setattr(current, name, (getattr(current, name) or "") + text)

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            finish()
            continue
        if line.startswith("#~"):
            continue
        if line.startswith("#,"):
            if seen_keyword:
                finish()
            current.flags.update(flag.strip() for flag in line[2:].split(",") if flag.strip())
            continue
        if line.startswith("#"):
            if seen_keyword:
                finish()
            continue
        if line.startswith('"'):
            append(ast.literal_eval(line))
            continue
        keyword, _sep, rest = line.partition(" ")
        match = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
        if seen_keyword and (keyword == "msgctxt" or (keyword == "msgid" and current.msgctxt is None)):
            finish()
        if not seen_keyword:
            current.line = number
        seen_keyword = True
        if match:
            target = ("msgstr", int(match.group(1)))
            current.msgstr.setdefault(target[1], "")
        elif keyword == "msgstr":
            target = ("msgstr", 0)
            current.msgstr.setdefault(0, "")
        elif keyword in ("msgid", "msgid_plural", "msgctxt"):
            target = (keyword, None)
            setattr(current, keyword, "")
        else:
            raise AssertionError(f"{path}:{number}: unexpected line {raw!r}")
        append(ast.literal_eval(rest))
    finish()
    return entries


def header_fields(text: str) -> str:
    lines = [line for line in text.splitlines() if line and not line.startswith("POT-Creation-Date:")]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def po_entries() -> list[Entry]:
    assert PO_PATH.is_file(), f"{PO_PATH} is missing"
    return parse_po(PO_PATH)


def test_po_header_is_for_simplified_chinese(po_entries: list[Entry]) -> None:
    header = next(entry for entry in po_entries if entry.is_header)
    assert not header.fuzzy, "the header is marked fuzzy, so msgfmt would drop its charset"
    text = header.msgstr[0]
    assert "Language: zh_Hans\n" in text
    assert "Plural-Forms: nplurals=1; plural=0;\n" in text
    assert "charset=UTF-8" in text


def test_every_entry_is_translated_and_not_fuzzy(po_entries: list[Entry]) -> None:
    messages = [entry for entry in po_entries if not entry.is_header]
    assert messages, "the catalog has no messages"
    untranslated = [
        f"line {entry.line}: {entry.msgid!r}"
        for entry in messages
        if not entry.msgstr or any(not text.strip() for text in entry.msgstr.values())
    ]
    fuzzy = [f"line {entry.line}: {entry.msgid!r}" for entry in messages if entry.fuzzy]
    assert not (untranslated or fuzzy), (
        "untranslated entries:\n" + "\n".join(untranslated) + "\nfuzzy entries:\n" + "\n".join(fuzzy)
    )


def test_translations_keep_every_placeholder(po_entries: list[Entry]) -> None:
    wrong = []
    for entry in po_entries:
        if entry.is_header:
            continue
        for source in filter(None, (entry.msgid, entry.msgid_plural)):
            expected = sorted(set(PLACEHOLDER.findall(source)))
            for text in entry.msgstr.values():
                if sorted(set(PLACEHOLDER.findall(text))) != expected:
                    wrong.append(f"line {entry.line}: {source!r} -> {text!r}")
            break  # for zh the one form follows msgid; msgid_plural may use other placeholders
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)


def test_compiled_mo_matches_the_po(po_entries: list[Entry]) -> None:
    """Compare catalogs, not mtimes: a fresh clone gives both files the same time.
    Run `manage.py compilemessages -l zh_Hans --ignore=.venv` when this fails."""
    assert MO_PATH.is_file(), f"{MO_PATH} is missing: run compilemessages"
    expected: dict[object, str] = {}
    for entry in po_entries:
        # msgfmt leaves out fuzzy entries (except the header) and untranslated ones.
        if entry.fuzzy and not entry.is_header:
            continue
        if not entry.msgstr or any(not text for text in entry.msgstr.values()):
            continue
        expected.update(entry.catalog_items())
    with MO_PATH.open("rb") as handle:
        compiled = dict(gettext.GNUTranslations(handle)._catalog)
    # msgfmt drops POT-Creation-Date from the header; compare the other header fields.
    expected[""] = header_fields(expected.get("", ""))
    compiled[""] = header_fields(compiled.get("", ""))

    missing = sorted(repr(key) for key in expected.keys() - compiled.keys())
    extra = sorted(repr(key) for key in compiled.keys() - expected.keys())
    changed = sorted(repr(key) for key in expected.keys() & compiled.keys() if expected[key] != compiled[key])
    problems = [
        *(f"not in the .mo: {key}" for key in missing),
        *(f"only in the .mo: {key}" for key in extra),
        *(f"differs: {key}" for key in changed),
    ]
    assert not problems, "django.mo is stale; recompile it:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        ("Propose", "提出"),
        ("Instrument", "打点"),
        ("Optimize", "优化"),
        ("Lead", "负责人"),
        ("rework", "返工"),
        ("override", "强制流转"),
        ("AARRR stage", "漏斗阶段"),
        ("iteration loop", "迭代循环"),
        ("P0 incident", "P0 事故"),
        ("Your teams", "你的团队"),
    ],
)
def test_gettext_returns_chinese(english: str, chinese: str) -> None:
    with translation.override("zh-hans"):
        assert _(english) == chinese
    with translation.override("en"):
        assert _(english) == english


def test_formatted_messages_are_chinese() -> None:
    with translation.override("zh-hans"):
        assert _("Requirement %(key)s is closed.") % {"key": "GROW-42"} == "需求 GROW-42 已关闭。"
        assert _("At most %(n)d characters.") % {"n": 2000} == "最多 2000 个字符。"
        assert str(RequirementClosed("GROW-7").message) == "需求 GROW-7 已关闭。"
        assert str(RequirementClosed().message) == "该需求已关闭。"
