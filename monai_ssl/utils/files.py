"""What kind of file a path is, for readers that must open regular files only."""

from __future__ import annotations

import stat

__all__ = ["file_kind"]

_KINDS = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def file_kind(mode: int) -> str:
    """What an ``os.stat`` mode is, in words: ``"a regular file"``, ``"a FIFO (named pipe)"``, ``"a socket"``...

    Readers must open regular files only: reading a FIFO or a device can block forever or never end.
    """
    return next((name for test, name in _KINDS if test(mode)), f"a special file (mode {stat.filemode(mode)})")
