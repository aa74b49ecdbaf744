"""The benchmark's U-Net section: our restoration U-Net's training step (``fit``, L1 loss, Adam)
against a PyTorch twin of the same network with the same weights, on denoising pairs.

The twin is written out here rather than translated by ``bench.torch_peers``, whose translator
walks single-path models; the U-Net's skip connections make it a graph. :func:`torch_twin`
copies the Keras weights, so a test can check that both compute the same function.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from bench import timing, torch_peers
from core.common.config import config_for
from core.common.parallel import data_parallel
from core.data import degradations
from core.models.fast import stock_model
from core.models.restorers import build_restorer
from core.models.unet import levels_for

TASK = "denoise"  # input and output at one size: the step is the U-Net alone


def build_ours(image_shape, config):
    """Our compiled denoising U-Net for ``image_shape`` (``core.models.restorers``)."""
    return build_restorer(config, image_shape)


def torch_twin(keras_model, torch):
    """A PyTorch module computing what ``keras_model`` (a denoising ``build_unet``) computes,
    with its weights: channels-last 0..255 in, channels-first 0..255 out."""
    nn = torch.nn
    keras_model = stock_model(keras_model)  # names as the model file gives them, whatever the device's form

    def conv(name):
        layer = keras_model.get_layer(name)
        kernel, bias = (np.asarray(weight) for weight in layer.get_weights())
        module = nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[0], padding=kernel.shape[0] // 2)
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
            module.bias.copy_(torch.from_numpy(bias))
        return module

    height, width = (int(size) for size in keras_model.input_shape[1:3])
    levels = levels_for(height, width, depth=len([layer for layer in keras_model.layers
                                                   if layer.name.startswith("pool")]))

    class TwinUNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = nn.ModuleList([nn.ModuleList([conv(f"down{level}_a"), conv(f"down{level}_b")])
                                       for level in range(levels)])
            self.bottom = nn.ModuleList([conv("bottom_a"), conv("bottom_b")])
            self.up_conv = nn.ModuleList([conv(f"up{level}_conv") for level in range(levels)])
            self.up_block = nn.ModuleList([nn.ModuleList([conv(f"up{level}_block_a"), conv(f"up{level}_block_b")])
                                           for level in range(levels)])
            self.to_residual = conv("to_residual")

        def forward(self, images):  # (batch, height, width, channels) 0..255
            pixels = images.permute(0, 3, 1, 2) / 255.0
            x, skips = pixels, []
            for first, second in self.down:
                x = torch.relu(second(torch.relu(first(x))))
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
            x = torch.relu(self.bottom[1](torch.relu(self.bottom[0](x))))
            for level in reversed(range(levels)):
                x = torch.relu(self.up_conv[level](nn.functional.interpolate(x, scale_factor=2, mode="nearest")))
                x = torch.cat([x, skips[level]], dim=1)
                first, second = self.up_block[level]
                x = torch.relu(second(torch.relu(first(x))))
            return (pixels + self.to_residual(x)) * 255.0  # (batch, channels, height, width)

    return TwinUNet()


class _Pairs:
    """A few batches of (noisy, clean) float32 pairs, indexable as ``bench.timing`` expects."""

    def __init__(self, clean: np.ndarray, noise: float, batch_size: int, count: int):
        self.batch_size = batch_size
        rng = np.random.default_rng(0)
        self.batches = []
        for index in range(count):
            chosen = clean[rng.integers(0, len(clean), batch_size)]
            noisy = degradations.add_noise(chosen, noise, seed=0, first_index=index * batch_size)
            self.batches.append((noisy.astype(np.float32), chosen.astype(np.float32)))

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return self.batches[index]


def unet_throughput(data, settings, torch) -> dict[str, Any]:
    """Training-step throughput of our U-Net and its PyTorch twin (``bench.harness``'s fields)."""
    config = config_for("unet", dataset=data.info.name, task=TASK)
    keras.utils.set_random_seed(config.seed)
    with data_parallel(config.batch_size):
        ours = build_ours(data.image_shape, config)
    twin = torch_twin(ours, torch)
    optimizer = torch.optim.Adam(twin.parameters(), lr=config.learning_rate, eps=1e-7)  # Keras' epsilon

    def torch_step(noisy, clean):
        optimizer.zero_grad(set_to_none=True)
        target = torch.from_numpy(clean).permute(0, 3, 1, 2)
        loss = torch.nn.functional.l1_loss(twin(torch.from_numpy(noisy)), target)
        loss.backward()
        optimizer.step()

    twin.train()
    batches = _Pairs(data.x_train, config.noise, config.batch_size, count=8)
    with data_parallel(config.batch_size):
        result = timing.side_by_side(
            ours_fit=lambda count: timing.fit_seconds(ours, timing.first_batches(batches, count)),
            torch_step=torch_step, batches=batches, steps=settings.convnet_steps, settings=settings,
        )
    result.update(task=TASK, batch_size=config.batch_size, params_ours=torch_peers.keras_trainable_count(ours),
                  params_torch=torch_peers.parameter_count(twin), **timing.step_cost(ours, batches[0], result))
    return result
