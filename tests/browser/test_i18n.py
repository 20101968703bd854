"""Static checks of the dashboard's translations (no browser needed): English and Spanish
define the same keys, and every key the code names literally exists."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "src" / "relayq" / "dashboard" / "static"
KEY = re.compile(r"'([a-z][A-Za-z]*\.[A-Za-z_]+)':")
# t('messages.id') and column specs such as ['id', 'messages.id', ...]: quoted "section.name".
USED = re.compile(
    r"['`]((?:action|activity|activityAction|anomaly|auth|common|consumers|error|filters|header|"
    r"interval|lang|live|messages|pager|queue|queueType|queues|severity|sort|status|tab)"
    r"\.[A-Za-z_]+)['`]"
)


def dictionaries() -> dict[str, set[str]]:
    source = (STATIC / "i18n.js").read_text(encoding="utf-8")
    english = source[source.index("const en = {") : source.index("const es = {")]
    spanish = source[source.index("const es = {") : source.index("export const DICTIONARIES")]
    return {"en": set(KEY.findall(english)), "es": set(KEY.findall(spanish))}


def test_languages_define_the_same_keys() -> None:
    languages = dictionaries()
    assert languages["en"] - languages["es"] == set(), "missing in Spanish"
    assert languages["es"] - languages["en"] == set(), "missing in English"


def test_every_literal_key_is_translated() -> None:
    known = dictionaries()["en"]
    for path in [*STATIC.glob("*.js"), *STATIC.glob("pages/*.js")]:
        if path.name == "i18n.js":
            continue
        missing = set(USED.findall(path.read_text(encoding="utf-8"))) - known
        assert not missing, f"{path.name} uses untranslated keys {sorted(missing)}"
