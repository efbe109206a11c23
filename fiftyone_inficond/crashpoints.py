"""Named points where a test can kill or pause this process, to prove a crash or a race there
loses nothing.

Set ``INFICOND_CRASHPOINT`` to a point's name and the process SIGKILLs itself on reaching it:
no cleanup, no ``finally``, exactly like a power cut or an OOM kill. Set ``INFICOND_PAUSEPOINT``
and it SIGSTOPs itself there instead, so that a test can act as a colleague's process in
between and then SIGCONT it. Unset, a point costs two dictionary lookups.
"""

import os
import signal

VARIABLE = "INFICOND_CRASHPOINT"
PAUSE_VARIABLE = "INFICOND_PAUSEPOINT"


def crashpoint(name):
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(PAUSE_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGSTOP)
