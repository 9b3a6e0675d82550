"""Adverts and the network view: signatures, peer ids, shapes, expiry and replays."""

from __future__ import annotations

import json

import pytest
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.peer.id import ID

from node.p2p.advert import Advert, AdvertError, NetworkView, decode, encode

SESSION = {
    "id": "ab12",
    "name": "Blues",
    "tempo_bpm": 96,
    "key": "E",
    "time_signature": "4/4",
    "participants": 3,
}


def _advert(pair, seq: int = 1, sent_at: float = 1000.0, **changes) -> Advert:
    values = {
        "peer_id": ID.from_pubkey(pair.public_key).to_base58(),
        "http_url": "http://10.0.0.2:8080/",
        "version": "0.1.0",
        "capacity": 64,
        "load": 3,
        "sessions": (SESSION,),
        "seq": seq,
        "sent_at": sent_at,
    }
    values.update(changes)
    return Advert(**values)


def test_round_trip_and_checks() -> None:
    pair = create_new_key_pair()
    advert = _advert(pair)
    assert decode(encode(advert, pair.private_key), advert.peer_id) == advert
    other = create_new_key_pair()
    with pytest.raises(AdvertError) as err:  # signed by someone else, claiming this peer id
        decode(encode(advert, other.private_key))
    assert err.value.reason == "wrong_peer"
    with pytest.raises(AdvertError) as err:  # relayed under another sender's name
        decode(encode(advert, pair.private_key), sender=_advert(other).peer_id)
    assert err.value.reason == "wrong_peer"
    wire = json.loads(encode(advert, pair.private_key))
    wire["body"]["load"] = 0
    with pytest.raises(AdvertError) as err:
        decode(json.dumps(wire).encode())
    assert err.value.reason == "bad_signature"


@pytest.mark.parametrize(
    "changes",
    [
        {"http_url": "ftp://x"},
        {"capacity": -1},
        {"sessions": ({"id": "x y", "name": "n"},)},
        {"sessions": ({**SESSION, "tempo_bpm": 900},)},
        {"sessions": (SESSION,) * 65},
        {"version": "v" * 40},
    ],
)
def test_malformed_adverts_are_refused(changes) -> None:
    pair = create_new_key_pair()
    with pytest.raises(AdvertError) as err:
        decode(encode(_advert(pair, **changes), pair.private_key))
    assert err.value.reason in {"malformed", "too_large"}


def test_view_expiry_replay_and_directory() -> None:
    me, other = create_new_key_pair(), create_new_key_pair()
    view = NetworkView(ID.from_pubkey(me.public_key).to_base58(), ttl_s=2.0)
    assert view.accept(encode(_advert(other, seq=5), other.private_key), None, now=1000.0)
    assert view.directory()[0]["node"] == "http://10.0.0.2:8080/"
    assert view.accept(encode(_advert(other, seq=4), other.private_key), None, now=1000.5) is None
    assert view.rejected["replayed"] == 1
    assert view.expire(now=1001.0) == []
    assert view.expire(now=1002.5) == [_advert(other).peer_id]
    # After expiry an old advert re-delivered by gossip does not bring the node back...
    assert view.accept(encode(_advert(other, seq=5), other.private_key), None, now=1002.6) is None
    # ... a newer one (a restart: seq follows the clock) does.
    assert view.accept(
        encode(_advert(other, seq=6, sent_at=1002.6), other.private_key), None, now=1002.6
    )
    assert (
        view.accept(encode(_advert(other, seq=7, sent_at=0.0), other.private_key), None, now=1002.7)
        is None
    )
    assert view.rejected["stale"] == 1
    assert view.accept(encode(_advert(me), me.private_key), None, now=1000.0) is None  # itself
    assert view.accept(b"\xff" * 10, None) is None and view.rejected["malformed"] == 1
