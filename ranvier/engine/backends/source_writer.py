"""Writing generated Python source line by line, for the kernels the backends compile."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

INDENT = "    "


class SourceWriter:
    """``w(line)`` appends a line at the current depth; ``with w.indent():`` nests the lines written
    inside; ``with w.block(header):`` writes ``header`` and nests what follows it."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, line: str = "") -> None:
        self.lines.append(INDENT * self.depth + line if line else "")

    @contextmanager
    def indent(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def block(self, header: str):
        self(header)
        return self.indent()


__all__ = ["SourceWriter"]
