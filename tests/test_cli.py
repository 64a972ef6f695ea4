import numpy as np
import pytest
from click.testing import CliRunner

from pyro_objects.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "quick"
    result = CliRunner().invoke(main, ["train", "polygons", "--quick", "--epochs", "1", "--n-train", "64",
                                       "--device", "cpu", "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_train_leaves_a_checkpoint_config_log_and_figure(trained):
    for name in ("checkpoint.pt", "config.json", "log.csv", "figures/decomposition.png"):
        assert (trained / name).is_file(), name


def test_sample_and_decompose_write_their_figures(trained, tmp_path):
    assert invoke("sample", trained, "--n", 4, "--out", tmp_path / "s.png").exit_code == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    images = np.zeros((3, 64, 64, 3), np.uint8)
    np.savez(tmp_path / "in.npz", images=images)
    result = invoke("decompose", trained, "--input", tmp_path / "in.npz", "--out", tmp_path / "d.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d.png").stat().st_size > 0


def one_line_error(result, *words):
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), result.output


def test_unknown_dataset(tmp_path):
    one_line_error(invoke("train", "mnist", "--out", tmp_path / "r"), "unknown dataset 'mnist'")


def test_missing_run_directory(tmp_path):
    one_line_error(invoke("sample", tmp_path / "none"), "does not exist")
    one_line_error(invoke("decompose", tmp_path / "none"), "does not exist")


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    one_line_error(invoke("sample", tmp_path), "corrupt")
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"garbage"  # nothing overwritten


def test_wrong_image_size(trained, tmp_path):
    np.savez(tmp_path / "small.npz", images=np.zeros((2, 32, 32, 3), np.uint8))
    one_line_error(invoke("decompose", trained, "--input", tmp_path / "small.npz"), "32×32", "64×64")
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
