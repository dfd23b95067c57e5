"""Progress callbacks and cooperative cancellation for long work (inference, training, cohorts).

Long functions of the core take ``on_progress(done, total, message)`` and ``cancel`` (a
:class:`CancelToken`), check the token between units of work (windows, slices, batches) and call
:meth:`CancelToken.raise_if_cancelled`, which raises :class:`~.errors.Cancelled`. The totals are
exact: they are computed before the work starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .errors import Cancelled

#: ``on_progress(done, total, message)``; ``total`` is known before the first call.
ProgressCallback = Callable[[int, int, str], None]


class CancelToken:
    """A thread-safe flag that a GUI or signal handler sets and workers poll."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`Cancelled` when cancellation was asked for."""
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def check(cancel: CancelToken | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` is set (None is never set)."""
    if cancel is not None:
        cancel.raise_if_cancelled()


def report(on_progress: ProgressCallback | None, done: int, total: int, message: str = "") -> None:
    """Call ``on_progress`` when one is given."""
    if on_progress is not None:
        on_progress(done, total, message)
