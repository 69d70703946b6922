"""Command logs: a Ctrl-C inside SQLAlchemy or Optuna is one line, other errors keep their traceback, SIGUSR1 dumps stacks."""

import io
import logging
import subprocess
import sys

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


def test_an_interrupt_wrapped_by_the_storage_is_logged_without_traceback():
    # a SIGTERM that lands inside a database call reaches the log as Optuna's StorageInternalError around it
    import optuna

    def wrapped():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from interrupt

    try:
        wrapped()
    except optuna.exceptions.StorageInternalError as error:
        assert _logged(error) == "Exception during reset\n"


def test_other_errors_keep_their_traceback():
    assert "Traceback" in _logged(RuntimeError("boom"))


def test_sigusr1_prints_every_threads_stack_and_the_command_goes_on():
    code = (
        "import os, signal, threading, time\n"
        "from sweep.logs import setup_logging\n"
        "setup_logging(quiet=True)\n"
        "threading.Thread(target=time.sleep, args=(5,), name='loader', daemon=True).start()\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "print('still running')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "still running"
    assert "Current thread" in result.stderr
    assert result.stderr.count("Thread 0x") >= 1  # the other thread's stack too
    assert 'File "<string>", line 5' in result.stderr
