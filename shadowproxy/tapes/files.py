"""The tapes' files: a thread that only writes, closes and expires them, so the event loop never waits on a disk.

:class:`~shadowproxy.tapes.writer.Recorder` formats the lines on the event loop and hands each slice's bytes over
in one job (:meth:`TapeFiles.write`); the thread appends them to their files, keeps at most :data:`OPEN_FILES`
open, and deletes tapes older than ``max_age`` and the oldest while the folder holds more than
``max_total_bytes`` when asked (:meth:`TapeFiles.sweep`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from queue import SimpleQueue
from typing import IO, TYPE_CHECKING

from shadowproxy.tapes.format import SUFFIX

if TYPE_CHECKING:
    from shadowproxy.config.tapes import TapesConfig

log = logging.getLogger(__name__)

OPEN_FILES = 64
"""Tapes kept open at once; the least recently written is closed (and opened again to append)."""

Writes = list[tuple[Path, bytes | None]]
"""Bytes to append to a file, or ``None``: close it (a tape that goes on in a new part, or is forgotten)."""
Job = Writes | frozenset[Path] | None
"""Writes; a sweep, sparing the tapes still being written; or the end."""


class TapeFiles:
    """The writing thread of one recorder: :meth:`start`, then jobs, then :meth:`stop`."""

    def __init__(self, folder: Path, config: TapesConfig) -> None:
        self.dir = folder
        self.config = config
        self._jobs: SimpleQueue[Job] = SimpleQueue()
        self._files: OrderedDict[Path, IO[bytes]] = OrderedDict()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="tape-writer", daemon=True)
        self._thread.start()

    def write(self, writes: Writes) -> None:
        """Queue one slice's writes: one wake-up of the thread for all of them."""
        self._jobs.put(writes)

    def sweep(self, writing: frozenset[Path]) -> None:
        self._jobs.put(writing)

    def stop(self) -> None:
        """Write what is queued, then close the files."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()
        for file in self._files.values():
            file.close()
        self._files.clear()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if isinstance(job, frozenset):
                self._sweep(job)
            else:
                self._write(job)

    def _write(self, writes: Writes) -> None:
        for path, data in writes:
            try:
                if data is None:
                    file = self._files.pop(path, None)
                    if file is not None:
                        file.close()
                    continue
                file = self._file(path)
                view = memoryview(data)
                while view:  # an unbuffered file's write may take part of it
                    view = view[file.write(view) :]
            except OSError as exc:
                log.warning("could not write the tape %s: %s", path, exc)

    def _file(self, path: Path) -> IO[bytes]:
        files = self._files
        file = files.get(path)
        if file is None:
            file = files[path] = path.open("ab", buffering=0)
            if len(files) > OPEN_FILES:
                _, oldest = files.popitem(last=False)
                oldest.close()
        else:
            files.move_to_end(path)
        return file

    def _sweep(self, writing: frozenset[Path]) -> None:
        """Delete tapes past ``max_age``, then the oldest while the folder is over ``max_total_bytes``."""
        config = self.config
        found = []
        try:
            paths = list(self.dir.glob(f"*{SUFFIX}"))
        except OSError as exc:
            log.warning("could not expire the tapes in %s: %s", self.dir, exc)
            return
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                continue
            found.append((stat.st_mtime, stat.st_size, path))
        found.sort()
        total = sum(size for _, size, _ in found)
        cutoff = time.time() - config.max_age if config.max_age else None
        for mtime, size, path in found:
            old = cutoff is not None and mtime < cutoff
            over = config.max_total_bytes and total > config.max_total_bytes
            if not (old or over) or path in writing:
                continue
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not expire the tape %s: %s", path, exc)
                continue
            total -= size
