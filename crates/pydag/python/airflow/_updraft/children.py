"""What the two forking servers (parse mode and zygote mode) share: waking on SIGCHLD
through a pipe their selector watches, and reaping the children that have ended."""

import os
import signal


class ChildWatch:
    """SIGCHLD turned into a readable pipe (`wake_r`), and the reaping of finished children."""

    def __init__(self):
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)

    def fds(self):
        """The watch's own descriptors, which a forked child closes."""
        return [self.wake_r, self.wake_w]

    def drain(self):
        """Empty the pipe after the selector said it is readable."""
        try:
            while os.read(self.wake_r, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    @staticmethod
    def reap(running):
        """Yield (request id, raw wait status) for each child in `running` (pid → request
        id) that has ended, removing it."""
        while running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            yield running.pop(pid, None), status
