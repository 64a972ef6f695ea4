import numpy as np
import torch

from pyro_objects import metrics
from pyro_objects.data import Dataset, polygons
from pyro_objects.evaluate import decomposition_scores, evaluate_data, generate, predict, slot_check, slot_sizes
from pyro_objects.guide import Guide
from pyro_objects.model import Model
from pyro_objects.report import markdown


def tiny_data(cfg, n=6):
    d = polygons.generate(n, seed=4, image_size=cfg.image_size)
    return Dataset("polygons", d["images"], d["amodal"], d["count"])


def test_a_models_scores_are_the_scores_of_its_predictions_file(tiny_cfg):
    """Two routes to the same numbers: evaluate's batches, and score's arrays (PRED.npz)."""
    model, guide, data = Model(tiny_cfg).eval(), Guide(tiny_cfg).eval(), tiny_data(tiny_cfg)
    scores, skipped = decomposition_scores(model, guide, data, batch_size=4)
    pred = predict(model, guide, data.images, batch_size=4)
    assert pred["alpha"].shape == (6, 2, 32, 32) and pred["alpha"].dtype == np.float32 and not skipped
    from_file = metrics.score({"amodal": data.amodal, "count": data.count, "images": data.images}, pred)
    for k in ("mIOU", "aIOU", "DPA", "FG-ARI", "MSE"):
        assert scores[k] == from_file[k] or (scores[k] is None and from_file[k] is None), k


def test_generated_scenes_and_objects_are_uint8_images(tiny_cfg):
    model = Model(tiny_cfg).eval()
    scenes, objects = generate(model, tiny_cfg, 5, batch_size=2, background=(0.0, 0.0, 0.0))
    assert scenes.shape == (5, 32, 32, 3) and scenes.dtype == torch.uint8
    assert objects.dtype == torch.uint8 and objects.shape[1:] == (32, 32, 3) and len(objects) <= 5 * tiny_cfg.slots


def test_evaluating_without_fid_says_why_and_keeps_the_papers_numbers(tiny_cfg):
    model, guide, data = Model(tiny_cfg).eval(), Guide(tiny_cfg).eval(), tiny_data(tiny_cfg)
    results = evaluate_data(model, guide, tiny_cfg, data, fid=False)
    assert results["skipped"]["FID"] == "--no-fid was given" and results["paper"]["mIOU"] == 0.83
    assert results["images"] == 6 and set(results["metrics"]) >= {"mIOU", "aIOU", "DPA", "FG-ARI", "MSE"}
    assert "| paper | 0.83 | 0.90 | 0.87 |" in markdown(results)


def test_a_slot_that_draws_only_specks_is_flagged_and_a_spare_slot_is_not():
    alpha = torch.zeros(10, 3, 32, 32)
    alpha[:, 0, :20, :20] = 1  # slot 0: a 400-pixel object in every image
    alpha[:, 1, :2, :2] = 0.9  # slot 1: a 4-pixel speck in every image (the stuck state)
    alpha[:3, 2, 10:30, 10:30] = 0.9  # slot 2: an object in 3 images of 10, empty in the rest (a spare slot)
    alpha[:, 2, 0, 0] = 0.2  # under the threshold: not covered
    sizes = slot_sizes(alpha)
    assert sizes[0].tolist() == [400, 4, 400] and sizes[9].tolist() == [400, 4, 0]
    check = slot_check(sizes)
    assert check == {"pixels_q90": [400.0, 4.0, 400.0], "specks": [1], "against": 400.0}
    results = {"dataset": "polygons", "split": "eval", "images": 10, "metrics": {}, "paper": {}, "skipped": {},
               "slots": check}
    text = markdown(results)
    assert "slot 0 400, slot 1 4, slot 2 400" in text
    assert "Warning: slot 1 draws only specks (4 px against 400)" in text and "slot 2 draws" not in text
    assert "Warning" not in markdown({**results, "slots": slot_check(sizes[:, [0, 2]])})


def test_a_peers_background_slot_is_left_out_of_the_speck_check():
    sizes = torch.tensor([[3900, 280, 270], [3800, 300, 0]] * 5)  # MONet's: slot 0 the background, two objects
    assert slot_check(sizes)["specks"] == [1, 2]  # held to the background's size, both objects look like specks
    assert slot_check(sizes, background_slot=True) == {"pixels_q90": [3900.0, 300.0, 270.0], "specks": [], "against": 300.0}
    stuck = torch.tensor([[3900, 500, 4]] * 10)  # one slot draws both objects, the other a speck
    check = slot_check(stuck, background_slot=True)
    assert check["specks"] == [2] and check["against"] == 500.0
    text = markdown({"dataset": "polygons", "split": "eval", "images": 10, "metrics": {}, "paper": {}, "skipped": {},
                     "slots": check})
    assert "Warning: slot 2 draws only specks (4 px against 500)" in text and "slot 1 draws" not in text
    assert slot_check(torch.tensor([[4096]] * 4), background_slot=True)["specks"] == []  # the VAE's one slot


def test_the_report_names_the_renderer_of_clevr_scenes_alone():
    results = {"split": "eval", "images": 10, "metrics": {}, "paper": {}, "skipped": {}, "renderer": "blender"}
    assert "drawn by the blender renderer" in markdown({**results, "dataset": "clevr5"}).splitlines()[0]
    assert "renderer" not in markdown({**results, "dataset": "multi-dsprites", "renderer": "torch"}).splitlines()[0]


def peer(name, cfg):
    from pyro_objects.baselines import QUICK, build
    return build(name, cfg, QUICK[name]).eval()


def test_a_peers_scenes_are_its_own_samples_with_no_objects_alone(tiny_cfg, one_thread):
    torch.manual_seed(3)
    scenes, objects = generate(peer("monet", tiny_cfg), tiny_cfg, 5, batch_size=2, background=(0.0, 0.0, 0.0))
    assert scenes.shape == (5, 32, 32, 3) and scenes.dtype == torch.uint8 and objects is None
    torch.manual_seed(3)  # sample(2), sample(2), sample(1): the same draws as one sample(2) first
    assert torch.equal(scenes[:2], (peer("monet", tiny_cfg).sample(2) * 255).round().byte().permute(0, 2, 3, 1))


def test_a_peer_is_scored_without_amodal_metrics_and_fid_where_it_samples(tiny_cfg, one_thread):
    data = tiny_data(tiny_cfg, n=4)
    results = evaluate_data(peer("slot-attention", tiny_cfg), None, tiny_cfg, data, batch_size=2, fid=True)
    assert results["skipped"]["FID"] == "SlotAttention does not generate images" and "FID" not in results["metrics"]
    assert results["metrics"]["aIOU"] is None and set(results["not_applicable"]) == {"aIOU", "DPA"}
    assert "| n/a | n/a |" in markdown(results)
    results = evaluate_data(peer("vae", tiny_cfg), None, tiny_cfg, data, batch_size=2, fid=True, fid_n=3)
    assert results["metrics"]["FID"] > 0 and results["metrics"]["FID_images"] == 3
    assert results["skipped"]["FID objects"] == "a peer model draws no objects alone"
    assert results["metrics"]["mIOU"] is None and results["slots"]["pixels_q90"] == [32.0 ** 2]  # one mask over everything
    assert set(results["not_applicable"]) == {"mIOU", "aIOU", "DPA", "FG-ARI"} and "| n/a | n/a | n/a | n/a |" in markdown(results)
