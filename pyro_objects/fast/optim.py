"""One Adam for every parameter, behind Pyro's optimiser interface.

pyro.optim.Adam keeps a torch Adam per parameter and steps them one after another: on a
GPU that is a few kernels per parameter tensor, ~130 of them. `FusedAdam` is a PyroOptim
that SVI drives the same way, with one torch Adam over all the parameters it is handed,
fused into a few kernels on a GPU. Its state is pyro.optim.Adam's ({parameter name: the
state of a torch Adam of that one parameter}), so checkpoints go on either way.

After its update it drops the gradients (`grad = None`). SVI would next fill each with zeros
and the next backward would add into them: two kernels a parameter tensor that change no
value. Inside a CUDA graph (capturable) the gradients stay, since the record writes into them.
"""
import pyro
import pyro.optim
import torch


class FusedAdam(pyro.optim.PyroOptim):
    def __init__(self, optim_args, capturable=False):
        """optim_args: torch Adam's, e.g. {"lr": 5e-4}; capturable: the update may be recorded in a CUDA graph."""
        super().__init__(torch.optim.Adam, optim_args)
        self.capturable = capturable
        self.adam, self.names, self.ids = None, [], set()

    def __call__(self, params, *args, **kwargs):
        params = list(params)
        if self.adam is None or set(map(id, params)) != self.ids:  # C-level: no Python call a parameter
            store = pyro.get_param_store()
            self._build(sorted(params, key=store.param_name))
        self.adam.step()
        if not self.capturable:
            for p in params:
                p.grad = None

    def _build(self, params):
        waiting = {**self.get_state(), **self._state_waiting_to_be_consumed}  # this Adam's moments, then the loaded
        self._state_waiting_to_be_consumed = {}
        on_gpu = all(p.is_cuda for p in params)
        self.adam = torch.optim.Adam(params, **self.pt_optim_args, fused=on_gpu or None,
                                     capturable=self.capturable and on_gpu)
        self.names = [pyro.get_param_store().param_name(p) for p in params]
        self.ids = set(map(id, params))  # the Adam holds the parameters, so no id is reused while it lives
        self.optim_objs = dict.fromkeys(params, self.adam)
        state = self.adam.state_dict()
        for i, name in enumerate(self.names):
            saved = waiting.pop(name, {})
            if saved.get("state"):  # a parameter never stepped has none
                state["state"][i] = saved["state"][0]
        self._state_waiting_to_be_consumed = waiting  # for parameters not handed over yet
        self.adam.load_state_dict(state)
        for p in params:  # moments saved in another layout (channels_last or not: --channels-last may change
            moments = self.adam.state.get(p, {})  # on resume) take their parameter's, as the fused kernel needs
            for k, v in moments.items():
                if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                    moments[k] = torch.empty_like(p).copy_(v)

    def get_state(self):
        """{parameter name: the state dict of a torch Adam of that parameter alone}, as pyro.optim.Adam's."""
        out = dict(self._state_waiting_to_be_consumed)
        if self.adam is None:
            return out
        state = self.adam.state_dict()
        group = {k: v for k, v in state["param_groups"][0].items() if k != "params"}
        group.update(fused=None, capturable=False, params=[0])  # portable: any device, any optimiser
        for i, name in enumerate(self.names):
            out[name] = {"state": {0: state["state"][i]} if i in state["state"] else {}, "param_groups": [dict(group)]}
        return out

    def set_state(self, state):
        if self.adam is None:
            self._state_waiting_to_be_consumed.update(state)
        else:  # rebuilt with the state on the next step
            self._state_waiting_to_be_consumed = {**self.get_state(), **state}
            self.adam = None
