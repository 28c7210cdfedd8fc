"""The one trainer of colorbench's gradient-trained models; it knows no model, only the protocol of
models/trainable.py.

Per epoch: a shuffled loader at the model's ``image_size``, one :class:`~colorbench.models.trainable.StepContext`
whose rng
is seeded by (seed, epoch), the model's ``training_step`` on every batch (its loss terms logged under the names it
declares), validation with the model's declared inputs, an epoch checkpoint of every trained module and
optimiser. Then the summary (best/worst epoch, divergence flag of adversarial models) and the final weights.

Training writes, under ``<run>/train/<model>/``: ``steps.csv`` (losses every ``log_every`` steps), ``epochs.csv``
(mean losses and validation metrics per epoch), ``checkpoints/epoch-NNN.*`` (bench/training/epochs.py; once the
training has finished only the last ``--keep-checkpoints`` epochs' weights remain, no optimizer state) and
``summary.json``. The final model state goes to ``<run>/checkpoints/<model>.safetensors``; a later run with the
same model version, options, training manifest and resize mode reuses it and trains nothing.

Determinism: all randomness of epoch ``e`` (shuffling order, the model's draws from ``step.rng``) comes from
generators seeded by ``(seed, e)``, and a checkpoint is written after each epoch, so a resumed run on the CPU ends
bit-for-bit equal to an uninterrupted one (tests/test_train.py). On CUDA/XLA bf16 autocast and non-deterministic
kernels make runs close, not identical.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from tqdm import tqdm

from colorbench.core.cachekey import cache_key
from colorbench.core.crashpoints import crash_point
from colorbench.core.device import DistInfo, all_reduce_sum, barrier, fixed_shapes, memory_format, step_done
from colorbench.core.errors import BenchError
from colorbench.core.files import atomic_write_bytes
from colorbench.core.values import integer
from colorbench.data.loader import Batch, Preprocess, iterate_batches, make_loader
from colorbench.data.splits import Manifest
from colorbench.io.checkpoints import cached_state, load_state, save_state
from colorbench.io.layout import EPOCH_CHECKPOINTS, EPOCHS_FILE, STEPS_FILE, SUMMARY_FILE, RunLayout
from colorbench.models.base import Colorizer
from colorbench.models.captions import readable_entries
from colorbench.models.trainable import StepContext, TrainableModel, TrainingData
from colorbench.training.epochs import Checkpoints, CsvLog, TrainState
from colorbench.training.summary import batch_exceeds_data, summarize
from colorbench.training.validation import VAL_METRICS, split_validation, validate

logger = logging.getLogger(__name__)
ALONE = DistInfo()


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**63)


def prepare_state(model: TrainableModel, device: torch.device, dist: DistInfo = ALONE,
                  bf16: bool = True) -> tuple[TrainState, StepContext]:
    """Move the model's trained modules to ``device`` in train mode, wrap them for DDP, make its optimisers;
    returns the state and a step context (rng seeded 0; the loop gives each epoch its own)."""
    fmt = memory_format(device)
    # nn.Module.to takes memory_format, which torch's overloads of it leave out
    modules = {name: module.to(device, memory_format=fmt).train()  # type: ignore[call-overload]
               for name, module in model.trained_modules().items()}
    nets = dict(modules)
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        nets = {name: DistributedDataParallel(module, device_ids=ids) for name, module in modules.items()}
    optimizers = model.make_optimizers()

    def update(name: str, loss: torch.Tensor) -> None:
        optimizer = optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return TrainState(modules, optimizers, device), StepContext(device, torch.Generator(), nets, update, bf16)


def disk_note(name: str, checkpoints: Checkpoints, state: TrainState, epochs: int) -> str:
    """The line logged before a training: what its epoch checkpoints will take on disk."""
    each = state.size_bytes()
    keep = checkpoints.keep_last
    kept = epochs if keep is None else min(epochs, max(keep, 1))
    policy = ("every epoch's" if keep is None else
              f"the last {max(keep, 1)} while training, then the weights of the last {keep} once finished")
    return (f"training {name} for {epochs} epochs: each epoch checkpoint takes {each / 2**20:.1f} MiB; keeping "
            f"{policy} (--keep-checkpoints) needs up to {kept * each / 2**20:.1f} MiB in {checkpoints.folder}")


def train(model: Colorizer, name: str, inputs: tuple[str, ...], manifest: Manifest, out: Path, *,
          device: torch.device, dist: DistInfo = ALONE, resize_mode: str = "resize", workers: int = 0,
          resume: bool = True, progress: bool = True, keep_checkpoints: int | None = None, version: int = 1,
          bf16: bool = True) -> dict[str, object]:
    """Train ``model`` on ``manifest``'s usable images (or reuse a finished training); returns the training
    record for run.json. ``inputs``: the registry's declared inputs, the only ones validation gives the model.
    ``version``: the registry's model definition version (in the trained-weights key). Leaves the model on
    ``device`` in eval mode with the last epoch's weights. ``keep_checkpoints``: see :class:`Checkpoints`."""
    if not isinstance(model, TrainableModel):
        raise BenchError(f"model {name} is registered with training='train' but is no TrainableModel")
    loop = model.loop_settings()
    layout = RunLayout(out)
    folder = layout.train_dir(name)
    entries, left_out = readable_entries(manifest.usable, inputs)
    if left_out and dist.is_main:
        logger.info("%s: %d of %d training images have no caption and are left out of its training (first: %s)",
                    name, len(left_out), len(manifest.usable), left_out[0].image_id)
    fit_entries, val_entries = split_validation(entries, loop.n_val)
    model.prepare_training(TrainingData(fit_entries, manifest.source, resize_mode, layout.training_cache, device,
                                        workers, progress and dist.is_main))
    final = layout.checkpoint(name)
    options = model.options()
    payload = {"model": name, "version": version, "options": options, "train_manifest": manifest.sha256,
               "resize_mode": resize_mode}
    key = cache_key(payload)
    cached = cached_state(final, "trained weights") if resume else None
    if cached is not None and cached[1].get("key") == key:
        model.load_state_dict(cached[0])
        if dist.is_main:
            Checkpoints(layout.train_file(name, EPOCH_CHECKPOINTS), keep_last=keep_checkpoints).finish()
        return {"weights_from": "cached training", "checkpoint": str(final), "training": cached[1].get("summary")}

    if options.get("epochs") != loop.epochs:
        raise BenchError(f"model {name}: options() must record the epochs under 'epochs' ({loop.epochs}), so that a "
                         "longer run resumes a shorter one's checkpoints")
    resume_key = cache_key({**payload, "options": {k: v for k, v in options.items() if k != "epochs"}})
    checkpoints = Checkpoints(layout.train_file(name, EPOCH_CHECKPOINTS), resume_key, keep_checkpoints)
    if dist.is_main and batch_exceeds_data(loop, len(fit_entries)):
        logger.warning("%s: batch %d of the %s profile exceeds the %d training images, so every epoch is a single "
                       "step on all of them (recorded in run.json)", name, loop.batch_size, loop.profile,
                       len(fit_entries))
    state, step = prepare_state(model, device, dist, bf16)
    start, history = checkpoints.restore(state) if resume else (0, [])
    if not start and dist.is_main:
        checkpoints.clear()
    if dist.is_main and start < loop.epochs:
        logger.info(disk_note(name, checkpoints, state, loop.epochs - start))
    losses = model.loss_names
    steps_log = CsvLog(layout.train_file(name, STEPS_FILE), ("epoch", "step", *losses), start, dist.is_main)
    epoch_columns = ("epoch", "steps", "seconds", *(f"train_{n}" for n in losses), *(f"val_{m}" for m in VAL_METRICS))
    epochs_log = CsvLog(layout.train_file(name, EPOCHS_FILE), epoch_columns, start, dist.is_main)
    preprocess = Preprocess(loop.image_size, resize_mode)
    done = integer(history[-1]["step"]) if history else 0
    began = time.perf_counter()
    for epoch in range(start + 1, loop.epochs + 1):
        tick = time.perf_counter()
        # XLA: the last partial batch is dropped (a new shape is a new graph); its images come up in other
        # epochs' shuffles. A batch larger than the data stays one step on all of it (one shape every epoch).
        loader = make_loader(fit_entries, preprocess, batch_size=loop.batch_size, workers=workers, shuffle=True,
                             seed=epoch_seed(loop.seed, epoch), distributed=dist.enabled,
                             drop_last=fixed_shapes(device) and not batch_exceeds_data(loop, len(fit_entries)))
        bar = tqdm(iterate_batches(loader, device), total=len(loader), desc=f"train {name} {epoch}/{loop.epochs}",
                   unit="step", disable=not (progress and dist.is_main), leave=False)
        step.rng = torch.Generator().manual_seed(epoch_seed(loop.seed, epoch))
        means, n_steps = run_epoch(model, name, step, bar, epoch, done, steps_log)
        done += n_steps
        row: dict[str, object] = {"epoch": epoch, "step": done, "steps": n_steps, **means,
                                  **validate(model, inputs, state.modules, val_entries, preprocess, device, bf16),
                                  "seconds": time.perf_counter() - tick}
        history.append(row)
        epochs_log.append(row)
        if dist.is_main:
            checkpoints.save(epoch, state, {"history": history})
            checkpoints.prune(history)
        crash_point("train-epoch")
    summary = summarize(history, loop, options, model.adversarial_terms, fit_entries, val_entries, start,
                        left_out)
    summary.update({"seconds_this_run": time.perf_counter() - began, "folder": str(folder)})
    model.eval()
    for module in state.modules.values():
        module.eval()
    if dist.is_main:
        atomic_write_bytes(layout.train_file(name, SUMMARY_FILE), json.dumps(summary, indent=2).encode())
        save_state(final, model.state_dict(), {"key": key, "summary": summary})
        checkpoints.finish()
    barrier(dist)
    if not dist.is_main:  # DDP syncs parameters, not BatchNorm statistics: every rank takes rank 0's weights
        model.load_state_dict(load_state(final))
    return {"weights_from": "trained", "checkpoint": str(final), "training": summary}


def run_epoch(model: TrainableModel, name: str, step: StepContext, batches: Iterable[Batch], epoch: int, done: int,
              log: CsvLog) -> tuple[dict[str, float], int]:
    """Train on every batch once (``done``: steps before this epoch). Every ``log_every``-th step's losses go to
    ``log`` at the end of the epoch, copied to the host together with the epoch means: the step itself never waits
    for the device (no ``.item()``, ``float()`` or branch on a loss). A loss name the model did not declare in
    ``loss_names`` is an error. Returns the epoch's mean losses (over all ranks) and its steps."""
    declared, log_every = set(model.loss_names), model.loop_settings().log_every
    sums: dict[str, torch.Tensor] = {}
    logged: list[tuple[int, dict[str, torch.Tensor]]] = []
    n_steps = 0
    for batch in batches:
        if not len(batch):
            continue
        losses = model.training_step(batch, step)
        step_done(step.device)
        if undeclared := sorted(set(losses) - declared):
            raise BenchError(f"model {name}: training_step returned the loss term(s) {', '.join(undeclared)} not "
                             f"declared in its loss_names {tuple(model.loss_names)}")
        n_steps += 1
        for k, v in losses.items():
            sums[k] = sums.get(k, 0) + v.detach()
        if (done + n_steps) % log_every == 0:
            logged.append((done + n_steps, {k: v.detach() for k, v in losses.items()}))
    write_step_log(log, epoch, logged)
    names = sorted(sums)
    totals = all_reduce_sum(torch.stack([sums[k] for k in names] + [torch.tensor(float(n_steps), device=step.device)]))
    totals = totals.cpu()
    return {f"train_{k}": float(totals[i]) / max(float(totals[-1]), 1) for i, k in enumerate(names)}, n_steps


def write_step_log(log: CsvLog, epoch: int, logged: list[tuple[int, dict[str, torch.Tensor]]]) -> None:
    """Append the logged steps' losses (``(step, losses)`` pairs) to ``steps.csv`` after one copy to the host
    (float64, so each value reads as ``float(loss)`` would)."""
    if not logged:
        return
    values = iter(torch.stack([v.double() for _, losses in logged for v in losses.values()]).cpu().tolist())
    for number, losses in logged:
        log.append({"epoch": epoch, "step": number, **{k: next(values) for k in losses}})
