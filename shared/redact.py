"""Secrets never reach a file: the values of secret-looking environment variables are replaced.

A variable is secret-looking when an agent kind reads its key from it (shared/agent_kinds.py), when
`[agent] api_key_env` names it, or when its name contains KEY, TOKEN, SECRET or PASSWORD. Values
shorter than `MIN_LENGTH` are ignored: they would redact ordinary words, and are no real key.
Every file the daemon writes passes through `Redactor.data` (or `.text`); a change that adds a value
(`Redactor.added`: more of it in the change's files than the incumbent had) is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from shared.agent_kinds import KINDS

WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
MIN_LENGTH = 8


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in WORDS)


def known_names(api_key_env: str | None = None) -> set[str]:
    """Every agent kind's key variables, and the one `[agent] api_key_env` names."""
    names = {name for kind in KINDS.values() for name in kind.key_envs}
    if api_key_env:
        names.add(api_key_env)
    return names


class Redactor:
    """Replaces each secret value with `[redacted:NAME]`, in text and in encoded bytes."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        values: dict[str, str] = {}
        for name, value in sorted(secrets.items()):
            if len(value) >= MIN_LENGTH and value not in values:
                values[value] = name
        # Longest first: a value that contains another is replaced whole.
        self.pairs = sorted(values.items(), key=lambda item: -len(item[0]))
        self._bytes: list[tuple[bytes, bytes]] = []
        self._forms: list[tuple[str, list[bytes]]] = []
        for value, name in self.pairs:
            mark = f"[redacted:{name}]".encode()
            raw = value.encode(errors="surrogateescape")
            escaped = json.dumps(value)[1:-1].encode()  # as it reads inside a JSON string
            utf8 = json.dumps(value, ensure_ascii=False)[1:-1].encode(errors="surrogateescape")
            forms = list(dict.fromkeys((raw, utf8, escaped)))
            self._forms.append((name, forms))
            for form in forms:
                self._bytes.append((form, mark))

    @classmethod
    def from_env(cls, env: Mapping[str, str], names: Iterable[str] = ()) -> Redactor:
        """The secrets of `env`: the variables in `names` and every secret-looking one."""
        extra = set(names)
        return cls({k: v for k, v in env.items() if k in extra or looks_secret(k)})

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def text(self, text: str) -> str:
        for value, name in self.pairs:
            if value in text:
                text = text.replace(value, f"[redacted:{name}]")
        return text

    def data(self, data: bytes) -> bytes:
        for form, mark in self._bytes:
            if form in data:
                data = data.replace(form, mark)
        return data

    def found(self, text: str) -> list[str]:
        """The names of the secrets whose values occur in `text`."""
        return sorted({name for value, name in self.pairs if value in text})

    def added(self, before: bytes, after: bytes) -> list[str]:
        """The names of the secrets `after` holds more often than `before` (in any written form):
        a change adds them. One already there, kept or moved, is not added."""
        return sorted(
            {
                name
                for name, forms in self._forms
                if sum(after.count(f) for f in forms) > sum(before.count(f) for f in forms)
            }
        )


NONE = Redactor({})
