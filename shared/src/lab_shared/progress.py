"""Progress bars: rich on a terminal, plain periodic lines when not a TTY (CI logs stay readable)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any


def _fmt(info: dict[str, Any]) -> str:
    parts = []
    for k, v in info.items():
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


class progress:  # noqa: N801 - used like a function: `for x in progress(items)`
    """A progress bar over `iterable` or a manual counter up to `total`.

    On a TTY it draws a rich bar; otherwise it prints `desc: n/total (pct) info` at most every `every`
    seconds and once at the end. Disabled with enabled=False, LAB_PROGRESS=0, or on non-zero DDP ranks.
    """

    def __init__(
        self,
        iterable: Iterable | None = None,
        total: int | None = None,
        desc: str = "",
        every: float = 10.0,
        enabled: bool = True,
    ):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.every = total, desc, every
        self.n = 0
        self.info: dict[str, Any] = {}
        self.enabled = (
            enabled and os.environ.get("LAB_PROGRESS", "1") != "0" and int(os.environ.get("RANK", "0")) == 0
        )
        self._start = self._last = time.monotonic()
        self._rich = None
        if self.enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(desc, total=total, info="")

    def update(self, n: int = 1, **info: Any) -> None:
        self.n += n
        self.info.update(info)
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.update(self._task, advance=n, info=_fmt(self.info))
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._print()

    def _print(self) -> None:
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        total = f"/{self.total}" if self.total else ""
        elapsed = time.monotonic() - self._start
        print(f"{self.desc}: {self.n}{total}{pct} {elapsed:.0f}s {_fmt(self.info)}".rstrip(), file=sys.stderr)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
        elif self.enabled and self.n:
            self._print()
        self.enabled = False

    def __iter__(self) -> Iterator:
        assert self.iterable is not None, "progress() was given no iterable"
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
