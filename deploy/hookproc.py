"""A Python hook in a process of its own, so that its CPU time never competes for the GIL.

A hook on a worker thread shares the interpreter with the audio path: one that computes
for a while (a CPU-bound hook) holds the GIL and slows MFCC and inference with it.
:class:`ProcessHook` runs the hook in a child Python instead (``python -m
kwspi.deploy.hookproc SPEC ACK_FD``) and is itself an ordinary hook for
:class:`~kwspi.deploy.hooks.HookRunner`: each call writes the detection as one JSON line to
the child's stdin and waits for its answer on a pipe of its own (``done``, or ``failed``
and the reason), so a busy child still fills its runner's queue and drops are counted as
before. The child's stdout and stderr are kwspi's. A child that dies is started again for
the next detection.

The cost: a Python process per hook (an interpreter that imports kwspi), state that lives
in the child (the hook cannot see kwspi's objects), and a detection that reaches the hook
as a copy, through a pipe.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback

from kwspi.deploy.decision import Detection
from kwspi.deploy.hooks import HookError, ManagedHook, end_group, load_hook

log = logging.getLogger(__name__)

#: Seconds a hook process may take to import its hook.
START_TIMEOUT_S = 60.0


class ProcessHook(ManagedHook):
    """Calls the hook named by ``spec`` (as :func:`~kwspi.deploy.hooks.load_hook` takes it)
    in a child process; raises :class:`HookError` at once if the child cannot load it."""

    def __init__(self, spec: str):
        self.spec = self.__name__ = spec
        self._child = self._ack = None
        self._start()

    def _start(self) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self._child = subprocess.Popen([sys.executable, "-m", "kwspi.deploy.hookproc", self.spec, str(write_fd)],
                                           stdin=subprocess.PIPE, pass_fds=(write_fd,), start_new_session=True,
                                           text=True)
        finally:
            os.close(write_fd)
        self._ack = os.fdopen(read_fd, "r")
        answer = self._ack.readline().strip()
        if answer != "ready":
            self.close()
            raise HookError(answer.removeprefix("failed ") or f"hook {self.spec!r}: its process ended while loading")

    def __call__(self, detection: Detection) -> None:
        if self._child is None:  # the last one ended
            self._start()
        child, ack = self._child, self._ack  # close() may run meanwhile, at exit
        try:
            child.stdin.write(json.dumps(detection.__dict__) + "\n")
            child.stdin.flush()
            answer = ack.readline().strip()
        except (BrokenPipeError, ValueError):  # ValueError: closed by close()
            answer = ""
        if answer == "done":
            return
        if answer:
            raise HookError(answer.removeprefix("failed "))
        status = child.wait()
        if self._child is not child:  # ended by close() at exit, which counts what was not delivered
            return
        self.close()
        raise HookError(f"hook process for {self.spec} ended with status {status}; it starts again for the next "
                        "detection")

    def close(self) -> None:
        """End the child: EOF on its stdin, then its process group if it lingers."""
        with_child, self._child = self._child, None
        if with_child is None:
            return
        try:
            with_child.stdin.close()
            with_child.wait(1.0)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            pass
        end_group(with_child.pid)
        with_child.wait()
        self._ack.close()


def _serve(spec: str, ack_fd: int) -> int:
    ack = os.fdopen(ack_fd, "w", buffering=1)
    try:
        hook = load_hook(spec)
    except HookError as e:
        ack.write(f"failed {e}\n")
        return 2
    try:
        ack.write("ready\n")
        for line in sys.stdin:
            detection = Detection(**json.loads(line))
            try:
                hook(detection)
                answer = "done"
            except BaseException as e:  # sys.exit() in the hook too: the parent logs it, the next call comes
                traceback.print_exc()
                answer = f"failed {type(e).__name__}: {' '.join(str(e).split())}"
            ack.write(answer + "\n")
    except BrokenPipeError:  # kwspi has gone: there is nobody to answer
        pass
    return 0


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1], int(sys.argv[2])))
