"""The hot folder's memory of files already taken, kept in a small JSON file across restarts."""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger(__name__)

MAX_REMEMBERED = 20_000


class TakenFiles:
    """(name, size, mtime) of taken files; a file rewritten under the same name counts as new."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._items: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def load(self) -> None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            # A damaged state file must not stop the line; the worst case is taking files again.
            log.error("hot folder state %s unreadable (%s); starting with an empty memory", self.path, exc)
            return
        if not isinstance(raw, list):
            log.error("hot folder state %s is not a list; starting with an empty memory", self.path)
            return
        for item in raw[-MAX_REMEMBERED:]:
            if isinstance(item, list) and len(item) == 3 and isinstance(item[0], str):
                self._items[item[0]] = (int(item[1]), int(item[2]))

    def contains(self, name: str, size: int, mtime_ns: int) -> bool:
        return self._items.get(name) == (size, mtime_ns)

    def remember(self, name: str, size: int, mtime_ns: int) -> None:
        """Remember in memory only (when the folder cannot be written)."""
        self._items[name] = (size, mtime_ns)
        self._items.move_to_end(name)
        while len(self._items) > MAX_REMEMBERED:
            self._items.popitem(last=False)

    def add(self, name: str, size: int, mtime_ns: int) -> None:
        """Remember and persist at once (write to a temporary file, then rename over the old one)."""
        self.remember(name, size, mtime_ns)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps([[k, *v] for k, v in self._items.items()]), encoding="utf-8")
        os.replace(tmp, self.path)
