"""`jamnet token|works|royalties|operator|gov …`: the contracts from the terminal (parsing).

The commands themselves live in ``client.chain_commands`` and load web3 only when one of
them runs, so ``jamnet jam`` and ``jamnet node`` start as fast as before.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client.http import add_node_flag

SUPPORT_CHOICES = ["abstain", "against", "for"]


def _command(module_name: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A command that imports its module (and web3 with it) only when it runs."""

    def run(args: argparse.Namespace) -> int:
        module = importlib.import_module(module_name)
        result: int = getattr(module, name)(args)
        return result

    return run


def _lazy(name: str) -> Callable[[argparse.Namespace], int]:
    return _command("client.chain_commands", name)


def _loop(name: str) -> Callable[[argparse.Namespace], int]:
    return _command("client.loop_commands", name)


def _market(name: str) -> Callable[[argparse.Namespace], int]:
    return _command("client.market_commands", name)


def add_commands(sub: Any) -> None:
    """Register token/works/operator/gov under the top-level parser."""
    home_key = str(Path(os.environ.get("HOME", ".")) / ".jamnet" / "key.json")

    def common(parser: argparse.ArgumentParser) -> None:
        add_node_flag(parser, "node whose chain to use")
        parser.add_argument("--keyfile", default=home_key, help="your key (made on first use)")
        parser.add_argument("--rpc-url", help="an external chain instead of the node's")
        parser.add_argument("--deployment", help="deployment file for --rpc-url")

    def command(group: Any, name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = group.add_parser(name, help=help_text)
        common(parser)
        parser.set_defaults(func=func)
        return parser

    keys = sub.add_parser("keys", help="your keyfiles").add_subparsers(dest="action", required=True)
    p = keys.add_parser("import", help="a private key from standard input into a new keyfile")
    p.add_argument("--keyfile", required=True, help="the keystore to write (must not exist)")
    p.set_defaults(func=_lazy("keys_import"))
    token = sub.add_parser("token", help="JAM balances and transfers").add_subparsers(
        dest="action", required=True
    )
    command(
        token, "balance", _lazy("token_balance"), "JAM, ETH and votes of an address"
    ).add_argument("address", nargs="?")
    p = command(token, "transfer", _lazy("token_transfer"), "send JAM")
    p.add_argument("to")
    p.add_argument("amount")
    command(
        token, "faucet", _lazy("token_faucet"), "devnet only: ETH for gas and some JAM for your key"
    )

    works = sub.add_parser("works", help="royalty splits").add_subparsers(
        dest="action", required=True
    )
    p = command(works, "draft", _loop("works_draft"), "a take's proposed split and consents")
    p.add_argument("recording", help="recording id")
    p = command(works, "split", _loop("works_split"), "session owner: set a take's split")
    p.add_argument("recording", help="recording id")
    p.add_argument("split", nargs="+", help="ADDRESS:BASIS_POINTS (adding up to 10000)")
    p = command(
        works, "parents", _loop("works_parents"), "session owner: name a take's parent works"
    )
    p.add_argument("recording", help="recording id")
    p.add_argument("parents", nargs="*", type=int, help="registered work ids (at most 2)")
    p.add_argument(
        "--derivative-bps", type=int, default=0, help="what the work takes from its derivatives"
    )
    p = command(works, "consent", _loop("works_consent"), "sign your consent to a take's split")
    p.add_argument("recording", help="recording id")
    command(works, "list", _loop("works_list"), "works from the node's takes, with their plays")
    p = command(works, "earnings", _loop("works_earnings"), "what your works earned, per period")
    p.add_argument("address", nargs="?")
    p = command(works, "listen", _loop("works_listen"), "play a work and sign a listen receipt")
    p.add_argument("id", type=int)
    p.add_argument("--seconds", type=float, default=31.0, help="how long to play (≥ 30 counts)")
    p.add_argument("--source", help="local address to connect from")
    command(works, "show", _lazy("works_show"), "a work, its split and what it owes").add_argument(
        "id", type=int
    )
    p = command(works, "pay", _lazy("works_pay"), "pay a work")
    p.add_argument("id", type=int)
    p.add_argument("amount")
    p.add_argument("--jam", action="store_true", help="pay in JAM instead of ETH")
    p = command(works, "balance", _lazy("works_balance"), "what a work owes you")
    p.add_argument("id", type=int)
    p.add_argument("address", nargs="?")
    p = command(works, "withdraw", _lazy("works_withdraw"), "withdraw what a work owes you")
    p.add_argument("id", type=int)
    p.add_argument("--jam", action="store_true")
    p.add_argument("--to", help="send it to this address instead of yours")

    command(
        works, "tree", _market("works_tree"), "a work's family: ancestors, derivatives, flows"
    ).add_argument("id", type=int)
    _add_licences(sub, command)

    royalties = sub.add_parser("royalties", help="the royalty pool and its periods")
    royalties_actions = royalties.add_subparsers(dest="action", required=True)
    command(royalties_actions, "status", _loop("royalties_status"), "the pool and every period")
    p = command(
        royalties_actions, "close", _loop("royalties_close"), "node key holder: close the period"
    )
    p.add_argument("--wait", type=float, default=0.0, help="wait up to S seconds for settlement")
    p = command(royalties_actions, "fund", _loop("royalties_fund"), "add ETH or JAM to the pool")
    p.add_argument("amount")
    p.add_argument("--jam", action="store_true", help="fund in JAM instead of ETH")

    ops = sub.add_parser("operator", help="node operators: stake and registry").add_subparsers(
        dest="action", required=True
    )
    command(ops, "stake", _lazy("operator_stake"), "stake JAM").add_argument("amount")
    p = command(ops, "register", _lazy("operator_register"), "register your node")
    p.add_argument("peer_id")
    p.add_argument("endpoint")
    p.add_argument("--metadata", default="{}")
    command(ops, "status", _lazy("operator_status"), "stake and registration").add_argument(
        "address", nargs="?"
    )
    command(
        ops, "unbond", _lazy("operator_unbond"), "leave the registry; stake unlocks after the delay"
    )
    command(ops, "withdraw", _lazy("operator_withdraw"), "withdraw unbonded stake")
    command(
        ops, "earnings", _market("operator_earnings"), "rewards per period, by served quality"
    ).add_argument("address", nargs="?")
    command(
        ops, "served", _market("operator_served"), "what your node metered and reported, per period"
    )
    p = command(ops, "claim", _market("operator_claim"), "withdraw a period's reward")
    p.add_argument("period", type=int)
    p.add_argument("--to", help="send it to this address instead of yours")

    _add_chain_deploy(sub)
    gov = sub.add_parser("gov", help="governance").add_subparsers(dest="action", required=True)
    command(
        gov, "delegate", _lazy("gov_delegate"), "delegate your votes (to yourself by default)"
    ).add_argument("to", nargs="?")
    p = command(gov, "propose", _lazy("gov_propose"), "propose a parameter change")
    p.add_argument("--fee-bps", type=int, help="new protocol fee in basis points")
    p.add_argument("--min-stake", help="new minimum operator stake in JAM")
    p.add_argument("--unbond-delay-s", type=int, default=3600)
    p.add_argument("--description")
    command(gov, "list", _lazy("gov_list"), "proposals and their state")
    command(gov, "show", _lazy("gov_show"), "one proposal").add_argument("id")
    p = command(gov, "vote", _lazy("gov_vote"), "vote on a proposal")
    p.add_argument("id")
    p.add_argument("support", choices=SUPPORT_CHOICES)
    p.add_argument("--reason")
    command(gov, "queue", _lazy("gov_queue"), "queue a passed proposal").add_argument("id")
    command(gov, "execute", _lazy("gov_execute"), "execute a queued proposal").add_argument("id")


GENESIS_EXAMPLE = """{
  "holders": {"0xAlice…": "2500000", "0xBob…": "1500000", "0xCarol…": "1000000"},
  "params": {"voting_delay_s": 3600, "voting_period_s": 259200, "timelock_delay_s": 86400}
}"""


def _add_licences(sub: Any, command: Any) -> None:
    usages = "online-video, advert, film, game, broadcast or other"
    group = sub.add_parser("licences", help="licence works: fixed price, or sealed-bid auction")
    actions = group.add_subparsers(dest="action", required=True)

    def terms(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("work", type=int)
        parser.add_argument("--usage", required=True, help=usages)
        parser.add_argument("--days", type=int, default=365, help="the licence's term")
        parser.add_argument("--territory", default="WW", help="ISO country code, or WW")

    p = command(
        actions, "offer", _market("licences_offer"), "lead contributor: offer licence terms"
    )
    terms(p)
    p.add_argument("--price", required=True, help="in ETH")
    p = command(actions, "list", _market("licences_list"), "a work's terms and auctions")
    p.add_argument("work", type=int)
    p = command(actions, "buy", _market("licences_buy"), "buy a licence on offered terms")
    p.add_argument("terms", type=int)
    p.add_argument("--for", dest="licensee", help="the licensee, if not you")
    p = command(actions, "verify", _market("licences_verify"), "check a licence record")
    p.add_argument("licence", type=int)
    p.add_argument("--json", action="store_true")
    p = command(
        actions,
        "auction",
        _market("licences_auction"),
        "lead contributor: auction an exclusive licence",
    )
    terms(p)
    p.add_argument("--reserve", required=True, help="lowest price, in ETH (every deposit's floor)")
    p.add_argument("--commit-hours", type=float, default=24.0)
    p.add_argument("--reveal-hours", type=float, default=24.0)
    p = command(actions, "status", _market("licences_status"), "an auction's state and result")
    p.add_argument("auction", type=int)
    p = command(actions, "bid", _market("licences_bid"), "commit a sealed bid (kept to reveal)")
    p.add_argument("auction", type=int)
    p.add_argument("amount", help="your bid, in ETH")
    p.add_argument("--deposit", help="ETH to deposit (at least the bid; more hides it)")
    p = command(actions, "reveal", _market("licences_reveal"), "reveal your sealed bid")
    p.add_argument("auction", type=int)
    p.add_argument("--amount", help="the bid, if not saved by `bid`")
    p.add_argument("--salt", help="its salt (0x…), if not saved by `bid`")
    p = command(actions, "settle", _market("licences_settle"), "end an auction: second price")
    p.add_argument("auction", type=int)
    p = command(actions, "refund", _market("licences_refund"), "withdraw your auction refunds")
    p.add_argument("--to", help="send them to this address instead of yours")


def _add_chain_deploy(sub: Any) -> None:
    """``jamnet chain deploy`` (client/deploy_commands.py)."""

    def run(args: argparse.Namespace) -> int:
        module = importlib.import_module("client.deploy_commands")
        result: int = module.chain_deploy(args)
        return result

    chain = sub.add_parser("chain", help="deploy jamnet's contracts to an external chain")
    actions = chain.add_subparsers(dest="action", required=True)
    parser = actions.add_parser(
        "deploy",
        help="deploy the contracts with a genesis that can govern",
        description="Genesis file (amounts in JAM; params optional, any of supply, "
        "proposal_threshold, min_stake in JAM and voting_delay_s, voting_period_s, "
        "timelock_delay_s, protocol_fee_bps, unbond_delay_s):\n" + GENESIS_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rpc-url", required=True, help="JSON-RPC URL of the chain")
    parser.add_argument("--genesis", required=True, help="JSON: holders (address → JAM), params")
    parser.add_argument("--keyfile", required=True, help="the deployer's keystore (pays the gas)")
    parser.add_argument("--out", default="deployment.json", help="deployment file to write")
    parser.add_argument("--settler", help="RoyaltyPool's first settler (default: the deployer)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.set_defaults(func=run)
