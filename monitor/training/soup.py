"""Weight averaging (a "greedy soup", Wortsman et al. 2022): one FPNet whose weights are a mean of runs'.

Fine-tunes that start from one model stay in the same basin of the loss, so the mean of their
weights is a model too, and it averages away part of each run's noise. It costs nothing at
inference, unlike averaging the runs' outputs. A plain mean is dragged down by weaker runs, so
runs join best first and only while they lower the validation pose error: the choice is made on
validation crops alone.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from monitor.config import TrainingSettings
from monitor.fpnet import FPNet
from monitor.training.dataset import Samples, load_samples
from monitor.training.train import validate, validation_views

log = logging.getLogger(__name__)


class SoupError(Exception):
    """The runs named cannot be averaged (too few, or different networks)."""


def check_same_network(states: list[dict[str, torch.Tensor]]) -> None:
    keys = list(states[0])
    for state in states[1:]:
        if list(state) != keys or any(state[k].shape != states[0][k].shape for k in keys):
            raise SoupError("the runs to average do not hold the same network")


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of state dicts of one architecture."""
    check_same_network(states)
    return {k: torch.stack([s[k].double() for s in states]).mean(dim=0).to(v.dtype) for k, v in states[0].items()}


def soup_run(work: Path, name: str, ingredients: list[str], settings: TrainingSettings,
             export: Path | None = None, samples: Samples | None = None) -> dict:
    """Greedy soup of the best models of `ingredients` (runs in WORK/runs), saved as run `name`."""
    if len(ingredients) < 2:
        raise SoupError(f"a soup needs at least two runs, got {ingredients}")
    paths = [work / "runs" / run / "best.pt" for run in ingredients]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: train run {path.parent.name!r} first")
    folder = work / "runs" / name
    if (folder / "best.pt").exists():
        raise FileExistsError(f"run {folder} exists: choose another --run")
    states = dict(zip(ingredients, (torch.load(p, map_location="cpu", weights_only=True) for p in paths)))
    check_same_network(list(states.values()))   # before the slow part
    samples = samples if samples is not None else load_samples(work, settings)
    val = samples.subset(samples.validation)
    views = validation_views(val, settings)

    def score(state: dict[str, torch.Tensor]) -> dict:
        net = FPNet()
        net.load_state_dict(state)
        return {k: None if v is None else float(v) for k, v in validate(net, views, val).items()}

    alone = {run: score(state) for run, state in states.items()}
    order = sorted(ingredients, key=lambda run: alone[run]["val_mean"])
    kept, soup, best = [order[0]], states[order[0]], alone[order[0]]
    tried = {}
    for run in order[1:]:
        candidate = average_states([states[r] for r in kept + [run]])
        tried[run] = score(candidate)
        log.info("soup %s + %s: val_mean %.4f (was %.4f)", "+".join(kept), run, tried[run]["val_mean"],
                 best["val_mean"])
        if tried[run]["val_mean"] < best["val_mean"]:
            kept, soup, best = kept + [run], candidate, tried[run]
    report = {"run": str(folder), "best_model": str(folder / "best.pt"), "kept": kept, "soup": best,
              "alone": alone, "with_each_added": tried}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(soup, folder / "best.pt")
    (folder / "soup.json").write_text(json.dumps(report, indent=1))
    if export is not None:
        export.parent.mkdir(parents=True, exist_ok=True)
        torch.save(soup, export)
    return report
