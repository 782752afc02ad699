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

import ast
import difflib
import os
import pickle
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "DEBUG_ENV",
    "check_overrides",
    "format_user_error",
    "install_excepthook",
    "unknown_overrides",
    "user_error",
]

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
    if not (force or _under_monai_bundle()):
        return False
    if not getattr(sys.excepthook, "medssl", False):
        sys.excepthook = _hook(sys.excepthook)
        if not force:
            _refuse_unknown_overrides()
    return True


def _under_monai_bundle() -> bool:
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    return main is not None and main.name in ("monai.bundle.__main__", "monai.bundle")


def _refuse_unknown_overrides() -> None:
    """Under ``python -m monai.bundle``: :func:`check_overrides` of the command line when the package is first imported
    (the config's ``imports``, before any component is built). A refusal prints the one-paragraph error and exits with
    status 1 (``SystemExit``: MONAI's import wrapper would otherwise swallow the error and the import be retried);
    with ``MEDSSL_DEBUG=1`` the ``ValueError`` propagates."""
    try:
        check_overrides()
    except ValueError as err:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        sys.stderr.write("\n" + format_user_error(err) + "\n")
        sys.stderr.flush()
        raise SystemExit(1) from None


#: ``monai.bundle run`` arguments that are not config entries.
_RUN_ARGUMENTS = {
    "run_id", "init_id", "final_id", "meta_file", "config_file", "logging_file", "tracking", "args_file",
    "workflow_type", "workflow_name", "properties_path",
}  # fmt: skip


def _cli_overrides(argv: list[str]) -> dict[str, str]:
    """``{key: value}`` of the ``--key value`` / ``--key=value`` pairs after ``run`` in a ``monai.bundle`` command."""
    args = argv[argv.index("run") + 1 :] if "run" in argv else argv
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if token.startswith("--"):
            key, eq, value = token[2:].partition("=")
            if not eq and i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            out[key.replace("::", "#")] = value
        i += 1
    return out


def _has_path(config: Any, key: str) -> bool:
    node = config
    for part in key.split("#"):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def unknown_overrides(overrides: Iterable[str], config: dict) -> list[str]:
    """The override keys (``a#b#0`` paths) that name no entry of ``config`` (the merged config files); a key may add
    a new entry only under an existing dict one level up when it is a MONAI special key (``_disabled_``,
    ``_mode_``, ``_requires_``, ``_desc_``)."""
    unknown = []
    for key in overrides:
        if key in _RUN_ARGUMENTS or _has_path(config, key):
            continue
        parent, _, last = key.rpartition("#")
        if last.startswith("_") and last.endswith("_") and (not parent or _has_path(config, parent)):
            continue
        unknown.append(key)
    return unknown


def check_overrides(argv: list[str] | None = None) -> None:
    """Refuse a ``monai.bundle run`` command whose overrides name no config entry (a typo such as ``--epoch 3``
    would otherwise add an unused entry and silently change nothing): ``ValueError`` naming each unknown key and the
    closest existing ones. Nothing happens outside such a command or when the config files cannot be read here."""
    argv = list(sys.argv if argv is None else argv)
    overrides = _cli_overrides(argv)
    files = overrides.get("config_file")
    if not files:
        return
    try:
        from monai.bundle import ConfigParser

        names = ast.literal_eval(files) if files.strip().startswith(("[", "(")) else files
        config = ConfigParser.load_config_files(names)
    except Exception:  # noqa: BLE001 - MONAI reports unreadable config files itself
        return
    unknown = unknown_overrides(overrides, config)
    if unknown:
        flat = _flat_keys(config)
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, flat, n=3, cutoff=0.6)
            hints.append(f"--{key}" + (f" (did you mean {', '.join('--' + c for c in close)}?)" if close else ""))
        raise ValueError(
            f"unknown override(s) {'; '.join(hints)}: not a setting of {files}. Overrides must name an existing "
            "entry of the config (see the bundle's docs for the settings)."
        )


def _flat_keys(config: Any, prefix: str = "", depth: int = 0) -> list[str]:
    keys = []
    if isinstance(config, dict) and depth < 3:
        for k, v in config.items():
            path = f"{prefix}#{k}" if prefix else str(k)
            keys.append(path)
            keys.extend(_flat_keys(v, path, depth + 1))
    return keys
