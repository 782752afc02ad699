"""User errors of the bundle commands as one paragraph instead of a wall of chained tracebacks.

MONAI's ``python -m monai.bundle run`` wraps an error raised while a config component is built or run in its own
``RuntimeError`` ("Failed to instantiate component ..."), so the message a user needs (``dataset_dir '/x.npz' does not
exist``) sits in the middle of 60-90 lines of traceback. When ``medssl_monai`` is imported by such a command (every
bundle config imports it), :func:`install_excepthook` replaces the interpreter's last-resort handler: an uncaught
exception whose root cause is a user error (:func:`user_error`) prints one paragraph (the problem, the step it came
from, what to do) as the last thing on stderr, and the process exits with status 1. Everything else (bugs, and every
error with ``MEDSSL_DEBUG=1``) keeps Python's full traceback.
"""

from __future__ import annotations

import os
import pickle
import sys
import zipfile
from pathlib import Path
from types import TracebackType

__all__ = ["DEBUG_ENV", "format_user_error", "install_excepthook", "user_error"]

#: Set to 1 to see full tracebacks of user errors.
DEBUG_ENV = "MEDSSL_DEBUG"
_PACKAGE = Path(__file__).resolve().parent
#: Exception types that describe bad input or settings when this package raises them (or, for paths, anything does).
_USER_TYPES = (ValueError, LookupError, TypeError, FloatingPointError, OSError)
#: Errors about a path or a file's content, user errors wherever they are raised (a missing folder, a truncated
#: checkpoint or archive).
_PATH_TYPES = (
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    EOFError,
)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it was raised from (``__cause__``, else ``__context__``), outermost first."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _raised_here(exc: BaseException) -> bool:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and Path(last.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)


def user_error(exc: BaseException) -> BaseException | None:
    """The error of ``exc``'s chain that tells the user what is wrong: the innermost ``ValueError``, ``KeyError``,
    ``OSError`` ... raised by this package's own checks (they name the case and the problem), else the innermost
    missing path or unreadable file raised anywhere. None when there is neither (a bug: keep the traceback)."""
    chain = _chain(exc)
    ours = [e for e in chain if isinstance(e, _USER_TYPES) and _raised_here(e)]
    if ours:
        return ours[-1]
    paths = [e for e in chain if isinstance(e, _PATH_TYPES)]
    return paths[-1] if paths else None


def format_user_error(exc: BaseException) -> str:
    """One paragraph: the root problem, the config step MONAI was building (when it says), and how to see more."""
    root = user_error(exc) or _chain(exc)[-1]
    message = str(root.args[0]) if isinstance(root, KeyError) and root.args else str(root)
    step = next(
        (
            " ".join(str(e).split())
            for e in _chain(exc)
            if str(e).startswith(("Failed to instantiate", "Failed to evaluate"))
        ),
        None,
    )
    if step:
        step = step.replace("__local_refs['", "@").replace("']", "").split(" set '_mode_=debug'")[0]
        step = step.split(" with keywords:")[0]
    lines = [f"medssl_monai: {type(root).__name__}: {message}"]
    if isinstance(root, (pickle.UnpicklingError, zipfile.BadZipFile, EOFError)):
        lines.append(
            "A file given to the command is truncated or not in the expected format (a checkpoint: --ckpt must be a "
            "state dict saved by this package, readable with torch.load(weights_only=True); an archive: a MedMNIST "
            ".npz)."
        )
    if step:
        lines.append(f"(while MONAI ran the config: {step.strip()})")
    lines.append(
        f"Fix the input or override named above and rerun the same command; {DEBUG_ENV}=1 shows the traceback."
    )
    return "\n".join(lines)


def _hook(previous):
    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if os.environ.get(DEBUG_ENV, "") in ("", "0") and user_error(exc) is not None:
            sys.stderr.write("\n" + format_user_error(exc) + "\n")
            sys.stderr.flush()
            return
        previous(kind, exc, tb)

    hook.medssl = True  # type: ignore[attr-defined]
    return hook


def install_excepthook(force: bool = False) -> bool:
    """Install the one-paragraph handler when this process is ``python -m monai.bundle`` (or ``force``); returns
    whether it is installed. Other programs that import the package keep their own ``sys.excepthook``."""
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    if not (force or (main is not None and main.name in ("monai.bundle.__main__", "monai.bundle"))):
        return False
    if not getattr(sys.excepthook, "medssl", False):
        sys.excepthook = _hook(sys.excepthook)
    return True
