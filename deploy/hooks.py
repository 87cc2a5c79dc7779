"""User code called on each detection, isolated from the audio and the model.

A hook is any callable ``f(detection)``. :func:`load_hook` finds one from
``module:function`` or ``path/to/file.py:function``; :class:`ShellHook` runs a shell command
with ``KWSPI_LABEL``, ``KWSPI_SCORE`` and ``KWSPI_TIME`` in its environment.

Each hook gets its own :class:`HookRunner`: a worker thread fed by a bounded queue. A hook
that raises (even with ``sys.exit()``) is logged with its traceback and the next detection is
delivered; a hook that hangs only fills its own queue, after which its detections are
dropped, counted and logged.
Detection, audio and the other hooks carry on either way. A thread shares the GIL with the
audio path; :mod:`kwspi.deploy.hookproc` runs a hook in a process of its own instead.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from kwspi.errors import KwspiError

from kwspi.deploy.decision import Detection

log = logging.getLogger(__name__)

#: Detections a busy hook may have waiting before new ones are dropped.
HOOK_QUEUE_SIZE = 8
#: Seconds between two log lines about dropped detections (each line carries the count).
DROP_LOG_INTERVAL_S = 10.0
#: Seconds a shell command may run before it is killed.
EXEC_TIMEOUT_S = 60.0

Hook = Callable[[Detection], object]


class HookError(KwspiError):
    """A hook that cannot be loaded: bad spec, module that does not import, missing function."""


def load_hook(spec: str) -> Hook:
    """The callable named by ``module:function`` or ``path/to/file.py:function``.

    A dotted module is imported from ``sys.path`` and the current directory; a path
    (ending in ``.py`` or containing a ``/``) is loaded as a file.

    Raises
    ------
    HookError
        One line naming the spec and what went wrong.
    """
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name.isidentifier():
        raise HookError(f"hook {spec!r}: expected module:function or path/to/file.py:function")
    module = _load_file(spec, Path(target)) if target.endswith(".py") or "/" in target else _import(spec, target)
    fn = getattr(module, name, None)
    if fn is None:
        raise HookError(f"hook {spec!r}: {target} has no attribute {name!r}")
    if not callable(fn):
        raise HookError(f"hook {spec!r}: {target}.{name} is not callable")
    return fn


def _import(spec: str, module: str):
    added = os.getcwd() not in sys.path
    if added:
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(module)
    except Exception as e:  # whatever the user's module raises while importing
        raise HookError(f"hook {spec!r}: cannot import {module} ({type(e).__name__}: {e})") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())


def _load_file(spec: str, path: Path):
    if not path.is_file():
        raise HookError(f"hook {spec!r}: no such file {path}")
    name = f"kwspi_hook_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # so dataclasses and pickling inside the hook work
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise HookError(f"hook {spec!r}: cannot load {path} ({type(e).__name__}: {e})") from None
    return module


class ManagedHook:
    """A hook kwspi made (not user code) that holds processes: :meth:`HookSet.close` calls
    its :meth:`close` once its runner has drained."""

    def close(self) -> None:
        raise NotImplementedError


class ShellHook(ManagedHook):
    """Runs ``command`` through ``/bin/sh`` for each detection.

    The command sees ``KWSPI_LABEL``, ``KWSPI_SCORE`` (4 decimals) and ``KWSPI_TIME``
    (stream seconds, 3 decimals) in its environment. A non-zero exit is logged. Each command
    runs in a process group of its own, so that what it started in the background ends with
    it: the group is ended when the command runs longer than ``timeout_s`` seconds, and by
    :meth:`close`, so no child outlives kwspi holding its stdout open.
    """

    def __init__(self, command: str, timeout_s: float = EXEC_TIMEOUT_S):
        self.command, self.timeout_s = command, timeout_s
        self.__name__ = f"exec {command!r}"
        self._groups: set[int] = set()  # process groups that may still have members
        self._lock = threading.Lock()

    def __call__(self, detection: Detection) -> None:
        env = {
            **os.environ,
            "KWSPI_LABEL": detection.label,
            "KWSPI_SCORE": f"{detection.score:.4f}",
            "KWSPI_TIME": f"{detection.time:.3f}",
        }
        proc = subprocess.Popen(self.command, shell=True, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        with self._lock:
            self._groups = {g for g in self._groups if _group_alive(g)} | {proc.pid}
        try:
            status = proc.wait(self.timeout_s)
        except subprocess.TimeoutExpired:
            end_group(proc.pid)
            proc.wait()
            log.warning("%s ran over %g s: ended, with what it started", self.__name__, self.timeout_s)
            return
        if status:
            log.warning("%s exited with status %d", self.__name__, status)

    def close(self) -> None:
        """End every command still running, and everything they started."""
        with self._lock:
            groups, self._groups = self._groups, set()
        for group in groups:
            end_group(group)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def end_group(group: int, grace_s: float = 1.0) -> None:
    """SIGTERM to a process group, then SIGKILL to what is left of it after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


class HookRunner:
    """One hook on its own worker thread, fed by a bounded queue.

    Parameters
    ----------
    hook:
        The callable.
    name:
        How logs name it.
    maxsize:
        Detections that may wait while the hook is busy; more are dropped (and counted).
    """

    def __init__(self, hook: Hook, name: str, maxsize: int = HOOK_QUEUE_SIZE):
        self.hook, self.name = hook, name
        self.delivered = self.failed = self.dropped = 0
        self._last_drop_log = -float("inf")
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"kwspi-hook {name}", daemon=True)
        self._thread.start()

    def submit(self, detection: Detection) -> bool:
        """Queue ``detection`` for the hook; False (and a log line) if it had to be dropped."""
        try:
            self._queue.put_nowait(detection)
            return True
        except queue.Full:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:  # a hung hook must not flood the journal
                self._last_drop_log = now
                log.warning("hook %s is busy: dropped %s at %.2f s (%d dropped so far)",
                            self.name, detection.label, detection.time, self.dropped)
            return False

    def begin_close(self) -> None:
        """Accept nothing new; the worker ends once the queue is empty."""
        self._closing.set()
        try:
            self._queue.put_nowait(None)  # wakes an idle worker; a full queue ends on its own
        except queue.Full:
            pass

    def close(self, timeout: float) -> int:
        """Let queued detections through for up to ``timeout`` seconds; returns how many were not."""
        self.begin_close()
        self._thread.join(max(0.0, timeout))
        if not self._thread.is_alive():
            return 0
        with self._queue.mutex:  # the worker may be taking items at this moment
            left = sum(1 for item in self._queue.queue if item is not None) + 1  # + the one running
        log.warning("hook %s still busy at exit: %d detection(s) not delivered", self.name, left)
        return left

    def _work(self) -> None:
        while True:
            detection = self._queue.get()
            if detection is None:
                return
            try:
                self.hook(detection)
                self.delivered += 1
            except HookError as e:  # from a hook process, which has printed its own traceback
                self.failed += 1
                log.error("hook %s failed on %s at %.2f s: %s", self.name, detection.label, detection.time, e)
            except BaseException:  # sys.exit() in a hook too: it must not end this worker
                self.failed += 1
                log.error("hook %s failed on %s at %.2f s", self.name, detection.label, detection.time, exc_info=True)
            if self._closing.is_set() and self._queue.empty():
                return


class HookSet:
    """All hooks of a run: each detection goes to every hook's runner."""

    def __init__(self, hooks: Iterable[tuple[str, Hook]], maxsize: int = HOOK_QUEUE_SIZE):
        self.runners = [HookRunner(fn, name, maxsize) for name, fn in hooks]

    def __call__(self, detection: Detection) -> None:
        for runner in self.runners:
            runner.submit(detection)

    @property
    def dropped(self) -> int:
        return sum(r.dropped for r in self.runners)

    def close(self, timeout: float = 2.0) -> int:
        """Give all hooks ``timeout`` seconds in total to finish, then end the shell commands
        still running; returns detections not delivered."""
        deadline = time.monotonic() + timeout
        for runner in self.runners:
            runner.begin_close()
        left = sum(r.close(deadline - time.monotonic()) for r in self.runners)
        for runner in self.runners:
            if isinstance(runner.hook, ManagedHook):
                runner.hook.close()
        return left
