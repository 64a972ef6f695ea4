"""A small ray caster for CLEVR-like scenes, in torch (CPU or GPU), batched over scenes.

Spheres, cubes (turned about the vertical) and cylinders stand on the ground plane
z = 0. A pinhole camera looks at the origin; three directional lights (key, fill,
back) light the scene with Lambertian diffuse and Blinn-Phong specular shading,
and cast shadows. Each pixel averages S×S rays.

A scene is a dict of tensors, B scenes of K object slots:
    shape [B, K] (0 sphere, 1 cube, 2 cylinder), centre [B, K, 2] (x, y on the ground),
    size [B, K] (half-extent), angle [B, K] (azimuth), colour [B, K, 3], metal [B, K] (bool),
    present [B, K] (bool), camera [B, 3], lights [B, 3, 3] (unit directions towards the lights),
    ground [B] (the ground's diffuse reflectivity)
"""
import math

import torch

FOV = 2 * math.atan(16 / 35)  # CLEVR's camera: a 35 mm lens on a 32 mm sensor, about 49° across
LIGHT_POWER = (0.4, 0.16, 0.12)  # key, fill, back: a grey ground near CLEVR's
AMBIENT = 0.06
FAR = 1e6


def camera_rays(camera, N, S):
    """Unit ray directions through S×S points of each of the N×N pixels: [B, N*N*S*S, 3], pixel-major."""
    forward = -camera / camera.norm(dim=-1, keepdim=True)
    up = torch.tensor([0.0, 0.0, 1.0], device=camera.device).expand_as(forward)
    right = torch.linalg.cross(forward, up)
    right = right / right.norm(dim=-1, keepdim=True)
    true_up = torch.linalg.cross(right, forward)
    sub = (torch.arange(N * S, device=camera.device) + 0.5) / (N * S) * 2 - 1  # [-1, 1]
    sub = sub.reshape(N, S)
    v, u = torch.meshgrid(sub.flatten(), sub.flatten(), indexing="ij")  # rows top to bottom
    v = v.reshape(N, S, N, S).permute(0, 2, 1, 3).reshape(-1)  # group each pixel's S×S rays together
    u = u.reshape(N, S, N, S).permute(0, 2, 1, 3).reshape(-1)
    h = math.tan(FOV / 2)
    d = forward[:, None] + h * (u[None, :, None] * right[:, None] - v[None, :, None] * true_up[:, None])
    return d / d.norm(dim=-1, keepdim=True)


def intersect(origin, direction, scene, normals=True):
    """Distance along each ray to each object, FAR where it misses, and the hit's outward normal.

    origin [B, P, 3] (or [B, 1, 3]), direction [B, P, 3] -> t [B, K, P], normal [B, K, P, 3] (None if not normals)
    """
    size, present = scene["size"], scene["present"]
    centre = torch.cat([scene["centre"], size[..., None]], -1)  # every shape rests on the ground z = 0, [B, K, 3]
    o = origin[:, None] - centre[:, :, None]  # ray origins relative to each object, [B, K, P, 3]
    d = direction[:, None].expand(-1, centre.shape[1], -1, -1)
    r = size[..., None]
    # sphere
    b = (o * d).sum(-1)
    disc = b ** 2 - ((o * o).sum(-1) - r ** 2)
    t_sphere = torch.where(disc > 0, -b - disc.clamp_min(0).sqrt(), FAR)
    # cube: slabs in the object's frame, turned by its azimuth
    c, s = scene["angle"].cos()[..., None], scene["angle"].sin()[..., None]
    rot = lambda v: torch.stack([c * v[..., 0] + s * v[..., 1], -s * v[..., 0] + c * v[..., 1], v[..., 2]], -1)  # noqa: E731
    ol, dl = rot(o), rot(d)
    inv = 1 / torch.where(dl.abs() < 1e-9, torch.full_like(dl, 1e-9), dl)
    t0, t1 = (-r[..., None] - ol) * inv, (r[..., None] - ol) * inv
    t_near, t_far = torch.minimum(t0, t1).amax(-1), torch.maximum(t0, t1).amin(-1)
    t_cube = torch.where((t_near < t_far) & (t_far > 0), t_near, FAR)
    # cylinder: the side (x² + y² = r², |z| ≤ r) and the top cap (z = r)
    a = (d[..., :2] ** 2).sum(-1).clamp_min(1e-12)
    bc = (o[..., :2] * d[..., :2]).sum(-1)
    disc_c = bc ** 2 - a * ((o[..., :2] ** 2).sum(-1) - r ** 2)
    t_side = (-bc - disc_c.clamp_min(0).sqrt()) / a
    side_ok = (disc_c > 0) & ((o[..., 2] + t_side * d[..., 2]).abs() <= r)
    t_top = (r - o[..., 2]) / torch.where(d[..., 2].abs() < 1e-9, torch.full_like(a, -1e-9), d[..., 2])
    top_xy = o[..., :2] + t_top[..., None] * d[..., :2]
    top_ok = ((top_xy ** 2).sum(-1) <= r ** 2) & (t_top > 0)
    t_cyl = torch.minimum(torch.where(side_ok, t_side, FAR), torch.where(top_ok, t_top, FAR))
    shape = scene["shape"][..., None]
    t = torch.where(shape == 0, t_sphere, torch.where(shape == 1, t_cube, t_cyl))
    t = torch.where((t > 1e-4) & present[..., None], t, FAR)
    if not normals:
        return t, None
    # normals at the hits
    p = o + t[..., None] * d
    n_sphere = p / r[..., None]
    pl = rot(p)
    face = (pl.abs() / r[..., None]).argmax(-1, keepdim=True)
    n_local = torch.zeros_like(pl).scatter(-1, face, pl.gather(-1, face).sign())
    n_cube = torch.stack([c * n_local[..., 0] - s * n_local[..., 1], s * n_local[..., 0] + c * n_local[..., 1],
                          n_local[..., 2]], -1)
    on_top = (p[..., 2] >= r - 1e-3)
    n_cyl = torch.where(on_top[..., None], torch.tensor([0.0, 0.0, 1.0], device=p.device),
                        torch.cat([p[..., :2] / r[..., None], torch.zeros_like(p[..., :1])], -1))
    normal = torch.where(shape[..., None] == 0, n_sphere, torch.where(shape[..., None] == 1, n_cube, n_cyl))
    return t, normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-9)


def render(scene, N, S=2):
    """Images, each object's coverage and what of it shows:
        image [B, N, N, 3] in [0, 1], coverage [B, K, N, N] and visible [B, K, N, N], both in [0, 1].

    Coverage is the fraction of a pixel's rays that meet the object, the others ignored
    (the object rendered alone: its amodal mask); visible, the fraction whose nearest hit it is.
    """
    B = scene["camera"].shape[0]
    origin = scene["camera"][:, None]
    d = camera_rays(scene["camera"], N, S)  # [B, P, 3]
    t, normal = intersect(origin, d, scene)
    t_obj, nearest = t.min(1)  # [B, P]
    t_ground = torch.where(d[..., 2] < 0, -origin[..., 2] / d[..., 2].clamp(max=-1e-9), FAR)
    hits_object = t_obj < t_ground
    t_hit = torch.where(hits_object, t_obj, t_ground)
    point = origin + t_hit[..., None] * d
    pick = lambda v: v.gather(1, nearest[:, None, :, None].expand(-1, 1, -1, v.shape[-1]))[:, 0]  # noqa: E731
    n = torch.where(hits_object[..., None], pick(normal), torch.tensor([0.0, 0.0, 1.0], device=d.device))
    per_object = lambda v: v.gather(1, nearest[..., None].expand(-1, -1, v.shape[-1]))  # noqa: E731
    ground = scene["ground"][:, None, None].expand(-1, d.shape[1], 3)
    albedo = torch.where(hits_object[..., None], per_object(scene["colour"]), ground)
    metal = torch.where(hits_object, scene["metal"].gather(1, nearest), torch.zeros_like(hits_object))
    diffuse_k = torch.where(metal, 0.45, 1.0)[..., None]
    specular_k, shine = torch.where(metal, 0.9, 0.06)[..., None], torch.where(metal, 80.0, 12.0)[..., None]
    colour = AMBIENT * albedo * diffuse_k
    shadow_origin = point + 1e-3 * n
    for li in range(3):
        light = scene["lights"][:, li][:, None].expand_as(d)
        lit = (n * light).sum(-1, keepdim=True).clamp_min(0)
        blocked = (intersect(shadow_origin, light, scene, normals=False)[0] < FAR).any(1)[..., None]
        half = light - d
        half = half / half.norm(dim=-1, keepdim=True)
        spec = (n * half).sum(-1, keepdim=True).clamp_min(0) ** shine
        colour = colour + (~blocked) * LIGHT_POWER[li] * (diffuse_k * albedo * lit + specular_k * spec * (lit > 0))
    image = colour.clamp(0, 1) ** (1 / 2.2)  # display gamma
    image = image.reshape(B, N, N, S * S, 3).mean(3)
    coverage = (t < FAR).float().reshape(B, -1, N, N, S * S).mean(-1)
    K = t.shape[1]
    nearest_k = nearest[:, None] == torch.arange(K, device=t.device)[None, :, None]
    visible = (nearest_k & hits_object[:, None]).float().reshape(B, K, N, N, S * S).mean(-1)
    return image, coverage, visible
