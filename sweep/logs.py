"""Log output of the commands: stderr, one line per event, no traceback for a Ctrl-C or SIGTERM."""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import warnings


def interrupted(error: BaseException | None) -> bool:
    """Whether a stop signal is behind ``error``: a Ctrl-C or SIGTERM that lands inside a database call reaches the log
    wrapped (Optuna's StorageInternalError around SQLAlchemy's error around the KeyboardInterrupt)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


class NoTracebackOnInterrupt(logging.Filter):
    """Optuna and SQLAlchemy log an interrupted call with its traceback; for Ctrl-C the message says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and interrupted(record.exc_info[1]):
            record.exc_info = None
            record.exc_text = None
        return True


class NoInterruptedTrialLines(logging.Filter):
    """Optuna's warnings, traceback included, about a trial that a stop signal cut short or that another worker took
    over while this one was paused: the command's own line says what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        import optuna

        if record.exc_info and (interrupted(record.exc_info[1])
                                or isinstance(record.exc_info[1], optuna.exceptions.UpdateFinishedTrialError)):
            return False
        # the second of Optuna's two lines about any failed trial: the first names the error, this adds nothing
        return not record.getMessage().endswith("failed with value None.")


def setup_logging(quiet: bool) -> None:
    import optuna

    enable_stack_dumps()
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optimize_log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, NoInterruptedTrialLines) for f in optimize_log.filters):
        optimize_log.addFilter(NoInterruptedTrialLines())
    # On the handlers, not a logger: SQLAlchemy logs through per-pool child loggers.
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, NoTracebackOnInterrupt) for f in handler.filters):
            handler.addFilter(NoTracebackOnInterrupt())


def enable_stack_dumps() -> None:
    """``kill -USR1 PID`` makes a running command print every thread's stack to stderr and go on.

    For a worker that seems stuck: the dump says where it waits (a lock, the database, a loader).
    """
    if not hasattr(signal, "SIGUSR1"):  # not on Windows
        return
    # The process's own stderr (fd 2): faulthandler writes to a file descriptor, and a replaced
    # sys.stderr (a test runner's, an embedding's) may have none.
    stream = sys.__stderr__
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    faulthandler.register(signal.SIGUSR1, file=stream, all_threads=True)
