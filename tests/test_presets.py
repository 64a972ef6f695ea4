"""Presets: 'ours' is the default config; 'paper-training' sets the paper's schedules and readings, nothing else."""
import dataclasses

import pytest
from click.testing import CliRunner

from pyro_objects import schedules
from pyro_objects.cli import main
from pyro_objects.config import CONFIGS, PRESETS, with_preset
from pyro_objects.errors import InputError
from pyro_objects.runs import config_from_dict

SET = {"preset", "lr_decay_epochs", "sigma_switch", "sigma_warmup_epochs", "temperature_reading", "sharpness",
       "xi_positions", "depth_blend", "attentive", "slots", "zeta", "calibration_batches",
       "weight_average"}


def changed(a, b):
    return {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_paper_training_sets_app_bs_schedules_and_leaves_the_networks_ours(name):
    ours = CONFIGS[name]
    paper = with_preset(ours, "paper-training")
    assert with_preset(ours, "ours") == ours and ours.preset == "ours"
    assert changed(paper, ours) <= SET
    for field in ("obj_decoder", "bg_decoder", "obj_encoder", "bg_encoder", "position_unet", "z_dim", "z_bg_dim",
                  "beta_z", "beta_bg", "theta_penalty"):
        assert getattr(paper, field) == getattr(ours, field)
    assert paper.attentive == (name == "multi-dsprites") and paper.slots == (4 if name == "multi-dsprites" else ours.slots)
    assert paper.zeta.endswith(f"-c{paper.slots}")
    assert ours.calibration_batches == 10 and paper.calibration_batches == 0  # App. B describes no such step
    old = {k: v for k, v in dataclasses.asdict(paper).items() if k != "calibration_batches"}  # saved before the field
    assert config_from_dict(old) == paper
    assert config_from_dict({k: v for k, v in dataclasses.asdict(ours).items() if k != "calibration_batches"}) == ours
    assert ours.weight_average == 0.999 and paper.weight_average == 0  # ours: a moving average of the weights
    older = {k: v for k, v in dataclasses.asdict(ours).items() if k not in ("calibration_batches", "weight_average")}
    assert config_from_dict(older) == ours.replace(weight_average=0.0)  # trained before the field: no average
    # App. B: σ switches after epoch 150 of 500, the rate stays 5e-4, the temperature is 0.3·2^(0.0001·epoch)
    assert schedules.sigma(paper, 149) == paper.sigma[0] and schedules.sigma(paper, 150) == paper.sigma[1]
    assert all(schedules.learning_rate(paper, 5e-4, e) == 5e-4 for e in range(paper.epochs))
    assert schedules.temperature(paper, 400 * paper.n_train) == pytest.approx(0.3 * 2 ** (0.0001 * 400))


def test_an_unknown_preset_is_one_line_and_a_resumed_run_keeps_its_own(tmp_path):
    with pytest.raises(InputError, match="unknown preset 'paper'"):
        with_preset(CONFIGS["polygons"], "paper")
    assert set(PRESETS) == {"ours", "paper-training"}
    assert config_from_dict({k: v for k, v in dataclasses.asdict(CONFIGS["clevr3"]).items() if k != "preset"}).preset == "ours"
    runner, run = CliRunner(), tmp_path / "run"
    made = runner.invoke(main, ["train", "polygons", "--quick", "--preset", "paper-training", "--epochs", "1",
                                "--n-train", "16", "--batch-size", "8", "--device", "cpu", "--out", str(run)])
    assert made.exit_code == 0, made.output
    assert '"preset": "paper-training"' in (run / "config.json").read_text()
    again = runner.invoke(main, ["train", "polygons", "--out", str(run), "--resume", "--preset", "ours"])
    assert again.exit_code == 1 and "--preset cannot change a run" in again.output
