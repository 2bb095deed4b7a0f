"""Study storage: resolving storage strings, heartbeats of running trials, Optuna's log level."""

from __future__ import annotations

import contextlib
import os
import threading

import optuna

__all__ = ["Heartbeat", "heartbeat_enabled", "optuna_verbosity", "resolve_storage"]


class Heartbeat:
    """Records heartbeats of running trials in a heartbeat-enabled RDB storage."""

    def __init__(self, storage, trial_ids):
        self.storage, self.trial_ids = storage, trial_ids
        self.interval = storage.get_heartbeat_interval()
        self.stop = threading.Event()
        self.thread = None

    def __enter__(self):
        self._beat()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _beat(self):
        for tid in self.trial_ids:
            with contextlib.suppress(Exception):
                self.storage.record_heartbeat(tid)

    def _run(self):
        while not self.stop.wait(self.interval):
            self._beat()

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def heartbeat_enabled(storage):
    return (isinstance(storage, optuna.storages.RDBStorage)
            and storage.get_heartbeat_interval() is not None)


@contextlib.contextmanager
def optuna_verbosity(verbose):
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(
        optuna.logging.INFO if verbose >= 2 else optuna.logging.WARNING
    )
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_JOURNAL_SUFFIXES = (".log", ".journal")


def _check_storage_folder(path, storage):
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        where = "" if os.path.isabs(folder) else f", relative to the working directory {os.getcwd()!r}"
        raise ValueError(
            f"The folder {folder!r} (storage={storage!r}{where}) does not exist; create it first "
            f"(os.makedirs({folder!r}, exist_ok=True)) or give a file in an existing folder."
        )


def resolve_storage(storage):
    """``("journal", path)`` or ``("rdb", url)`` for a storage string, or a ValueError that says
    what to pass instead (see the ``storage`` parameter of :class:`OptunaSearchCV`)."""
    if "://" not in storage:
        if storage.endswith(_JOURNAL_SUFFIXES):
            _check_storage_folder(storage, storage)
            return "journal", storage
        if storage.lower().endswith(_SQLITE_SUFFIXES):
            _check_storage_folder(storage, storage)
            return "rdb", "sqlite:///" + storage
        suggestion = os.path.splitext(storage)[0] + ".db"
        raise ValueError(
            f"storage={storage!r} is not a database URL (it has no '://') nor a file path ending in "
            f"{', '.join(_SQLITE_SUFFIXES)} (SQLite) or {', '.join(_JOURNAL_SUFFIXES)} (journal file). "
            f"Use a URL such as 'sqlite:///{suggestion}', a journal file path or an "
            "optuna.storages.JournalStorage / RDBStorage object, or None to keep the study in memory."
        )
    scheme, rest = storage.split("://", 1)
    if scheme == "sqlite" or scheme.startswith("sqlite+"):
        path = rest[1:] if rest.startswith("/") else ""
        path = path.split("?", 1)[0]
        if path and path != ":memory:" and not path.startswith("file:"):
            _check_storage_folder(path, storage)
    return "rdb", storage

