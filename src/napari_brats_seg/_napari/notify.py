"""Notifications the user reads: a short first line, the details (paths, numbers) below it.

napari's toast shows one elided line until expanded, and a "Source:" line with the Python repr of the
notification manager for every notification dispatched from the GUI thread. :func:`notify` sends a
notification without that source line, whose first line is a short complete sentence and whose
details (a path, the full error) follow on the next lines, so that nothing is cut mid-path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from napari.utils.notifications import Notification, NotificationSeverity, notification_manager

Action = tuple[str, Callable[[Any], None]]


class PlainNotification(Notification):
    """A napari notification without a source (the toast then shows no "Source: <...>" line)."""

    @property
    def source(self) -> None:  # the emitter pushes itself as the source; the toast would show its repr
        return None


def message_of(exc: BaseException) -> str:
    """A readable message of an exception, never empty (``MemoryError()`` has no text)."""
    text = str(exc).strip()
    if text:
        return text
    if isinstance(exc, MemoryError):
        return "not enough memory (the file may claim a larger image than it holds)"
    return f"unexpected {type(exc).__name__}"


def notify(message: str, details: str | None = None, *, severity: str = "info",
           actions: Sequence[Action] = ()) -> PlainNotification:
    """Show ``message`` (a short sentence) with ``details`` on the lines below; returns the notification.

    Parameters
    ----------
    message
        One short, complete sentence.
    details
        Paths and longer explanations, shown when the toast is expanded.
    severity
        ``"info"``, ``"warning"`` or ``"error"``.
    actions
        ``(button text, callback)`` pairs shown as buttons.
    """
    text = message.strip() or "Something went wrong."
    if details:
        text = f"{text}\n{details.strip()}"
    note = PlainNotification(text, severity=NotificationSeverity(severity), actions=tuple(actions))
    notification_manager.dispatch(note)
    return note


def error(message: str, details: str | None = None) -> PlainNotification:
    """An error notification (see :func:`notify`)."""
    return notify(message, details, severity="error")


def info(message: str, details: str | None = None) -> PlainNotification:
    """An information notification (see :func:`notify`)."""
    return notify(message, details, severity="info")


def warning(message: str, details: str | None = None, actions: Sequence[Action] = ()) -> PlainNotification:
    """A warning notification (see :func:`notify`)."""
    return notify(message, details, severity="warning", actions=actions)
