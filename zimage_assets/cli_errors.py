"""What the `zimage` command prints when something fails: the real cause, in one or two lines.

Dagster stores a failed step as a chain of serialised errors: its own wrappers
(`DagsterExecutionStepExecutionError: Error occurred while executing op ...`) around the error
that really happened (an `OSError`, a driver's `OperationalError`, a `dg.Failure` description).
`run_failure_message` finds that cause in a finished run (and the description of a blocking
asset check that failed); `exception_message` does the same for an exception raised in the
command's own process. Both drop what only adds noise (class paths, SQLAlchemy's background
links, memory addresses) and never show a password from a database URL.
"""

from __future__ import annotations

import re
from typing import Any

INTERRUPTED = "interrupted; run it again to resume"
MAX_LINES = 2

# Wrappers Dagster puts around the error a user's code raised (their cause is the real one).
_WRAPPERS = re.compile(r"^(Dagster\w*Error|DagsterUserCode\w*|DagsterExecution\w*|DagsterResourceFunctionError)$")
_INTERRUPTED = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")
_URL_PASSWORD = re.compile(r"(\w+(?:\+\w+)?://[^:/@\s]+):[^@/\s]+@")
_NOISE = (  # (pattern, replacement)
    (re.compile(r"\s*\(Background on this error at: [^)]*\)"), ""),
    (re.compile(r"^\((?:psycopg2|sqlite3|pymysql|redis)[\w.]*\)\s*"), ""),
    (re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>"), "the object"),
)


def hide_password(text: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user:***@host/db`."""
    return _URL_PASSWORD.sub(r"\1:***@", text)


def run_failure_message(result: Any) -> str:
    """The cause of a failed run (an `ExecuteInProcessResult`), in at most two lines."""
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            if not check.passed and str(getattr(check.severity, "value", check.severity)) == "ERROR":
                return _lines(f"check {check.check_name} failed: {check.description or 'see its metadata'}")
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            return error_message(event.step_failure_data.error)
    for event in result.all_events:
        if event.event_type_value == "PIPELINE_FAILURE":
            data = event.event_specific_data
            if data is not None and getattr(data, "error", None) is not None:
                return error_message(data.error)
            return _lines(event.message or "see the run's logs")
    return "see the run's logs"


def is_interrupted(result: Any) -> bool:
    """True when the run stopped because the user pressed Ctrl-C."""
    for event in result.all_events:
        error = None
        if event.is_step_failure and event.step_failure_data:
            error = event.step_failure_data.error
        elif event.event_type_value == "PIPELINE_FAILURE" and event.event_specific_data is not None:
            error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            if error.cls_name in _INTERRUPTED:
                return True
            error = error.cause or error.context
    return False


def error_message(error: Any) -> str:
    """A serialised error chain -> the message of the innermost error that is not a Dagster wrapper."""
    while _WRAPPERS.match(error.cls_name or "") and (error.cause is not None or error.context is not None):
        error = error.cause if error.cause is not None else error.context
    return _lines(_without_class(error.message or "", error.cls_name or ""), error.cls_name or "")


def exception_message(exc: BaseException) -> str:
    """An exception raised in this process (not inside a run) -> one or two lines."""
    name = type(exc).__name__
    text = _lines(str(exc), name)
    if name == "OperationalError" and "connect" in text.lower():
        text = f"cannot reach the database: {text}"
    elif name == "NoSuchModuleError":
        text = f"not a database URL this project can use: {text}"
    return text


def _without_class(message: str, cls_name: str) -> str:
    """Dagster stores `module.Class: message`; keep the message."""
    first, _, rest = message.partition("\n")
    prefix = first.split(": ", 1)
    if len(prefix) == 2 and prefix[0].rsplit(".", 1)[-1] == cls_name:
        first = prefix[1]
    return (first + ("\n" + rest if rest else "")).strip()


def _lines(text: str, cls_name: str = "") -> str:
    for pattern, replacement in _NOISE:
        text = pattern.sub(replacement, text)
    lines = [line.strip() for line in hide_password(text).splitlines() if line.strip()]
    if not lines:
        return cls_name or "unknown error"
    shown = lines[:MAX_LINES]
    if cls_name and not _friendly(cls_name):  # a bare OSError / KeyError says little without its class
        shown[0] = f"{cls_name}: {shown[0]}"
    return "\n".join(shown)


def _friendly(cls_name: str) -> bool:
    """Errors whose message is written for people (ours and Dagster's `Failure`)."""
    return cls_name in ("Failure", "CliError", "StoreError", "GeneratorError", "CatalogFormatError", "CatalogSourceError", "ValueError",
                        "TermListError", "OperationalError", "NoSuchModuleError", "DagsterInvalidConfigError") or cls_name.startswith("Dagster")
