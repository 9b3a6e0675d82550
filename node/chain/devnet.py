"""The embedded devnet: anvil (npm ``@foundry-rs/anvil-linux-amd64``) on loopback.

anvil keys its ten test accounts off the well-known "test test … junk" mnemonic, so local
accounts are the same on every machine (and worthless anywhere else). State is kept in the
data dir (``--state``, written every few seconds and on exit), so a restarted node finds its
deployment again; when the state was lost (a kill before the first write) the caller
redeploys.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import typing
import urllib.error
import urllib.request
from pathlib import Path

from node.errors import ChainError

ROOT = Path(__file__).resolve().parents[2]
ANVIL_NPM = ROOT / "node_modules" / ".bin" / "anvil"
DEVNET_CHAIN_ID = 31337
DEVNET_ACCOUNTS = 10
STATE_INTERVAL_S = 5


def anvil_binary() -> Path:
    """The anvil executable: node_modules first, then PATH."""
    if ANVIL_NPM.exists():
        return ANVIL_NPM
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ChainError(
        "anvil is not installed: run `make install` (npm ci installs @foundry-rs/anvil-linux-amd64)"
    )


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc(
    url: str, method: str, params: list[object] | None = None, timeout_s: float = 5.0
) -> object:
    """One JSON-RPC call (no web3 needed; used for health checks and devnet controls)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    if not url.startswith(("http://", "https://")):
        raise ChainError(f"RPC URL {url!r} must be http(s)")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - our URL
            reply = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ChainError(f"RPC {url} did not answer {method}: {exc}") from None
    if "error" in reply:
        raise ChainError(f"RPC {method} failed: {reply['error']}")
    return reply.get("result")


class Devnet:
    """An anvil process; ``with Devnet(...) as chain:`` starts and stops it."""

    def __init__(
        self, state_file: Path | None = None, port: int = 0, block_time_s: float = 0
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_file = state_file
        self.block_time_s = block_time_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log: typing.IO[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> None:
        """Start anvil and wait until it answers."""
        args = [
            str(anvil_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(DEVNET_CHAIN_ID),
            "--accounts", str(DEVNET_ACCOUNTS),
            "--hardfork", "cancun",
        ]  # fmt: skip
        if self.block_time_s:  # a block every so often while idle, and at once for each tx
            args += ["--block-time", str(self.block_time_s), "--mixed-mining"]
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            args += ["--state", str(self.state_file), "--state-interval", str(STATE_INTERVAL_S)]
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        setpriv = shutil.which("setpriv")
        if setpriv:  # anvil gets SIGTERM if the node dies, even by SIGKILL (util-linux)
            args = [setpriv, "--pdeathsig", "TERM", "--", *args]
        self._process = subprocess.Popen(  # noqa: S603 - fixed arguments
            args, stdout=subprocess.DEVNULL, stderr=self._log
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")
                self._log.close()
                raise ChainError(
                    f"anvil exited at start (code {self._process.returncode}): {err[-500:]}"
                )
            with contextlib.suppress(ChainError):
                if rpc(self.url, "eth_chainId", timeout_s=1.0) is not None:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise ChainError(f"anvil did not answer on {self.url} within {timeout_s:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop anvil (it writes its state on the way out); idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Devnet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
