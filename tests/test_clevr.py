import math

import pytest
import torch

from pyro_objects import metrics
from pyro_objects.data import clevr, load, render

N = 48  # small images keep the tests fast; the datasets are 96×96


@pytest.fixture(scope="module")
def scenes():
    return clevr.generate(8, seed=5, variant="clevr5", image_size=N)


def two_spheres(near_first):
    """Two equal rubber spheres on the line from the camera through the origin, one in front of the other."""
    camera = torch.tensor([[10.0, 0.0, 1.5]])
    centre = torch.tensor([[[3.0, 0.0], [-3.0, 0.0]]])
    if not near_first:
        centre = centre.flip(1)
    return {"shape": torch.zeros(1, 2, dtype=torch.long), "centre": centre, "size": torch.full((1, 2), 1.0),
            "angle": torch.zeros(1, 2), "colour": torch.tensor([[[1.0, 0, 0], [0, 0, 1.0]]]),
            "metal": torch.zeros(1, 2, dtype=torch.bool), "present": torch.ones(1, 2, dtype=torch.bool),
            "camera": camera, "light_position": torch.tensor([[[1.0, 0, 10]] * 3]), "ground": torch.tensor([0.8])}


@pytest.mark.parametrize("near_first", [True, False])
def test_the_nearer_sphere_hides_the_farther(near_first):
    scene = two_spheres(near_first)
    image, coverage, visible = render.render(scene, N)
    near = 0 if near_first else 1
    both = (coverage[0, 0] > 0.99) & (coverage[0, 1] > 0.99)
    assert both.sum() > 20  # they overlap in the image
    assert (visible[0, near][both] == 1).all() and (visible[0, 1 - near][both] == 0).all()
    # where they overlap, the image is the near sphere's colour: red if it is object 0
    red = image[0][both][:, 0] > image[0][both][:, 2]
    assert red.all() if near_first else (~red).all()
    order = clevr.back_to_front(scene)[0].tolist()
    assert order == [1 - near, near]


def test_the_scene_is_mirror_symmetric_about_the_cameras_plane(monkeypatch):
    scene = two_spheres(True)  # camera, spheres and lamps all lie in the plane y = 0
    monkeypatch.setitem(render.SUN, "strength", 0.0)  # CLEVR's sun and backdrop are turned away from it
    monkeypatch.setattr(render, "BACKDROP_AXIS", (-1.0, 0.0))
    image, coverage, _ = render.render(scene, N)
    assert torch.allclose(coverage, coverage.flip(-1)) and torch.allclose(image, image.flip(2), atol=1e-5)


def test_a_shadow_falls_away_from_the_light():
    scene = two_spheres(True)
    scene["present"][0, 1] = False
    lit, _, _ = render.render(scene, N)
    scene["light_position"] = torch.tensor([[[-10.0, 0, 10]] * 3])  # the lamps behind the sphere
    shaded, coverage, _ = render.render(scene, N)
    ground = coverage[0, 0] == 0
    assert (shaded[0][ground].sum(-1) < lit[0][ground].sum(-1) - 0.05).sum() > 20  # a shadow in front of it


def test_generation_is_deterministic_and_splits_differ():
    a = clevr.generate(4, seed=1, variant="clevr3", image_size=N)
    b = clevr.generate(17, seed=1, variant="clevr3", image_size=N, chunk=32)  # more, in larger chunks
    c = clevr.generate(4, seed=2, variant="clevr3", image_size=N)
    assert torch.equal(a["images"], b["images"][:4]) and not torch.equal(a["images"], c["images"])
    train, held_out = load("clevr3", "train", 2), load("clevr3", "eval", 2)
    assert train.images.shape == (2, 96, 96, 3) and not torch.equal(train.images, held_out.images)


def test_a_render_call_whose_scenes_all_break_the_visibility_rule_is_drawn_again():
    """At 48×48 few clevr5 scenes keep 50 visible pixels an object: some render calls of 16 keep none."""
    s = clevr.generate(20, seed=3, variant="clevr5", image_size=48)
    present = torch.arange(5) < s["count"][:, None]
    assert len(s["images"]) == 20 and (s["visible"][present] >= 50).all()


def test_scenes_keep_clevrs_constraints(scenes):
    count = scenes["count"]
    assert ((count >= 3) & (count <= 5)).all()
    present = torch.arange(5) < count[:, None]
    assert (scenes["amodal"].flatten(2).any(2) == present).all()  # every object drawn, padding empty
    for i in range(len(count)):
        centre = scenes["centre"][i, :count[i]]
        distance = (centre[:, None] - centre[None]).norm(dim=-1) + 10 * torch.eye(len(centre))
        assert distance.min() >= 2 * 0.4 + clevr.MIN_DIST - 1e-5  # the smallest pair, two small objects


def test_every_object_keeps_its_visible_pixels():
    s = clevr.generate(3, seed=3, variant="clevr3")  # at full size, where the 10-pixel rule applies
    present = torch.arange(3) < s["count"][:, None]
    assert (s["visible"][present] >= 10).all()


@pytest.mark.parametrize("variant", ["clevr3", "clevr5"])
def test_the_back_to_front_order_explains_the_rendered_occlusions(variant):
    """Ground-truth modal masks (from amodal masks and the order) are what the renderer shows, and
    sorting the objects moves nothing but the objects."""
    g = torch.Generator().manual_seed(0)
    scene = clevr.draw_scenes(6, clevr.VARIANTS[variant], g)
    del scene["ok"]
    order = clevr.back_to_front(scene)
    assert not (order == torch.arange(order.shape[1])).all()  # some scenes are reordered
    sorted_scene = clevr.sort_objects(scene, order)
    for k in ("camera", "light_position", "ground"):
        assert torch.equal(sorted_scene[k], scene[k]), k
    _, coverage, visible = render.render(sorted_scene, N)
    _, _, seg = metrics.truth_masks(coverage >= 0.5, sorted_scene["present"].sum(1))
    rendered = torch.where(visible.amax(1) >= 0.5, visible.argmax(1), -1)
    shown = (seg >= 0) | (rendered >= 0)
    assert shown.sum() > 100 and (seg == rendered)[shown].float().mean() > 0.97


def test_every_camera_looks_down_from_clevrs_place():
    s = clevr.draw_scenes(64, clevr.VARIANTS["clevr3"], torch.Generator().manual_seed(1))
    s = clevr.sort_objects(s, clevr.back_to_front(s))
    assert ((s["camera"] - torch.tensor(clevr.CAMERA)).abs() <= clevr.CAMERA_JITTER).all()


def test_variable_background_draws_six_ground_shades():
    g = torch.Generator().manual_seed(0)
    grounds = clevr.draw_scenes(500, clevr.VARIANTS["clevr5-vbg"], g)["ground"]
    values = grounds.unique()
    assert len(values) == 6 and values.max() == pytest.approx(0.8) and values.min() == pytest.approx(0.1)
    assert torch.allclose(values[1:] / values[:-1], values[1:2] / values[:1])  # log-spaced


def test_a_lone_sphere_is_a_disc_at_its_projected_centre():
    scene = two_spheres(True)
    scene["present"][0, 1] = False  # the sphere of radius 1 at (3, 0, 1), camera at (10, 0, 1.5)
    n = 96
    _, coverage, _ = render.render(scene, n, S=4)
    camera, centre = scene["camera"][0], torch.tensor([3.0, 0.0, 1.0])
    forward = -camera / camera.norm()
    right = torch.linalg.cross(forward, torch.tensor([0.0, 0, 1]))
    right = right / right.norm()
    up = torch.linalg.cross(right, forward)
    p = centre - camera
    h = math.tan(render.FOV / 2)
    col = ((p @ right) / (p @ forward) / h + 1) / 2 * n
    row = (1 - (p @ up) / (p @ forward) / h) / 2 * n
    radius = n / 2 * math.tan(math.asin(1 / p.norm())) / h  # the cone of rays that graze the sphere
    mask = coverage[0, 0]
    rows, cols = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
    assert (mask * rows).sum() / mask.sum() == pytest.approx(float(row), abs=0.3)
    assert (mask * cols).sum() / mask.sum() == pytest.approx(float(col), abs=0.3)
    assert mask.sum() == pytest.approx(math.pi * radius ** 2, rel=0.03)


def test_single_objects_show_one_object_each_over_the_ground():
    alone = clevr.single_objects(4, seed=2, variant="clevr3", image_size=N).float() / 255
    assert alone.shape == (4, N, N, 3)
    # the ground's light changes smoothly: sharp steps between neighbouring pixels are the object's outline
    step = (alone[:, 1:, 1:] - alone[:, :-1, 1:]).abs().amax(-1) + (alone[:, 1:, 1:] - alone[:, 1:, :-1]).abs().amax(-1)
    edges = (step > 0.1).flatten(1).sum(1)
    assert (edges > 10).all() and (edges < N * N / 10).all()


def test_culling_ray_object_pairs_changes_no_bit(monkeypatch):
    """render tests only the ray/object pairs near an object's bounding sphere, and no shadow ray
    against the object it starts on: testing every pair gives the same bits, also with the camera
    near the ground (sky and far ground in view)."""
    scene = clevr.draw_scenes(4, clevr.VARIANTS["clevr5"], torch.Generator().manual_seed(4))
    del scene["ok"]
    low = {**scene, "camera": scene["camera"] * torch.tensor([1.0, 1.0, 0.1])}
    culled = [render.render(s, N) for s in (scene, low)]
    every_pair = lambda origin, direction, scene, centre, reach=None: scene["present"][..., None].expand(  # noqa: E731
        -1, -1, max(origin.shape[1], direction.shape[1])).clone()
    monkeypatch.setattr(render, "candidates", every_pair)
    intersect = render.intersect
    monkeypatch.setattr(render, "intersect", lambda *args, own=None, **kw: intersect(*args, **kw))  # own pairs too
    for s, outputs in zip((scene, low), culled):
        assert all(torch.equal(a, b) for a, b in zip(outputs, render.render(s, N)))


def test_shading_only_the_kept_scenes_gives_their_bits_and_nothing_for_the_others():
    scene = clevr.draw_scenes(4, clevr.VARIANTS["clevr5"], torch.Generator().manual_seed(4))
    del scene["ok"]
    whole = render.render(scene, N)
    asked = []

    def keep(visible):  # the scenes shaded: the first and the third
        asked.append(visible)
        return torch.tensor([True, False, True, False])
    *kept, which = render.render(scene, N, keep=keep)
    assert torch.equal(asked[0], whole[2])  # keep sees every scene's visible pixels
    assert which.tolist() == [True, False, True, False]
    assert all(torch.equal(a, b[which]) for a, b in zip(kept, whole))
    assert all(torch.equal(a, b) for a, b in zip(render.render(scene, N, keep=lambda v: torch.ones(4, dtype=bool))[:3],
                                                   whole))


def test_a_cubes_bounding_sphere_holds_it_and_touches_its_corners():
    """BOUND[1]: the farthest points of the chamfered cube (where three chamfers meet) are that far out."""
    g = torch.linspace(-1, 1, 201)
    p = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    corner = torch.full((1, 3), 1 - render.CHAMFER / 2)
    inside = lambda q: ((q @ render.SLABS.T).abs() <= render.SLAB_WIDTH + 1e-6).all(-1)  # noqa: E731
    assert inside(corner).all() and corner.norm() == pytest.approx(render.BOUND[1])
    assert p[inside(p)].norm(dim=-1).max() <= render.BOUND[1]
    assert not inside(corner * 1.01).any()  # a little farther along the diagonal is outside


def test_the_ground_bends_up_into_a_wall_behind_the_scene():
    s0, a, b, top = render.BACKDROP
    axis = torch.tensor([*render.BACKDROP_AXIS, 0.0])
    axis = axis / axis.norm()
    origin = torch.tensor([[0.0, 0, 5], [0, 0, 1], [0, 0, 15], [0, 0, 30]])
    direction = torch.stack([torch.tensor([0.0, 0, -1]), axis, axis, axis])
    t, normal = render.hit_ground(origin, direction)
    bend = s0 + a * math.sqrt(1 - (1 - 1 / b) ** 2)  # where the bend is 1 high
    assert t[0] == pytest.approx(5) and torch.allclose(normal[0], torch.tensor([0.0, 0, 1]))
    assert t[1] == pytest.approx(bend, rel=1e-3) and normal[1] @ axis < 0 < normal[1, 2]  # facing the scene, up
    assert t[2] == pytest.approx(s0 + a, rel=1e-3) and torch.allclose(normal[2], -axis, atol=1e-3)
    assert t[3] == render.FAR  # over the top


def test_a_lamp_lights_the_ground_by_the_inverse_square_law(monkeypatch):
    """One lamp 4 above the ground's origin, facing it; no sun, no bounced light: the ground below
    shows P / π / d² × ρ / π (a Lambertian emitter seen head-on, a Lambertian ground)."""
    monkeypatch.setitem(render.SUN, "strength", 0.0)
    monkeypatch.setattr(render, "AMBIENT", {"ground": 0.0, "above": 0.0, "below": 0.0})
    scene = two_spheres(True)
    scene["present"][:] = False
    scene["camera"] = torch.tensor([[0.01, 0.0, 10.0]])  # looking straight down
    scene["light_position"] = torch.tensor([[[0.0, 0.02, 4.0], [0.0, 0.02, 1e3], [0.0, 0.02, 1e3]]])
    image, _, _ = render.render(scene, 9, S=1)
    width, power, colour = render.LAMPS[0]
    expected = torch.tensor(colour) * power / math.pi / 16 * 0.8 / math.pi
    assert torch.allclose(image[0, 4, 4], render.srgb(expected), atol=2e-3)
