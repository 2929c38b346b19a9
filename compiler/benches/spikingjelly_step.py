"""The speed baseline of `train_step`: one training step of the same models in SpikingJelly.

Issue 6 sets the simulator's speed goal against SpikingJelly 2.0 on PyTorch CPU, on the
same 2-core machine. This script times that step here, so that both are measured on one
machine in one sitting (`cargo bench -p snnc --bench train_step` for the simulator):

    python3 -m venv /tmp/sj && /tmp/sj/bin/pip install torch spikingjelly
    /tmp/sj/bin/python compiler/benches/spikingjelly_step.py [--threads N] [NAME ...]

It is not part of the test suite and nothing in the repository depends on it (PyTorch is a
download of several hundred megabytes). The networks are those of `models/fc784_512.snn`
and `models/vgg_cifar_small.snn`: the same layers, timesteps, batch, LIF neuron (beta 0.75
as SpikingJelly's `tau = 4` without input decay, hard reset to 0, detached reset, arctan
surrogate with alpha 2), loss and Adam, on random input spikes of density 20% as in
`train_step`. A step is forward, backward and the optimizer update, in float32 (the
framework's usual CPU precision); the time is the median of the timed steps after warm-up.
"""

import argparse
import statistics
import time

import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate


def lif():
    """The models' neuron: beta 0.75, threshold 1, hard reset to 0, detached, atan(2)."""
    return neuron.LIFNode(
        tau=4.0,
        decay_input=False,
        v_threshold=1.0,
        v_reset=0.0,
        detach_reset=True,
        surrogate_function=surrogate.ATan(alpha=2.0),
        step_mode="m",
    )


def fc784_512():
    """`models/fc784_512.snn`: 784-512-10, T=8, B=32, MSE on the firing rate."""
    net = torch.nn.Sequential(
        layer.Linear(784, 512, bias=False, step_mode="m"),
        lif(),
        layer.Linear(512, 10, bias=False, step_mode="m"),
        lif(),
    )
    return net, (8, 32, 784), "mse"


def vgg_cifar_small():
    """`models/vgg_cifar_small.snn`: three 3x3 convs, two average pools, an fc; T=4, B=8,
    cross-entropy on the firing rate."""
    net = torch.nn.Sequential(
        layer.Conv2d(3, 64, 3, padding=1, bias=False, step_mode="m"),
        lif(),
        layer.Conv2d(64, 128, 3, padding=1, bias=False, step_mode="m"),
        lif(),
        layer.AvgPool2d(2, 2, step_mode="m"),
        layer.Conv2d(128, 256, 3, padding=1, bias=False, step_mode="m"),
        lif(),
        layer.AvgPool2d(2, 2, step_mode="m"),
        layer.Flatten(step_mode="m"),
        layer.Linear(256 * 8 * 8, 10, bias=False, step_mode="m"),
        lif(),
    )
    return net, (4, 8, 3, 32, 32), "ce"


MODELS = {"fc784_512": fc784_512, "vgg_cifar_small": vgg_cifar_small}


def bench(name, steps, warmup):
    """Times `steps` training steps of `name` after `warmup` untimed ones; returns the
    median and the smallest step time in seconds."""
    torch.manual_seed(1)
    net, shape, loss_kind = MODELS[name]()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    x = (torch.rand(shape) < 0.2).float()
    batch = shape[1]
    labels = torch.arange(batch) % 10
    one_hot = torch.nn.functional.one_hot(labels, 10).float()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        functional.reset_net(net)
        rate = net(x).mean(0)
        if loss_kind == "mse":
            loss = torch.nn.functional.mse_loss(rate, one_hot)
        else:
            loss = torch.nn.functional.cross_entropy(rate, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(MODELS), help="models to time (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch intra-op threads (default 2)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.names:
        median, best = bench(name, args.steps, warmup=3)
        print(f"{name:<18} spikingjelly {args.threads} threads  step {median * 1e3:9.2f} ms (median of {args.steps}, min {best * 1e3:.2f})")


if __name__ == "__main__":
    main()
