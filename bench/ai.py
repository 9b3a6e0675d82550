"""The shipped models against their baselines, generation speed, and training throughput.

    .venv/bin/python bench/ai.py [--corpus data/corpus] [--train-batches 40]

- Held-out (test split) perplexity of the LSTM composer vs the best n-gram (order chosen on
  the validation split) and uniform; the chorale model's frame NLL.
- The GAN improviser's bars over the test set's chords vs the real test bars, n-gram bars and
  uniform bars: chord-tone ratio, scale consistency, pitch-class and interval overlap.
- Time to generate one bar (what the bandmate asks for: six candidates, the one nearest the
  density wins), p50/p99 over 300 bars, one thread; and the synthesiser's time per bar.
- Training throughput of the composer through TorchDistributor on local Spark, 1 process vs
  2 processes (the same number of batches per process; tokens/s over all processes).

The corpus is preprocessed first if it is missing (``jamnet train preprocess``). Progress goes
to stderr; one JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from node.ai import synth
from node.ai.bandmate import Bandmate, BandmateSettings, Grid
from node.ai.music import Improviser, parse_chords
from node.ai.registry import ModelRegistry
from node.session.metronome import Metronome
from training.evaluate import evaluate_chorale, evaluate_composer, evaluate_improviser


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def bar_timing(improviser: Improviser, bars: int) -> dict[str, float]:
    torch.set_num_threads(1)
    chords = parse_chords("C Am F G Dm E")
    bandmate = Bandmate(improviser, BandmateSettings("piano", 0.5), chords, "C")
    grid = Grid.of(Metronome(120.0, 4), 4)
    gen_ms, synth_ms = [], []
    previous = [0] * 16
    for bar in range(bars):
        started = time.perf_counter()
        steps = improviser.bar(chords[bar % len(chords)], previous, 0.5, bar)
        gen_ms.append((time.perf_counter() - started) * 1000)
        previous = steps
        started = time.perf_counter()
        bandmate.render(grid, bar, 48000)
        synth_ms.append((time.perf_counter() - started) * 1000)
    synth._note.cache_clear()
    started = time.perf_counter()
    bandmate.render(grid, 0, 48000)
    cold = (time.perf_counter() - started) * 1000
    return {
        "bar_gen_ms_p50": round(percentile(gen_ms, 50), 3),
        "bar_gen_ms_p99": round(percentile(gen_ms, 99), 3),
        "bar_render_ms_p50": round(percentile(synth_ms, 50), 3),
        "bar_render_ms_p99": round(percentile(synth_ms, 99), 3),
        "bar_render_ms_cold_cache": round(cold, 3),
    }


def throughput(corpus: Path, batches: int, out: Path) -> dict[str, Any]:
    from spark_jobs.train import distributed

    figures: dict[str, Any] = {}
    for processes in (1, 2):
        log(f"training throughput: {processes} process(es), {batches} batches each")
        values = {
            "model": "composer",
            "corpus": str(corpus),
            "out": str(out / f"p{processes}"),
            "epochs": 1,
            "max_batches": batches,
            "quiet": True,
        }
        summary = distributed(values, processes, "local[2]")
        figures[f"train_tokens_per_s_{processes}proc"] = round(summary["train_tokens_per_s"])
    figures["train_speedup_2proc"] = round(
        figures["train_tokens_per_s_2proc"] / figures["train_tokens_per_s_1proc"], 3
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--bars", type=int, default=300, help="bars for the timing")
    parser.add_argument("--train-batches", type=int, default=40, help="per process")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    if not (args.corpus / "manifest.json").is_file():
        from spark_jobs.preprocess import run

        log(f"{args.corpus} is missing: preprocessing the corpus first (several minutes)")
        run(args.corpus, ["chorales", "essen", "oneills", "ryans"], None, "local[*]")
    registry = ModelRegistry()
    composer = registry.load("composer")
    chorale = registry.load("chorale")
    generator = registry.load("improviser")

    log("composer: held-out perplexity vs n-gram and uniform")
    comp = evaluate_composer(composer, args.corpus)
    log("chorale model: frame NLL")
    chor = evaluate_chorale(chorale, args.corpus)
    log("improviser: bar statistics")
    imp = evaluate_improviser(generator, args.corpus)
    log("bar generation timing")
    timing = bar_timing(Improviser(generator), args.bars)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": __import__("os").cpu_count(),
        "torch": torch.__version__,
        "lstm_ppl": comp["lstm_ppl"],
        "ngram_ppl": comp["ngram_ppl"],
        "ngram_order": comp["ngram_order"],
        "uniform_ppl": comp["uniform_ppl"],
        "lstm_vs_ngram_ppl": comp["lstm_vs_ngram_ppl"],
        "lstm_copy_longest_notes_median": comp["copy_longest_notes_median"],
        "chorale_frame_nll": chor["chorale_frame_nll"],
        "gan_chord_tone_ratio": imp["gan"]["chord_tone_ratio"],
        "real_chord_tone_ratio": imp["real_chord_tone_ratio"],
        "ngram_chord_tone_ratio": imp["ngram"]["chord_tone_ratio"],
        "uniform_chord_tone_ratio": imp["uniform"]["chord_tone_ratio"],
        "gan_pc_overlap": imp["gan"]["pc_overlap"],
        "gan_interval_overlap": imp["gan"]["interval_overlap"],
        "ngram_pc_overlap": imp["ngram"]["pc_overlap"],
        "ngram_interval_overlap": imp["ngram"]["interval_overlap"],
        "uniform_pc_overlap": imp["uniform"]["pc_overlap"],
        "uniform_interval_overlap": imp["uniform"]["interval_overlap"],
        "gan_scale_consistency": imp["gan"]["scale_consistency"],
        "real_scale_consistency": imp["real"]["scale_consistency"],
        "gan_notes_per_bar": imp["gan"]["notes_per_bar"],
        "real_notes_per_bar": imp["real"]["notes_per_bar"],
        "gan_copy_longest_notes_median": imp["gan_copy_longest_notes_median"],
        **timing,
    }
    if not args.skip_training:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            result.update(throughput(args.corpus, args.train_batches, Path(tmp)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
