"""The one place that starts background work for the widgets.

:func:`start_task` runs ``fn(on_progress=..., cancel=token)`` in napari's thread pool
(:func:`napari.qt.threading.create_worker`) and turns everything that happens there into Qt signals
delivered on the GUI thread:

- progress calls from the worker thread are queued to the GUI thread, where they advance a napari
  progress bar (shown in the viewer's activity dock) and :attr:`Task.progressed` (a report that
  reaches the GUI thread after the work's end was delivered is dropped);
- any exception that is not one of the project's own is wrapped (torch's shape errors and
  ``OutOfMemoryError`` are ``RuntimeError``\\ s, which must not cross threads bare);
- exactly one of :attr:`Task.succeeded`, :attr:`Task.failed` or :attr:`Task.cancelled` is emitted,
  then always :attr:`Task.done`, where widgets re-enable their inputs;
- GUI work that must follow the result (adding layers) can be split into steps, one per turn of the
  event loop (:meth:`Task.finish_in_steps`), so that the loop serves repaints and clicks between
  them; :attr:`Task.done` then comes after the last step.

Nothing in the worker thread touches Qt widgets or layers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from napari.qt.threading import create_worker
from napari.utils import progress
from qtpy.QtCore import QObject, QTimer, Signal, Slot

from ..core.errors import BratsSegError, Cancelled
from ..core.progress import CancelToken
from .notify import error, message_of

#: Tasks still running, kept alive until their ``done`` signal.
_RUNNING: set[Task] = set()


class Task(QObject):
    """A background call with progress, cancellation and GUI-thread signals.

    Signals
    -------
    progressed(done, total, message)
        On the GUI thread, after each progress report.
    succeeded(result)
        The function returned ``result``.
    failed(error)
        The function raised (a :class:`BratsSegError`; other exceptions arrive wrapped).
    cancelled()
        The function stopped because :meth:`cancel` was called.
    done()
        Always last: clean up here.
    """

    progressed = Signal(int, int, str)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    done = Signal()
    _raw_progress = Signal(int, int, str)

    def __init__(self, fn: Callable[..., Any], *, description: str = "working",
                 wrap: type[BratsSegError] = BratsSegError, notify_errors: bool = True,
                 show_progress: bool = True) -> None:
        super().__init__()
        self.token = CancelToken()
        self.description = description
        self.result: Any = None
        self.error: BaseException | None = None
        self.is_running = False
        self._fn, self._wrap, self._notify = fn, wrap, notify_errors
        self._show_progress = show_progress
        self._pbar: progress | None = None
        self._ended = False  # succeeded, failed or cancelled has been emitted
        self._raw_progress.connect(self._on_progress)
        self._worker: Any = None
        self._steps: Iterator[Any] | None = None  # GUI steps still to run (finish_in_steps)
        self._finished = False  # the worker has finished; done waits for the steps

    # -- worker thread ---------------------------------------------------------------------
    def _emit_progress(self, done: int, total: int, message: str = "") -> None:
        self._raw_progress.emit(int(done), int(total), str(message))

    def _run(self) -> Any:
        try:
            return self._fn(on_progress=self._emit_progress, cancel=self.token)
        except BratsSegError:
            raise
        except Exception as exc:
            text = str(exc).strip()
            raise self._wrap(f"{type(exc).__name__}: {text}" if text else message_of(exc)) from exc

    # -- GUI thread ------------------------------------------------------------------------
    def start(self) -> Task:
        """Start the work in napari's thread pool; returns self."""
        if self._show_progress:
            self._pbar = progress(total=0, desc=self.description)
        self.is_running = True
        _RUNNING.add(self)
        self._worker = create_worker(self._run, _ignore_errors=True, _start_thread=False)
        self._worker.returned.connect(self._on_returned)
        self._worker.errored.connect(self._on_errored)
        self._worker.finished.connect(self._on_finished)
        self._worker.start()
        return self

    def cancel(self) -> None:
        """Ask the work to stop at its next check of the cancel token."""
        self.token.cancel()

    def finish_in_steps(self, steps: Iterable[Any]) -> None:
        """Run ``steps`` on the GUI thread, one item per turn of the event loop, before :attr:`done`.

        Call it from a :attr:`succeeded` handler with a generator whose every ``next()`` does one
        short piece of GUI work (e.g. adds one layer). The task stays running (:attr:`is_running`)
        and :attr:`done` is emitted after the last step, so that whoever waits for ``done`` finds all
        of the work done. An exception in a step ends the steps and is shown as an error
        notification (:attr:`succeeded` was already emitted, so :attr:`failed` is not).
        """
        self._steps = iter(steps)
        QTimer.singleShot(0, self._next_step)

    @Slot()
    def _next_step(self) -> None:
        if self._steps is None:
            return
        try:
            next(self._steps)
        except StopIteration:
            self._steps = None
        except Exception as exc:  # noqa: BLE001 - a failed step is shown, never a traceback
            self._steps = None
            self.error = exc
            error(f"{self.description[:1].upper()}{self.description[1:]} did not finish.",
                  f"{type(exc).__name__}: {message_of(exc)}")
        if self._steps is not None:
            QTimer.singleShot(0, self._next_step)
        elif self._finished:
            self._finish()

    @Slot(int, int, str)
    def _on_progress(self, done: int, total: int, message: str) -> None:
        # Listeners first, and only while the work has not ended: updating the bar below can process
        # Qt events, so the queued next report or the end of the work may be handled inside it. Told
        # after the bar, a report could find the work ended and be dropped (the last "k/k" was lost so);
        # a report reaching the GUI after succeeded/failed/cancelled would overwrite what listeners
        # showed for the end, so that one is dropped.
        if not self._ended:
            self.progressed.emit(done, total, message)
        # A local reference: ``_on_finished`` may run inside the update and drop ``self._pbar``.
        pbar = self._pbar
        if pbar is not None:
            if total and pbar.total != total:
                pbar.total = total
            target = min(done, total) if total else done
            if message:
                pbar.set_description(f"{self.description}: {message}")
            if target != pbar.n:
                pbar.update(target - pbar.n)  # emits the bar's value event

    @Slot(object)
    def _on_returned(self, result: Any) -> None:
        self._ended = True
        self.result = result
        self.succeeded.emit(result)

    @Slot(object)
    def _on_errored(self, exc: BaseException) -> None:
        self._ended = True
        self.error = exc
        if isinstance(exc, Cancelled) or (self.token.cancelled and isinstance(exc, BratsSegError)
                                          and isinstance(exc.__cause__, Cancelled)):
            self.cancelled.emit()
            return
        if self._notify:
            error(f"{self.description[:1].upper()}{self.description[1:]} failed.", message_of(exc))
        self.failed.emit(exc)

    @Slot()
    def _on_finished(self) -> None:
        self._finished = True
        if self._steps is None:
            self._finish()

    def _finish(self) -> None:
        self.is_running = False
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        _RUNNING.discard(self)
        self.done.emit()


def run_steps(task: Task | None, steps: Iterable[Any]) -> None:
    """GUI ``steps`` one per event-loop turn before ``task``'s :attr:`~Task.done`
    (:meth:`Task.finish_in_steps`), or all at once when there is no task (a direct call, e.g. a test)."""
    if task is not None:
        task.finish_in_steps(steps)
    else:
        for _ in steps:
            pass


def start_task(fn: Callable[..., Any], *, description: str = "working",
               wrap: type[BratsSegError] = BratsSegError, notify_errors: bool = True,
               show_progress: bool = True, on_success: Callable[[Any], None] | None = None,
               on_done: Callable[[], None] | None = None) -> Task:
    """Start ``fn(on_progress=..., cancel=...)`` in the background and return its :class:`Task`.

    Parameters
    ----------
    fn
        The work; it must accept the keyword arguments ``on_progress`` and ``cancel``.
    description
        Shown in the progress bar and in error notifications.
    wrap
        Exception class that wraps errors which are not the project's own.
    notify_errors
        Show failures as napari error notifications.
    show_progress
        Show a napari progress bar.
    on_success, on_done
        Convenience connections to :attr:`Task.succeeded` and :attr:`Task.done`.
    """
    task = Task(fn, description=description, wrap=wrap, notify_errors=notify_errors,
                show_progress=show_progress)
    if on_success is not None:
        task.succeeded.connect(on_success)
    if on_done is not None:
        task.done.connect(on_done)
    return task.start()
