"""Training's schedules (Sec. 4, App. B): θ's temperature by the images trained on; σ, the
stage, the batch size and the learning rate by epoch; and each step's seed, so that a resumed
run draws what an uninterrupted one would."""


def temperature(cfg, images):  # App. B: "0.3 × 2^(0.0001×i)"
    """θ's Gumbel-softmax temperature after training on `images` images. cfg.temperature_reading 'inverse'
    (ours): a·2^(r·i) is the inverse temperature, i counting steps of 100 images (so a larger batch anneals at
    the same rate per image); 'epoch': a·2^(r·i) is the temperature itself, i the epoch, as App. B prints it."""
    a, rate = cfg.sharpness
    if cfg.temperature_reading == "epoch":
        return max(a * 2.0 ** (rate * (images // cfg.n_train)), cfg.min_temperature)
    return max(1.0 / (a * 2.0 ** (rate * images / 100)), cfg.min_temperature)


def sigma(cfg, epoch):  # App. B: σ switches part-way through; ours: wider in the first epochs
    if epoch < cfg.sigma_warmup_epochs:
        return cfg.sigma_warmup
    return cfg.sigma[0] if epoch < cfg.sigma_switch * cfg.epochs else cfg.sigma[1]


def stage(cfg, epoch):  # Sec. 4: stage 2 is the last hyperprior_epochs epochs, never the first epoch
    return 2 if cfg.hyperprior_epochs > 0 and epoch >= max(cfg.epochs - cfg.hyperprior_epochs, 1) else 1


def batch_size(cfg, epoch):  # ours, off by default: a larger batch once the slots have separated
    """Stage 1's batch in `epoch`: cfg.batch_size, times batch_growth for each epoch of batch_growth_epochs
    reached. Stage 2 keeps cfg.batch_size."""
    if stage(cfg, epoch) == 2:
        return cfg.batch_size
    return cfg.batch_size * cfg.batch_growth ** sum(epoch >= e for e in cfg.batch_growth_epochs)


def learning_rate(cfg, lr, epoch):
    """The rate of the epoch that starts now, given the last one's: stage 1 steps down by lr_decay
    at the start of each epoch in lr_decay_epochs, and by batch_growth_lr at each of batch_growth_epochs
    (Adam's moments are kept)."""
    if stage(cfg, epoch) != 1:
        return lr
    return lr * (cfg.lr_decay if epoch in cfg.lr_decay_epochs else 1) * \
        (cfg.batch_growth_lr if epoch in cfg.batch_growth_epochs else 1)


def step_seed(seed, step, rank=0):
    """The seed of one step's random draws (of process `rank` under data parallelism)."""
    return (seed * 1_000_003 + step) * 64 + rank


def epoch_order_seed(seed, epoch):
    """The seed of an epoch's shuffle of the training images."""
    return seed * 1_000_003 + epoch
