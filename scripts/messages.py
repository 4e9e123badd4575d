"""The message catalog: extract, update, compile (Babel). `make messages` runs it.

    .venv/bin/python scripts/messages.py          # extract + update the .po + compile the .mo
    .venv/bin/python scripts/messages.py --check  # exit 1 if the .mo is stale or a message is untranslated

Messages come from ``_()``, ``N_()`` and ``ngettext()`` in reconcile/ (also ``_()`` in the mail
templates, reconcile/outgoing/templates/*.j2, and the web page's, reconcile/web/templates/*.html)
and from the help texts of every CLI command and option (their docstrings and ``help=``), which click shows translated.
The compiled .mo is committed, so an installed mailroll needs no build step.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from babel.messages.catalog import Catalog  # noqa: E402
from babel.messages.extract import extract_from_dir  # noqa: E402
from babel.messages.mofile import write_mo  # noqa: E402
from babel.messages.pofile import read_po, write_po  # noqa: E402

from reconcile.i18n import DOMAIN, LOCALE_DIR  # noqa: E402
from reconcile.outgoing.compose import TEMPLATE_OPTIONS  # noqa: E402

PO = LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / f"{DOMAIN}.po"
MO = PO.with_suffix(".mo")
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def help_texts() -> list[tuple[str, str]]:
    """(text, where) for every command's and option's help text."""
    import click

    from reconcile.cli.app import cli

    out = []

    def walk(command: click.Command, path: str) -> None:
        originals = command.__dict__.get("_mailroll_help", (command.help, command.short_help))
        for text in originals:
            if text:
                out.append((text, path))
        for p in command.params:
            text = p.__dict__.get("_mailroll_help", getattr(p, "help", None))
            if text:
                out.append((text, f"{path} {p.opts[-1] if p.opts else p.name}"))
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                walk(sub, f"{path} {name}")

    walk(cli, "mailroll")
    return out


def extracted() -> Catalog:
    catalog = Catalog(project="mailroll", domain=DOMAIN, fuzzy=False)
    methods = [
        ("**/outgoing/templates/**.j2", "jinja2.ext:babel_extract"),
        ("**/web/templates/**.html", "jinja2.ext:babel_extract"),
        ("**.py", "python"),
    ]
    jinja = {"extensions": "jinja2.ext.i18n", **{k: str(v) for k, v in TEMPLATE_OPTIONS.items()}}
    options = {
        "**/outgoing/templates/**.j2": jinja,
        "**/web/templates/**.html": {"extensions": "jinja2.ext.i18n"},
    }
    for filename, lineno, message, comments, _context in extract_from_dir(
        str(REPO / "reconcile"), method_map=methods, options_map=options, keywords=KEYWORDS
    ):
        catalog.add(message, locations=[(f"reconcile/{filename}", lineno)], auto_comments=comments)
    for text, where in help_texts():
        catalog.add(text, locations=[(f"help: {where}", 0)])
    return catalog


def current_po() -> Catalog:
    if PO.exists():
        with open(PO, "rb") as f:
            return read_po(f, locale="zh_CN", domain=DOMAIN)
    return Catalog(locale="zh_CN", domain=DOMAIN)


def compiled(po: Catalog) -> bytes:
    buf = io.BytesIO()
    write_mo(buf, po, use_fuzzy=False)
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    po = current_po()
    template = extracted()
    if args.check:
        problems = [f"not in the .po: {m.id!r}" for m in template if m.id and m.id not in po]
        problems += [f"untranslated: {m.id!r}" for m in po if m.id and not m.string and m.id in template]
        if not MO.exists() or MO.read_bytes() != compiled(po):
            problems.append(f"{MO.relative_to(REPO)} is not the compiled {PO.name}: run `make messages`")
        for p in problems:
            print(p)
        return 1 if problems else 0
    po.update(template, no_fuzzy_matching=True)
    PO.parent.mkdir(parents=True, exist_ok=True)
    with open(PO, "wb") as f:
        write_po(f, po, width=100, omit_header=False, sort_output=False, include_previous=False)
    with open(PO, "rb") as f:  # read back: what is compiled is what is on disk
        po = read_po(f, locale="zh_CN", domain=DOMAIN)
    MO.write_bytes(compiled(po))
    missing = [m.id for m in po if m.id and not m.string]
    print(f"{PO.relative_to(REPO)}: {len(po)} messages, {len(missing)} untranslated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
