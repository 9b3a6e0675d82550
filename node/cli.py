"""The ``jamnet`` command: run a node, or jam from the terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from client.http import add_node_flag
from node.config import NodeConfig, load_config
from node.errors import JamnetError
from node.logs import setup_logging


def _node_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    http: dict[str, Any] = {}
    for flag, key in (
        ("host", "host"),
        ("port", "port"),
        ("tls", "tls"),
        ("cert", "cert_file"),
        ("key", "key_file"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            http[key] = value
    if http:
        overrides["http"] = http
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "ice_server", None):
        overrides["media"] = {"ice_servers": args.ice_server}
    chain: dict[str, Any] = {}
    for flag, key in (
        ("chain", "mode"),
        ("rpc_url", "rpc_url"),
        ("deployment", "deployment_file"),
        ("node_keyfile", "keyfile"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            chain[key] = value
    if getattr(args, "rpc_url", None) and "mode" not in chain:
        chain["mode"] = "external"
    if chain:
        overrides["chain"] = chain
    if getattr(args, "ai", None) is not None:
        overrides["ai"] = {"enabled": args.ai}
    if getattr(args, "p2p", None) is not None:
        overrides["p2p"] = {"enabled": args.p2p}
    log: dict[str, Any] = {}
    if getattr(args, "log_level", None):
        log["level"] = args.log_level
    if getattr(args, "log_json", False):
        log["json"] = True
    if log:
        overrides["log"] = log
    return overrides


def _add_node_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (also JAMNET_CONFIG)")
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8080; 0 = any free)")
    parser.add_argument("--data-dir", help="data directory (default ./data)")
    parser.add_argument(
        "--tls",
        choices=["off", "self-signed", "files"],
        help="serve HTTPS (browsers need it for the mic off localhost)",
    )
    parser.add_argument("--cert", help="PEM certificate chain for --tls files")
    parser.add_argument("--key", help="PEM private key for --tls files")
    parser.add_argument(
        "--ice-server",
        action="append",
        help="STUN/TURN URL (repeatable; default: none, host candidates only)",
    )
    parser.add_argument(
        "--chain",
        choices=["devnet", "external", "off"],
        help="embedded anvil devnet (default), an external chain, or none",
    )
    parser.add_argument(
        "--rpc-url", help="JSON-RPC URL of an external chain (implies --chain external)"
    )
    parser.add_argument("--deployment", help="deployment file (chain id, addresses) for --rpc-url")
    parser.add_argument(
        "--keyfile",
        dest="node_keyfile",
        help="the node's own key for its transactions (default: <data dir>/chain/node-key.json)",
    )
    parser.add_argument(
        "--ai",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="load the AI models: compose, improvise, the bandmate (default: on)",
    )
    parser.add_argument(
        "--p2p",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="join the jamnet network over libp2p (default: on)",
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-json", action="store_true", help="JSON log lines")


def _run_node(args: argparse.Namespace) -> int:
    from node.app import serve

    config: NodeConfig = load_config(args.config, _node_overrides(args))
    setup_logging(config.log.level, config.log.json)
    asyncio.run(serve(config))
    return 0


def _run_jam(args: argparse.Namespace) -> int:
    from client.cli import jam

    setup_logging("warning")
    return asyncio.run(jam(args))


def _nice(text: str) -> int:
    """``--nice``: an integer from -20 to 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not -20 <= value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is outside -20..0 (0 leaves the priority)")
    return value


def _run_demo(args: argparse.Namespace) -> int:
    from node.spatial.demo import run

    config: NodeConfig = load_config(args.config, {})
    sofa = args.sofa or config.spatial.sofa_file
    run(
        Path(args.out),
        Path(args.png) if args.png else None,
        args.seconds,
        sofa,
        config.spatial.hrir_taps,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """All subcommands."""
    parser = argparse.ArgumentParser(
        prog="jamnet", description="Run a jamnet node, or jam from the terminal."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start a node on its embedded defaults and print its URL")
    _add_node_flags(up)
    up.set_defaults(func=_run_node)

    node = sub.add_parser("node", help="start a node with explicit options")
    _add_node_flags(node)
    node.set_defaults(func=_run_node)

    jam = sub.add_parser("jam", help="join a session from the terminal (aiortc client)")
    jam.add_argument("session", help="session id to join (or a name, with --create)")
    add_node_flag(jam)
    jam.add_argument("--create", action="store_true", help="create a session named SESSION")
    jam.add_argument(
        "--frame-ms",
        type=int,
        choices=(5, 10, 20),
        help="with --create: the session's frame size in ms (default: the node's)",
    )
    jam.add_argument(
        "--quiet", action="store_true", help="do not print the latency readout every second"
    )
    jam.add_argument(
        "--nice",
        type=_nice,
        default=-10,
        help="priority (nice, -20..0) of the thread that sends and plays the audio, so other "
        "programs do not delay it; needs root or `ulimit -e 30` (0: leave it)",
    )
    jam.add_argument("--input", default="mic", help='"mic" or an audio file (WAV/FLAC)')
    jam.add_argument("--output", default="speaker", help='"speaker" or a WAV file to write')
    jam.add_argument(
        "--keyfile",
        default=str(Path.home() / ".jamnet" / "key.json"),
        help="keystore made on first use (password: JAMNET_KEY_PASSWORD)",
    )
    jam.add_argument("--name", default="cli", help="display name")
    jam.add_argument("--invite", help="invite token for a private session")
    jam.add_argument("--x", type=float, default=0.0, help="stage x in metres (-10..10)")
    jam.add_argument("--y", type=float, default=0.0, help="stage y in metres (-10..10)")
    jam.add_argument(
        "--yaw", type=float, default=0.0, help="which way you face, degrees clockwise from +y"
    )
    jam.add_argument(
        "--binaural",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="HRTF binaural mix for headphones (--no-binaural: stereo panning)",
    )
    jam.add_argument(
        "--room",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hear the session's room, if it has one",
    )
    jam.add_argument("--click", action="store_true", help="hear the metronome")
    jam.add_argument("--monitor", action="store_true", help="hear yourself")
    jam.add_argument("--loop", action="store_true", help="loop the input file")
    jam.add_argument("--duration", type=float, help="leave after this many seconds")
    jam.add_argument(
        "--insecure", action="store_true", help="accept a self-signed node certificate"
    )
    jam.set_defaults(func=_run_jam)

    from client.ai_cli import add_commands as add_ai_commands
    from client.chain_cli import add_commands

    add_commands(sub)
    add_ai_commands(sub)
    from client.recordings_cli import add_commands as add_recording_commands

    add_recording_commands(sub)

    sub.add_parser(
        "train", help="preprocess the corpus on Spark, train and ship models (see --help)"
    )
    sub.add_parser("infra", help="node image and Swarm stack: build, up, down, status (see --help)")
    demo = sub.add_parser("demo", help="hear and see what jamnet does")
    demos = demo.add_subparsers(dest="demo", required=True)
    spatial = demos.add_parser(
        "spatial", help="render a binaural scene to a WAV and plot the HRTF set's ITD/ILD"
    )
    spatial.add_argument("out", help="output WAV (48 kHz stereo; listen on headphones)")
    spatial.add_argument("--png", help="plot file (default: OUT with .png)")
    spatial.add_argument("--seconds", type=float, default=8.0, help="scene length (1-120)")
    spatial.add_argument("--sofa", help="HRTF set (default: spatial.sofa_file from config)")
    spatial.add_argument("--config", help="TOML config file")
    spatial.set_defaults(func=_run_demo)
    return parser


def _run_train(argv: list[str]) -> int:
    from training.cli import main as train_main
    from training.data import DataError

    try:
        return train_main(argv)
    except DataError as exc:
        print(f"jamnet train: error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jamnet`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # its own parser: the trainer's options live in training/
        return _run_train(argv[1:])
    if argv[:1] == ["infra"]:
        from node.infra import main as infra_main

        return infra_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except JamnetError as exc:
        print(f"jamnet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        message = _chain_failure(exc)
        if message is None:
            raise
        print(f"jamnet: error: {message}", file=sys.stderr)
        return 2
    return code


def _chain_failure(exc: Exception) -> str | None:
    """A chain read that reverted or an RPC endpoint that did not answer, in words (None for
    anything else: a bug keeps its traceback)."""
    module = type(exc).__module__
    if module.startswith("web3"):
        from web3.exceptions import ContractCustomError, ContractLogicError

        from node.chain.errors import decode_error

        if isinstance(exc, ContractCustomError):
            return f"the contract refused: {decode_error(str(exc.data))}"
        if isinstance(exc, ContractLogicError):
            return f"the contract refused: {exc.message or exc}"
        return f"the chain answered with an error: {exc}"
    if module.startswith(("requests", "urllib3")) or isinstance(exc, ConnectionError):
        return f"cannot reach the chain's RPC endpoint: {exc}"
    return None


if __name__ == "__main__":
    sys.exit(main())
