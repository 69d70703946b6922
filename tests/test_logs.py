"""Command logs: a Ctrl-C inside SQLAlchemy or Optuna is one line, other errors keep their traceback."""

import io
import logging

from sweep.logs import setup_logging


def _logged(error: BaseException) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        setup_logging(quiet=False)  # filters every handler on the root logger
        try:
            raise error
        except BaseException:
            # What SQLAlchemy's pool does when a reset is interrupted, through its per-pool logger.
            logging.getLogger("sqlalchemy.pool.impl.QueuePool").error("Exception during reset", exc_info=True)
    finally:
        root.removeHandler(handler)
    return stream.getvalue()


def test_interrupt_inside_a_library_is_logged_without_traceback():
    assert _logged(KeyboardInterrupt()) == "Exception during reset\n"


def test_other_errors_keep_their_traceback():
    assert "Traceback" in _logged(RuntimeError("boom"))
