"""What the composer's barlines cost: NLL of real tunes encoded with the barlines a compose
request gives its seed, against the tunes' own barlines.

    .venv/bin/python bench/compose_metre.py [--pieces 160]

Three encodings of the same melodies (the bundled music21 folk corpora, O'Neill's and Essen,
in their own metres, many with a pickup):
- ``true``: the barlines of the score (what the model was trained on);
- ``grid16``: a barline every 16 sixteenths from the first note (what compose did before it
  took a metre and a pickup);
- ``metre``: the compose request's rule with the tune's metre and pickup
  (node.ai.music: bars at 0, the pickup, then every bar of the metre).
NLL is per token, teacher-forced, over whole tunes; ratios are against ``true``. The first
tunes of each collection in corpus order (deterministic); one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.ai.music import bar_steps_of
from node.ai.registry import ModelRegistry
from training.corpus import PieceError, extract, list_units
from training.tokenize import encode
from training.train import composer_nll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=160, help="tunes per collection")
    args = parser.parse_args()
    model = ModelRegistry().load("composer")
    groups: dict[str, dict[str, list[list[int]]]] = {}
    for unit in list_units(["oneills", "essen"], args.pieces):
        try:
            piece = extract(unit)
        except PieceError:
            continue
        bar = bar_steps_of((piece.beats_per_bar, piece.beat_unit))
        bars = piece.bars
        pickup = bars[1] if len(bars) > 1 and bars[0] == 0 and 0 < bars[1] < bar else 0
        group = "6/8" if (piece.beats_per_bar, piece.beat_unit) == (6, 8) else "other"
        if pickup:
            group += " with pickup"
        encodings = {
            "true": encode(piece.melody, bars),
            "grid16": encode(piece.melody, range(0, 1 << 20, 16)),
            "metre": encode(piece.melody, {0, *range(pickup, 1 << 20, bar)}),
        }
        for name, tokens in encodings.items():
            groups.setdefault(group, {}).setdefault(name, []).append(tokens)
    out: dict[str, object] = {}
    for group, encodings in sorted(groups.items()):
        nll = {}
        for name, sequences in encodings.items():
            total, count = composer_nll(model, sequences)
            nll[name] = total / count
        out[group] = {
            "tunes": len(encodings["true"]),
            "nll_per_token": {k: round(v, 4) for k, v in nll.items()},
            "grid16_over_true": round(nll["grid16"] / nll["true"], 4),
            "metre_over_true": round(nll["metre"] / nll["true"], 4),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
