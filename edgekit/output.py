"""The output directory: everything is staged next to it and moved in whole.

A failed run leaves no half-written artifact or report in the output directory:
each artifact is built in a private staging directory on the same file system
and renamed into place only once it is complete and its manifest is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from edgekit.errors import OutputError


class OutputDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._created = False
        self._staging: Path | None = None

    def __enter__(self) -> "OutputDir":
        p = self.path
        if p.exists() and not p.is_dir():
            raise OutputError(f"output {p} exists and is not a directory")
        try:
            if not p.exists():
                p.mkdir(parents=True)
                self._created = True
            self._staging = Path(tempfile.mkdtemp(prefix=f".{p.name}.edgekit-", dir=p.parent))
        except OSError as err:
            raise OutputError(f"cannot write output directory {p}: {err.strerror or err}") from None
        if not os.access(p, os.W_OK):
            self._cleanup(failed=True)
            raise OutputError(f"output directory {p} is not writable")
        return self

    def stage(self, name: str) -> Path:
        """A fresh empty directory to build ``name`` in."""
        assert self._staging is not None
        d = self._staging / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d

    def commit(self, staged: Path, name: str | None = None) -> Path:
        """Move a finished staged directory (or file) into the output directory."""
        final = self.path / (name or staged.name)
        if final.is_dir():
            shutil.rmtree(final)
        elif final.exists():
            final.unlink()
        os.replace(staged, final)
        return final

    def write_text(self, name: str, text: str) -> Path:
        assert self._staging is not None
        tmp = self._staging / name
        tmp.write_text(text, encoding="utf-8")
        return self.commit(tmp, name)

    def _cleanup(self, failed: bool) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        if failed and self._created:
            try:
                self.path.rmdir()  # only if we made it and nothing landed in it
            except OSError:
                pass

    def __exit__(self, exc_type, exc, tb) -> None:
        self._cleanup(failed=exc_type is not None)
