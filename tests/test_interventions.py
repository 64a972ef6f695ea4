import dataclasses

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pyro_objects.cli import main
from pyro_objects.compositor import modal_segmentation
from pyro_objects.errors import InputError
from pyro_objects.guide import Guide
from pyro_objects.interpolate import interpolate
from pyro_objects.interventions import bring_to_front, intervene, one_hot_at, place_objects, sample
from pyro_objects.model import Model
from pyro_objects.runs import save_checkpoint, save_config

COLOURS = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])  # slot 0 red, slot 1 blue


def drawn_by_hand(model, alpha):
    """The model with F_obj replaced: slot j is COLOURS[j] with the given M×M alpha, whatever z is."""
    def draw_objects(z):
        B, J, _ = z.shape
        rgb = COLOURS[:J, :, None, None].expand(J, 3, *alpha.shape)
        return torch.cat([rgb, alpha.expand(J, 1, *alpha.shape)], 1).expand(B, J, 4, *alpha.shape)
    model.draw_objects = draw_objects
    return model


def gaussian_blob(M, width=1.5):  # symmetric about the canvas centre (M//2, M//2)
    i = torch.arange(M) - M // 2
    return torch.exp(-(i[:, None] ** 2 + i[None, :] ** 2) / (2 * width ** 2))


def test_placing_a_slot_puts_its_alphas_centre_of_mass_on_the_pixel(tiny_cfg):
    N = tiny_cfg.image_size
    model = drawn_by_hand(Model(tiny_cfg).eval(), gaussian_blob(tiny_cfg.canvas_size))
    before, trace = sample(model, 3)
    after = place_objects(model, trace, [(0, 12, 20), (1, 7, 25)])
    rows, cols = torch.meshgrid(torch.arange(N), torch.arange(N), indexing="ij")
    for j, (r, c) in enumerate([(12, 20), (7, 25)]):
        alpha = after["placed"][:, j, 3]
        mass = alpha.sum((-1, -2))
        assert torch.allclose((alpha * rows).sum((-1, -2)) / mass, torch.full((3,), float(r)), atol=1e-3)
        assert torch.allclose((alpha * cols).sum((-1, -2)) / mass, torch.full((3,), float(c)), atol=1e-3)
    # everything else is as it was sampled: the do() changed θ and nothing upstream of it
    assert torch.equal(after["d"], before["d"]) and torch.equal(after["x_bg"], before["x_bg"])


def test_bringing_a_slot_to_the_front_makes_it_the_visible_one_where_objects_overlap(tiny_cfg):
    M, N = tiny_cfg.canvas_size, tiny_cfg.image_size
    square = torch.zeros(M, M)
    square[M // 2 - 3:M // 2 + 3, M // 2 - 3:M // 2 + 3] = 1  # opaque 6×6 squares...
    model = drawn_by_hand(Model(tiny_cfg).eval(), square)
    _, trace = sample(model, 4)
    theta = one_hot_at(trace.nodes["theta"]["value"], [(0, 16, 16), (1, 18, 18)], N)  # ...that overlap
    for front, colour in [(0, COLOURS[0]), (1, COLOURS[1])]:
        d = bring_to_front(model, trace, front)["d"]
        out = intervene(model, trace, theta=theta, d=d)
        assert torch.allclose(out["x_mean"][:, :, 17, 17], colour.expand(4, 3), atol=1e-3)
        assert (modal_segmentation(out["placed"][:, :, 3], out["d"])[:, 17, 17] == front).all()
        assert (d[:, front] < d[:, 1 - front]).all()


def test_interventions_name_bad_slots_and_pixels(tiny_cfg):
    model = Model(tiny_cfg).eval()
    _, trace = sample(model, 2)
    with pytest.raises(InputError, match="slot 5 does not exist"):
        place_objects(model, trace, [(5, 1, 1)])
    with pytest.raises(InputError, match="outside the 32×32 image"):
        place_objects(model, trace, [(0, 40, 1)])
    with pytest.raises(InputError, match="slot 2 does not exist"):
        bring_to_front(model, trace, 2)


def test_interpolating_appearance_keeps_positions_and_position_keeps_appearance_inputs(tiny_cfg):
    model, guide = Model(tiny_cfg).eval(), Guide(tiny_cfg).eval()
    x = torch.rand(2, 3, tiny_cfg.image_size, tiny_cfg.image_size)
    half = model.y_pos
    both = interpolate(model, guide, x[0], x[1], "both", steps=5)
    y_a, y_b = both["y"][0], both["y"][-1]  # the ends are the two images' Q(y) means
    assert not torch.allclose(y_a, y_b)
    appearance = interpolate(model, guide, x[0], x[1], "appearance", steps=5)
    pixels = appearance["theta"].argmax(-1)
    assert (pixels == pixels[0]).all()  # ζ reads only y's first half, which stays y_a's
    assert torch.allclose(appearance["y"][:, half:], both["y"][:, half:])
    position = interpolate(model, guide, x[0], x[1], "position", steps=5)
    assert torch.equal(position["y"][:, half:], y_a[half:].expand(5, -1))  # ξ's y input never moves
    assert torch.allclose(position["y"][-1, :half], y_b[:half])
    with pytest.raises(InputError, match="unknown factor"):
        interpolate(model, guide, x[0], x[1], "colour")


@pytest.fixture
def stage_two_run(tiny_cfg, tmp_path):
    """A run directory holding an untrained model whose checkpoint says it reached stage 2."""
    run = tmp_path / "run"
    run.mkdir()
    save_config(run, tiny_cfg)
    save_checkpoint(run, {"config": dataclasses.asdict(tiny_cfg), "seed": 0, "model": Model(tiny_cfg).state_dict(),
                          "guide": Guide(tiny_cfg).state_dict(), "stage": 2, "epoch": 2, "step": 8,
                          "sigma": tiny_cfg.sigma[1]})
    return run


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_sample_intervenes_and_interpolate_writes_a_png_or_gif(stage_two_run, tmp_path):
    from PIL import Image
    result = invoke("sample", stage_two_run, "--n", 2, "--place", "0:5,6", "--place", "1:20,20", "--front", 1,
                    "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.png").is_file() and (tmp_path / "s-before.png").is_file()
    np.savez(tmp_path / "two.npz", images=np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8))
    two = tmp_path / "two.npz"
    result = invoke("interpolate", stage_two_run, "--a", f"{two}:0", "--b", f"{two}:1",
                    "--factor", "position", "--steps", 3, "--out", tmp_path / "walk.gif")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "walk.gif").format == "GIF"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "a.png")  # any size: cropped and resized
    result = invoke("interpolate", stage_two_run, "--a", tmp_path / "a.png", "--b", f"{two}:1",
                    "--out", tmp_path / "walk.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "walk.png").stat().st_size > 0


@pytest.mark.parametrize("args, words", [
    (("--place", "0-5-6"), ("cannot read --place", "SLOT:ROW,COL")),
    (("--place", "7:1,1"), ("slot 7 does not exist",)),
    (("--front", 3), ("slot 3 does not exist",)),
])
def test_bad_interventions_are_one_line_errors(stage_two_run, args, words):
    result = invoke("sample", stage_two_run, "--n", 1, *args)
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), result.output


def test_interpolate_names_a_missing_image_or_index(stage_two_run, tmp_path):
    np.savez(tmp_path / "one.npz", images=np.zeros((1, 32, 32, 3), np.uint8))
    result = invoke("interpolate", stage_two_run, "--a", tmp_path / "none.png", "--b", tmp_path / "none.png")
    assert result.exit_code != 0 and "does not exist" in result.output
    one = tmp_path / "one.npz"
    result = invoke("interpolate", stage_two_run, "--a", f"{one}:0", "--b", f"{one}:4")
    assert result.exit_code != 0 and "index 4 is out of range" in result.output


def test_save_gif_writes_one_frame_per_step(tmp_path):
    from PIL import Image
    from pyro_objects.viz import save_gif
    frames = torch.linspace(0, 1, 4)[:, None, None, None].expand(4, 3, 8, 8)
    save_gif(frames, tmp_path / "f.gif", scale=2)
    gif = Image.open(tmp_path / "f.gif")
    assert gif.n_frames == 4 and gif.size == (16, 16)
