"""pipeline.core.logs: one handler however often it is set up, warnings once, no bar frames
off a terminal, and each stage's log file handed to the at_stage_end callbacks."""
from __future__ import annotations

import importlib.machinery
import io
import logging
import sys
import types
import warnings

import pytest

from pipeline.core import logs

log = logging.getLogger("pipeline.test_logs")


@pytest.fixture(autouse=True)
def fresh_logging():
    """Undo what setup() does to the process, so no test sees another's handler (whose
    stream would be an earlier test's captured stderr) or its warnings hook."""
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == logs._HANDLER_NAME]:
        root.removeHandler(handler)
    logging.captureWarnings(False)


def _ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if h.get_name() == logs._HANDLER_NAME]


def test_setup_twice_adds_one_handler():
    logs.setup()
    logs.setup("debug")
    assert len(_ours()) == 1
    assert logging.getLogger("pipeline").level == logging.DEBUG
    assert logging.getLogger("mlflow").getEffectiveLevel() == logging.WARNING


def test_an_unknown_level_is_refused(monkeypatch):
    monkeypatch.setenv(logs.LEVEL_ENV, "chatty")
    with pytest.raises(ValueError, match="CHATTY"):
        logs.setup()


def test_a_warning_reaches_the_stage_log_once():
    seen = []
    logs.at_stage_end(lambda path: seen.append(path.read_text(encoding="utf-8")))
    # A DeprecationWarning: Python hides those raised in a library, pytest shows each.
    with logs.stage_log("warns"):
        for _ in range(2):
            warnings.warn("mind the gap", DeprecationWarning)
    [text] = seen
    # The line is shown with its source line; the second warning adds nothing.
    assert text.count("DeprecationWarning: mind the gap") == 1, text
    assert "WARNING py.warnings:" in text


def test_no_bar_frames_off_a_terminal(capsys):
    for _ in logs.progress(range(1000)):
        pass
    assert "\r" not in capsys.readouterr().err

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    # The same bar on a terminal is drawn: the test above is not passing by accident.
    terminal = Terminal()
    for _ in logs.progress(range(1000), file=terminal, mininterval=0):
        pass
    assert "\r" in terminal.getvalue()


def test_the_callback_gets_the_log_file_also_when_the_stage_fails():
    seen = []

    def keep(path):
        seen.append((path, path.read_text(encoding="utf-8")))

    logs.at_stage_end(keep)
    with pytest.raises(RuntimeError, match="stage broke"):
        with logs.stage_log("fails") as path:
            log.info("halfway there")
            raise RuntimeError("stage broke")
    [(given, text)] = seen
    assert given == path and path.name == "fails.log"  # kept as logs/fails.log
    assert "INFO    pipeline.test_logs: halfway there" in text
    assert not path.exists()
    # Run once: the next stage starts with no callbacks.
    with logs.stage_log("next"):
        pass
    assert len(seen) == 1


def test_a_failing_callback_neither_stops_the_others_nor_hides_the_stage_error(caplog):
    seen = []

    def broken(path):
        raise OSError("store unreachable")

    logs.at_stage_end(broken)
    logs.at_stage_end(seen.append)
    with pytest.raises(KeyError):
        with logs.stage_log("both"):
            raise KeyError("the stage's own error")
    assert len(seen) == 1
    assert "OSError: store unreachable" in caplog.text


def test_a_module_run_with_dash_m_logs_under_its_name(monkeypatch, caplog):
    """`python -m pipeline.stages.X` makes the stage module `__main__`; its lines say X."""
    main = types.ModuleType("__main__")
    main.__spec__ = importlib.machinery.ModuleSpec("pipeline.stages.demo", None)
    monkeypatch.setitem(sys.modules, "__main__", main)
    logs.setup()
    with caplog.at_level(logging.INFO):
        logging.getLogger("__main__").info("hello")
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("pipeline.stages.demo", "hello")]
