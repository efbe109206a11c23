"""The App server on 127.0.0.1 for a dataset, as ``make app`` starts it (the demo's launcher, its
saved workspace, legacy orchestrators on), in its own process group; used by the browser test and
by benchmarks/panels.py."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from fiftyone_inficond.deploy.export import EXPORT_DIR_ENV


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url, seconds=180):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"the App did not answer at {url}")


@contextlib.contextmanager
def app_server(name, exports, log_path, env=None):
    """Yields the URL of dataset ``name`` in the App; exports go to folder ``exports``, the server's
    output to ``log_path``; ``env``: more environment (``{"LOGNAME": "alice"}``: a colleague's App).
    The server and every process it started are ended afterwards."""
    port = _free_port()
    env = {**os.environ, "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS": "true", EXPORT_DIR_ENV: str(exports), **(env or {})}
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "fiftyone_inficond.demo", "app", "--name", name, "--port", str(port)],
            env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            _wait_for(f"http://127.0.0.1:{port}/")
            yield f"http://127.0.0.1:{port}/datasets/{name}"
        finally:
            os.killpg(server.pid, signal.SIGTERM)  # the server and the children it started
            server.wait(timeout=60)
