"""Compiling jamnet's contracts: py-solc-x driving npm's solcjs through a small wrapper.

No native solc is reachable offline, so ``contracts/tools/solc.js`` puts a ``solc``-like
command line in front of solcjs (the real compiler as WebAssembly). Sources are
``contracts/src/*.sol`` plus OpenZeppelin Contracts from ``node_modules``; the target is
``evmVersion: cancun`` with the optimizer on. Each contract's ABI, bytecode and the hash of
all sources go to ``contracts/build/<Name>.json``; nothing is recompiled while the sources
(and compiler settings) hash the same.

``python -m node.chain.build`` builds (or confirms the build is current).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.errors import ChainError

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
SOURCES = CONTRACTS / "src"
TEST_SOURCES = CONTRACTS / "test"
"""Contracts only the tests deploy (attackers, mocks); built alongside, never deployed."""
BUILD = CONTRACTS / "build"
WRAPPER = CONTRACTS / "tools" / "solc.js"
OPENZEPPELIN = ROOT / "node_modules" / "@openzeppelin" / "contracts"
SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 200},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}
CONTRACT_NAMES = (
    "JamToken",
    "JamTimelock",
    "JamGovernor",
    "NodeRegistry",
    "NodeRewards",
    "WorkRegistry",
    "RoyaltyPool",
    "Licensing",
)
"""Every contract a deployment has, in deployment order (node/chain/deploy.py follows it)."""


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    source_hash: str


def _sources() -> dict[str, str]:
    if not SOURCES.is_dir():
        raise ChainError(f"no contract sources in {SOURCES}")
    files = sorted(SOURCES.glob("*.sol")) + sorted(TEST_SOURCES.glob("*.sol"))
    return {str(p.relative_to(ROOT)): p.read_text() for p in files}


def source_hash() -> str:
    """Hash of our sources, the OpenZeppelin version and the compiler settings."""
    digest = hashlib.sha256()
    for name, text in _sources().items():
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    package = OPENZEPPELIN / "package.json"
    digest.update(package.read_bytes() if package.is_file() else b"no-openzeppelin")
    digest.update(json.dumps(SETTINGS, sort_keys=True).encode())
    return digest.hexdigest()


def _current(expected: str) -> bool:
    for name in CONTRACT_NAMES:
        path = BUILD / f"{name}.json"
        if not path.is_file():
            return False
        try:
            if json.loads(path.read_text()).get("source_hash") != expected:
                return False
        except (OSError, ValueError):
            return False
    return True


def build(force: bool = False) -> dict[str, Artifact]:
    """Compile if the sources changed; return the deployable artifacts. Raises ``ChainError``."""
    expected = source_hash()
    if force or not _current(expected):
        _compile(expected)
    return {name: load_artifact(name) for name in CONTRACT_NAMES}


def extra_artifact(name: str) -> Artifact:
    """A test-only contract from contracts/test (built with the rest)."""
    build()
    return load_artifact(name)


def _compile(expected: str) -> None:
    import solcx
    from solcx.exceptions import SolcError

    if shutil.which("node") is None:
        raise ChainError("Node.js is needed to compile contracts (solcjs); install node 20")
    if not OPENZEPPELIN.is_dir():
        raise ChainError("OpenZeppelin Contracts are missing: run `npm ci` (or `make install`)")
    standard = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in _sources().items()},
        "settings": SETTINGS,
    }
    try:
        output = solcx.compile_standard(
            standard, solc_binary=str(WRAPPER), allow_paths=[str(ROOT)], base_path=str(ROOT)
        )
    except SolcError as exc:
        raise ChainError(f"contracts failed to compile:\n{exc}") from None
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ChainError(
            "contracts failed to compile:\n" + "\n".join(e["formattedMessage"] for e in errors)
        )
    BUILD.mkdir(parents=True, exist_ok=True)
    for path, contracts in output["contracts"].items():
        if not path.startswith(("contracts/src/", "contracts/test/")):
            continue
        for name, compiled in contracts.items():
            artifact = {
                "name": name,
                "abi": compiled["abi"],
                "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
                "source_hash": expected,
                "compiler": "solcjs (npm solc)",
                "settings": SETTINGS,
            }
            target = BUILD / f"{name}.json"
            tmp = target.with_suffix(".tmp")
            tmp.write_text(json.dumps(artifact, indent=1, sort_keys=True))
            tmp.replace(target)


def load_artifact(name: str) -> Artifact:
    """A built contract (run ``build()`` first)."""
    path = BUILD / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ChainError(
            f"contract artifact {path} is missing or broken ({exc}); rebuild"
        ) from None
    return Artifact(data["name"], data["abi"], data["bytecode"], data["source_hash"])


def main() -> int:
    """Build, printing what happened."""
    before = _current(source_hash())
    try:
        artifacts = build()
    except ChainError as exc:
        print(f"jamnet: error: {exc}", file=sys.stderr)
        return 2
    state = "up to date" if before else "compiled"
    sizes = ", ".join(f"{a.name} {len(a.bytecode) // 2 - 1} B" for a in artifacts.values())
    print(f"contracts {state}: {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
