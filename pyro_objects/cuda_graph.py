"""A stage-1 training step replayed as a CUDA graph.

At a batch of 100 a step is about 1,200 small kernels; launched one by one from
Python, through Pyro's handlers and autograd, they leave the GPU idle half the
time (docs/PERFORMANCE.md). A CUDA graph records the kernels of one step (the
ELBO, its gradients and Adam's update) once and replays them with one launch.

The Pyro program is unchanged: the model and guide run, under Pyro's handlers,
once while the graph is recorded. What changes from step to step enters through
tensors the graph reads: the batch, the temperature of θ and the likelihood's σ.
The random draws follow the seed set before each replay, as in an eager step.
"""
import pyro
import torch


class GraphedStep:
    """`svi.step(x, temperature=t, sigma=s)` for stage 1 on one GPU, replayed as a CUDA graph,
    where svi = SVI(model, guide, optim, loss=elbo) and optim is a `train.Adam` (one torch Adam).

    The first call is an ordinary step (it also warms up cuDNN's and cuFFT's plans and creates
    Adam's state); it then records the step, and every later call replays the record. Batches
    must keep the first one's shape.
    """

    def __init__(self, model, guide, elbo, optim):
        self.model, self.guide, self.elbo, self.adam = model, guide, elbo, optim.adam
        self.graph = None

    def __call__(self, x, temperature, sigma):
        if self.graph is None:
            return self._first_step(x, temperature, sigma)
        self.x.copy_(x)
        self.temperature.fill_(temperature)
        self.sigma.fill_(sigma)
        self.graph.replay()
        self.elbo.last_terms = self.terms
        return self.loss.item()

    def _step(self):  # the ELBO's loss and gradients, then Adam's update, on the static inputs
        with pyro.validation_enabled(False):  # argument checks read values on the host, which a record cannot
            loss = self.elbo.differentiable_loss(self.model, self.guide, self.x, temperature=self.temperature,
                                                 sigma=self.sigma)
        loss.backward()
        self.adam.step()
        return loss.detach()

    def _first_step(self, x, temperature, sigma):
        adam = self.adam
        for group in adam.param_groups:
            group["capturable"] = True  # Adam's step count stays on the GPU, where a replay can advance it
        adam.zero_grad(set_to_none=True)  # a previous graph's gradients (say, before a fall-back) must not add up
        self.x = x.clone()
        self.temperature = x.new_tensor(float(temperature))
        self.sigma = x.new_tensor(float(sigma))
        side = torch.cuda.Stream()  # eager warm-up on a side stream, as torch.cuda.graph asks
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            loss = self._step().item()
        torch.cuda.current_stream().wait_stream(side)
        adam.zero_grad(set_to_none=True)  # the record's backward allocates the gradients it writes
        terms = self.elbo.last_terms
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):  # records, runs nothing
            self.loss = self._step()
        self.terms, self.elbo.last_terms = self.elbo.last_terms, terms  # filled by each replay
        return loss
