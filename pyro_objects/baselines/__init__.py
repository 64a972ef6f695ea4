"""Peer models, scored beside ours on the same data by the same scorer: the paper's VAE baseline,
Slot Attention and MONet, each our own implementation from its paper.

Every model takes x float [B, 3, N, N] in [0, 1] and has `loss(x) -> (scalar, dict of logged terms)`
and `decompose(x) -> {"alpha": [B, K, N, N], "recon": [B, 3, N, N]}` (modal masks; no depth);
the generative ones (VAE, MONet) also `sample(n) -> [n, 3, N, N]`.
"""
from ..data import clevr, dsprites, polygons
from ..errors import InputError
from .monet import MONet
from .slot_attention import SlotAttention
from .vae import VAE

MODELS = {"vae": VAE, "slot-attention": SlotAttention, "monet": MONet}
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


def build(name, cfg):
    """The peer `name` for one of our configs (its image size, and its dataset's object count)."""
    if name not in MODELS:
        raise InputError(f"unknown baseline {name!r}: choose from {', '.join(MODELS)}")
    return MODELS[name].for_config(cfg, None if name == "vae" else slots_for(cfg.dataset))
