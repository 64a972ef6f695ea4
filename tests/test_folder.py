import numpy as np
import pytest
from PIL import Image

from pyro_objects import data
from pyro_objects.errors import InputError


def write_images(folder, n, size=(80, 60)):
    for i in range(n):
        Image.fromarray(np.full((size[1], size[0], 3), i * 20, np.uint8)).save(folder / f"im{i:02d}.png")


def test_good_files_load_centre_cropped_and_resized(tmp_path):
    write_images(tmp_path, 12)
    train, held_out = data.load(f"folder:{tmp_path}", "train"), data.load(f"folder:{tmp_path}", "eval")
    assert train.images.shape == (11, 64, 64, 3) and held_out.images.shape == (1, 64, 64, 3)
    assert train.images[3].float().mean() == pytest.approx(60, abs=1)
    assert not train.has_truth


def test_a_corrupt_file_is_skipped_and_reported(tmp_path, capsys):
    write_images(tmp_path, 4)
    (tmp_path / "broken.png").write_bytes(b"not really a png")
    loaded = data.load(f"folder:{tmp_path}", "train")
    assert len(loaded) == 4
    assert "skipped 1 of 5" in capsys.readouterr().err


def test_empty_and_missing_folders_fail_clearly(tmp_path):
    with pytest.raises(InputError, match="holds no PNG or JPEG"):
        data.load(f"folder:{tmp_path}")
    with pytest.raises(InputError, match="neither a folder nor a glob"):
        data.load(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "bad.jpg").write_bytes(b"junk")
    with pytest.raises(InputError, match="no readable images"):
        data.load(f"folder:{tmp_path}")


def test_globs_select_files(tmp_path):
    write_images(tmp_path, 5)
    assert len(data.load(f"folder:{tmp_path}/im0[0-2].png")) == 3
