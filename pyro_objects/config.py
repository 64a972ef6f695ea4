"""What a run trains: one frozen `Config` per dataset, and `Speed`, how fast to run it.

A `Config` has three parts: the model (Sec. 3), its training (Sec. 4, App. B), and
choices of ours that the paper does not make. Its networks are written in the
notation of the paper's Table 5 (`nets.py`); the networks and sizes of these
defaults are ours, not Table 5's rows, and `docs/DESIGN.md` lists every difference
from the paper with its measured effect. `CONFIGS[name]` is a dataset's default,
`quick(cfg)` a tiny copy that trains on a CPU in minutes.

`Speed` says how to run a config, not what it computes: the acceleration layer
(`pyro_objects/fast`) reads it, the paper's files never do.
"""
import dataclasses
import math
from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class Config:
    # -- The model (Sec. 3); networks in Table 5's notation (nets.py)
    dataset: str
    image_size: int                 # N: images are N×N
    canvas_size: int                # M: each object is drawn on an M×M canvas
    slots: int                      # J: object slots
    z_dim: int = 32                 # appearance latent z_j per object
    z_bg_dim: int = 8               # background latent z_bg
    y_dim: int = 32                 # scene latent y; ζ reads its first half, ξ the rest (footnote 1)
    obj_decoder: str = ""           # F_obj: z -> M×M RGB + alpha
    bg_decoder: str = ""            # F_bg: z_bg -> N×N RGB
    zeta: str = ""                  # ζ(y) -> J×N×N position logits
    xi: str = "d256e-d256e"         # ξ(y, θ_j) -> prior mean and scale of (z_j, logit d_j), before a last dense layer
    obj_encoder: str = ""           # Q(z_j, d_j | θ_j, x) -> mean and scale of (z_j, logit d_j)
    bg_encoder: str = ""            # Q(z_bg | x)
    position_unet: tuple = (32, 64, 128, 128)  # Q(θ | x): a U-Net's channels per level
    y_encoder: str = "d256e-d256e"  # Q(y | z, θ, d): per object, summed over objects, then a dense layer
    attentive: bool = True          # Sec. 4: encode each object from the θ-weighted crop, not the whole image
    xi_positions: str = "own"       # ξ sees y and 'own': θ_j alone (ours), or 'all': θ_j, then the other objects' θ (Eq. 5)
    depth_blend: str = "order"      # 'order': Eq. 9-11 as soft back-to-front compositing (ours, weights sum to < 1 at
                                    # ties); 'softmax': weights normalised over depth, as the soft rasterizer's
                                    # (measured: its alphas stay under the masks' 0.3; docs/DESIGN.md)

    # -- Training (Sec. 4, App. B)
    lr: float = 5e-4                # Adam's learning rate
    batch_size: int = 100
    epochs: int = 500
    n_train: int = 90_000           # training images
    n_eval: int = 10_000            # held-out images
    sharpness: tuple = (1.0, 1e-4)  # (a, r) of θ's temperature schedule, read as temperature_reading says
    temperature_reading: str = "inverse"  # App. B's "0.3 × 2^(0.0001×i)": 'inverse' (ours): the inverse temperature,
                                          # i in steps of 100 images; 'epoch': the temperature itself, i in epochs
    sigma: tuple = (0.01 / math.sqrt(3), 0.01 / math.sqrt(5))  # likelihood scale σ before and after the switch
    sigma_switch: float = 0.5       # the fraction of the epochs after which σ switches
    beta_y: float = 0.01            # β on the KL of y (stage 2)
    hyperprior_epochs: int = 10     # stage 2: the last epochs, which fit ζ, ξ and Q(y) alone

    # -- Ours: not in the paper
    preset: str = "ours"            # which preset the other fields come from (PRESETS)
    beta_z: float = 2000.0          # β on the KL of z
    beta_d: float = 1.0             # β on the KL of logit d
    beta_bg: float = 500.0          # β on the KL of z_bg
    theta_penalty: float = 1e4      # λ: weight per image of the aggregated-posterior L1 on θ
    alpha_penalty: float = 0.0      # γ: weight of Σ -α log α, which pushes alphas to 0 or 1 (App. Fig. 14)
    slot_overlap: float = 0.0       # η: weight per image of two slots' positions overlapping (elbo.slot_overlap)
    depth_softness: float = 0.05    # τ of the soft depth order (Eq. 9), on d's (0, 1) scale
    min_temperature: float = 0.01   # floor of θ's Gumbel-softmax temperature
    sigma_warmup: float = 0.01      # σ of the first sigma_warmup_epochs epochs
    sigma_warmup_epochs: int = 0
    lr_decay_epochs: tuple = ()     # stage 1's learning rate is multiplied by lr_decay at the start of each
    lr_decay: float = 0.2
    batch_growth_epochs: tuple = () # stage 1's batch is multiplied by batch_growth at the start of each,
    batch_growth: int = 2           # and its learning rate by batch_growth_lr (docs/PERFORMANCE.md)
    batch_growth_lr: float = 1.0
    weight_average: float = 0.999   # decay of a moving average of stage 1's weights that checks, saved models and
                                    # stage 2 read (train.WeightAverage); 0: the weights as trained
    calibration_batches: int = 10   # before each checkpoint and check, the guide's batch-norm statistics from
                                    # decompositions of this many training batches; 0: training's own (train.calibrate)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# Fields a resumed run may change: how much each loss term weighs, not what is learnt.
LOSS_WEIGHTS = ("beta_y", "beta_z", "beta_d", "beta_bg", "theta_penalty", "alpha_penalty", "slot_overlap")
# Fields with options of their own on the command line (--epochs, --batch-size, --n-train).
OPTIONS = ("epochs", "batch_size", "n_train")


@dataclass(frozen=True)
class Speed:
    """How to run a config: none of these changes the steps, except bf16's rounding."""
    precision: str = "fp32"         # 'bf16': the convolutional networks run under bf16 autocast
    compile: bool = False           # nn.Module.compile the convolutional networks and the blend
    channels_last: bool = False     # convolutional networks and their inputs in channels_last layout
    cuda_graphs: bool = True        # on one GPU, record each stage-1 step once as a CUDA graph and replay it

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


POLYGONS = Config(
    dataset="polygons", image_size=64, canvas_size=24, slots=2,  # M = 24: a pair of polygons overflows it
    beta_z=10_000.0,            # a simpler code stops the back slot copying the front's colours
    sigma_warmup_epochs=4,      # the slots separate sooner (docs/RESULTS.md)
    lr_decay_epochs=(72, 107),  # 5e-4, then 1e-4, then 2e-5
    obj_decoder="d576e-v64x3x3-cT64e-b-cT32e-b-cT32e-b-c4",
    bg_decoder="d1024e-v64x4x4-cT64e-cT32e-cT32e-cT16e-c3",
    zeta="d256e-v16x4x4-cT16e-cT16e-cT16e-cT16e-c2",
    obj_encoder="c32s2e-b-c64s2e-b-c64s2e-b-c128s2e-b-d256e-d66",
    bg_encoder="c16s2e-c32s2e-c32s2e-c64s2e-d128e-d16",
)

MULTI_DSPRITES = POLYGONS.replace(
    dataset="multi-dsprites", canvas_size=32,  # a rotated large square spans 28 px
    slots=6,                    # two spare slots for at most four sprites
    sigma_warmup_epochs=0,      # the wide start delayed multi-dSprites and ended level
    lr_decay_epochs=(20,),
    obj_decoder="d1024e-v64x4x4-cT64e-b-cT32e-b-cT32e-b-c4",
    zeta="d256e-v16x4x4-cT16e-cT16e-cT16e-cT16e-c6",
)

CLEVR3 = Config(
    dataset="clevr3", image_size=96, canvas_size=48, slots=3, attentive=False,
    lr_decay_epochs=(15,),
    obj_decoder="d576e-v64x3x3-cT64e-b-cT64e-b-cT32e-b-cT32e-b-c4",
    bg_decoder="d576e-v64x3x3-cT64e-cT64e-cT32e-cT32e-cT16e-c3",
    zeta="d144e-v16x3x3-cT16e-cT16e-cT16e-cT16e-cT16e-c3",
    obj_encoder="c32s2e-b-c32s2e-b-c64s2e-b-c64s2e-b-c128s2e-b-d256e-d66",
    bg_encoder="c16s2e-c32s2e-c32s2e-c64s2e-c64s2e-d128e-d16",
)

CLEVR5 = CLEVR3.replace(dataset="clevr5", slots=5, zeta="d144e-v16x3x3-cT16e-cT16e-cT16e-cT16e-cT16e-c5",
                        lr_decay_epochs=())  # no step down measured on CLEVR-5
CLEVR5_VBG = CLEVR5.replace(dataset="clevr5-vbg")

CONFIGS = {c.dataset: c for c in (POLYGONS, MULTI_DSPRITES, CLEVR3, CLEVR5, CLEVR5_VBG)}


PRESETS = {
    "ours": "the default configs above: our networks, schedules and readings (docs/DESIGN.md, Our choices)",
    "paper-training": "our networks, with the paper's training and readings where its text gives them: "
                      "App. B's constant rate, σ switch after epoch 150 of 500 and temperature 0.3·2^(0.0001·epoch); "
                      "Eq. 5's ξ on every object's θ; a depth blend normalised over the objects; no wide-σ start; "
                      "J = 4 for multi-dSprites and attentive encoding for it alone (App. A, Sec. 5)",
}


def with_preset(cfg, preset):
    """cfg as a preset of PRESETS. 'paper-training' keeps our networks, latent sizes and loss weights:
    Table 5's rows (and where App. A puts multi-dSprites' residual blocks) are not in this repository,
    so no preset is called 'paper' (docs/DESIGN.md says what differs)."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}: choose from {', '.join(PRESETS)}")
    if preset == "ours":
        return cfg
    dsprites = cfg.dataset == "multi-dsprites"
    changes = dict(
        preset=preset, lr_decay_epochs=(), sigma_switch=150 / 500, sigma_warmup_epochs=0,
        temperature_reading="epoch", sharpness=(0.3, 1e-4), xi_positions="all", depth_blend="softmax",
        attentive=dsprites, calibration_batches=0, weight_average=0.0,
    )
    if dsprites:
        changes.update(slots=4, zeta=cfg.zeta.rsplit("-c", 1)[0] + "-c4")  # ζ draws one position map per slot
    return check(cfg.replace(**changes))


def config_for(name):
    """The config of a dataset name; 'folder:PATH' gets the polygons networks with J = 3."""
    if name.startswith("folder:"):
        # an epoch of a folder is its own size: no schedule by epochs unless one is set
        return POLYGONS.replace(dataset=name, slots=3, zeta="d256e-v16x4x4-cT16e-cT16e-cT16e-cT16e-c3",
                                lr_decay_epochs=(), sigma_warmup_epochs=0)
    if name not in CONFIGS:
        raise InputError(f"unknown dataset {name!r}: choose from {', '.join(sorted(CONFIGS))} or folder:PATH")
    return CONFIGS[name]


def quick(cfg):
    """A tiny version of cfg: small networks and data, a few epochs; minutes on a CPU."""
    down = "-".join(["c16s2e"] * 3)
    return cfg.replace(
        z_dim=8, z_bg_dim=4, y_dim=8,
        obj_decoder=_upsampler(cfg.canvas_size, 16, 4), bg_decoder=_upsampler(cfg.image_size, 8, 3),
        obj_encoder=f"{down}-d64e-d18", bg_encoder=f"{down}-d32e-d8",
        position_unet=(8, 16, 16), zeta=_upsampler(cfg.image_size, 4, cfg.slots), xi="d32e", y_encoder="d32e",
        batch_size=32, epochs=5, n_train=2048, n_eval=128, hyperprior_epochs=1, lr=1e-3,
    )


def check(cfg):
    """cfg, or an InputError naming the first field whose value cannot be trained with, and what it must be."""
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    def count(x, low):
        return isinstance(x, int) and not isinstance(x, bool) and x >= low

    rules = {  # field: (holds?, what it must be)
        "image_size": (count(cfg.image_size, 8), "a whole number of pixels, at least 8"),
        "canvas_size": (count(cfg.canvas_size, 1), "a whole number of pixels, at least 1"),
        "slots": (count(cfg.slots, 1), "a whole number, at least 1"),
        "z_dim": (count(cfg.z_dim, 1), "a whole number, at least 1"),
        "z_bg_dim": (count(cfg.z_bg_dim, 1), "a whole number, at least 1"),
        "y_dim": (count(cfg.y_dim, 2), "a whole number, at least 2 (ζ and ξ read one half each)"),
        "position_unet": (len(cfg.position_unet) > 0 and all(count(c, 1) for c in cfg.position_unet),
                          "one or more channel counts, e.g. 32,64,128"),
        "lr": (number(cfg.lr) and cfg.lr > 0, "a positive number"),
        "batch_size": (count(cfg.batch_size, 1), "a whole number, at least 1"),
        "epochs": (count(cfg.epochs, 1), "a whole number, at least 1"),
        "n_train": (count(cfg.n_train, 1), "a whole number, at least 1"),
        "n_eval": (count(cfg.n_eval, 1), "a whole number, at least 1"),
        "sharpness": (len(cfg.sharpness) == 2 and all(map(number, cfg.sharpness)) and cfg.sharpness[0] > 0,
                      "two numbers a, r (a > 0) of the inverse temperature a·2^(r·i)"),
        "sigma": (len(cfg.sigma) == 2 and all(number(v) and v > 0 for v in cfg.sigma),
                  "two positive numbers: σ before and after the switch"),
        "sigma_switch": (number(cfg.sigma_switch) and 0 <= cfg.sigma_switch <= 1, "a fraction of the epochs, 0 to 1"),
        "hyperprior_epochs": (count(cfg.hyperprior_epochs, 0) and cfg.hyperprior_epochs <= cfg.epochs,
                              f"a whole number from 0 to epochs ({cfg.epochs})"),
        "min_temperature": (number(cfg.min_temperature) and cfg.min_temperature > 0, "a positive number"),
        "sigma_warmup": (number(cfg.sigma_warmup) and cfg.sigma_warmup > 0, "a positive number"),
        "sigma_warmup_epochs": (count(cfg.sigma_warmup_epochs, 0), "a whole number, at least 0"),
        "lr_decay_epochs": (all(count(e, 0) for e in cfg.lr_decay_epochs), "whole numbers of epochs, e.g. 72,107"),
        "lr_decay": (number(cfg.lr_decay) and cfg.lr_decay > 0, "a positive number"),
        "batch_growth_epochs": (all(count(e, 1) for e in cfg.batch_growth_epochs)
                                and list(cfg.batch_growth_epochs) == sorted(set(cfg.batch_growth_epochs)),
                                "whole numbers of epochs from 1, rising, e.g. 4,8"),
        "batch_growth": (count(cfg.batch_growth, 1), "a whole number, at least 1"),
        "batch_growth_lr": (number(cfg.batch_growth_lr) and cfg.batch_growth_lr > 0, "a positive number"),
        "weight_average": (number(cfg.weight_average) and 0 <= cfg.weight_average < 1,
                           "a decay from 0 (off) up to but not including 1, e.g. 0.999"),
        "xi_positions": (cfg.xi_positions in ("own", "all"), "'own' or 'all'"),
        "depth_blend": (cfg.depth_blend in ("order", "softmax"), "'order' or 'softmax'"),
        "temperature_reading": (cfg.temperature_reading in ("inverse", "epoch"), "'inverse' or 'epoch'"),
        "preset": (cfg.preset in PRESETS, f"one of {', '.join(PRESETS)}"),
        **{name: (number(getattr(cfg, name)) and getattr(cfg, name) >= 0, "a number, at least 0")
           for name in ("beta_y", "beta_z", "beta_d", "beta_bg", "theta_penalty", "alpha_penalty", "slot_overlap",
                        "depth_softness")},
    }
    for name, (holds, what) in rules.items():
        if not holds:
            raise InputError(f"{name} = {getattr(cfg, name)!r} cannot be trained with: it must be {what}")
    return cfg


def with_settings(cfg, settings, allowed=None):
    """A copy of cfg with fields set from text, e.g. ["alpha_penalty=1e6", "sigma=0.005,0.004"], checked;
    allowed: the names that may be set (default: every field without an option of its own)."""
    return check(cfg.replace(**parse_settings(cfg, settings, allowed)))


def parse_settings(cfg, settings, allowed=None):
    """["NAME=VALUE", ...] -> {NAME: VALUE}, each value of the type of cfg's field."""
    names = [f.name for f in dataclasses.fields(cfg)]
    allowed = [n for n in names if n not in OPTIONS] if allowed is None else list(allowed)
    changes = {}
    for setting in settings:
        name, sep, text = setting.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in names:
            raise InputError(f"cannot set {setting!r}: give NAME=VALUE with NAME one of {', '.join(names)}")
        if name in OPTIONS:
            raise InputError(f"set {name} with --{name.replace('_', '-')}, not --set")
        if name not in allowed:
            raise InputError(f"cannot change {name} here: only {', '.join(allowed)} can be set")
        changes[name] = _parse(text.strip(), getattr(cfg, name), name)
    return changes


def _parse(text, like, name):
    """text as a value of the type of `like`: bool, int, float, str, or a tuple of numbers."""
    try:
        if isinstance(like, tuple):  # an empty one (lr_decay_epochs) holds whole numbers
            return tuple(_parse(part.strip(), like[0] if like else 0, name) for part in text.split(",") if part.strip())
        if isinstance(like, bool):
            return {"true": True, "1": True, "false": False, "0": False}[text.lower()]
        if isinstance(like, int):
            value = float(text)
            if value != int(value):
                raise ValueError
            return int(value)
        return type(like)(text)
    except (ValueError, KeyError):
        raise InputError(f"cannot set {name} to {text!r}: it takes a value like {like!r}") from None


def _upsampler(size, width, out_channels):
    """A small decoder from a vector to size×size: a 4×4 (or 3×3) seed doubled until it fits."""
    seed = 3 if size % 3 == 0 else 4
    ups = "-".join([f"cT{width}e"] * int(math.log2(size // seed)))
    return f"d{width * seed * seed}e-v{width}x{seed}x{seed}-{ups}-c{out_channels}"
