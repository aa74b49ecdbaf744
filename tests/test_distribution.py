"""Data-parallel training over two (forced) CPU devices matches single-device training."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.xdist_group("distribution")


def _train(home, device_count):
    env = {**os.environ, "CONVGAN_HOME": str(home),
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={device_count}"}
    args = ["train", "--model", "convnet", "--dataset", "digits", "--epochs", "2", "--seed", "0",
            "--batch-size", "64", "--no-augment", "--json"]
    result = subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    from core.store.store import RunStore

    store = RunStore(home)
    run = store.get_run(payload["run_id"])
    return run, store.metric_table(payload["run_id"], "epoch")


def test_two_devices_match_one(tmp_path):
    single, single_curve = _train(tmp_path / "one", 1)
    double, double_curve = _train(tmp_path / "two", 2)
    assert double["device"].startswith("cpu") and "x2" not in single["device"]
    assert single_curve["loss"] == pytest.approx(double_curve["loss"], rel=2e-3, abs=2e-3)
    assert double["metrics"]["test_accuracy"] == pytest.approx(single["metrics"]["test_accuracy"], abs=0.02)


def _cpu_devices_seen(**env):
    program = "import core, jax; print(len(jax.devices()))"
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                            env={**{k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}, **env})
    return result.returncode, result.stdout.strip(), result.stderr.strip()


def test_the_cpu_is_one_device_unless_the_user_splits_it():
    assert _cpu_devices_seen()[1] == "1"
    assert _cpu_devices_seen(CONVGAN_CPU_DEVICES="1")[1] == "1"
    assert _cpu_devices_seen(CONVGAN_CPU_DEVICES="3")[1] == "3"
    # An explicit XLA_FLAGS count wins; a multi-host process is left alone.
    assert _cpu_devices_seen(XLA_FLAGS="--xla_force_host_platform_device_count=1")[1] == "1"
    assert _cpu_devices_seen(CONVGAN_CPU_DEVICES="2", CONVGAN_COORDINATOR="127.0.0.1:1")[1] == "1"


def test_a_bad_cpu_device_count_is_a_clear_error():
    code, _, err = _cpu_devices_seen(CONVGAN_CPU_DEVICES="two")
    assert code != 0 and "CONVGAN_CPU_DEVICES must be a whole number of at least 1, got 'two'" in err
    # The CLI says it in one line, with the usage-error status.
    env = {**os.environ, "CONVGAN_CPU_DEVICES": "0"}
    result = subprocess.run([sys.executable, "-m", "core", "runs"], capture_output=True, text=True, timeout=120,
                            env=env)
    assert result.returncode == 2
    assert result.stderr == "error: CONVGAN_CPU_DEVICES must be a whole number of at least 1, got '0'\n"


def test_a_data_parallel_gan_step_keeps_each_device_s_images():
    """Real and fake images share one discriminator pass without crossing devices: the only
    collectives in the compiled step are all-reduces (gradients, batch-norm moments, logs)."""
    program = """
import core, keras, numpy as np
from core.runs import training
from core.models.dcgan import DCGAN
with training.data_parallel(8):
    model = DCGAN((8, 8, 1), latent_dim=8, width=8)
    model.compile("adam", "adam")
    model.fit(np.zeros((8, 8, 8, 1), "uint8"), batch_size=8, epochs=1, verbose=0)
    state = tuple([v.value for v in group] for group in (model.trainable_variables,
        model.non_trainable_variables, model.optimizer.variables, model.metrics_variables))
    import jax
    images = np.zeros((8, 8, 8, 1), "uint8")
    images = jax.device_put(images, keras.distribution.distribution().get_data_layout(images.shape).backend_layout)
    print(jax.jit(model.train_step).lower(state, (images,)).compile().as_text())
"""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    hlo = result.stdout
    assert " all-reduce(" in hlo or "all-reduce-start" in hlo
    for collective in ("all-to-all", "collective-permute", "all-gather"):
        assert collective not in hlo, collective


def test_back_to_back_data_parallel_steps_do_not_deadlock():
    """``fit`` with no per-step callback launches each step before the last one has finished;
    on XLA:CPU's two devices the launches then race, each device enters a different step's
    all-reduce, and XLA aborts the process after 40 s. The benchmark's timed fit (and every
    run's callbacks) wait for each step, so 1,500 back-to-back steps finish."""
    program = """
import core
from bench import timing
from core.training import classifier
from core.data import datasets
from core.runs import training
from core.common.config import config_for
data = datasets.load_dataset("digits")
config = config_for("convnet", dataset="digits")
batches = classifier.ShuffledBatches(data.x_train, data.y_train, config.batch_size, seed=0)
with training.data_parallel(config.batch_size):
    model = classifier.build_classifier("convnet", data.image_shape, data.num_classes, augment=False)
    classifier.compile_classifier(model, config, total_steps=1500)
    timing.fit_seconds(model, timing.first_batches(batches, 1500))
print("finished")
"""
    env = {**os.environ, "CONVGAN_CPU_DEVICES": "2"}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("finished")


_CONV_BACKEND = """
import core, jax, jax.numpy as jnp
from jax import lax
conv = jax.jit(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
print("ynn" if "__ynn_fusion" in conv.lower(jnp.zeros((8, 28, 28, 16)), jnp.zeros((3, 3, 16, 32))).compile().as_text()
      else "eigen")
"""


def test_cpu_convolutions_run_on_eigen_unless_xla_flags_choose():
    def backend_of(**env):
        environment = {**{k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}, **env}
        result = subprocess.run([sys.executable, "-c", _CONV_BACKEND], capture_output=True, text=True, timeout=120,
                                env=environment)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert backend_of() == "eigen"
    assert backend_of(XLA_FLAGS="--xla_force_host_platform_device_count=2") == "eigen"  # added to the user's flags
    assert backend_of(XLA_FLAGS="--xla_cpu_experimental_ynn_fusion_type=+individual_convolution") == "ynn"


_SPLITS = """
import core, keras
from core.runs import training
for batch_size in (128, 127):
    with training.data_parallel(batch_size):
        print(batch_size, type(keras.distribution.distribution()).__name__)
"""


def test_training_splits_over_the_cpu_devices_the_user_asks_for():
    def splits(**env):
        environment = {**{k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "CONVGAN_CPU_DEVICES")},
                       **env}
        result = subprocess.run([sys.executable, "-c", _SPLITS], capture_output=True, text=True, timeout=120,
                                env=environment)
        assert result.returncode == 0, result.stderr
        return dict(line.split() for line in result.stdout.strip().splitlines())

    assert splits() == {"128": "NoneType", "127": "NoneType"}
    # A batch that does not split over the devices trains on one.
    assert splits(CONVGAN_CPU_DEVICES="2") == {"128": "DataParallel", "127": "NoneType"}
    assert splits(XLA_FLAGS="--xla_force_host_platform_device_count=2") == {"128": "DataParallel", "127": "NoneType"}


_INLINE = """
import core, jax, jax.numpy as jnp
step = jax.jit(lambda x: jnp.linalg.matrix_power(x, 64))
x = jnp.eye(1024) * 0.5
step(x).block_until_ready()
y = step(x)
print(y.is_ready())
"""


def test_cpu_programs_run_inline_on_the_calling_thread():
    """With JAX's async dispatch a CPU program returns before it has run, on a worker thread whose
    malloc arena maps fresh pages for large buffers; ``core`` turns it off."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}  # the setting concerns the CPU client only
    result = subprocess.run([sys.executable, "-c", _INLINE], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    # The same program in a process that did not import core returns before it has finished.
    plain = subprocess.run([sys.executable, "-c", _INLINE.replace("import core, ", "import ")],
                           capture_output=True, text=True, timeout=120, env=env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == "False"
