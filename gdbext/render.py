"""Reports: one result, two renderings (text, with optional colour, or JSON).

Text is kept as (kind, string) pieces; colour comes from pygments' terminal
formatter at render time, so the pure layers never see escape codes and
pygments is imported only when colour is actually wanted.
"""
import json

# piece kind -> pygments token name (resolved lazily)
_TOKENS = {
    "head": "Generic.Heading", "key": "Name.Attribute", "num": "Literal.Number",
    "sym": "Name.Function", "str": "Literal.String", "ok": "Generic.Inserted",
    "bad": "Generic.Error", "warn": "Generic.Error", "dim": "Comment",
    "flag": "Keyword", "plain": "Text",
}


class Text:
    def __init__(self):
        self.pieces = []

    def add(self, s, kind="plain") -> "Text":
        self.pieces.append((kind, str(s)))
        return self

    def line(self, *parts) -> "Text":
        """parts: strings (plain) or (kind, string) tuples."""
        for p in parts:
            if isinstance(p, tuple):
                self.add(p[1], p[0])
            else:
                self.add(p)
        return self.add("\n")

    def head(self, title: str) -> "Text":
        return self.add(title, "head").add("\n")

    def kv(self, key: str, value, kind="num", width=14, note=None) -> "Text":
        self.add(f"  {key:<{width}} ", "key").add(value, kind)
        if note:
            self.add("  ").add(note, "dim")
        return self.add("\n")

    def warn(self, msg: str) -> "Text":
        return self.add("  WARNING: " + msg, "warn").add("\n")

    def extend(self, other: "Text") -> "Text":
        self.pieces.extend(other.pieces)
        return self

    def plain(self) -> str:
        return "".join(s for _, s in self.pieces)

    def render(self, color: bool) -> str:
        if not color:
            return self.plain()
        try:
            import pygments
            from pygments.formatters import TerminalFormatter
            from pygments.token import string_to_tokentype
        except ImportError:
            return self.plain()
        tokens = [(string_to_tokentype(_TOKENS.get(k, "Text")), s) for k, s in self.pieces]
        return pygments.format(tokens, TerminalFormatter())


class Report:
    def __init__(self, data: dict, text: Text = None):
        self.data = data
        self.body = text or Text()

    def json(self) -> str:
        return json.dumps(self.data, separators=(",", ":"), sort_keys=False)

    def text(self, color: bool = False) -> str:
        return self.body.render(color)

