"""Training loops for the three models, runnable alone or as TorchDistributor workers.

``train(config)`` is the one entry point: it reads the rank and world size from the
environment torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR…), joins a gloo process group when
there is more than one process, shards the batches, and returns rank 0's summary. Every
epoch writes ``last.pt`` (model, optimiser, epoch, best score: training resumes from it with
``resume``); the best epoch by validation score is kept as ``best.pt``; training stops early
after ``patience`` epochs without improvement. Seeds are fixed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the PyTorch convention

from training import data
from training.models import BarDiscriminator, BarGenerator, ChoraleLSTM, MelodyLSTM, one_hot_bar
from training.tokenize import BAR_STEPS, PAD, STEP_CLASSES

MODELS = ("composer", "chorale", "improviser")

# What the shipped models were trained with: the defaults of `jamnet train fit` and `all`.
RECIPES: dict[str, dict[str, Any]] = {
    "composer": {"epochs": 5, "batch_size": 64, "lr": 2e-3, "patience": 2},
    "chorale": {"epochs": 200, "batch_size": 16, "lr": 2e-3, "patience": 12},
    "improviser": {"epochs": 150, "batch_size": 64, "lr": 5e-4, "patience": 40},
}


@dataclass
class TrainConfig:
    """What to train, on what, for how long."""

    model: str
    corpus: str
    out: str
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 1234
    patience: int = 3
    window: int = 128
    """Composer: tokens per training window."""
    limit: int | None = None
    """At most this many pieces per split (small runs and tests)."""
    max_batches: int | None = None
    """At most this many batches per epoch (benchmarks)."""
    resume: bool = False
    threads: int | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    quiet: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from plain values (what TorchDistributor passes to workers)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(sorted(unknown))}")
        config = cls(**values)
        if config.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}")
        return config


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup(config: TrainConfig) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    if config.threads:
        torch.set_num_threads(config.threads)
    elif world > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    return _Dist(rank, world)


def _log(config: TrainConfig, dist: _Dist, message: str) -> None:
    if dist.main and not config.quiet:
        print(f"[{config.model}] {message}", file=sys.stderr, flush=True)


def _sync_grads(model: nn.Module, dist: _Dist) -> None:
    # Plain all-reduce of gradients: the same arithmetic DDP does, without its bucketing
    # rules that reject models with unused parameters.
    if dist.world == 1:
        return
    for param in model.parameters():
        if param.grad is not None:
            torch.distributed.all_reduce(param.grad)
            param.grad /= dist.world


def _broadcast(model: nn.Module, dist: _Dist) -> None:
    if dist.world > 1:
        for tensor in model.state_dict().values():
            torch.distributed.broadcast(tensor, 0)


def _save(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


class _Run:
    """Epoch bookkeeping shared by the three trainers: checkpoints, early stop, resume."""

    def __init__(
        self,
        config: TrainConfig,
        dist: _Dist,
        modules: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        lower_is_better: bool,
    ) -> None:
        self.config = config
        self.dist = dist
        self.modules = modules
        self.optimizers = optimizers
        self.lower = lower_is_better
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.epoch = 0
        self.best: float | None = None
        self.best_epoch = 0
        self.history: list[dict[str, float]] = []
        last = self.out / "last.pt"
        if config.resume and last.is_file():
            state = torch.load(last, map_location="cpu", weights_only=False)
            for name, module in modules.items():
                module.load_state_dict(state["modules"][name])
            for name, opt in optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
            self.epoch = state["epoch"]
            self.best, self.best_epoch = state["best"], state["best_epoch"]
            self.history = state["history"]
            _log(config, dist, f"resumed after epoch {self.epoch}")
        for module in modules.values():
            _broadcast(module, dist)

    def improved(self, score: float) -> bool:
        if self.best is None:
            return True
        return score < self.best if self.lower else score > self.best

    def end_epoch(self, score: float, figures: dict[str, float]) -> bool:
        """Record an epoch; returns True when training should stop."""
        self.epoch += 1
        self.history.append({"epoch": self.epoch, "score": score, **figures})
        better = self.improved(score)
        if better:
            self.best, self.best_epoch = score, self.epoch
        if self.dist.main:
            payload = {
                "kind": self.config.model,
                "modules": {n: m.state_dict() for n, m in self.modules.items()},
                "configs": {n: getattr(m, "config", {}) for n, m in self.modules.items()},
                "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
                "epoch": self.epoch,
                "best": self.best,
                "best_epoch": self.best_epoch,
                "history": self.history,
                "train_config": dataclasses.asdict(self.config),
            }
            _save(self.out / "last.pt", payload)
            if better:
                _save(self.out / "best.pt", payload)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in figures.items())
        _log(self.config, self.dist, f"epoch {self.epoch}: {shown}{' *' if better else ''}")
        stale = self.epoch - self.best_epoch
        return stale >= self.config.patience or self.epoch >= self.config.epochs


def _batches(items: list[Any], size: int, seed: int, dist: _Dist, limit: int | None) -> list[Any]:
    order = data.shuffled(items, seed)
    # Every rank gets the same number of batches so the all-reduces pair up.
    per_rank = len(order) // (size * dist.world)
    if per_rank == 0 and order:
        per_rank = 1
    if limit is not None:
        per_rank = min(per_rank, limit)
    mine = order[dist.rank :: dist.world] or order
    return [mine[i * size : (i + 1) * size] or mine[:size] for i in range(per_rank)]


# ----------------------------------------------------------------- composer
def composer_nll(model: MelodyLSTM, sequences: list[list[int]]) -> tuple[float, int]:
    """(sum of -log p, tokens) over whole sequences, teacher-forced."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(sequences), 32):
            inputs, targets = data.pad_batch(sequences[start : start + 32])
            logits, _ = model(inputs)
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                targets.reshape(-1),
                ignore_index=PAD,
                reduction="sum",
            )
            total += float(loss)
            count += int((targets != PAD).sum())
    return total, count


def _train_composer(config: TrainConfig, dist: _Dist) -> dict[str, Any]:
    corpus = Path(config.corpus)
    train_seqs = data.melodies(corpus, "train", config.limit)
    valid_seqs = data.melodies(corpus, "valid", config.limit)
    if not train_seqs or not valid_seqs:
        raise data.DataError(f"{corpus}: the melodies table has no train or valid rows")
    windows = data.token_windows(train_seqs, config.window)
    model = MelodyLSTM(**config.model_args)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    run = _Run(config, dist, {"model": model}, {"model": opt}, lower_is_better=True)
    tokens_done, seconds = 0, 0.0
    while run.epoch < config.epochs:
        model.train()
        started = time.perf_counter()
        epoch_tokens = 0
        for batch in _batches(
            windows, config.batch_size, config.seed + run.epoch, dist, config.max_batches
        ):
            inputs, targets = data.pad_batch(batch)
            logits, _ = model(inputs)
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD
            )
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            _sync_grads(model, dist)
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            epoch_tokens += int((targets != PAD).sum())
        seconds += time.perf_counter() - started
        tokens_done += epoch_tokens * dist.world
        total, count = composer_nll(model, valid_seqs)
        nll = total / count
        if run.end_epoch(nll, {"valid_nll": nll, "valid_ppl": math.exp(nll)}):
            break
    return {
        "model": "composer",
        "epochs": run.epoch,
        "best_epoch": run.best_epoch,
        "valid_nll": run.best,
        "train_tokens": tokens_done,
        "train_tokens_per_s": tokens_done / seconds if seconds else 0.0,
        "processes": dist.world,
    }


# ------------------------------------------------------------------ chorale
def chorale_nll(model: ChoraleLSTM, rolls: list[torch.Tensor]) -> tuple[float, int]:
    """(sum over frames of the 88-key Bernoulli NLL, frames); frame 0 is predicted from silence."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for roll in rolls:
            inputs = torch.cat([torch.zeros(1, roll.shape[1]), roll[:-1]]).unsqueeze(0)
            logits = model(inputs)[0]
            total += float(F.binary_cross_entropy_with_logits(logits, roll, reduction="sum"))
            count += roll.shape[0]
    return total, count


def _train_chorale(config: TrainConfig, dist: _Dist) -> dict[str, Any]:
    corpus = Path(config.corpus)
    train_rolls = data.chorale_rolls(corpus, "train", config.limit)
    valid_rolls = data.chorale_rolls(corpus, "valid", config.limit)
    if not train_rolls or not valid_rolls:
        raise data.DataError(f"{corpus}: the chorales table has no train or valid rows")
    model = ChoraleLSTM(**config.model_args)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    run = _Run(config, dist, {"model": model}, {"model": opt}, lower_is_better=True)
    frames_done, seconds = 0, 0.0
    while run.epoch < config.epochs:
        model.train()
        started = time.perf_counter()
        for batch in _batches(
            train_rolls, config.batch_size, config.seed + run.epoch, dist, config.max_batches
        ):
            length = max(r.shape[0] for r in batch)
            targets = torch.zeros(len(batch), length, batch[0].shape[1])
            mask = torch.zeros(len(batch), length, 1)
            for i, roll in enumerate(batch):
                targets[i, : roll.shape[0]] = roll
                mask[i, : roll.shape[0]] = 1.0
            inputs = torch.cat([torch.zeros_like(targets[:, :1]), targets[:, :-1]], dim=1)
            logits = model(inputs)
            loss = (
                F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * mask
            ).sum() / mask.sum()
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            _sync_grads(model, dist)
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            frames_done += int(mask.sum()) * dist.world
        seconds += time.perf_counter() - started
        total, count = chorale_nll(model, valid_rolls)
        if run.end_epoch(total / count, {"valid_frame_nll": total / count}):
            break
    return {
        "model": "chorale",
        "epochs": run.epoch,
        "best_epoch": run.best_epoch,
        "valid_frame_nll": run.best,
        "train_frames_per_s": frames_done / seconds if seconds else 0.0,
        "processes": dist.world,
    }


# --------------------------------------------------------------- improviser
def generate_bars(
    generator: BarGenerator,
    chords: torch.Tensor,
    prev: torch.Tensor,
    seed: int | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Sampled step classes (n, 16) for chords and previous bars (both (n, 16) long)."""
    generator.eval()
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.no_grad():
        z = torch.randn(chords.shape[0], generator.noise, generator=gen)
        logits = generator(z, chords, one_hot_bar(prev)) / max(temperature, 1e-3)
        probs = torch.softmax(logits, dim=-1).reshape(-1, STEP_CLASSES)
        return torch.multinomial(probs, 1, generator=gen).reshape(-1, BAR_STEPS)


def improviser_score(figures: dict[str, float], real_ctr: float) -> float:
    """Model selection: histogram overlap, minus the relative chord-tone-ratio error."""
    gap = abs(figures["chord_tone_ratio"] - real_ctr) / max(real_ctr, 1e-6)
    return figures["pc_overlap"] + figures["interval_overlap"] - gap


def _train_improviser(config: TrainConfig, dist: _Dist) -> dict[str, Any]:
    from training.metrics import bar_statistics, chord_tone_ratio

    corpus = Path(config.corpus)
    train = data.bars(corpus, "train", config.limit)
    valid = data.bars(corpus, "valid", config.limit)
    if not len(train) or not len(valid):
        raise data.DataError(f"{corpus}: the bars table has no train or valid rows")
    generator = BarGenerator(**config.model_args)
    critic = BarDiscriminator()
    g_opt = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(critic.parameters(), lr=config.lr, betas=(0.5, 0.999))
    run = _Run(
        config,
        dist,
        {"generator": generator, "discriminator": critic},
        {"generator": g_opt, "discriminator": d_opt},
        lower_is_better=False,
    )
    real_ctr = chord_tone_ratio(valid.steps.tolist(), valid.chords.tolist())
    indices = list(range(len(train)))
    bars_done, seconds = 0, 0.0
    while run.epoch < config.epochs:
        generator.train()
        critic.train()
        started = time.perf_counter()
        for batch in _batches(
            indices, config.batch_size, config.seed + run.epoch, dist, config.max_batches
        ):
            part = train.subset(torch.tensor(batch))
            prev = one_hot_bar(part.prev)
            real = one_hot_bar(part.steps)
            z = torch.randn(len(batch), generator.noise)
            fake = F.gumbel_softmax(generator(z, part.chords, prev), tau=1.0, hard=True)
            # Discriminator: one-sided label smoothing (real = 0.9), as MidiNet does.
            real_logit, real_feat = critic(real, part.chords, prev)
            fake_logit, _ = critic(fake.detach(), part.chords, prev)
            d_loss = F.binary_cross_entropy_with_logits(
                real_logit, torch.full_like(real_logit, 0.9)
            ) + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
            d_opt.zero_grad()
            d_loss.backward()  # type: ignore[no-untyped-call]
            _sync_grads(critic, dist)
            d_opt.step()
            # Generator: fool the critic, and match its mean features on real bars.
            fake_logit, fake_feat = critic(fake, part.chords, prev)
            g_loss = F.binary_cross_entropy_with_logits(
                fake_logit, torch.ones_like(fake_logit)
            ) + F.mse_loss(fake_feat.mean(0), real_feat.detach().mean(0))
            g_opt.zero_grad()
            g_loss.backward()  # type: ignore[no-untyped-call]
            _sync_grads(generator, dist)
            g_opt.step()
            bars_done += len(batch) * dist.world
        seconds += time.perf_counter() - started
        generated = generate_bars(generator, valid.chords, valid.prev, seed=config.seed)
        figures = bar_statistics(generated.tolist(), valid.chords.tolist(), valid.steps.tolist())
        score = improviser_score(figures, real_ctr)
        if run.end_epoch(score, {"score": score, **figures}):
            break
    return {
        "model": "improviser",
        "epochs": run.epoch,
        "best_epoch": run.best_epoch,
        "valid_score": run.best,
        "real_chord_tone_ratio": real_ctr,
        "train_bars_per_s": bars_done / seconds if seconds else 0.0,
        "processes": dist.world,
    }


def train(values: dict[str, Any]) -> dict[str, Any]:
    """Train one model from plain config values; returns the summary (on every rank)."""
    config = TrainConfig.from_dict(values)
    dist = _setup(config)
    try:
        trainer = {
            "composer": _train_composer,
            "chorale": _train_chorale,
            "improviser": _train_improviser,
        }[config.model]
        summary = trainer(config, dist)
        if dist.main:
            (Path(config.out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary
    finally:
        if dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
