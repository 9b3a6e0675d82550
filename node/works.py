"""Take → work: a recording's proposed split, its contributors' consents, its registration.

After a take is sealed (``node.records``), the node proposes a split from its contribution
record: every contributor whose level share is above zero gets exactly that share, in basis
points (the record's shares already add up to 10,000 by largest remainder). Contributors who
made no sound are left out; a take in which nobody made a sound has no proposal until the
owner sets one. The session's owner may change the split (an EIP-191 signature over the new
split), but only among the record's contributors: the node attests provenance for no one else.

A draft carries everything WorkRegistry checks: the mix's content hash, the content URI, the
split, the registrant (this node's account: registration goes through its outbox), a deadline
and a fresh nonce, and this node's provenance attestation. Each contributor signs the EIP-712
consent (``typed_data`` in the draft, for a wallet or ``jamnet works consent``). Changing the
split draws a new nonce, so consents to the old split cannot be replayed. When every consent
is in, the registration is queued in the outbox under ``register:<recording>:<nonce>``:
idempotent, sent once, resumed after a crash. Its receipt gives the work id.

The content URI is ``jamnet://<node address>/content/<mix hash>``: any node resolves it
through NodeRegistry (the attesting node's endpoint) to ``<endpoint>/api/content/<hash>``,
which the recording node serves (with HTTP range requests) once the work is registered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

from node.chain.consent import (
    Registration,
    consent_message,
    consent_typed_data,
    provenance_message,
)
from node.chain.service import ChainService
from node.errors import AuthError, ForbiddenError, InputError, NotFoundError, SessionError
from node.identity import parse_address, recover_signer
from node.lineage import MAX_PARENTS, Lineage, take_melodies
from node.recordings import Recordings
from node.store.db import Store, open_sqlite

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS drafts (
    recording_id TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL UNIQUE,
    draft TEXT NOT NULL,
    consents TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('consenting', 'queued', 'registered', 'failed')),
    outbox_key TEXT,
    work_id INTEGER,
    error TEXT,
    updated_at REAL NOT NULL
);
"""
BPS = 10_000
CONSENT_WINDOW_S = 7 * 24 * 3600
"""How long contributors have to consent to a draft."""
SPLIT_MESSAGE_MAX_AGE_S = 600
HASH_RE = re.compile(r"^0x[0-9a-f]{64}$")


@dataclass(frozen=True)
class Draft:
    """A take's proposed work: what WorkRegistry.register will be given."""

    recording_id: str
    content_hash: str
    uri: str
    contributors: list[str]
    shares: list[int]
    registrant: str
    deadline: int
    nonce: int
    attester: str
    attestation: str
    chain_id: int
    registry: str
    parents: list[int] = field(default_factory=list)
    """Registered works this take derives from (each takes its share of its payments)."""
    derivative_bps: int = 0
    """The share this work will take from its own derivatives."""
    melodies: list[list[int]] = field(default_factory=list)
    """Its stems' melodies (MIDI pitches), for the similarity check and the index."""
    similarity: dict[str, Any] | None = None
    """A registered work, not among the parents, that this take shares a long span with."""

    def registration(self) -> Registration:
        """The contract's Registration struct."""
        return Registration(
            bytes.fromhex(self.content_hash[2:]),
            self.uri,
            self.contributors,
            self.shares,
            self.deadline,
            self.nonce,
            self.attester,
            tuple(self.parents),
            self.derivative_bps,
        )


def proposed_split(record: dict[str, Any]) -> tuple[list[str], list[int]]:
    """The split the docs state: each contributor's level share, those at zero left out."""
    pairs = [
        (str(c["account"]), int(c["levelShareBps"]))
        for c in record["contributors"]
        if int(c["levelShareBps"]) > 0
    ]
    return [a for a, _ in pairs], [s for _, s in pairs]


def split_message(recording_id: str, contributors: list[str], shares: list[int], at: int) -> str:
    """The text a session owner signs to set a take's split."""
    parts = ",".join(f"{a}:{s}" for a, s in zip(contributors, shares, strict=True))
    return f"jamnet split\nrecording: {recording_id}\nsplit: {parts}\nsigned: {at}"


def parents_message(recording_id: str, parents: list[int], derivative_bps: int, at: int) -> str:
    """The text a session owner signs to set a take's parent works."""
    listed = ",".join(str(p) for p in parents) or "none"
    return (
        f"jamnet parents\nrecording: {recording_id}\nparents: {listed}\n"
        f"derivative share: {derivative_bps}\nsigned: {at}"
    )


def parse_parents(value: object, derivative_bps: object) -> tuple[list[int], int]:
    """``[work id, ...]`` (at most 2) and a share in basis points, checked."""
    if not isinstance(value, list) or len(value) > MAX_PARENTS:
        raise InputError(f"parents must be a list of at most {MAX_PARENTS} work ids")
    parents = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < 2**63:
            raise InputError("each parent is a registered work's id (a whole number)")
        if item in parents:
            raise InputError(f"work {item} is named twice")
        parents.append(item)
    if isinstance(derivative_bps, bool) or not isinstance(derivative_bps, int):
        raise InputError("derivative_bps must be a whole number of basis points")
    if not 0 <= derivative_bps <= 5000:
        raise InputError("derivative_bps must be 0-5000 (governance may cap it lower)")
    return sorted(parents), derivative_bps


def parse_split(value: object, allowed: set[str]) -> tuple[list[str], list[int]]:
    """``[{"address": ..., "bps": ...}, ...]`` → addresses and shares, checked."""
    if not isinstance(value, list) or not 0 < len(value) <= 100:
        raise InputError('split must be a list of 1-100 {"address": ..., "bps": ...}')
    who: list[str] = []
    shares: list[int] = []
    for item in value:
        if not isinstance(item, dict):
            raise InputError('each split entry is {"address": ..., "bps": ...}')
        address = parse_address(item.get("address"), "split address")
        bps = item.get("bps")
        if isinstance(bps, bool) or not isinstance(bps, int) or not 0 < bps <= BPS:
            raise InputError("bps must be a whole number of basis points, 1-10000")
        if address in who:
            raise InputError(f"{address} appears twice in the split")
        if address not in allowed:
            raise InputError(f"{address} is not a contributor in this take's contribution record")
        who.append(address)
        shares.append(bps)
    if sum(shares) != BPS:
        raise InputError(f"shares add up to {sum(shares)} basis points, not 10000")
    return who, shares


class Works:
    """Drafts of works from this node's takes, their consents and registrations."""

    def __init__(self, path: Path, store: Store, recordings: Recordings, chain: ChainService):
        self._db = open_sqlite(path, SCHEMA)
        self.lineage = Lineage(self._db)
        self._transcribing: dict[str, asyncio.Future[list[list[int]]]] = {}
        self.store = store
        self.recordings = recordings
        self.chain = chain
        self._lock = asyncio.Lock()

    def close(self) -> None:
        """Close the drafts store (idempotent)."""
        self._db.close()

    # ---------------------------------------------------------------- reading
    async def draft(self, recording_id: str) -> dict[str, Any]:
        """A take's draft (proposed from its record the first time it is asked for)."""
        if self._row(recording_id) is None:
            record = await self._record(recording_id)
            who, shares = proposed_split(record)
            if not who:
                raise SessionError("nobody made a sound in this take: its owner sets the split")
            # Transcribing a long take's stems takes seconds: outside the lock (other takes'
            # consents go on), once per take however many ask at the same time.
            task = self._transcribing.get(recording_id)
            if task is None:
                task = asyncio.ensure_future(self._melodies(recording_id))
                self._transcribing[recording_id] = task
                task.add_done_callback(lambda _: self._transcribing.pop(recording_id, None))
            melodies = await asyncio.shield(task)
            async with self._lock:
                if self._row(recording_id) is None:
                    draft = self._new_draft(recording_id, record, who, shares)
                    parents = self.lineage.parents_for(str(record["sessionId"]))
                    self._save(self._with_parents(draft, parents, 0, melodies), {}, "consenting")
        await self.refresh()
        return self.public(recording_id)

    def public(self, recording_id: str) -> dict[str, Any]:
        """What the API shows of a draft: the split, each contributor's consent, the state,
        and the typed data a contributor signs."""
        row = self._row(recording_id)
        if row is None:
            raise NotFoundError("no draft for this recording yet")
        draft = Draft(**json.loads(row["draft"]))
        consents = json.loads(row["consents"])
        typed = consent_typed_data(
            draft.chain_id, draft.registry, draft.registration(), draft.registrant
        )
        return {
            "recording_id": recording_id,
            "content_hash": draft.content_hash,
            "uri": draft.uri,
            "split": [
                {"address": a, "bps": s, "consented": a in consents}
                for a, s in zip(draft.contributors, draft.shares, strict=True)
            ],
            "registrant": draft.registrant,
            "deadline": draft.deadline,
            "nonce": str(draft.nonce),
            "attester": draft.attester,
            "state": row["state"],
            "work_id": row["work_id"],
            "error": row["error"],
            "parents": draft.parents,
            "derivative_bps": draft.derivative_bps,
            "similarity": draft.similarity,
            "typed_data": typed,
        }

    def by_content(self, content_hash: str) -> dict[str, Any] | None:
        """The draft row of a content hash (registered or not)."""
        row = self._db.execute(
            "SELECT * FROM drafts WHERE content_hash = ?", (content_hash.lower(),)
        ).fetchone()
        return dict(row) if row is not None else None

    def by_work(self, work_id: int) -> dict[str, Any] | None:
        """The draft row of a registered work id."""
        row = self._db.execute(
            "SELECT * FROM drafts WHERE work_id = ? AND state = 'registered'", (work_id,)
        ).fetchone()
        return dict(row) if row is not None else None

    def all(self) -> list[dict[str, Any]]:
        """Every draft, newest first."""
        ids = [
            r[0] for r in self._db.execute("SELECT recording_id FROM drafts ORDER BY rowid DESC")
        ]
        return [self.public(i) for i in ids]

    # ---------------------------------------------------------------- changing
    async def set_split(
        self, recording_id: str, split: object, signed_at: object, signature: object
    ) -> dict[str, Any]:
        """The session owner changes the split (consents start over, with a new nonce)."""
        record = await self._record(recording_id)
        allowed = {str(c["account"]) for c in record["contributors"]}
        who, shares = parse_split(split, allowed)
        if isinstance(signed_at, bool) or not isinstance(signed_at, int):
            raise InputError("signed_at must be the Unix time the owner signed at")
        if abs(time.time() - signed_at) > SPLIT_MESSAGE_MAX_AGE_S:
            raise AuthError("the split's signature is more than 10 minutes old: sign again")
        signer = recover_signer(split_message(recording_id, who, shares, signed_at), signature)
        recording = self.store.recording(recording_id)
        assert recording is not None
        owner = self.store.session_owner(str(recording["session_id"]))
        if owner is None or signer != owner:
            raise ForbiddenError("only the session's owner sets a take's split")
        async with self._lock:
            row = self._row(recording_id)
            if row is not None and row["state"] != "consenting":
                raise SessionError(f"this take is already {row['state']}: its split is final")
            draft = self._new_draft(recording_id, record, who, shares)
            if row is not None:
                old = Draft(**json.loads(row["draft"]))
                draft = self._with_parents(draft, old.parents, old.derivative_bps, old.melodies)
            self._save(draft, {}, "consenting")
        return self.public(recording_id)

    async def set_parents(
        self,
        recording_id: str,
        parents: object,
        derivative_bps: object,
        signed_at: object,
        signature: object,
    ) -> dict[str, Any]:
        """The session owner names the take's parent works and the share it will take from its
        own derivatives (consents start over, with a new nonce)."""
        chosen, share = parse_parents(parents, derivative_bps)
        if isinstance(signed_at, bool) or not isinstance(signed_at, int):
            raise InputError("signed_at must be the Unix time the owner signed at")
        if abs(time.time() - signed_at) > SPLIT_MESSAGE_MAX_AGE_S:
            raise AuthError("the signature is more than 10 minutes old: sign again")
        signer = recover_signer(parents_message(recording_id, chosen, share, signed_at), signature)
        record = await self._record(recording_id)
        owner = self.store.session_owner(str(record["sessionId"]))
        if owner is None or signer != owner:
            raise ForbiddenError("only the session's owner names a take's parents")
        count, cap = await asyncio.to_thread(self._registry_limits)
        unknown = [p for p in chosen if p >= count]
        if unknown:
            raise NotFoundError(f"work {unknown[0]} is not registered (there are {count} works)")
        if share > cap:
            raise InputError(f"derivative_bps {share} is above governance's cap of {cap}")
        async with self._lock:
            row = self._row(recording_id)
            if row is None:
                raise NotFoundError("no draft for this recording: GET its work first")
            if row["state"] != "consenting":
                raise SessionError(f"this take is already {row['state']}: its parents are final")
            old = Draft(**json.loads(row["draft"]))
            fresh = self._new_draft(recording_id, record, old.contributors, old.shares)
            self._save(self._with_parents(fresh, chosen, share, old.melodies), {}, "consenting")
        return self.public(recording_id)

    async def consent(
        self, recording_id: str, address: object, signature: object
    ) -> dict[str, Any]:
        """A contributor's EIP-712 consent; the last one queues the registration."""
        who = parse_address(address, "address")
        if not isinstance(signature, str) or not re.fullmatch(r"0x[0-9a-fA-F]{130}", signature):
            raise InputError("signature must be 0x followed by 130 hex digits (65 bytes)")
        async with self._lock:
            row = self._row(recording_id)
            if row is None:
                raise NotFoundError("no draft for this recording: GET its work first")
            if row["state"] != "consenting":
                raise SessionError(f"this take is already {row['state']}")
            draft = Draft(**json.loads(row["draft"]))
            if who not in draft.contributors:
                raise ForbiddenError(f"{who} is not in this take's split")
            copied = draft.similarity
            if copied is not None and copied["gated"]:
                raise SessionError(
                    f"this take shares {copied['span_notes']} notes in a row with registered work"
                    f" {copied['work']} (a copy from {copied['gate_at']}): the session's owner"
                    " names that work as a parent first, so it is paid its share"
                )
            message = consent_message(
                draft.chain_id, draft.registry, draft.registration(), draft.registrant
            )
            try:
                signer = Account.recover_message(message, signature=signature)
            except Exception as exc:  # eth-account raises several types for bad signatures
                raise AuthError(f"consent signature does not verify: {exc}") from None
            if signer != who:
                raise AuthError(
                    "the consent was signed by another key or for another split, nonce or"
                    " deadline: fetch the draft again and sign its typed_data"
                )
            if draft.deadline < time.time():
                raise SessionError("the consent window has closed: the owner sets the split again")
            consents = json.loads(row["consents"])
            consents[who] = signature
            self._save(draft, consents, "consenting")
            if all(a in consents for a in draft.contributors):
                self._queue(draft, consents)
        await self.refresh()
        return self.public(recording_id)

    def _queue(self, draft: Draft, consents: dict[str, str]) -> None:
        outbox, works = self.chain.outbox, self._registry()
        assert outbox is not None
        signatures = [
            b"" if a == draft.registrant else bytes.fromhex(consents[a][2:])
            for a in draft.contributors
        ]
        call = works.functions.register(
            draft.registration().as_tuple(), signatures, bytes.fromhex(draft.attestation[2:])
        )
        key = f"register:{draft.recording_id}:{draft.nonce}"
        outbox.enqueue(key, works.address, call._encode_transaction_data())
        self._db.execute(
            "UPDATE drafts SET state='queued', outbox_key=?, updated_at=? WHERE recording_id=?",
            (key, time.time(), draft.recording_id),
        )
        log.info("work from take %s queued for registration (%s)", draft.recording_id, key)

    async def refresh(self) -> None:
        """Move queued drafts on: push the outbox, then read mined registrations' work ids.
        A draft whose last consent arrived just before a crash (consents saved, not queued
        yet) is queued here: the outbox key makes queuing it twice harmless."""
        async with self._lock:
            rows = self._db.execute("SELECT * FROM drafts WHERE state = 'consenting'").fetchall()
            for row in rows:
                draft, consents = Draft(**json.loads(row["draft"])), json.loads(row["consents"])
                if all(a in consents for a in draft.contributors):
                    self._queue(draft, consents)
        queued = self._db.execute("SELECT * FROM drafts WHERE state = 'queued'").fetchall()
        if not queued or self.chain.outbox is None or self.chain.w3 is None:
            return
        await asyncio.to_thread(self._settle_queued, [dict(r) for r in queued])

    def _settle_queued(self, rows: list[dict[str, Any]]) -> None:
        outbox, w3 = self.chain.outbox, self.chain.w3
        assert outbox is not None
        assert w3 is not None
        outbox.process(w3)
        works = self._registry()
        for row in rows:
            entry = outbox.get(row["outbox_key"])
            if entry.state == "failed":
                self._set_state(row["recording_id"], "failed", error=entry.error)
            elif entry.state == "mined" and entry.tx_hash is not None:
                receipt = w3.eth.get_transaction_receipt(entry.tx_hash)  # type: ignore[arg-type]
                events = works.events.WorkRegistered().process_receipt(receipt, errors=DISCARD)
                work_id = int(events[0]["args"]["workId"])
                self._set_state(row["recording_id"], "registered", work_id=work_id)
                self.lineage.save(work_id, Draft(**json.loads(row["draft"])).melodies)
                log.info("take %s registered as work %d", row["recording_id"], work_id)

    # ---------------------------------------------------------------- helpers
    async def _record(self, recording_id: str) -> dict[str, Any]:
        if self.store.recording(recording_id) is None:
            raise NotFoundError("no such recording")
        sealed = await self.recordings.record(recording_id)
        if sealed is None:
            raise SessionError("this take is not sealed yet (still recording, or sealing)")
        record: dict[str, Any] = sealed["record"]
        if record["mixHash"] == "0x" + "00" * 32:
            raise SessionError("this take has no mix file: it cannot become a work")
        return record

    def _new_draft(
        self, recording_id: str, record: dict[str, Any], who: list[str], shares: list[int]
    ) -> Draft:
        chain = self.chain
        if chain.account is None or chain.deployment is None or chain.outbox is None:
            raise SessionError("this node is not connected to a chain: works need one")
        account = chain.account
        registry = chain.deployment.addresses["WorkRegistry"]
        content = str(record["mixHash"]).lower()
        attestation = account.sign_message(
            provenance_message(chain.deployment.chain_id, registry, bytes.fromhex(content[2:]), who)
        )
        return Draft(
            recording_id=recording_id,
            content_hash=content,
            uri=f"jamnet://{account.address}/content/{content}",
            contributors=who,
            shares=shares,
            registrant=account.address,
            deadline=int(time.time()) + CONSENT_WINDOW_S,
            nonce=secrets.randbits(64),
            attester=account.address,
            attestation="0x" + bytes(attestation.signature).hex(),
            chain_id=chain.deployment.chain_id,
            registry=registry,
        )

    def _with_parents(
        self, draft: Draft, parents: list[int], derivative_bps: int, melodies: list[list[int]]
    ) -> Draft:
        similarity = self.lineage.check(melodies, parents)
        return Draft(
            **{
                **asdict(draft),
                "parents": parents,
                "derivative_bps": derivative_bps,
                "melodies": melodies,
                "similarity": similarity,
            }
        )

    async def _melodies(self, recording_id: str) -> list[list[int]]:
        recording = self.store.recording(recording_id)
        if recording is None:
            return []
        stems = [str(c["stem"]) for c in recording.get("contributions", [])]
        return await asyncio.to_thread(take_melodies, Path(recording["path"]), stems)

    def _registry_limits(self) -> tuple[int, int]:
        functions = self._registry().functions
        return int(functions.workCount().call()), int(functions.derivativeCapBps().call())

    def _registry(self) -> Any:
        assert self.chain.w3 is not None
        assert self.chain.deployment is not None
        return self.chain.deployment.contracts(self.chain.w3)["WorkRegistry"]

    def _row(self, recording_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT * FROM drafts WHERE recording_id = ?", (recording_id,)
        ).fetchone()
        return dict(row) if row is not None else None

    def _save(self, draft: Draft, consents: dict[str, str], state: str) -> None:
        self._db.execute(
            "INSERT INTO drafts (recording_id, content_hash, draft, consents, state, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(recording_id) DO UPDATE SET"
            " draft=excluded.draft, consents=excluded.consents, state=excluded.state,"
            " updated_at=excluded.updated_at",
            (
                draft.recording_id,
                draft.content_hash,
                json.dumps(asdict(draft)),
                json.dumps(consents),
                state,
                time.time(),
            ),
        )

    def _set_state(self, recording_id: str, state: str, **fields: Any) -> None:
        self._db.execute(
            "UPDATE drafts SET state=?, work_id=COALESCE(?, work_id), error=?, updated_at=?"
            " WHERE recording_id=?",
            (state, fields.get("work_id"), fields.get("error"), time.time(), recording_id),
        )


def content_hash(text: str) -> str:
    """A ``0x…`` 32-byte hash from a URL segment (InputError otherwise)."""
    value = text.lower()
    if not HASH_RE.match(value):
        raise InputError("a content hash is 0x followed by 64 hex digits")
    return value


def resolve_uri(uri: str, endpoint_of: Any) -> str:
    """``jamnet://<node>/content/<hash>`` → the HTTP URL that serves it (``endpoint_of`` maps
    a node address to its NodeRegistry endpoint)."""
    match = re.fullmatch(r"jamnet://(0x[0-9a-fA-F]{40})/content/(0x[0-9a-fA-F]{64})", uri)
    if match is None:
        raise InputError("a content URI is jamnet://<node address>/content/<0x hash>")
    node, digest = Web3.to_checksum_address(match.group(1)), match.group(2).lower()
    endpoint = endpoint_of(node)
    if not endpoint:
        raise NotFoundError(f"node {node} is not in NodeRegistry: nobody serves this content")
    return f"{str(endpoint).rstrip('/')}/api/content/{digest}"
