"""Named points where a test can kill this process, to prove a crash there loses nothing.

Set ``INFICOND_CRASHPOINT`` to a point's name and the process SIGKILLs itself on reaching it:
no cleanup, no ``finally``, exactly like a power cut or an OOM kill. Unset, a point costs one
dictionary lookup.
"""

import os
import signal

VARIABLE = "INFICOND_CRASHPOINT"


def crashpoint(name):
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
