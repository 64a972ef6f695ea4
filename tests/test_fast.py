"""The acceleration layer computes what the plain path computes: the same loss, gradients and,
after a few steps, parameters. The CUDA-graph, bf16 and compile cases run where they can."""
import shutil

import pyro
import pytest
import torch
from pyro.infer import SVI
from torch import nn

from pyro_objects import fast
from pyro_objects.config import POLYGONS, Speed, quick
from pyro_objects.data import Dataset, polygons
from pyro_objects.elbo import from_config
from pyro_objects.fast.networks import BroadcastUpsample, group_norm_by_channel
from pyro_objects.guide import Guide
from pyro_objects.model import Model
from pyro_objects.nets import Upsample

GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
COMPILER = pytest.mark.skipif(not (shutil.which("g++") or shutil.which("clang++") or shutil.which("c++")),
                              reason="torch.compile on a CPU (Inductor) needs a C++ compiler, and none is on PATH")
# One U-Net level, without max pooling: max pooling sends the gradient to the largest value of each 2×2 window,
# and where two differ by rounding alone other kernels may pick the other one (1e-3 of the gradient's norm).
SMOOTH = quick(POLYGONS).replace(position_unet=(8,))


def networks(cfg, device="cpu", speed=None, seed=0):
    """A model and guide from the same initial weights, accelerated as speed asks (None: the plain path)."""
    pyro.clear_param_store()
    torch.manual_seed(seed)
    model, guide = Model(cfg).to(device), Guide(cfg).to(device)
    if speed is not None:
        fast.accelerate(model, guide, speed, device)
    return model, guide


def weights(model, guide):
    return torch.cat([p.detach().flatten().float().cpu() for m in (model, guide) for p in m.parameters()])


def run_steps(cfg, x, n, device="cpu", speed=None, optim=None):
    """Losses, first gradients and final weights of n stage-1 steps, seeded per step as training is."""
    model, guide = networks(cfg, device, speed)
    elbo = from_config(cfg)
    svi = SVI(model, guide, optim or pyro.optim.Adam({"lr": 1e-3}), loss=elbo)
    step = fast.stage_1_step(svi, elbo, speed or Speed(cuda_graphs=False), device)
    losses, grads = [], None
    with pyro.validation_enabled(False):
        for i in range(n):
            torch.manual_seed(100 + i)
            if i == 0:  # the gradient the first step takes, from the same weights and draws
                grads = torch.autograd.grad(elbo.differentiable_loss(model, guide, x[0], temperature=1.0, sigma=0.01),
                                            [p for m in (model, guide) for p in m.parameters()], allow_unused=True)
                grads = torch.cat([g.flatten().float().cpu() for g in grads if g is not None])
                torch.manual_seed(100 + i)
            losses.append(step(x[i % len(x)], 1.0 / (1 + i), 0.01 * (1 + i)))
    return losses, grads, weights(model, guide)


def close(a, b, tol):
    return (a - b).norm() <= tol * b.norm()


def test_fused_adam_and_channels_last_take_svi_steps_of_pyro_optim_adam():
    x = torch.rand(2, 4, 3, SMOOTH.image_size, SMOOTH.image_size)
    ref_losses, ref_grads, ref_weights = run_steps(SMOOTH, x, 4)
    losses, grads, w = run_steps(SMOOTH, x, 4, speed=Speed(channels_last=True, cuda_graphs=False),
                                 optim=fast.FusedAdam({"lr": 1e-3}))
    assert losses == pytest.approx(ref_losses, rel=1e-5)
    assert close(grads, ref_grads, 1e-5)
    assert close(w, ref_weights, 1e-6) and not torch.equal(w, weights(*networks(SMOOTH)))


class KeepingGrads(fast.FusedAdam):
    """FusedAdam as it was: the gradients stay after the update, for SVI to fill with zeros."""

    def __call__(self, params, *args, **kwargs):
        grads = {p: p.grad for p in params}
        super().__call__(params, *args, **kwargs)
        for p, g in grads.items():
            p.grad = g


def test_fused_adam_drops_the_gradients_and_takes_the_same_steps_as_when_it_kept_them():
    x = torch.rand(2, 4, 3, SMOOTH.image_size, SMOOTH.image_size)
    kept_losses, _, kept = run_steps(SMOOTH, x, 4, optim=KeepingGrads({"lr": 1e-3}))
    model, guide = networks(SMOOTH)
    svi = SVI(model, guide, fast.FusedAdam({"lr": 1e-3}), loss=from_config(SMOOTH))
    with pyro.validation_enabled(False):
        torch.manual_seed(100)
        svi.step(x[0], temperature=1.0, sigma=0.01)
    assert all(p.grad is None for m in (model, guide) for p in m.parameters())
    losses, _, dropped = run_steps(SMOOTH, x, 4, optim=fast.FusedAdam({"lr": 1e-3}))
    assert losses == kept_losses
    assert torch.equal(dropped, kept)


def test_fused_adam_keeps_pyro_optim_adams_state_and_each_goes_on_from_the_other():
    x = torch.rand(4, 3, SMOOTH.image_size, SMOOTH.image_size)

    def steps(optims):  # one step with each optimiser in turn, the state handed on
        model, guide = networks(SMOOTH)
        state = None
        with pyro.validation_enabled(False):
            for i, optim in enumerate(optims):
                if state is not None:
                    optim.set_state(state)
                svi = SVI(model, guide, optim, loss=from_config(SMOOTH))
                torch.manual_seed(i)
                svi.step(x, temperature=1.0, sigma=0.01)
                state = optim.get_state()
        return weights(model, guide), state

    plain = [pyro.optim.Adam({"lr": 1e-3}) for _ in range(3)]
    mixed = [fast.FusedAdam({"lr": 1e-3}), pyro.optim.Adam({"lr": 1e-3}), fast.FusedAdam({"lr": 1e-3})]
    (w_plain, s_plain), (w_mixed, s_mixed) = steps(plain), steps(mixed)
    assert close(w_mixed, w_plain, 1e-6)
    assert s_mixed.keys() == s_plain.keys()
    for name, s in s_plain.items():
        if s["state"]:
            assert int(s_mixed[name]["state"][0]["step"]) == 3
            assert torch.allclose(s_mixed[name]["state"][0]["exp_avg_sq"], s["state"][0]["exp_avg_sq"], rtol=1e-4)


def test_fused_adam_keeps_its_torch_adam_for_the_same_parameters_and_rebuilds_for_new_ones():
    pyro.clear_param_store()
    a, b = (pyro.param(name, torch.ones(n)).unconstrained() for name, n in (("a", 3), ("b", 2)))
    optim = fast.FusedAdam({"lr": 0.1})

    def step(params):
        for p in params:
            p.grad = torch.ones_like(p)
        optim(params)

    step({a})
    adam = optim.adam
    step([a])  # the same parameters, handed over again: the same torch Adam
    assert optim.adam is adam and optim.names == ["a"]
    step({b, a})  # a new one: rebuilt, in the param store's order, with a's moments kept
    assert optim.adam is not adam and optim.names == ["a", "b"]
    state = optim.get_state()
    assert int(state["a"]["state"][0]["step"]) == 3 and int(state["b"]["state"][0]["step"]) == 1
    assert torch.allclose(a, torch.full((3,), 1 - 0.3), atol=1e-4)  # Adam's steps are lr each for a constant gradient


def test_moments_saved_in_one_layout_go_on_in_the_other():
    """--channels-last may change on resume: the moments take their parameter's layout (the fused
    kernel on a GPU refuses a mix), with their values."""
    x = torch.rand(4, 3, SMOOTH.image_size, SMOOTH.image_size)
    saved = None
    for channels_last in (True, False, True):
        model, guide = networks(SMOOTH, speed=Speed(channels_last=channels_last, cuda_graphs=False))
        optim = fast.FusedAdam({"lr": 1e-3})
        if saved is not None:
            optim.set_state(saved)
        svi = SVI(model, guide, optim, loss=from_config(SMOOTH))
        with pyro.validation_enabled(False):
            svi.step(x, temperature=1.0, sigma=0.01)
        stepped = [p for p in optim.adam.param_groups[0]["params"] if optim.adam.state.get(p)]
        assert any(p.dim() == 4 for p in stepped)
        for p in stepped:
            for k in ("exp_avg", "exp_avg_sq"):
                assert optim.adam.state[p][k].stride() == p.stride()
        assert int(next(iter(optim.adam.state.values()))["step"]) == (1 if saved is None else 2 if not channels_last else 3)
        saved = optim.get_state()


def test_channels_last_weights_are_the_param_stores_own():
    model, guide = networks(SMOOTH, speed=Speed(channels_last=True))
    weight = guide.position.down[0][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    with pyro.validation_enabled(False):
        guide(torch.rand(2, 3, SMOOTH.image_size, SMOOTH.image_size))
    assert pyro.get_param_store()["guide$$$position.down.0.0.weight"] is weight


@pytest.mark.parametrize("size", [(8, 10), (9, 10)])  # twice the size (the broadcast), and not (interpolate)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_broadcast_upsampling_is_interpolate_nearest(size, layout):
    x = torch.randn(2, 3, 4, 5).to(memory_format=layout).requires_grad_()
    up, ref = BroadcastUpsample()(x, size), Upsample()(x, size)
    assert torch.equal(up, ref) and up.is_contiguous(memory_format=layout)
    g = torch.randn_like(ref)
    assert torch.allclose(*(torch.autograd.grad(y, x, g)[0] for y in (up, ref)), atol=1e-6)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_group_norm_by_channel_is_group_norm(layout):
    x = (3 + 2 * torch.randn(4, 16, 8, 8)).contiguous(memory_format=layout).requires_grad_()
    weight, bias = torch.randn(16, requires_grad=True), torch.randn(16, requires_grad=True)
    ours = group_norm_by_channel(x, 4, weight, bias, 1e-5)
    stock = nn.functional.group_norm(x, 4, weight, bias, 1e-5)
    assert torch.allclose(ours, stock, atol=1e-5)
    # one pass (E[x²] − E[x]²) loses digits as the mean outgrows the spread: at 30 spreads, under 1e-3
    far = 30 + torch.randn(4, 16, 32, 32)
    assert torch.allclose(group_norm_by_channel(far, 4, weight, bias, 1e-5),
                          nn.functional.group_norm(far, 4, weight, bias, 1e-5), atol=1e-3)
    assert ours.is_contiguous(memory_format=layout)
    g = torch.randn_like(stock).contiguous(memory_format=layout)
    grads = torch.autograd.grad(ours, (x, weight, bias), g)
    for a, b in zip(grads, torch.autograd.grad(stock, (x, weight, bias), g)):
        assert torch.allclose(a, b, atol=1e-4)
    assert grads[0].is_contiguous(memory_format=layout)


def test_bf16_networks_stay_close_to_float32_and_keep_their_checkpoint_keys():
    x = torch.rand(4, 3, SMOOTH.image_size, SMOOTH.image_size)
    plain, half = networks(SMOOTH), networks(SMOOTH, speed=Speed(precision="bf16"))
    assert plain[1].state_dict().keys() == half[1].state_dict().keys()
    full, low = plain[1].theta_logits(x), half[1].theta_logits(x)
    assert low.dtype == torch.float32
    assert close(low, full, 3e-2) and not torch.equal(low, full)  # bf16 keeps about 3 significant digits


@COMPILER
@pytest.mark.parametrize("speed", [Speed(compile=True), Speed(compile=True, channels_last=True)])  # ~20 s of Inductor each
def test_compiled_networks_give_the_same_loss_and_gradients(speed):
    x = torch.rand(1, 2, 3, SMOOTH.image_size, SMOOTH.image_size)
    ref_losses, ref_grads, _ = run_steps(SMOOTH, x, 1)
    losses, grads, _ = run_steps(SMOOTH, x, 1, speed=speed.replace(cuda_graphs=False))
    assert losses == pytest.approx(ref_losses, rel=1e-4) and close(grads, ref_grads, 1e-4)
    torch.compiler.reset()


@GPU
@pytest.mark.parametrize("speed", [Speed(), Speed(precision="bf16", compile=True, channels_last=True)])
def test_graphed_steps_take_the_eager_steps(tiny_cfg, speed):
    x = torch.rand(2, tiny_cfg.batch_size, 3, tiny_cfg.image_size, tiny_cfg.image_size, device="cuda")
    eager_losses, _, eager_weights = run_steps(tiny_cfg, x, 5, "cuda", speed.replace(cuda_graphs=False),
                                               fast.optimiser(1e-3, "cuda", speed.replace(cuda_graphs=False)))
    graph_losses, _, graph_weights = run_steps(tiny_cfg, x, 5, "cuda", speed, fast.optimiser(1e-3, "cuda", speed))
    # new batches, temperatures and σ reach the replays: the losses move as the eager ones do
    tol = 1e-4 if speed.precision == "fp32" else 1e-2
    assert graph_losses == pytest.approx(eager_losses, rel=tol)
    assert close(graph_weights, eager_weights, tol)
    torch.compiler.reset()


@GPU
def test_an_unread_graphed_step_takes_the_step_that_a_read_one_takes(tiny_cfg):
    x = torch.rand(2, tiny_cfg.batch_size, 3, tiny_cfg.image_size, tiny_cfg.image_size, device="cuda")
    read, _, read_weights = run_steps(tiny_cfg, x, 4, "cuda", Speed(), fast.optimiser(1e-3, "cuda", Speed()))
    model, guide = networks(tiny_cfg, "cuda", Speed())
    elbo = from_config(tiny_cfg)
    step = fast.stage_1_step(SVI(model, guide, fast.optimiser(1e-3, "cuda", Speed()), loss=elbo), elbo, Speed(), "cuda")
    unread = []
    with pyro.validation_enabled(False):
        for i in range(4):
            torch.manual_seed(100 + i)
            loss = step.unread(x[i % len(x)], 1.0 / (1 + i), 0.01 * (1 + i))
            unread.append(float(loss))  # read after the step, as a block's end reads the last one
    assert unread == pytest.approx(read, rel=1e-4) and close(weights(model, guide), read_weights, 1e-4)


@GPU
def test_a_graphed_run_resumes_and_steps_its_learning_rate_down_as_an_eager_run_does(tiny_cfg, tmp_path):
    from pyro_objects import runs
    from pyro_objects.train import train
    d = polygons.generate(32, seed=0, image_size=tiny_cfg.image_size)
    data = Dataset("polygons", d["images"], d["amodal"], d["count"])
    cfg = tiny_cfg.replace(epochs=3, hyperprior_epochs=0, lr_decay_epochs=(1, 2), lr_decay=0.1)  # 4 steps an epoch
    kwargs = dict(device="cuda", data=data, figures=False, progress=False)
    eager = train(runs.start(cfg, tmp_path / "eager"), speed=Speed(cuda_graphs=False), **kwargs)
    train(runs.start(cfg, tmp_path / "graphed"), max_steps=6, **kwargs)  # a graph recorded at the first rate
    graphed = train(runs.resume(tmp_path / "graphed"), **kwargs)         # must not replay it later
    assert graphed["lr"] == eager["lr"] == pytest.approx(cfg.lr * 0.01)
    for name, w in eager["model"].items():
        assert torch.allclose(graphed["model"][name], w, atol=1e-5, rtol=1e-4), name


@COMPILER
@pytest.mark.skipif(not hasattr(torch.compiler, "save_cache_artifacts"), reason="torch < 2.7 has no cache artifacts")
def test_what_one_machine_compiled_and_kept_another_finds_in_the_file(tmp_path, monkeypatch):
    """RUN/compiled.bin: with the compiler's cache empty, a graph kept in the file is looked up, not built."""
    from torch._dynamo.utils import counters

    def compiled():
        return torch.compile(lambda x: torch.nn.functional.elu(x) * 2 + 1, dynamic=False)(torch.ones(8))

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache-of-the-first-machine"))
    torch.compiler.reset()
    compiled()
    assert fast.cache.save(tmp_path, Speed(compile=True))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache-of-another"))  # empty
    torch.compiler.reset()
    assert fast.cache.load(tmp_path, Speed(compile=True))
    hits, misses = counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]
    assert torch.equal(compiled(), torch.full((8,), 3.0))
    assert counters["inductor"]["fxgraph_cache_hit"] > hits and counters["inductor"]["fxgraph_cache_miss"] == misses
    torch.compiler.reset()


@COMPILER
def test_the_compilers_counters_move_when_it_compiles_and_not_when_a_step_runs_what_is_built():
    """What fast.cache.save reads to know whether anything is new since the file was written."""
    torch.compiler.reset()
    f = torch.compile(lambda x: torch.nn.functional.elu(x) * 2 + 1, dynamic=False)
    before = fast.cache._compiled()
    f(torch.ones(8))
    built = fast.cache._compiled()
    f(torch.zeros(8))
    f(torch.ones(8))
    assert built != before and fast.cache._compiled() == built
    f(torch.ones(4, 2))  # a new shape: compiled again
    assert fast.cache._compiled() != built
    torch.compiler.reset()


@pytest.mark.skipif(not hasattr(torch.compiler, "set_stance"), reason="torch < 2.6 has no compiler stances")
def test_a_compiled_run_keeps_its_cache_artifacts_and_a_resumed_run_loads_them(tiny_cfg, tmp_path, monkeypatch):
    """Training writes torch's artifacts to RUN/compiled.bin at its checkpoints, and a resumed run hands
    them to torch before its first step (torch's part is stood in for: the test above checks it)."""
    from pyro_objects import runs
    from pyro_objects.train import train
    loaded = []
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (b"artifacts", None), raising=False)
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", lambda data: loaded.append(data) or "info",
                        raising=False)
    d = polygons.generate(16, seed=0, image_size=tiny_cfg.image_size)
    data = Dataset("polygons", d["images"], d["amodal"], d["count"])
    kwargs = dict(speed=Speed(compile=True), data=data, figures=False, progress=False)
    with fast.eager():  # the networks run uncompiled: nothing here needs them built
        train(runs.start(tiny_cfg, tmp_path / "r"), max_steps=2, **kwargs)
        assert (tmp_path / "r" / fast.cache.FILE).read_bytes() == b"artifacts" and loaded == []
        train(runs.resume(tmp_path / "r"), max_steps=3, **kwargs)
        assert loaded == [b"artifacts"]
        (tmp_path / "seeded").mkdir()  # a new run whose folder holds another run's file starts from it too
        (tmp_path / "seeded" / fast.cache.FILE).write_bytes(b"another run's")
        train(runs.start(tiny_cfg, tmp_path / "seeded", seed=1), max_steps=1, **kwargs)
    assert loaded == [b"artifacts", b"another run's"]
    torch.compiler.reset()


def test_the_compiled_cache_is_only_a_cache(tmp_path, monkeypatch):
    """A compiled.bin that does not load is a warning and a recompile; an unchanged one is not rewritten,
    and where nothing was compiled since it was written torch is not even asked; without --compile there
    is nothing to keep."""
    from torch._dynamo.utils import counters

    def compiles():  # stands in for compiling something new: the compiler's counters move
        counters["frames"]["total"] += 1

    (tmp_path / fast.cache.FILE).write_bytes(b"not a cache")
    with pytest.warns(UserWarning, match="did not load"):
        assert not fast.cache.load(tmp_path, Speed(compile=True))
    assert not fast.cache.load(tmp_path, Speed())  # not compiled: not read
    assert not fast.cache.save(tmp_path, Speed())
    if not hasattr(torch.compiler, "save_cache_artifacts"):
        return
    asked = []
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: asked.append(1) or (b"compiled", None))
    compiles()
    assert fast.cache.save(tmp_path, Speed(compile=True))
    assert (tmp_path / fast.cache.FILE).read_bytes() == b"compiled" and len(asked) == 1
    assert not fast.cache.save(tmp_path, Speed(compile=True)) and len(asked) == 1  # nothing compiled since: not asked
    compiles()
    assert not fast.cache.save(tmp_path, Speed(compile=True)) and len(asked) == 2  # the same bytes: left as they are
    (tmp_path / fast.cache.FILE).unlink()
    assert fast.cache.save(tmp_path, Speed(compile=True))  # the file gone: written again
    compiles()
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: None)  # nothing compiled
    assert not fast.cache.save(tmp_path, Speed(compile=True))
    assert (tmp_path / fast.cache.FILE).read_bytes() == b"compiled"
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: 1 / 0)
    with pytest.warns(UserWarning, match="ZeroDivisionError"):
        assert not fast.cache.save(tmp_path, Speed(compile=True))
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (b"compiled", None))
    (tmp_path / "blocked" / fast.cache.FILE).mkdir(parents=True)  # a file that cannot be written: the run goes on
    with pytest.warns(UserWarning, match="training goes on without it"):
        assert not fast.cache.save(tmp_path / "blocked", Speed(compile=True))
