import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pyro_objects.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "quick"
    result = CliRunner().invoke(main, ["train", "polygons", "--quick", "--epochs", "1", "--n-train", "64",
                                       "--lr", "2e-3", "--device", "cpu", "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_train_leaves_a_checkpoint_config_log_and_figure(trained):
    for name in ("checkpoint.pt", "config.json", "log.csv", "figures/decomposition.png"):
        assert (trained / name).is_file(), name
    import json
    assert json.loads((trained / "config.json").read_text())["lr"] == 2e-3  # --lr overrides the config's


def test_train_channels_last_and_set_fields_are_recorded_and_the_run_decomposes(tmp_path):
    import json
    run_dir = tmp_path / "cl"
    result = invoke("train", "polygons", "--quick", "--epochs", 1, "--n-train", 64, "--channels-last",
                    "--no-cuda-graphs", "--set", "alpha_penalty=1e6", "--set", "sigma=0.02,0.01", "--set", "lr_decay_epochs=1,3",
                    "--device", "cpu", "--out", run_dir)
    assert result.exit_code == 0, result.output
    config = json.loads((run_dir / "config.json").read_text())
    assert "channels_last" not in config and "cuda_graphs" not in config  # how fast a run goes is not what it is
    assert config["alpha_penalty"] == 1e6 and config["sigma"] == [0.02, 0.01] and config["lr_decay_epochs"] == [1, 3]
    assert invoke("decompose", run_dir, "--n", 2, "--out", tmp_path / "d.png").exit_code == 0
    assert (tmp_path / "d.png").stat().st_size > 0
    result = invoke("train", "polygons", "--resume", "--out", run_dir, "--device", "cpu")  # the speed options not given
    assert result.exit_code == 0, result.output
    assert "last trained with --channels-last --no-cuda-graphs; it goes on with the defaults" in result.output
    result = invoke("train", "polygons", "--resume", "--out", run_dir, "--device", "cpu")
    assert result.exit_code == 0 and "note:" not in result.output  # as the command before it


def test_sample_and_decompose_write_their_figures(trained, tmp_path):
    assert invoke("sample", trained, "--n", 4, "--out", tmp_path / "s.png").exit_code == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    images = np.zeros((3, 64, 64, 3), np.uint8)
    np.savez(tmp_path / "in.npz", images=images)
    result = invoke("decompose", trained, "--input", tmp_path / "in.npz", "--out", tmp_path / "d.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d.png").stat().st_size > 0


def test_decompose_reads_image_files_and_folders_at_the_runs_size(trained, tmp_path):
    from PIL import Image
    (tmp_path / "photos").mkdir()
    red = np.zeros((90, 120, 3), np.uint8)  # 120 wide: the centre 90×90 is kept, then resized to 64×64
    red[:, 15:105, 0] = 255
    Image.fromarray(red).save(tmp_path / "photos" / "a.png")
    Image.fromarray(red[::-1].copy()).save(tmp_path / "photos" / "b.jpg")
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    for spec, count in ((tmp_path / "photos" / "a.png", 1), (tmp_path / "photos", 2)):
        result = invoke("decompose", trained, "--input", spec, "--out", tmp_path / "d.png", "--output", tmp_path / "p.npz")
        assert result.exit_code == 0, result.output
        with np.load(tmp_path / "p.npz") as pred:
            assert pred["recon"].shape == (count, 64, 64, 3)
    (tmp_path / "photos" / "c.png").write_bytes(b"not a png")
    one_line_error(invoke("decompose", trained, "--input", tmp_path / "photos"), "c.png cannot be read as an image")
    one_line_error(invoke("decompose", trained, "--input", tmp_path / "missing.png"), "missing.png does not exist")


def test_resume_refuses_options_that_would_change_the_runs_config(trained):
    before = (trained / "checkpoint.pt").read_bytes()
    result = invoke("train", "polygons", "--quick", "--resume", "--out", trained, "--epochs", 9, "--device", "cpu")
    one_line_error(result, "--epochs", "--resume", "--lr")
    assert (trained / "checkpoint.pt").read_bytes() == before
    result = invoke("train", "polygons", "--quick", "--resume", "--out", trained, "--set", "slots=3", "--device", "cpu")
    one_line_error(result, "cannot change slots", "alpha_penalty")
    result = invoke("train", "polygons", "--quick", "--out", trained / "x", "--set", "batch_size=3", "--device", "cpu")
    one_line_error(result, "--batch-size", "not --set")
    result = invoke("train", "polygons", "--quick", "--out", trained, "--scene-prior", 1, "--device", "cpu")
    one_line_error(result, "--scene-prior", "--resume")
    assert (trained / "checkpoint.pt").read_bytes() == before
    result = invoke("train", "polygons", "--quick", "--resume", "--out", trained, "--device", "cpu")
    assert result.exit_code == 0 and "epoch 1/1, step" in result.output  # the run's own epochs, not --quick's 5
    assert (trained / "checkpoint.pt").read_bytes() == before  # a finished run has nothing to add


def one_line_error(result, *words):
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), result.output


def test_unknown_dataset(tmp_path):
    one_line_error(invoke("train", "mnist", "--out", tmp_path / "r"), "unknown dataset 'mnist'")


def test_setting_an_unknown_field_or_a_wrong_value(tmp_path):
    one_line_error(invoke("train", "polygons", "--set", "beta_q=1", "--out", tmp_path / "r"), "beta_q", "NAME=VALUE")
    one_line_error(invoke("train", "polygons", "--set", "slots=two", "--out", tmp_path / "r"), "slots", "'two'")
    assert not (tmp_path / "r").exists()


def test_a_time_budget_of_no_time_is_refused_before_a_run_starts(tmp_path):
    one_line_error(invoke("train", "polygons", "--quick", "--time-budget", "0s", "--out", tmp_path / "r"), "no time at all")
    one_line_error(invoke("baseline", "train", "monet", "polygons", "--quick", "--time-budget", "0m",
                          "--out", tmp_path / "r"), "no time at all")
    assert not (tmp_path / "r").exists()


def test_a_learning_rate_schedule_is_set_or_taken_away_as_a_list_of_epochs():
    from pyro_objects.config import CLEVR5, POLYGONS, parse_settings
    assert parse_settings(CLEVR5, ["lr_decay_epochs=30, 60"]) == {"lr_decay_epochs": (30, 60)}  # from an empty default
    assert parse_settings(POLYGONS, ["lr_decay_epochs="]) == {"lr_decay_epochs": ()}  # no steps down


def test_missing_run_directory(tmp_path):
    one_line_error(invoke("sample", tmp_path / "none"), "does not exist")
    one_line_error(invoke("decompose", tmp_path / "none"), "does not exist")
    (tmp_path / "model.pt").write_bytes(b"")
    one_line_error(invoke("info", tmp_path / "model.pt"), "is a file, not a run directory", "pretrained:")


def test_a_device_this_machine_lacks_or_torch_does_not_know_is_one_line(tmp_path):
    one_line_error(invoke("sample", "pretrained:polygons", "--device", "tpu", "--out", tmp_path / "s.png"),
                   "unknown --device 'tpu'", "cpu, cuda or cuda:N")
    one_line_error(invoke("sample", "pretrained:polygons", "--device", "meta", "--out", tmp_path / "s.png"),
                   "--device meta is not supported")
    if not torch.cuda.is_available():
        one_line_error(invoke("sample", "pretrained:polygons", "--device", "cuda:1", "--out", tmp_path / "s.png"),
                       "no CUDA GPU")
    assert not (tmp_path / "s.png").exists()


def test_cpu_with_an_index_is_the_cpu():
    from pyro_objects.cli.common import pick_device
    assert pick_device("cpu:0") == pick_device("cpu") == "cpu"


def test_a_file_that_cannot_be_read_or_written_is_one_line(trained, monkeypatch):
    import pyro_objects.runs
    full = OSError(28, "No space left on device")
    full.filename = str(trained / "checkpoint.pt")

    def fails(*args, **kwargs):
        raise full
    monkeypatch.setattr(pyro_objects.runs, "load_checkpoint", fails)
    one_line_error(invoke("info", trained), "checkpoint.pt: No space left on device")


def test_a_number_that_is_not_finite_is_refused(tmp_path):
    for value in ("nan", "inf"):
        result = invoke("train", "polygons", "--quick", "--lr", value, "--out", tmp_path / "r")
        assert result.exit_code == 2 and "is not a finite number" in result.output, result.output
    result = invoke("score", tmp_path / "gt.npz", tmp_path / "pred.npz", "--threshold", "nan")
    assert result.exit_code == 2 and "is not a finite number" in result.output, result.output
    assert not (tmp_path / "r").exists()


def test_a_figure_too_large_to_draw_is_refused_before_any_work(trained, tmp_path):
    result = invoke("sample", trained, "--n", 257, "--out", tmp_path / "s.png")
    assert result.exit_code == 2 and "257 is not in the range 1<=x<=256" in result.output, result.output
    one_line_error(invoke("decompose", trained, "--n", 257, "--out", tmp_path / "d.png"), "at most 256 images", "--output")
    assert not list(tmp_path.iterdir())


def test_resume_refuses_another_dataset_or_seed_and_leaves_the_run_as_it_was(trained):
    before = (trained / "checkpoint.pt").read_bytes()
    one_line_error(invoke("train", "multi-dsprites", "--resume", "--out", trained), "a run on polygons, not multi-dsprites",
                   "pyro-objects train polygons --resume")
    one_line_error(invoke("train", "polygons", "--resume", "--seed", 4, "--out", trained), "started with --seed 0",
                   "keeps its seed")
    assert (trained / "checkpoint.pt").read_bytes() == before


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    one_line_error(invoke("sample", tmp_path), "corrupt")
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"garbage"  # nothing overwritten


def test_wrong_image_size(trained, tmp_path):
    np.savez(tmp_path / "small.npz", images=np.zeros((2, 32, 32, 3), np.uint8))
    one_line_error(invoke("decompose", trained, "--input", tmp_path / "small.npz"), "32×32", "64×64")
    np.savez(tmp_path / "empty.npz", images=np.zeros((0, 64, 64, 3), np.uint8))
    one_line_error(invoke("decompose", trained, "--input", tmp_path / "empty.npz"), "empty.npz", "holds no images")
    np.savez(tmp_path / "noimages.npz", other=np.zeros(3))
    one_line_error(invoke("decompose", trained, "--input", tmp_path / "noimages.npz"), "no array named 'images'")


def test_training_over_an_existing_run_is_refused(trained):
    before = (trained / "checkpoint.pt").read_bytes()
    one_line_error(invoke("train", "polygons", "--quick", "--out", trained), "already holds a run")
    assert (trained / "checkpoint.pt").read_bytes() == before


def test_data_show_draws_the_ground_truth(tmp_path):
    result = invoke("data", "show", "multi-dsprites", "--n", 4, "--out", tmp_path / "ds.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ds.png").stat().st_size > 0
    one_line_error(invoke("data", "show", "mnist"), "unknown dataset 'mnist'")


def test_train_on_a_folder_of_images(tmp_path):
    from PIL import Image
    for i in range(40):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    result = invoke("train", f"folder:{tmp_path}", "--quick", "--epochs", "1", "--device", "cpu",
                    "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    result = invoke("evaluate", tmp_path / "run", "--n", 4, "--no-fid", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "- mIOU: the 'folder:" in result.output and "has no ground-truth object masks" in result.output
    assert "| ours | — | — | — | — |" in result.output  # no decomposition numbers, MSE only


def test_an_export_named_other_than_npz_and_an_unquoted_glob_are_one_line(trained, tmp_path):
    one_line_error(invoke("decompose", trained, "--output", tmp_path / "pred.txt"), "pred.txt", "ending in .npz")
    assert not (tmp_path / "pred.txt").exists()
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"")
    result = invoke("decompose", trained, "--input", tmp_path / "a.png", tmp_path / "b.png")  # what a shell makes of *.png
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "unexpected extra argument" in result.output and "quote it: --input 'DIR/*.png'" in result.output


def test_decompose_exports_predictions_that_score_reads(trained, tmp_path):
    from pyro_objects.data import polygons
    g = polygons.generate(5, seed=11)
    np.savez(tmp_path / "gt.npz", images=g["images"].numpy(), amodal=g["amodal"].numpy(), count=g["count"].numpy())
    result = invoke("decompose", trained, "--input", tmp_path / "gt.npz", "--out", tmp_path / "d.png",
                    "--output", tmp_path / "pred.npz")
    assert result.exit_code == 0, result.output
    pred = np.load(tmp_path / "pred.npz")
    J = pred["depth"].shape[1]
    assert pred["alpha"].shape == (5, J, 64, 64) and pred["theta"].shape == (5, J, 2)
    assert pred["recon"].shape == (5, 64, 64, 3) and 0 <= pred["recon"].min() <= pred["recon"].max() <= 1
    result = invoke("score", tmp_path / "gt.npz", tmp_path / "pred.npz", "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    assert "mIOU" in result.output and (tmp_path / "s.json").is_file()


def test_score_of_the_ground_truth_itself_is_one(tmp_path):
    import json
    from pyro_objects.data import polygons
    g = polygons.generate(8, seed=2)
    amodal = g["amodal"].numpy()
    np.savez(tmp_path / "gt.npz", amodal=amodal, count=g["count"].numpy())
    depth = np.broadcast_to(np.linspace(0.9, 0.1, amodal.shape[1]), amodal.shape[:2])
    np.savez(tmp_path / "pred.npz", alpha=amodal.astype(np.float32), depth=depth)
    result = invoke("score", tmp_path / "gt.npz", tmp_path / "pred.npz", "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["mIOU"] == s["aIOU"] == s["FG-ARI"] == 1
    np.savez(tmp_path / "bad.npz", alpha=amodal[:, :, :10].astype(np.float32), depth=depth)
    one_line_error(invoke("score", tmp_path / "gt.npz", tmp_path / "bad.npz"), "bad.npz", "alpha")
    one_line_error(invoke("score", tmp_path / "gt.npz", tmp_path / "none.npz"), "does not exist")


def test_evaluate_writes_results_beside_the_papers(trained, tmp_path):
    import json
    out = tmp_path / "results.json"
    result = invoke("evaluate", trained, "--n", 6, "--fid-n", 4, "--device", "cpu", "--json", out)
    assert result.exit_code == 0, result.output
    r = json.loads(out.read_text())
    for k in ("mIOU", "aIOU", "FG-ARI", "MSE", "FID", "KIDx100", "FID objects"):
        assert k in r["metrics"], k
    assert r["paper"]["mIOU"] == 0.83 and r["images"] == 6
    assert "| paper | 0.83 | 0.90 | 0.87 |" in out.with_suffix(".md").read_text()
    assert len(r["slots"]["pixels_q90"]) == 2 and "Slots: pixels covered" in result.output
    assert r["dpa_curve"]["pairs"][0] == 6 and out.with_name("results-dpa.png").is_file()  # a pair in each image


def test_score_prints_the_hand_computed_numbers(tmp_path):
    """Object 0 (far) fills [0, 6)², object 1 (near) [4, 10)²; slot 0 finds object 1 exactly, slot 1
    only [0, 4)² of object 0, and is put in front. See tests/test_metrics.py for the arithmetic."""
    amodal = np.zeros((1, 2, 10, 10), bool)
    amodal[0, 0, :6, :6], amodal[0, 1, 4:, 4:] = True, True
    alpha = np.zeros((1, 2, 10, 10), np.float32)
    alpha[0, 0, 4:, 4:], alpha[0, 1, :4, :4] = 1, 1
    np.savez(tmp_path / "gt.npz", amodal=amodal, count=np.array([2]))
    np.savez(tmp_path / "pred.npz", alpha=alpha, depth=np.array([[0.8, 0.2]], np.float32))
    result = invoke("score", tmp_path / "gt.npz", tmp_path / "pred.npz", "--min-overlap", 4)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[1] for line in result.output.splitlines()}
    assert lines["mIOU"] == "0.7500" and lines["aIOU"] == f"{(16 / 36 + 1) / 2:.4f}" and lines["DPA"] == "0.0000"


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    """A tiny MONet trained by `baseline train` for two steps."""
    import torch
    run_dir = tmp_path_factory.mktemp("baselines") / "monet"
    torch.set_num_threads(1)  # tiny networks: see conftest's one_thread
    result = invoke("baseline", "train", "monet", "polygons", "--quick", "--n-train", 16, "--batch-size", 8,
                    "--epochs", 1, "--device", "cpu", "--out", run_dir)
    torch.set_num_threads(2)
    assert result.exit_code == 0, result.output
    assert "monet, epoch 1/1, step 2" in result.output
    assert (run_dir / "commands.txt").read_text().startswith("pyro-objects baseline train monet polygons --quick")
    return run_dir


def test_a_baseline_run_is_evaluated_with_aiou_and_dpa_not_applicable(baseline_run, tmp_path, one_thread):
    import json
    from pyro_objects.metrics import NOT_APPLICABLE
    for name in ("checkpoint.pt", "config.json", "log.csv", "figures/decomposition.png"):
        assert (baseline_run / name).is_file(), name
    out = tmp_path / "results.json"
    result = invoke("evaluate", baseline_run, "--n", 4, "--no-fid", "--device", "cpu", "--json", out)
    assert result.exit_code == 0, result.output
    r = json.loads(out.read_text())
    assert r["baseline"] == "monet" and r["metrics"]["aIOU"] is None and r["metrics"]["DPA"] is None
    assert r["not_applicable"] == {"aIOU": NOT_APPLICABLE, "DPA": NOT_APPLICABLE} and r["dpa_curve"] is None
    assert 0 <= r["metrics"]["mIOU"] <= 1 and 0 <= r["metrics"]["FG-ARI"] <= 1 and r["metrics"]["MSE"] > 0
    text = out.with_suffix(".md").read_text()
    assert f"| monet | {r['metrics']['mIOU']:.2f} | n/a | n/a |" in text and f"- aIOU: {NOT_APPLICABLE}" in text
    assert not out.with_name("results-dpa.png").exists()


def test_a_baseline_runs_predictions_are_scored_without_depth(baseline_run, tmp_path, one_thread):
    from pyro_objects.data import polygons
    g = polygons.generate(5, seed=11)
    np.savez(tmp_path / "gt.npz", images=g["images"].numpy(), amodal=g["amodal"].numpy(), count=g["count"].numpy())
    result = invoke("decompose", baseline_run, "--input", tmp_path / "gt.npz", "--out", tmp_path / "d.png",
                    "--output", tmp_path / "pred.npz", "--device", "cpu")
    assert result.exit_code == 0, result.output
    pred = np.load(tmp_path / "pred.npz")
    assert set(pred.files) == {"alpha", "recon"} and pred["alpha"].shape == (5, 3, 64, 64)  # K = 2 polygons + 1
    assert np.allclose(pred["alpha"].sum(1), 1, atol=1e-5) and pred["recon"].shape == (5, 64, 64, 3)
    result = invoke("score", tmp_path / "gt.npz", tmp_path / "pred.npz")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert lines["aIOU"].split()[1] == lines["DPA"].split()[1] == "n/a" and float(lines["mIOU"].split()[1]) >= 0
    result = invoke("sample", baseline_run, "--n", 2, "--out", tmp_path / "monet-samples.png", "--device", "cpu")
    assert result.exit_code == 0 and (tmp_path / "monet-samples.png").exists(), result.output  # MONet generates
    one_line_error(invoke("interpolate", baseline_run, "--a", tmp_path / "a.png", "--b", tmp_path / "b.png",
                          "--device", "cpu"), "monet baseline", "evaluate")
    one_line_error(invoke("train", "polygons", "--resume", "--out", baseline_run, "--device", "cpu"), "monet baseline")
    one_line_error(invoke("baseline", "train", "monet", "polygons", "--resume", "--epochs", 3, "--out", baseline_run),
                   "--epochs", "--resume")
    one_line_error(invoke("baseline", "train", "vae", "polygons", "--resume", "--out", baseline_run),
                   "monet baseline, not of vae")
    before = (baseline_run / "checkpoint.pt").read_bytes()
    one_line_error(invoke("baseline", "train", "monet", "polygons", "--resume", "--seed", 3, "--out", baseline_run),
                   "started with --seed 0", "keeps its seed")
    assert (baseline_run / "checkpoint.pt").read_bytes() == before


def test_bad_input_to_baseline_train_is_one_line(tmp_path):
    one_line_error(invoke("baseline", "train", "iodine", "polygons", "--out", tmp_path / "r"), "unknown baseline 'iodine'")
    one_line_error(invoke("baseline", "train", "monet", "mnist", "--out", tmp_path / "r"), "unknown dataset 'mnist'")
    result = invoke("baseline", "train", "monet", "polygons", "--batch-size", 0, "--out", tmp_path / "r")
    assert result.exit_code != 0 and "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert result.output.strip().splitlines()[-1].startswith("Error: Invalid value for '--batch-size'")
    assert not (tmp_path / "r").exists()


def test_max_steps_stops_a_run_at_that_step_and_a_resumed_one_counts_from_the_start(tmp_path, one_thread):
    run_dir, peer_dir = tmp_path / "ours", tmp_path / "vae"
    result = invoke("train", "polygons", "--quick", "--epochs", 3, "--n-train", 32, "--batch-size", 8, "--max-steps", 3,
                    "--no-cuda-graphs", "--device", "cpu", "--out", run_dir)
    assert result.exit_code == 0, result.output
    assert "stopped at step 3 (epoch 0)" in result.output and "epoch 0/3, step 3;" in result.output
    result = invoke("train", "polygons", "--resume", "--max-steps", 5, "--device", "cpu", "--out", run_dir)
    assert result.exit_code == 0 and "epoch 1/3, step 5;" in result.output, result.output
    result = invoke("baseline", "train", "vae", "polygons", "--quick", "--n-train", 16, "--batch-size", 8, "--epochs", 3,
                    "--max-steps", 1, "--device", "cpu", "--out", peer_dir)
    assert result.exit_code == 0 and "vae, epoch 0/3, step 1" in result.output, result.output
    result = invoke("baseline", "train", "vae", "polygons", "--resume", "--max-steps", 3, "--device", "cpu",
                    "--out", peer_dir)
    assert result.exit_code == 0 and "vae, epoch 1/3, step 3" in result.output, result.output


def test_a_run_whose_cache_moved_goes_on_from_its_new_place_and_refuses_other_images(tmp_path, one_thread):
    import torch
    made = [invoke("data", "make", "polygons", "--n", 32, "--n-eval", 8, "--out", tmp_path / name, "--seed", seed,
                   "--device", "cpu") for name, seed in (("cache", 0), ("other", 1))]
    assert all(r.exit_code == 0 for r in made), [r.output for r in made]
    ours, peer = tmp_path / "ours", tmp_path / "vae"
    result = invoke("train", "polygons", "--quick", "--epochs", 2, "--n-train", 32, "--batch-size", 16, "--max-steps", 2,
                    "--no-cuda-graphs", "--data", tmp_path / "cache", "--device", "cpu", "--out", ours)
    assert result.exit_code == 0, result.output
    result = invoke("baseline", "train", "vae", "polygons", "--quick", "--n-train", 32, "--batch-size", 16, "--epochs", 2,
                    "--max-steps", 1, "--data", tmp_path / "cache", "--device", "cpu", "--out", peer)
    assert result.exit_code == 0, result.output
    (tmp_path / "cache").rename(tmp_path / "moved")
    one_line_error(invoke("train", "polygons", "--resume", "--device", "cpu", "--out", ours),
                   "is not there", "--data DIR")
    one_line_error(invoke("evaluate", ours, "--n", 4, "--no-fid", "--device", "cpu"), "is not there", "--data DIR")
    one_line_error(invoke("train", "polygons", "--resume", "--data", tmp_path / "other", "--device", "cpu", "--out", ours),
                   "other training images")
    result = invoke("train", "polygons", "--resume", "--data", tmp_path / "moved", "--max-steps", 3, "--device", "cpu",
                    "--out", ours)
    assert result.exit_code == 0 and "step 3;" in result.output, result.output
    assert torch.load(ours / "checkpoint.pt", weights_only=False)["cache"] == str((tmp_path / "moved").resolve())
    assert invoke("evaluate", ours, "--n", 4, "--no-fid", "--device", "cpu").exit_code == 0  # from where it lies now
    one_line_error(invoke("baseline", "train", "vae", "polygons", "--resume", "--device", "cpu", "--out", peer),
                   "is not there", "--data DIR")
    result = invoke("baseline", "train", "vae", "polygons", "--resume", "--data", tmp_path / "moved", "--max-steps", 2,
                    "--device", "cpu", "--out", peer)
    assert result.exit_code == 0 and "step 2" in result.output, result.output
