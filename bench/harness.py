"""``python -m bench`` (also ``convgan bench``): our Keras-on-JAX training against PyTorch, side by side, in one run.

Sections (each a key of the result):

- ``convnet``: training throughput of our default classifier and of its PyTorch twin
  (``bench.torch_peers.translate``: same layers, parameter count, batch size, AdamW, float32).
- ``dcgan``: the same for one DCGAN training step (discriminator update, generator update
  through the updated discriminator, EMA of the generator), batch 64.
- ``time_to_accuracy``: seconds of training until the test accuracy first reaches 0.91 on
  Fashion-MNIST and 0.97 on digits with the dataset's preset, the final accuracy, and the
  peak RSS of that training process (``python -m core train`` in a fresh process).
- ``latency``: sampling 64 images and classifying one image (warm), and the first training
  step of a fresh process with a cold and with a warm persistent compilation cache.

Throughput is steady state: each side first runs warm-up steps (ours: XLA compilation,
reported apart as ``compile_seconds``), then both run ``rounds`` timed rounds of ``steps``
steps, in pairs (ours then PyTorch, PyTorch then ours in the next pair) so that the two rounds
of a pair see the same machine load. ``ours_img_s`` and ``torch_img_s`` are each side's best
round; ``ratio`` is the median over pairs of ours / PyTorch, which cancels the slow phases a
shared machine goes through, where both sides slow down for several rounds at once (a ratio of
best rounds can pair one side's fast phase with the other's slow one; it is ``best_ratio``).
Ours runs through ``model.fit`` on the same ``ShuffledBatches`` as real training; PyTorch runs
a plain eager loop over the same batches with ``torch.set_num_threads`` set to the cores this
process may use. Both sides run on the same malloc settings, those of every
training process (``backend.keep_freed_memory``). Nothing here touches the user's run store:
training processes get a temporary ``CONVGAN_HOME``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import keras
import numpy as np

from bench import timing, torch_peers, unet
from core.common import backend
from core.common.config import config_for
from core.common.errors import UserError
from core.data import datasets
from core.evaluation import sampling
from core.models.gans import build_gan
from core.runs import training
from core.store.store import RunStore
from core.training import classifier, gan

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """How long each part of the benchmark runs."""

    rounds: int = 7  # timed rounds per side, in pairs of one round of ours and one of PyTorch
    convnet_steps: int = 60  # training steps per round (batch 128)
    dcgan_steps: int = 20  # training steps per round (batch 64)
    warmup_steps: int = 5
    time_to_accuracy: bool = True  # train to 0.91 (Fashion-MNIST) and 0.97 (digits)
    latency: bool = True

    @classmethod
    def quick(cls) -> BenchSettings:
        """About a minute on 2 cores: short rounds, no time-to-accuracy runs."""
        return cls(rounds=3, convnet_steps=15, dcgan_steps=5, warmup_steps=2, time_to_accuracy=False)


def run_benchmark(settings: BenchSettings = BenchSettings(), *, dataset: str | None = None,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every section and return the results (see the module docstring).

    Args:
        settings: sizes of the runs (``BenchSettings.quick()`` for a smoke run).
        dataset: data for the throughput sections; default Fashion-MNIST (28x28) when it is
            installed, else the bundled 8x8 digits.
        log: where progress lines go.

    Raises:
        ConfigError: PyTorch is not installed (``pip install -r requirements-bench.txt``).
    """

    torch = torch_peers.import_torch()
    threads = backend.cpu_cores()
    torch.set_num_threads(threads)
    # As in every training process (``core.runs.training.execute``); process-wide, so PyTorch's
    # side gets the same malloc.
    keeps_freed_memory = backend.keep_freed_memory()
    data = _throughput_data(dataset)
    results: dict[str, Any] = {
        "machine": {**_machine(torch, threads), "malloc_keeps_freed_memory": keeps_freed_memory},
        "dataset": data.info.name,
        "settings": dataclasses.asdict(settings),
    }
    log(f"benchmark on {results['machine']['device']} with {threads} threads, data {data.info.name}")
    log("convnet: training throughput, ours vs PyTorch ...")
    results["convnet"], classifier_model = _convnet_throughput(data, settings, torch)
    log("dcgan: training-step throughput, ours vs PyTorch ...")
    results["dcgan"], gan_model = _dcgan_throughput(data, settings, torch)
    log("unet: restoration training-step throughput (denoise), ours vs PyTorch ...")
    results["unet"] = unet.unet_throughput(data, settings, torch)
    if settings.latency:
        log("latency: sampling, classifying, compile with and without the cache ...")
        results["latency"] = _latency(classifier_model, gan_model)
    if settings.time_to_accuracy:
        results["time_to_accuracy"] = {}
        for name, target in (("fashion_mnist", 0.91), ("digits", 0.97)):
            log(f"time to accuracy: convnet on {name} to {target} ...")
            try:
                results["time_to_accuracy"][name] = time_to_accuracy(name, target)
            except UserError as err:  # e.g. Fashion-MNIST not installed: the rest still stands
                results["time_to_accuracy"][name] = {"target": target, "skipped": str(err)}
    return results


# -- throughput ------------------------------------------------------------------------------


def _convnet_throughput(data, settings: BenchSettings, torch) -> tuple[dict[str, Any], Any]:
    config = config_for("convnet", dataset=data.info.name)
    keras.utils.set_random_seed(config.seed)
    # Augmentation is part of training, not of the architecture, and the Fashion-MNIST preset
    # trains without it: both sides run the bare network.
    with training.data_parallel(config.batch_size):  # as in every training run
        ours = classifier.build_classifier("convnet", data.image_shape, data.num_classes, augment=False)
        classifier.compile_classifier(ours, config, total_steps=settings.warmup_steps + settings.rounds * settings.convnet_steps)
    twin = torch_peers.translate(ours)
    optimizer = torch.optim.AdamW(twin.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay,
                                  eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    batch_size = config.batch_size

    def torch_step(images, labels):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(twin(torch.from_numpy(images)), torch.from_numpy(labels.astype(np.int64)))
        loss.backward()
        optimizer.step()

    twin.train()
    batches = classifier.ShuffledBatches(data.x_train, data.y_train, batch_size, seed=0)
    with training.data_parallel(batch_size):
        result = timing.side_by_side(
            ours_fit=lambda count: timing.fit_seconds(ours, timing.first_batches(batches, count)),
            torch_step=torch_step, batches=batches, steps=settings.convnet_steps, settings=settings,
        )
    result.update(batch_size=batch_size, params_ours=torch_peers.keras_trainable_count(ours),
                  params_torch=torch_peers.parameter_count(twin), **timing.step_cost(ours, batches[0], result))
    return result, ours


def _dcgan_throughput(data, settings: BenchSettings, torch) -> tuple[dict[str, Any], Any]:
    config = config_for("dcgan", dataset=data.info.name)
    keras.utils.set_random_seed(config.seed)
    with training.data_parallel(config.batch_size):
        ours = build_gan(config, data.image_shape)
    generator = torch_peers.translate(ours.generator)
    discriminator = torch_peers.translate(ours.discriminator)[1:]  # takes the generator's NCHW images
    ema = torch_peers.translate(ours.generator)
    ema.load_state_dict(generator.state_dict())
    ema_parameters, parameters = list(ema.parameters()), list(generator.parameters())

    def adam(module):
        return torch.optim.Adam(module.parameters(), lr=config.learning_rate, betas=(config.beta_1, 0.999), eps=1e-7)

    g_optimizer, d_optimizer = adam(generator), adam(discriminator)
    softplus = torch.nn.functional.softplus
    batch_size, latent_dim = config.batch_size, config.latent_dim

    def torch_step(images, _labels):
        real = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        fake = generator(torch.randn(batch_size, latent_dim))
        logits = discriminator(torch.cat([real, fake.detach()]))
        d_loss = softplus(-logits[:batch_size]).mean() + softplus(logits[batch_size:]).mean()
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        # The generator's update through the updated discriminator, whose own gradients are
        # not needed (our JAX step does not compute them either).
        discriminator.requires_grad_(False)
        g_loss = softplus(-discriminator(fake)).mean()
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optimizer.step()
        discriminator.requires_grad_(True)
        with torch.no_grad():
            torch._foreach_lerp_(ema_parameters, parameters, 1.0 - config.ema_decay)

    generator.train()
    discriminator.train()
    batches = gan.ShuffledBatches(data.x_train, None, batch_size, seed=0)
    with training.data_parallel(batch_size):
        result = timing.side_by_side(
            ours_fit=lambda count: timing.fit_seconds(ours, timing.first_batches(batches, count)),
            torch_step=torch_step, batches=batches, steps=settings.dcgan_steps, settings=settings,
        )
    params_ours = torch_peers.keras_trainable_count(ours.generator) + torch_peers.keras_trainable_count(
        ours.discriminator)
    result.update(batch_size=batch_size, params_ours=params_ours,
                  params_torch=torch_peers.parameter_count(generator) + torch_peers.parameter_count(discriminator),
                  **timing.step_cost(ours, batches[0], result))
    return result, ours












# -- latency ---------------------------------------------------------------------------------


def _latency(classifier_model, gan_model) -> dict[str, Any]:
    """Warm latencies of the models timed above, and first-step times of fresh processes."""

    result: dict[str, Any] = {}
    sampling.sample(gan_model, 64, seed=0)  # compiles the sampling function
    result["sample_64_ms"] = _best_ms(lambda: sampling.sample(gan_model, 64, seed=1))
    image = np.zeros((1, *classifier_model.input_shape[1:]), np.uint8)
    names = [str(index) for index in range(classifier_model.output_shape[-1])]
    classifier.classify_images(classifier_model, image, names)
    result["classify_1_ms"] = _best_ms(lambda: classifier.classify_images(classifier_model, image, names))
    with tempfile.TemporaryDirectory(prefix="convgan-bench-") as home:
        runs = [_train_process(home, "convnet", "digits", epochs=1) for _ in range(2)]
    result["first_step_seconds_cold_cache"] = runs[0]["compile_seconds"]
    result["first_step_seconds_warm_cache"] = runs[1]["compile_seconds"]
    return result


def _best_ms(function, repeats: int = 10) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 2)


# -- time to accuracy ------------------------------------------------------------------------


def time_to_accuracy(dataset: str, target: float, *, epochs: int | None = None) -> dict[str, Any]:
    """Train the dataset's convnet preset in a fresh process; when did test accuracy reach ``target``?

    Returns:
        ``seconds`` of training (whole epochs, the first one's compilation included) until the
        first epoch whose test accuracy is at least ``target`` (None if none did),
        ``epochs_needed``, ``final_accuracy``, ``epochs``, ``total_seconds``,
        ``compile_seconds`` and ``peak_rss_mb`` of the training process.
    """
    with tempfile.TemporaryDirectory(prefix="convgan-bench-") as home:
        run = _train_process(home, "convnet", dataset, epochs=epochs)

        table = RunStore(home).metric_table(run["run_id"])
    seconds, reached = 0.0, None
    for epoch, accuracy, epoch_seconds in zip(table["epoch"], table["val_accuracy"], table["epoch_seconds"],
                                              strict=True):
        seconds += epoch_seconds
        if reached is None and accuracy >= target:
            reached = {"seconds": round(seconds, 1), "epochs_needed": epoch}
    return {
        "target": target, **(reached or {"seconds": None, "epochs_needed": None}),
        "final_accuracy": run["metrics"]["test_accuracy"], "epochs": len(table["epoch"]),
        "total_seconds": round(seconds, 1), "compile_seconds": run["compile_seconds"],
        "peak_rss_mb": run["peak_rss_mb"],
    }


def _train_process(home: str, model: str, dataset: str, epochs: int | None = None) -> dict[str, Any]:
    """``python -m core train --json`` in a fresh process; its result and peak RSS (the run records it)."""
    command = [sys.executable, "-m", "core", "train", "--model", model, "--dataset", dataset, "--json"]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "CONVGAN_HOME": home})
    if process.returncode != 0:
        last = (process.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"benchmark training run failed ({' '.join(command[2:])}): {last}")
    run = json.loads(process.stdout.strip().splitlines()[-1])
    return {"run_id": run["run_id"], "metrics": run["metrics"],
            "compile_seconds": run["metrics"].get("compile_seconds"), "peak_rss_mb": run["metrics"]["peak_rss_mb"]}


# -- helpers ---------------------------------------------------------------------------------


def _throughput_data(spec: str | None):
    if spec is not None:
        return datasets.load_dataset(spec)
    try:
        return datasets.load_dataset("fashion_mnist")
    except UserError:
        return datasets.load_dataset("digits")


def _machine(torch, threads: int) -> dict[str, Any]:
    return {
        "device": str(jax.devices()[0].device_kind), "jax_backend": jax.default_backend(),
        "jax_devices": len(jax.local_devices()), "threads": threads,
        "versions": {"jax": jax.__version__, "keras": keras.__version__, "torch": torch.__version__,
                     "python": sys.version.split()[0]},
    }


def format_table(results: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    lines = ["ours and torch img/s: best rounds; ratio: median over pairs of rounds (best_ratio: of best rounds)",
             f"{'':10} {'ours img/s':>11} {'torch img/s':>12} {'ratio':>6} {'best_ratio':>10} {'params ours':>12} "
             f"{'params torch':>13} {'compile s':>10} {'GFLOP/step':>11} {'ours GFLOP/s':>13}"]
    for name in ("convnet", "dcgan", "unet"):
        row = results.get(name)
        if row:
            lines.append(f"{name:10} {row['ours_img_s']:11.0f} {row['torch_img_s']:12.0f} {row['ratio']:6.2f} {row['best_ratio']:10.2f} "
                         f"{row['params_ours']:12d} {row['params_torch']:13d} {row['compile_seconds']:10.2f} "
                         f"{row['step_gflop']:11.2f} {row['ours_gflop_s']:13.1f}")
    for dataset, row in (results.get("time_to_accuracy") or {}).items():
        if "skipped" in row:
            lines.append(f"time to {row['target']} on {dataset}: skipped ({row['skipped']})")
            continue
        reached = "not reached" if row["seconds"] is None else f"{row['seconds']} s ({row['epochs_needed']} epochs)"
        lines.append(f"time to {row['target']} on {dataset}: {reached}; final {row['final_accuracy']:.4f} after "
                     f"{row['epochs']} epochs; peak RSS {row['peak_rss_mb']} MB")
    latency = results.get("latency")
    if latency:
        lines.append("latency: " + ", ".join(f"{key} {value}" for key, value in latency.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from command-line arguments; return the exit status (2: bad usage)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short rounds, no time-to-accuracy runs (about a minute)")
    parser.add_argument("--dataset", help="data for the throughput rounds (default: fashion_mnist if installed, else digits)")
    parser.add_argument("--json", action="store_true", help="print only the JSON object (the table goes to stderr)")
    args = parser.parse_args(argv)
    settings = BenchSettings.quick() if args.quick else BenchSettings()
    progress = sys.stderr if args.json else sys.stdout
    try:
        results = run_benchmark(settings, dataset=args.dataset,
                                log=lambda line: print(line, file=progress, flush=True))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(results), file=progress)
    print(json.dumps(results, default=lambda value: value.tolist() if hasattr(value, "tolist") else str(value)))
    return 0
