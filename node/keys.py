"""Keyfiles: V3 keystores made on first use (mode 0600), shared by the node and the CLI.

The password comes from ``JAMNET_KEY_PASSWORD``, or from the file ``JAMNET_KEY_PASSWORD_FILE``
names (a Docker secret); empty by default. Keys are never logged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from node.errors import AuthError


def key_password() -> str:
    """The keyfile password from the environment (a file wins over the variable)."""
    secret = os.environ.get("JAMNET_KEY_PASSWORD_FILE")
    if secret:
        try:
            return Path(secret).read_text().rstrip("\n")
        except OSError as exc:
            raise AuthError(f"JAMNET_KEY_PASSWORD_FILE {secret}: {exc.strerror}") from None
    return os.environ.get("JAMNET_KEY_PASSWORD", "")


def load_or_create_key(path: Path, password: str | None = None) -> LocalAccount:
    """Load a V3 keystore, or create one (mode 0600) on first use."""
    password = key_password() if password is None else password
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
    account = Account.create()
    keystore = Account.encrypt(account.key, password, kdf="pbkdf2", iterations=100_000)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(keystore, file)
    return account
