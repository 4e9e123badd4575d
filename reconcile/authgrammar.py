"""The grammar of ``Authentication-Results`` (RFC 8601) and ``Received-SPF`` (RFC 7208 9.1) values.

RFC 5322 comments, quoted strings and quoted pairs, read in one linear pass over the characters.
Whatever a sender can get a server to copy into its header (a HELO name, a quoted local part)
must not read as a result of its own, so the reading is stricter than the RFCs where a lenient
reading would let such text through:

* a quoted string inside a comment is one piece (a server that copies ``"a)b"@x`` into its
  comment does not close the comment at the ``)``);
* a comment directly followed by a word (``dmarc=pass(x)header.from=...``: a HELO name has no
  spaces, a comment stands in for them) makes the value unreadable;
* a property repeated in one result, or a key repeated in a Received-SPF, makes it unreadable
  (the last one would win, and the sender chose what comes last);
* a control character other than tab (a lone CR: ingest/mime/headers.py keeps it where the
  server did, inside the value; a reader that ends lines at it would see a second header);
* an unbalanced ``(`` or ``"``, a stray ``)``, or a value longer than ``MAX_VALUE_CHARS`` (cut
  off on the way in) make it unreadable.
"""

from __future__ import annotations

from ingest.mime.headers import AUTH_RESULT_CHARS

MAX_VALUE_CHARS = AUTH_RESULT_CHARS  # ingest keeps one more character of a longer header
# ingest used to cut each header at 2,000 characters without a sign: a value of exactly that
# length, recorded then, may have lost its end (`mailroll reprocess` reads the message again)
LEGACY_CUT_CHARS = 2000
_SPACE = " \t\r\n"
_STOP = _SPACE + '()";='

Token = tuple[str, str, bool]  # (kind, text, after_space): 'atom', 'quoted', ';', '='


class Unreadable(ValueError):
    """The header does not follow the grammar; the message says where."""


def _skip_comment(value: str, i: int) -> int:
    """The index after the (nested) comment opening at ``i``; a quoted string in it is one piece."""
    depth, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            i = _quoted(value, i)[1]
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise Unreadable("a comment is not closed")


def _quoted(value: str, i: int) -> tuple[str, int]:
    """The quoted string opening at ``i`` (quoted pairs undone) and the index after it."""
    out: list[str] = []
    i, n = i + 1, len(value)
    while i < n:
        ch = value[i]
        if ch == "\\" and i + 1 < n:
            out.append(value[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise Unreadable("a quoted string is not closed")


def lex(value: str) -> list[Token]:
    """The tokens of a header value. Comments are space; one glued to the word after it is not."""
    if len(value) > MAX_VALUE_CHARS or len(value) == LEGACY_CUT_CHARS:
        raise Unreadable("it was cut off (too long)")
    if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in value):
        raise Unreadable("it holds a control character (a lone CR splits a header for some readers)")
    tokens: list[Token] = []
    i, n, spaced = 0, len(value), True
    while i < n:
        ch = value[i]
        if ch in _SPACE:
            i, spaced = i + 1, True
        elif ch == "(":
            i, spaced = _skip_comment(value, i), True
            if i < n and value[i] not in _SPACE + ";()":
                raise Unreadable("a comment is glued to the word after it")
        elif ch == ")":
            raise Unreadable("a ')' closes no comment")
        elif ch == '"':
            text, i = _quoted(value, i)
            tokens.append(("quoted", text, spaced))
            spaced = False
        elif ch in ";=":
            tokens.append((ch, ch, spaced))
            i, spaced = i + 1, False
        else:
            j = i
            while j < n and value[j] not in _STOP:
                j += 1
            tokens.append(("atom", value[i:j], spaced))
            i, spaced = j, False
    return tokens


def segments(tokens: list[Token]) -> list[list[Token]]:
    """The tokens between semicolons."""
    out: list[list[Token]] = [[]]
    for t in tokens:
        if t[0] == ";":
            out.append([])
        else:
            out[-1].append(t)
    return out


def pairs(seg: list[Token], start: int, where: str, into: dict[str, str] | None = None) -> dict[str, str]:
    """``key=value`` pairs from ``seg[start:]`` (added to ``into``); a quoted local part joins its
    ``@domain``. A key already there makes the value unreadable."""
    props: dict[str, str] = {} if into is None else into
    i = start
    while i < len(seg):
        if i + 2 >= len(seg):
            raise Unreadable(f"{where} has a property without a value")
        key, eq, val = seg[i], seg[i + 1], seg[i + 2]
        if key[0] != "atom" or eq[0] != "=" or val[0] not in ("atom", "quoted"):
            raise Unreadable(f"{where} has something that is not key=value")
        text, i = val[1], i + 3
        while i < len(seg) and not seg[i][2] and seg[i][0] in ("atom", "quoted", "="):
            text += seg[i][1]  # "local part"@domain, base64 "ab+/=": adjacent, no space between
            i += 1
        name = key[1].lower()
        if name in props:
            raise Unreadable(f"{where} has {name} twice")
        props[name] = text
    return props


def received_spf(value: str) -> tuple[str, dict[str, str]]:
    """(result, key-value pairs) of a Received-SPF value: ``result [comment] key=value; ...``.

    A repeated key (``envelope-from`` twice: the last one is the sender's, written after the
    HELO name it chose) makes it unreadable."""
    tokens = lex(value)
    if not tokens or tokens[0][0] != "atom":
        raise Unreadable("no result")
    props: dict[str, str] = {}
    rest = segments(tokens[1:])
    for n, seg in enumerate(rest, 1):
        if seg:
            pairs(seg, 0, f"its pair {n}", props)
    return tokens[0][1].lower(), props
