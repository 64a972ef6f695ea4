import sys

import numpy as np
import pytest
import torch

from pyro_objects import metrics
from pyro_objects.data import blender, clevr, render
from pyro_objects.errors import InputError


@pytest.fixture(scope="module")
def both():
    """The same four clevr3 scenes drawn by our renderer and by Blender."""
    pytest.importorskip("bpy", reason="bpy is not installed: pip install -e '.[blender]'")
    ours = clevr.generate(4, seed=3, variant="clevr3", params=True)
    return ours, blender.render(ours, 96, "clevr3", samples=8, threads=2)


def test_a_missing_bpy_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "bpy", None)  # import bpy now raises ImportError
    with pytest.raises(InputError, match=r"bpy is not installed: pip install -e '\.\[blender\]'"):
        blender.require_bpy()


@pytest.mark.parametrize("make", [blender.sphere_mesh, blender.rounded_box_mesh, blender.rounded_cylinder_mesh])
def test_the_shapes_are_closed_unit_solids_with_outward_normals(make):
    verts, faces, normals = make()
    assert np.allclose(verts.min(0), -1, atol=1e-6) and np.allclose(verts.max(0), 1, atol=1e-6)
    edges = {}
    for f in faces:
        for a, b in zip(f, f[1:] + f[:1]):
            edges[a, b] = edges.get((a, b), 0) + 1
    assert all(edges.get((b, a)) == 1 for (a, b) in edges) and max(edges.values()) == 1  # each edge twice, opposite ways
    centre = np.array([verts[list(f)].mean(0) for f in faces])
    assert (np.einsum("ij,ij->i", centre, np.array([normals[list(f)].mean(0) for f in faces])) > 0).all()


def test_one_scene_renders_with_its_ground_truth(both):
    ours, (images, amodal, visible) = both
    assert images.shape == (4, 96, 96, 3) and images.dtype == torch.uint8
    assert amodal.shape == visible.shape == (4, 3, 96, 96)
    assert (amodal.flatten(2).any(2) == ours["present"]).all()  # every object drawn, empty slots empty
    assert (visible <= amodal).all() and (visible.sum(1) <= 2).all()  # two of a pixel's four rays make it an object's
    # where an object shows, the image takes its colour: the same strongest channel
    colour = ours["colour"][ours["present"]]
    top2 = colour.topk(2, -1).values
    clear = top2[:, 0] > 1.5 * top2[:, 1]
    shown = (images[:, None].float() * visible[..., None]).sum((2, 3)) / visible.sum((2, 3))[..., None]
    assert clear.sum() >= 3 and (shown[ours["present"]].argmax(-1) == colour.argmax(-1))[clear].all()


def test_both_renderers_draw_nearly_the_same_images(both):
    """render.py lights CLEVR with Blender's lamps, sun and ground in Blender's units: the images of the
    same scenes differ by a per-pixel MSE of about 4e-4 (against 2e-2 for directional lights)."""
    ours, (images, _, _) = both
    assert ((ours["images"].float() / 255 - images.float() / 255) ** 2).mean() < 1.5e-3


def iou(a, b, present):
    """Per present object: [M]"""
    return (a & b).sum((2, 3))[present].float() / (a | b).sum((2, 3))[present].float()


def test_both_renderers_agree_on_the_amodal_masks(both):
    """CLEVR's cubes have edges rounded by a fifth of their half-extent (ours: chamfered to cut as much)
    and its cylinders rims rounded by a tenth (ours: sharp)."""
    ours, (_, amodal, _) = both
    present, shape = ours["present"], ours["shape"][ours["present"]]
    overlap = iou(amodal, ours["amodal"], present)
    assert (overlap[shape == 0] >= 0.99).all() and (overlap[shape != 0] >= 0.95).all(), overlap


def test_with_sharp_edges_the_masks_agree_exactly_but_for_rounding(both, monkeypatch):
    """The same camera, sizes, poses and mask rule: sharp-edged shapes in both renderers cover the same pixels."""
    ours, _ = both
    box, cylinder = blender.rounded_box_mesh, blender.rounded_cylinder_mesh
    monkeypatch.setattr(blender, "rounded_box_mesh", lambda: box(1e-4))
    monkeypatch.setattr(blender, "rounded_cylinder_mesh", lambda: cylinder(1e-4))
    monkeypatch.setattr(render, "SLAB_WIDTH", torch.tensor([1.0] * 3 + [2.0] * 6))  # no chamfer
    blender.STAGE.clear()  # build the scene again, with these shapes
    try:
        _, amodal, _ = blender.render(ours, 96, "clevr3", samples=1, denoise=False, threads=2)
    finally:
        blender.STAGE.clear()
    spec = clevr.VARIANTS["clevr3"]
    _, coverage, _ = render.render(ours, 96, 2, spec.zoom, spec.metal)
    assert (iou(amodal, coverage >= 0.5, ours["present"]) >= 0.99).all()


def test_the_back_to_front_order_explains_blenders_occlusions(both):
    ours, (_, amodal, visible) = both
    _, _, seg = metrics.truth_masks(amodal, ours["count"])  # the nearest of the amodal masks, by the order
    rendered = torch.where(visible.any(1), visible.int().argmax(1), -1)
    shown = (seg >= 0) | (rendered >= 0)
    assert (seg[shown] == rendered[shown]).float().mean() > 0.99


def test_scenes_that_break_the_visibility_rule_in_blender_are_redrawn(monkeypatch):
    pytest.importorskip("bpy", reason="bpy is not installed: pip install -e '.[blender]'")
    seen = []

    def hide_the_second(scene, N, *args, **kwargs):
        image, amodal, visible = blender_render(scene, N, *args, **kwargs)
        seen.append(len(seen))
        if len(seen) == 2:  # Blender leaves the second scene's first object 9 visible pixels
            visible[0, 0] = False
            visible[0, 0, :3, :3] = True
        return image, amodal, visible
    blender_render = blender.render
    monkeypatch.setattr(blender, "render", hide_the_second)
    data = blender.generate(2, seed=4, variant="clevr3", samples=1, denoise=False, threads=2, progress=False)
    assert data["index"].tolist() == [0, 2] and data["images"].shape == (2, 96, 96, 3)
    present = torch.arange(3) < data["count"][:, None]
    assert (data["visible"][present] >= clevr.VARIANTS["clevr3"].min_visible).all()
    ours = clevr.generate(3, seed=4, variant="clevr3")
    assert torch.equal(data["centre"], ours["centre"][[0, 2]])  # the same scenes as ours, the second left out


def test_data_make_with_blender_says_what_is_wrong_in_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pyro_objects.cli import main
    monkeypatch.setitem(sys.modules, "bpy", None)
    runner = CliRunner()
    missing = runner.invoke(main, ["data", "make", "clevr3", "--renderer", "blender", "--n", "2", "--n-eval", "2",
                                   "--out", str(tmp_path / "a")])
    assert missing.exit_code == 1 and "bpy is not installed" in missing.output and "Traceback" not in missing.output
    other = runner.invoke(main, ["data", "make", "polygons", "--renderer", "blender", "--n", "2", "--n-eval", "2",
                                 "--out", str(tmp_path / "b")])
    assert other.exit_code == 1 and "draws CLEVR only" in other.output
    assert not (tmp_path / "a" / "manifest.json").exists() and not (tmp_path / "b" / "manifest.json").exists()


def test_data_make_with_blender_writes_a_cache_that_records_its_renderer(tmp_path):
    pytest.importorskip("bpy", reason="bpy is not installed: pip install -e '.[blender]'")
    from click.testing import CliRunner

    from pyro_objects.cli import main
    from pyro_objects.data import shards
    result = CliRunner().invoke(main, ["data", "make", "clevr3", "--renderer", "blender", "--n", "1", "--n-eval", "2",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    manifest = shards.read_manifest(tmp_path)
    assert manifest["renderer"] == "blender" and manifest["blender"]["samples"] == blender.SAMPLES
    data = shards.read(tmp_path, "clevr3", "eval")
    pixels = data["amodal"].sum((2, 3))
    assert len(data["images"]) == 2 and (pixels[torch.arange(pixels.shape[1]) < data["count"][:, None]] > 0).all()
