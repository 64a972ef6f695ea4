"""A stage-1 training step recorded once as a CUDA graph and replayed.

At a batch of 100 a step is about 1,200 small kernels; launched one by one from
Python, through Pyro's handlers and autograd, they leave the GPU idle half the
time (docs/PERFORMANCE.md). A CUDA graph records the kernels of one step (the
ELBO, its gradients and the optimiser's update) once and replays them with one
launch. The Pyro program is unchanged: the model and guide run, under Pyro's
handlers, while the graph is recorded. What changes from step to step enters
through tensors the graph reads: the batch, θ's temperature and the likelihood's σ.
The random draws follow the seed set before each replay, as in an eager step.
"""
import pyro
import torch
from pyro import poutine


class GraphedStep:
    """`svi.step(x, temperature=t, sigma=s)` of stage 1 on one GPU, replayed as a CUDA graph, where
    svi = SVI(model, guide, optim, loss=elbo) and optim is a capturable `FusedAdam`.

    The first call is an ordinary step (it also warms up cuDNN's and cuFFT's plans and creates
    Adam's state); it then records the step, and every later call replays the record. Batches
    must keep the first one's shape.
    """

    def __init__(self, svi, elbo):
        self.svi, self.elbo = svi, elbo
        self.graph = None

    def __call__(self, x, temperature, sigma):
        return float(self.unread(x, temperature, sigma))

    def unread(self, x, temperature, sigma):
        """The step, its loss left on the GPU unread (a 0-d tensor that the next replay overwrites),
        so that the host need not wait for the step before it queues the next."""
        if self.graph is None:
            return torch.tensor(self._first_step(x, temperature, sigma))
        self.x.copy_(x)
        self.temperature.fill_(temperature)
        self.sigma.fill_(sigma)
        self.graph.replay()
        self.elbo.last_terms = self.terms
        return self.loss

    def _loss(self):
        """Trace_ELBO.differentiable_loss without its host reads (a NaN check and a float copy of the
        loss), which a record cannot hold: the guide is fully reparameterised, so the loss is the surrogate."""
        loss = 0.0
        for model_trace, guide_trace in self.elbo._get_traces(self.svi.model, self.svi.guide, (self.x,),
                                                              {"temperature": self.temperature, "sigma": self.sigma}):
            loss = loss + self.elbo._differentiable_loss_particle(model_trace, guide_trace)[1] / self.elbo.num_particles
        return loss

    def _step(self):  # the loss and its gradients, then the optimiser's update, on the static inputs
        with pyro.validation_enabled(False):  # argument checks read values on the host, which a record cannot
            loss = self._loss()
        loss.backward()
        self.svi.optim(self.params)
        return loss.detach()

    def _first_step(self, x, temperature, sigma):
        self.x = x.clone()
        self.temperature = x.new_tensor(float(temperature))
        self.sigma = x.new_tensor(float(sigma))
        with poutine.trace(param_only=True) as capture, pyro.validation_enabled(False):
            self._loss()  # to learn which parameters the step trains, as SVI.step does
        self.params = {site["value"].unconstrained() for site in capture.trace.nodes.values()}
        self._zero_grad()
        side = torch.cuda.Stream()  # eager warm-up on a side stream, as torch.cuda.graph asks
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            loss = self._step().item()
        torch.cuda.current_stream().wait_stream(side)
        self._zero_grad()  # the record's backward allocates the gradients it writes
        terms = self.elbo.last_terms
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):  # records, runs nothing
            self.loss = self._step()
        self.terms, self.elbo.last_terms = self.elbo.last_terms, terms  # filled by each replay
        return loss

    def _zero_grad(self):
        for p in self.params:
            p.grad = None
