"""Keyfiles: V3 keystores made on first use (mode 0600), shared by the node and the CLI.

The password comes from ``JAMNET_KEY_PASSWORD``, or from the file ``JAMNET_KEY_PASSWORD_FILE``
names (a Docker secret); empty by default. Keys are never logged.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from node.errors import AuthError

NODE_KEY_ENV = "JAMNET_NODE_PRIVATE_KEY"
"""An operator's node key handed over by the environment (e.g. a secret) instead of a file."""


def key_password() -> str:
    """The keyfile password from the environment (a file wins over the variable)."""
    secret = os.environ.get("JAMNET_KEY_PASSWORD_FILE")
    if secret:
        try:
            return Path(secret).read_text().rstrip("\n")
        except OSError as exc:
            raise AuthError(f"JAMNET_KEY_PASSWORD_FILE {secret}: {exc.strerror}") from None
    return os.environ.get("JAMNET_KEY_PASSWORD", "")


def load_or_create_key(
    path: Path, password: str | None = None, private_key: str | None = None
) -> LocalAccount:
    """Load a V3 keystore, or create one (mode 0600) on first use: of a new key, or of
    ``private_key`` (an import; refused when ``path`` already holds a key)."""
    password = key_password() if password is None else password
    if path.exists() and private_key is not None:
        raise AuthError(f"{path} already holds a key: import into a new file")
    if path.exists():
        try:
            keystore = json.loads(path.read_text())
            key = Account.decrypt(keystore, password)
        except (ValueError, KeyError) as exc:
            raise AuthError(
                f"cannot open keyfile {path}: {exc} (set JAMNET_KEY_PASSWORD if it has a password)"
            ) from None
        account: LocalAccount = Account.from_key(key)
        return account
    if private_key is None:
        account = Account.create()
    else:
        try:
            account = Account.from_key(private_key.strip())
        except (ValueError, TypeError):
            raise AuthError("not a private key (0x + 64 hex digits)") from None
    keystore = Account.encrypt(account.key, password, kdf="pbkdf2", iterations=100_000)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a private name, then linked into place: a reader never sees half a
    # keystore, and of two first uses at once (the chain and the recorder) one key wins.
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(keystore, file)
            file.flush()
            os.fsync(file.fileno())
        os.link(partial, path)
    except FileExistsError:
        if private_key is not None:
            raise AuthError(f"{path} already holds a key: import into a new file") from None
        return load_or_create_key(path, password)
    finally:
        partial.unlink(missing_ok=True)
    return account


def node_key(keyfile: str, data_path: Path) -> LocalAccount:
    """The node's own key: ``JAMNET_NODE_PRIVATE_KEY`` if set, else the keystore ``keyfile``
    (default ``<data_dir>/chain/node-key.json``, made on first use). It signs the node's
    transactions and its contribution records."""
    from_env = os.environ.get(NODE_KEY_ENV, "").strip()
    if from_env:
        try:
            account: LocalAccount = Account.from_key(from_env)
        except (ValueError, TypeError):
            raise AuthError(f"{NODE_KEY_ENV} is not a private key (0x + 64 hex digits)") from None
        return account
    return load_or_create_key(Path(keyfile or data_path / "chain" / "node-key.json"))
