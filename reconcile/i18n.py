"""One message catalog (gettext domain ``mailroll``) for the CLI, the web page and the workbook.

Messages are written in English in the code (``_("...")``, ``_`` being ``gettext``, or
``N_("...")`` where the text is only marked and translated later) and translated in
``reconcile/locale/zh_CN/LC_MESSAGES/mailroll.po``;
the compiled ``.mo`` beside it is committed, so an installed mailroll (also ``pip install -e .``)
has working translations without a build step. ``make messages`` (scripts/messages.py, Babel)
extracts new messages, updates the .po and compiles the .mo; a test checks the .mo is current
and every message translated.

Language: ``--lang``, else ``[ui] lang`` in the config, else the locale (``LC_ALL``,
``LC_MESSAGES``, ``LANG``: ``zh*`` is Chinese), else English. ``--json`` output is never
translated. The web page and the workbook are always Chinese (``zh``).
"""

from __future__ import annotations

import os
from functools import cache
from gettext import NullTranslations, translation
from pathlib import Path

DOMAIN = "mailroll"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGS = ("zh", "en")

_current: NullTranslations = NullTranslations()
_lang = "en"


@cache
def translations(lang: str) -> NullTranslations:
    if lang != "zh":
        return NullTranslations()
    return translation(DOMAIN, LOCALE_DIR, languages=["zh_CN"], fallback=True)


def locale_lang(environ=None) -> str | None:
    """'zh' or 'en' from the locale variables (the first one set wins, as in gettext), else None."""
    env = os.environ if environ is None else environ
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return None


def choose(option: str | None = None, configured: str | None = None, environ=None) -> str:
    """The language for people: --lang, else [ui] lang, else the locale, else English."""
    for lang in (option, configured, locale_lang(environ)):
        if lang in LANGS:
            return lang
    return "en"


def activate(lang: str) -> None:
    """Make ``_`` speak ``lang`` (for this process: one command, one language)."""
    global _current, _lang
    _lang = lang if lang in LANGS else "en"
    _current = translations(_lang)


def current() -> str:
    return _lang


def gettext(message: str) -> str:
    """The message in the current language (imported as ``_``, gettext's usual name)."""
    return _current.gettext(message)


_ = gettext


def ngettext(singular: str, plural: str, n: int) -> str:
    return _current.ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a message for the catalog; translated where it is shown."""
    return message


def zh(message: str) -> str:
    """The Chinese of a message, whatever the process's language (web page, workbook)."""
    return translations("zh").gettext(message)


def chinese() -> bool:
    return _lang == "zh"
