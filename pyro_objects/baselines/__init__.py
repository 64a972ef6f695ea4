"""Peer models, scored beside ours on the same data by the same scorer: the paper's VAE baseline,
Slot Attention and MONet, each our own implementation from its paper.

Every model takes x float [B, 3, N, N] in [0, 1] and has `loss(x) -> (scalar, dict of logged terms)`
and `decompose(x) -> {"alpha": [B, K, N, N], "recon": [B, 3, N, N]}` (modal masks; no depth);
the generative ones (VAE, MONet) also `sample(n) -> [n, 3, N, N]`.

Training: baselines/train.py (`pyro-objects baseline train`). A run's checkpoint holds "baseline"
(the name), which tells it apart from our model's; `pyro-objects decompose` and `evaluate` read
either kind (evaluate.load_any), passing guide None for a peer.
"""
from ..data import clevr, dsprites, polygons
from ..errors import InputError
from ..runs import config_from_dict, load_checkpoint
from .monet import MONet
from .slot_attention import SlotAttention
from .vae import VAE

MODELS = {"vae": VAE, "slot-attention": SlotAttention, "monet": MONet}
# Narrow networks, minutes on a CPU (`baseline train --quick`, tests); the VAE is small already.
QUICK = {"vae": {}, "slot-attention": {"decoder": "clevr", "width": 16, "slot_size": 16, "mlp_hidden": 32},
         "monet": {"unet_channels": (8, 8, 8), "channels": (8, 8, 16, 16), "hidden": 32, "width": 8, "latent": 4}}
DESCRIPTIONS = {
    "vae": "the paper's baseline: a deep convolutional VAE of whole scenes, its latent as large as our model's",
    "slot-attention": "Slot Attention (Locatello et al. 2020), object discovery: iterative attention, softmax alpha masks",
    "monet": "MONet (Burgess et al. 2019): a recurrent attention U-Net for masks, a component VAE for each",
}
MAX_OBJECTS = {"polygons": polygons.OBJECTS, "multi-dsprites": dsprites.SLOTS,
               **{name: variant.objects[1] for name, variant in clevr.VARIANTS.items()}}


def slots_for(dataset):
    """Slot Attention's and MONet's K: the most objects an image of the dataset holds, plus the background."""
    if dataset not in MAX_OBJECTS:
        raise InputError(f"no object count known for {dataset!r}: choose from {', '.join(sorted(MAX_OBJECTS))}")
    return MAX_OBJECTS[dataset] + 1


def check_name(name):
    """name, if it is a baseline's; else an InputError that lists them."""
    if name not in MODELS:
        raise InputError(f"unknown baseline {name!r}: choose from {', '.join(MODELS)}")
    return name


def build(name, cfg, sizes=None):
    """The peer `name` for one of our configs (its image size, and its dataset's object count);
    sizes: keyword arguments of its class that narrow its networks (QUICK)."""
    slots = None if check_name(name) == "vae" else slots_for(cfg.dataset)
    try:
        return MODELS[name].for_config(cfg, slots, **(sizes or {}))
    except ValueError as e:
        raise InputError(f"the {name} networks do not fit {cfg.image_size}×{cfg.image_size} images: {e}") from None


def from_checkpoint(state, device="cpu"):
    """(cfg, model in eval mode on device) of a baseline run's checkpoint."""
    cfg = config_from_dict(state["config"])
    model = build(state["baseline"], cfg, state.get("sizes")).to(device)
    model.load_state_dict(state["model"])
    return cfg, model.eval()


def load_baseline_run(run_dir, device="cpu"):
    """(cfg, model, state) of a trained baseline run."""
    state = load_checkpoint(run_dir, device)
    if "baseline" not in state:
        raise InputError(f"{run_dir} holds a run of our model, not of a baseline")
    return (*from_checkpoint(state, device), state)
