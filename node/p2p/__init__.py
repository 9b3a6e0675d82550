"""Peer-to-peer: the libp2p host, discovery, the gossiped directory (see the [p2p] issue)."""
