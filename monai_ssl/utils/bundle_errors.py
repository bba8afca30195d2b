"""Make a failed ``python -m monai.bundle run`` end with the one line a person can act on.

MONAI evaluates every ``"$..."`` config expression inside its own ``try``; an error raised there by monai-ssl
(``config key 'ckpt_path': file not found: ...``) surfaces mid-way in a long traceback whose last line is MONAI's
generic ``RuntimeError: Failed to evaluate ConfigExpression``. :func:`install_last_line_hook` adds a
``sys.excepthook`` that prints the usual traceback and then that root message again, as the last line.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType

__all__ = ["actionable_error", "install_last_line_hook"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _raised_in_package(exc: BaseException) -> bool:
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep)


def actionable_error(exc: BaseException) -> BaseException:
    """The exception of ``exc``'s cause chain that says what to fix: the outermost one raised by monai-ssl code
    (whose message names the key or file, the reason and the fix), else the innermost cause (the library error
    that wrappers repeat), else ``exc``."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    for e in chain:
        if _raised_in_package(e):
            return e
    return chain[-1]


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _hook(previous):
    def hook(etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        previous(etype, value, tb)
        if isinstance(value, Exception):
            root = actionable_error(value)
            if root is not value:
                sys.stderr.write(f"\nThe run stopped because of:\n{_one_line(root)}\n")
                sys.stderr.flush()

    hook.monai_ssl_last_line = True  # type: ignore[attr-defined]
    return hook


def install_last_line_hook(force: bool = False) -> bool:
    """Install the hook (once) when the program is ``python -m monai.bundle`` (or always with ``force``).

    Returns:
        Whether the hook is installed.
    """
    if getattr(sys.excepthook, "monai_ssl_last_line", False):
        return True
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if not force and getattr(spec, "name", None) not in ("monai.bundle.__main__", "monai.bundle"):
        return False
    sys.excepthook = _hook(sys.excepthook)
    return True
