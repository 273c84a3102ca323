"""Rewriting the `[[arms]]` of program.toml (or the `[[variant]]` of bakeoff.toml) in place with
tomlkit: the surviving tables keep their text and comments, the winner's keys go into `[agent]`.

What belongs to a table: its header line, the comments directly above the header (no blank line
between them), and everything down to the next header. So an arm's comments move with it, and a
dropped arm takes its own with it; comments and blank lines elsewhere stay where they are.
"""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Comment, InlineTable, Item, Null, Table, Whitespace

from shared.errors import UserError
from shared.generations import Promotion

TRIVIA = (Comment, Whitespace, Null)


def rewrite(text: str, key: str, promotion: Promotion, *, before_agent: dict[str, Any]) -> str:
    """`text` with `[[key]]` replaced by `promotion.tables` (by id, in their order) and `[agent]`
    given `promotion.agent`'s keys that differ from `before_agent`."""
    doc = tomlkit.parse(text)
    item = doc.item(key) if key in doc else None
    if not isinstance(item, AoT):
        raise UserError(
            f"the {key} are not written as [[{key}]] tables (one block each): "
            "darwin --apply rewrites only those in place"
        )
    _reorder(doc, key, item, promotion.tables)
    _set_agent(doc, promotion.agent, before_agent)
    return doc.as_string()


# --------------------------------------------------------------------------- the tables


def _end(container: Container) -> Container:
    """The container whose end is what follows a table's last line (its last sub-table's)."""
    while True:
        content = [it for _, it in container.body if not isinstance(it, TRIVIA)]
        last = content[-1] if content else None
        if isinstance(last, Table):
            container = last.value
        elif isinstance(last, AoT) and last.body:
            container = last.body[-1].value
        else:
            return container


def _pop_comments(container: Container) -> str:
    """Remove the comments at the very end of `container` (those hugging the next header)."""
    body = container.body
    start = len(body)
    while start and isinstance(body[start - 1][1], Comment | Null):
        start -= 1
    text = "".join(it.as_string() for _, it in body[start:])
    del body[start:]
    return text


def _pop_tail(container: Container) -> list[tuple[Any, Item]]:
    """Remove what follows the first blank line at the end of `container` (the file's tail)."""
    body = container.body
    start = len(body)
    while start and isinstance(body[start - 1][1], TRIVIA):
        start -= 1
    for i in range(start, len(body)):
        item = body[i][1]
        if isinstance(item, Whitespace) and "\n" in item.as_string():
            tail = body[i:]
            del body[i:]
            return tail
    return []


def _lead_before(doc: Container, index: int) -> str:
    """Take the comments directly above the list's first header out of wherever they are."""
    body = doc.body
    before = body[index - 1][1] if index else None
    if isinstance(before, Table):
        return _pop_comments(_end(before.value))
    if isinstance(before, AoT) and before.body:
        return _pop_comments(_end(before.body[-1].value))
    start = index
    while start and isinstance(body[start - 1][1], Comment | Null):
        start -= 1
    text = "".join(it.as_string() for _, it in body[start:index])
    for i in range(start, index):
        body[i] = (None, Null())  # in place: the keys' positions must not shift
    return text


def _header_of(item: Item) -> Table | None:
    """The table whose header line starts `item` (None when it renders no header)."""
    if isinstance(item, AoT) and item.body:
        return item.body[0]
    if isinstance(item, Table) and not item.is_super_table():
        return item
    return None


def _reorder(doc: Container, key: str, aot: AoT, tables: list[dict[str, Any]]) -> None:
    body = doc.body
    index = next(i for i, (k, it) in enumerate(body) if k is not None and it is aot)
    old = list(aot.body)
    leads = [_lead_before(doc, index)]
    leads += [_pop_comments(_end(t.value)) for t in old[:-1]]
    for table, lead in zip(old, leads, strict=True):
        table.trivia.indent = lead + table.trivia.indent
    after = [it for _, it in body[index + 1 :] if not isinstance(it, TRIVIA)]
    tail: list[tuple[Any, Item]] = []
    following = _header_of(after[0]) if after else None
    if following is not None:
        following.trivia.indent = _pop_comments(_end(old[-1].value)) + following.trivia.indent
    elif not after:
        tail = _pop_tail(_end(old[-1].value))
    by_id = {str(t.get("id")): t for t in old}
    chosen = []
    for want in tables:
        table = by_id[str(want["id"])]
        for k, v in want.items():
            if k not in table or table[k] != v:
                _set_key(table.value, k, v)
        chosen.append(table)
    for n, table in enumerate(chosen):
        last = n == len(chosen) - 1
        if not last or after:
            _separate(table)
    if chosen:
        aot.body[:] = chosen
        list.__setitem__(aot, slice(None), [t for t in chosen])
        _end(chosen[-1].value).body.extend(tail)
    else:
        doc.remove(key)
        body.extend(tail)


def _separate(table: Table) -> None:
    """End the table with a newline, so the next header never lands on its last line (a file
    that ends without one, moved up)."""
    if not table.as_string().endswith("\n"):
        _end(table.value).body.append((None, Whitespace("\n")))


# --------------------------------------------------------------------------- [agent]


def _value(value: Any) -> Any:
    """A tomlkit value that renders inline (a dict as `{…}`, never as a sub-table)."""
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        for k, v in value.items():
            table[k] = _value(v)
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        for v in value:
            array.append(_value(v))
        return array
    return tomlkit.item(value)


def _set_key(container: Container, key: str, value: Any) -> None:
    """Set `key` keeping the line's comment (a sub-table stays one, its keys set in turn); a new
    key goes after the last key of the table, before its sub-tables and the comments that lead
    into the next header."""
    current = container.item(key) if key in container else None
    if isinstance(current, Table) and isinstance(value, dict):
        for old in [k for k in current if k not in value]:
            current.value.remove(old)
        for k, v in value.items():
            if k not in current or current[k] != v:
                _set_key(current.value, k, v)
        return
    if current is not None and not isinstance(current, Table | AoT):
        container[key] = _value(value)
        return
    if current is not None:
        container.remove(key)
    last = None
    for k, it in container.body:
        if k is not None and not isinstance(it, Table | AoT | Null):
            last = k
    if last is not None:
        container._insert_after(last, key, _value(value))
    elif any(not isinstance(it, TRIVIA) for _, it in container.body):
        container._insert_at(0, key, _value(value))
    else:
        container.append(key, _value(value))


def _set_agent(doc: Container, agent: dict[str, Any], before: dict[str, Any]) -> None:
    changed = {k: v for k, v in agent.items() if k not in before or before[k] != v}
    if not changed:
        return
    if "agent" not in doc:
        table = tomlkit.table()
        for k, v in changed.items():
            table.add(k, _value(v))
        doc.append("agent", table)
        return
    item = doc.item("agent")
    if isinstance(item, InlineTable):
        for k, v in changed.items():
            item[k] = _value(v)
    elif isinstance(item, Table):
        for k, v in changed.items():
            _set_key(item.value, k, v)
    else:
        raise UserError("[agent] is not a table: darwin --apply cannot promote the winner into it")
