"""Training's schedules (Sec. 4, App. B): θ's temperature by step; σ, the stage and the
learning rate by epoch; and each step's seed, so that a resumed run draws what an
uninterrupted one would."""


def temperature(cfg, step):  # App. B: "0.3 × 2^(0.0001×i)"
    """θ's Gumbel-softmax temperature after `step` steps. cfg.temperature_reading 'inverse' (ours): a·2^(r·i) is
    the inverse temperature, i counting steps of 100 images (so a larger batch anneals at the same rate per
    image); 'epoch': a·2^(r·i) is the temperature itself, i the epoch, as App. B prints it."""
    a, rate = cfg.sharpness
    if cfg.temperature_reading == "epoch":
        return max(a * 2.0 ** (rate * (step * cfg.batch_size // cfg.n_train)), cfg.min_temperature)
    i = step * cfg.batch_size / 100
    return max(1.0 / (a * 2.0 ** (rate * i)), cfg.min_temperature)


def sigma(cfg, epoch):  # App. B: σ switches part-way through; ours: wider in the first epochs
    if epoch < cfg.sigma_warmup_epochs:
        return cfg.sigma_warmup
    return cfg.sigma[0] if epoch < cfg.sigma_switch * cfg.epochs else cfg.sigma[1]


def stage(cfg, epoch):  # Sec. 4: stage 2 is the last hyperprior_epochs epochs, never the first epoch
    return 2 if cfg.hyperprior_epochs > 0 and epoch >= max(cfg.epochs - cfg.hyperprior_epochs, 1) else 1


def learning_rate(cfg, lr, epoch):
    """The rate of the epoch that starts now, given the last one's: stage 1 steps down by lr_decay
    at the start of each epoch in lr_decay_epochs (Adam's moments are kept)."""
    return lr * cfg.lr_decay if stage(cfg, epoch) == 1 and epoch in cfg.lr_decay_epochs else lr


def step_seed(seed, step, rank=0):
    """The seed of one step's random draws (of process `rank` under data parallelism)."""
    return (seed * 1_000_003 + step) * 64 + rank


def epoch_order_seed(seed, epoch):
    """The seed of an epoch's shuffle of the training images."""
    return seed * 1_000_003 + epoch
