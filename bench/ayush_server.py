"""A throwaway Ayush for benchmarks: a fresh data directory with one model imported as `m` and
a service account `bench` with an API key, and the server on a free loopback port."""
import http.client
import json
import os
import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ok(port, path, tries=600, pause=0.1):
    """Polls http://127.0.0.1:PORT/PATH until it answers 200; False if it never does."""
    for _ in range(tries):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(pause)
    return False


class AyushServer:
    def __init__(self, bin_dir, model, env=None):
        self.bin_dir = bin_dir
        ctl = os.path.join(bin_dir, "ayushctl")
        self.data = tempfile.mkdtemp(prefix="ayush-bench-")
        local = [ctl, "--local", "--data-dir", self.data]
        subprocess.run(local + ["models", "import", model, "--name", "m"], check=True, capture_output=True)
        # A service account: its key is made by the operator, as a script's would be.
        subprocess.run(local + ["user", "create", "bench", "--role", "user", "--service"],
                       check=True, capture_output=True)
        created = subprocess.run(local + ["-o", "json", "keys", "create", "--user", "bench"],
                                 check=True, capture_output=True)
        self.token = json.loads(created.stdout)["secret"]
        self.port = free_port()
        full_env = dict(os.environ, AYUSH_LISTEN=f"127.0.0.1:{self.port}", **(env or {}))
        self.process = subprocess.Popen([os.path.join(bin_dir, "ayush"), "serve", "--data-dir", self.data],
                                        env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        if not wait_until_ok(self.port, "/readyz", tries=300):
            raise RuntimeError("Ayush did not become ready")

    def signed_in_headers(self):
        """Headers of a person signed in to the web chat (its API takes sessions, not keys):
        creates the user `asker` and signs in."""
        local = [os.path.join(self.bin_dir, "ayushctl"), "--local", "--data-dir", self.data]
        subprocess.run(local + ["user", "create", "asker", "--role", "user", "--password-stdin"],
                       input=b"asker password 123\n", check=True, capture_output=True)
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("POST", "/api/auth/login", json.dumps({"username": "asker", "password": "asker password 123"}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"signing in answered {r.status}")
        cookies = [v.split(";", 1)[0] for k, v in r.getheaders() if k.lower() == "set-cookie"]
        return {"Cookie": "; ".join(cookies), "Content-Type": "application/json"}

    def stop(self):
        self.process.terminate()
        self.process.wait()
