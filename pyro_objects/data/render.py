"""A small ray caster for CLEVR-like scenes, in torch (CPU or GPU), batched over scenes.

Spheres, cubes (turned about the vertical) and cylinders stand on the ground plane
z = 0. A pinhole camera looks at the origin; three directional lights (key, fill,
back) light the scene with Lambertian diffuse and Blinn-Phong specular shading,
and cast shadows. Each pixel averages S×S rays.

Only ray/object pairs whose ray passes near the object's bounding sphere are tested (the
others miss), and shadow rays start only at points that face their light (elsewhere its
light adds nothing, shadowed or not): the images are those of testing every pair, bit for bit.

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
BOUND = (1.0, math.sqrt(3), math.sqrt(2))  # bounding-sphere radius over size: sphere, cube, cylinder


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


def objects(scene):
    """Each object's centre (its bounding box's, one size above the ground) [B, K, 3], and the
    cos and sin of its azimuth [B, K]."""
    return torch.cat([scene["centre"], scene["size"][..., None]], -1), scene["angle"].cos(), scene["angle"].sin()


def rotate(v, c, s):
    """v [M, 3] turned about the vertical into the frame of an object whose azimuth has cos c and sin s [M]."""
    return torch.stack([c * v[..., 0] + s * v[..., 1], -s * v[..., 0] + c * v[..., 1], v[..., 2]], -1)


def candidates(origin, direction, scene, centre):
    """Ray/object pairs that may meet: bool [B, K, P].

    A pair is dropped only where the ray misses the object's bounding sphere, widened by a
    margin far above rounding error, so that the exact tests would have missed too.
    Rays from one point (the camera's) or parallel rays (to a light), of unit directions:
    origin [B, P or 1, 3], direction [B, 1 or P, 3]
    """
    bound = scene["size"] * torch.tensor(BOUND, device=centre.device)[scene["shape"]] * 1.05 + 0.1  # [B, K]
    present = scene["present"]
    if origin.shape[1] == 1:
        return from_one_point(origin, direction, centre, bound, present)
    return along_one_direction(origin, direction, centre, bound, present)


def dot(a, b):
    """a · b over the last axis, [..., 3] -> [...], broadcast without a [..., 3] product in between."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def first_dot(a, b):
    """a · b over the first axis, [3, ...] -> [...]: the same sum, in the same order, as dot."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def from_one_point(origin, direction, centre, bound, present):
    """Rays from origin [B, 1, 3] along unit directions [B, P, 3] that pass through present [B, K] spheres
    [B, K, 3] of radii bound [B, K]: those within asin(bound / distance) of the direction to the centre.
    -> bool [B, K, P]"""
    to_centre = centre - origin
    distance = to_centre.norm(dim=-1)
    cos_max = (1 - (bound / distance).clamp(max=1) ** 2).sqrt()  # [B, K]
    cos_max[(distance <= bound) | (distance > 50)] = -2  # inside, or so far the angles are too small to trust: all
    cos_max[~present] = 2  # none
    axis = (to_centre / distance[..., None])[:, :, None]  # [B, K, 1, 3]
    d = direction[:, None]  # [B, 1, P, 3]
    cos = d[..., 0] * axis[..., 0]  # the [B, K, P] passes are the cost: built in place
    cos.addcmul_(d[..., 1], axis[..., 1]).addcmul_(d[..., 2], axis[..., 2])
    return cos >= cos_max[..., None]


def along_one_direction(origin, direction, centre, bound, present):
    """Rays from origin [B, P, 3] along a unit direction [B, 1, 3] that pass through present [B, K] spheres
    [B, K, 3] of radii bound [B, K]: seen along the direction, the origin lies within bound of the
    centre, and not beyond it. -> bool [B, K, P]"""
    d = direction
    helper = torch.where(d[..., 2:].abs() < 0.9, torch.tensor([0.0, 0.0, 1.0], device=d.device),
                         torch.tensor([1.0, 0.0, 0.0], device=d.device))
    across = torch.linalg.cross(d, helper)
    across = across / across.norm(dim=-1, keepdim=True)
    across2 = torch.linalg.cross(d, across)  # [B, 1, 3], with across and d an orthonormal frame
    o = [dot(origin, e)[:, None] for e in (across, across2, d)]  # [B, 1, P]
    c = [dot(centre, e)[..., None] for e in (across, across2, d)]  # [B, K, 1]
    c[0][~present] = math.nan  # absent objects meet nothing
    gap = (o[0] - c[0]).square_()  # the [B, K, P] passes are the cost: built in place
    gap1 = o[1] - c[1]
    near = gap.addcmul_(gap1, gap1) <= bound[..., None] ** 2
    near &= o[2] <= c[2] + bound[..., None]  # the sphere is not wholly behind the origin
    near |= (dot(origin, origin) > 1e6)[:, None]  # a thousand away, rounding may pass the margin: keep all
    return near


def hit_sphere(o, d, r, c, s):
    """Distance to a sphere of radius r, FAR where the ray misses.

    o [M, 3] (the ray's origin relative to the object's centre), d [M, 3], r, c, s [M] -> [M]
    """
    b = (o * d).sum(-1)
    disc = b ** 2 - ((o * o).sum(-1) - r ** 2)
    return torch.where(disc > 0, -b - disc.clamp_min(0).sqrt(), FAR)


def hit_cube(o, d, r, c, s):
    """Distance to a cube of half-extent r turned by the azimuth (c, s): slabs in its own frame."""
    ol, dl = rotate(o, c, s), rotate(d, c, s)
    inv = 1 / torch.where(dl.abs() < 1e-9, torch.full_like(dl, 1e-9), dl)
    t0, t1 = (-r[:, None] - ol) * inv, (r[:, None] - ol) * inv
    t_near, t_far = torch.minimum(t0, t1).amax(-1), torch.maximum(t0, t1).amin(-1)
    return torch.where((t_near < t_far) & (t_far > 0), t_near, FAR)


def hit_cylinder(o, d, r, c, s):
    """Distance to an upright cylinder: its side (x² + y² = r², |z| ≤ r) and its top cap (z = r)."""
    a = (d[..., :2] ** 2).sum(-1).clamp_min(1e-12)
    bc = (o[..., :2] * d[..., :2]).sum(-1)
    disc_c = bc ** 2 - a * ((o[..., :2] ** 2).sum(-1) - r ** 2)
    t_side = (-bc - disc_c.clamp_min(0).sqrt()) / a
    side_ok = (disc_c > 0) & ((o[..., 2] + t_side * d[..., 2]).abs() <= r)
    t_top = (r - o[..., 2]) / torch.where(d[..., 2].abs() < 1e-9, torch.full_like(a, -1e-9), d[..., 2])
    top_xy = o[..., :2] + t_top[..., None] * d[..., :2]
    top_ok = ((top_xy ** 2).sum(-1) <= r ** 2) & (t_top > 0)
    return torch.minimum(torch.where(side_ok, t_side, FAR), torch.where(top_ok, t_top, FAR))


def intersect(origin, direction, scene, rays=None):
    """Distances along rays to objects, for the ray/object pairs that may meet (all others miss).

    origin, direction [B, P or 1, 3]; rays bool [B, P]: the rays to trace (default all)
    -> b, k, p (the pairs' scene, object and ray indices) and t (distance, FAR where it misses), each [M]
    """
    centre, cos, sin = objects(scene)  # cos and sin taken before gathering: they must not depend on M
    near = candidates(origin, direction, scene, centre)
    if rays is not None:
        near &= rays[:, None]
    b, k, p = near.nonzero(as_tuple=True)  # each pair's test is independent: run only those that may hit
    B, P = near.shape[0], near.shape[2]
    origin, direction = origin.expand(B, P, 3), direction.expand(B, P, 3)
    shape = scene["shape"][b, k]
    t = torch.empty(len(b), device=b.device)
    for kind, hit in enumerate((hit_sphere, hit_cube, hit_cylinder)):
        i = (shape == kind).nonzero()[:, 0]
        bi, ki, pi = b[i], k[i], p[i]
        t[i] = hit(origin[bi, pi] - centre[bi, ki], direction[bi, pi], scene["size"][bi, ki], cos[bi, ki], sin[bi, ki])
    t = torch.where((t > 1e-4) & scene["present"][b, k], t, FAR)
    return b, k, p, t


def distances(origin, direction, scene):
    """Distance along each ray to each object, FAR where it misses: [B, K, P]."""
    B, K = scene["present"].shape
    b, k, p, t_pairs = intersect(origin, direction, scene)
    t = torch.full((B, K, direction.shape[1]), FAR, device=direction.device)
    t[b, k, p] = t_pairs
    return t


def shadowed(origin, light, scene, rays):
    """Whether anything lies between each ray's origin and the light.

    origin [B, P, 3], light [B, 1, 3], rays bool [B, P] (those to trace; the others are not shadowed) -> [B, P]
    """
    b, _, p, t = intersect(origin, light, scene, rays)
    blocked = torch.zeros(rays.shape, dtype=torch.bool, device=rays.device)
    blocked[b[t < FAR], p[t < FAR]] = True
    return blocked


def surface_normal(origin, direction, t, nearest, hits, scene):
    """Outward unit normals where rays hit their nearest object, (0, 0, 1) (the ground's) elsewhere.

    origin [B, 1, 3], direction [B, P, 3], t and nearest [B, P] (distance to and index of the
    nearest object), hits bool [B, P] -> [B, P, 3]
    """
    b, p = hits.nonzero(as_tuple=True)  # only these rays: a normal for every object would cost K times more
    k = nearest[b, p]
    centre, cos, sin = objects(scene)  # cos and sin of all objects, then gathered, as in intersect
    centre, c, s, shape, r = centre[b, k], cos[b, k], sin[b, k], scene["shape"][b, k], scene["size"][b, k, None]
    d = direction[b, p]
    point = (origin[b, 0] - centre) + t[b, p][:, None] * d  # relative to the object's centre
    n_sphere = point / r
    local = rotate(point, c, s)
    face = (local.abs() / r).argmax(-1, keepdim=True)
    n_local = torch.zeros_like(local).scatter(-1, face, local.gather(-1, face).sign())
    n_cube = rotate(n_local, c, -s)  # back to the world's frame
    on_top = point[:, 2:] >= r - 1e-3
    n_cyl = torch.where(on_top, torch.tensor([0.0, 0.0, 1.0], device=d.device),
                        torch.cat([point[:, :2] / r, torch.zeros_like(point[:, :1])], -1))
    shape = shape[:, None]
    normal = torch.where(shape == 0, n_sphere, torch.where(shape == 1, n_cube, n_cyl))
    out = torch.tensor([0.0, 0.0, 1.0], device=d.device).repeat(*t.shape, 1)
    out[b, p] = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return out


def shade(scene, direction, origin, n, hits, nearest):
    """Ambient light, and from each light Lambertian diffuse and Blinn-Phong specular light unless
    something blocks it, on the ground or the nearest object: linear colour [3, B, P].

    direction [B, P, 3] (the camera rays), origin [B, P, 3] (their hits, lifted off the surface for
    the shadow rays), n [B, P, 3] (normals there), hits, nearest [B, P] (whether and which object is hit)

    Colours are channel-first, [3, B, P]: a per-point factor [B, P] then multiplies whole contiguous
    rows, where against [B, P, 1] torch would loop over every 3 floats. The arithmetic is the same, op for op.
    """
    colours = scene["colour"].permute(2, 0, 1).gather(2, nearest[None].expand(3, -1, -1))  # [3, B, P]
    albedo = torch.where(hits, colours, scene["ground"][:, None])
    metal = torch.where(hits, scene["metal"].gather(1, nearest), torch.zeros_like(hits))
    diffuse_k = torch.where(metal, 0.45, 1.0)
    specular_k, shine = torch.where(metal, 0.9, 0.06), torch.where(metal, 80.0, 12.0)
    colour = AMBIENT * albedo * diffuse_k
    diffuse = diffuse_k * albedo
    normal = n.permute(2, 0, 1).contiguous()
    for li in range(3):
        light = scene["lights"][:, li]  # [B, 3]
        lit = first_dot(normal, light.T[:, :, None]).clamp_min(0)  # [B, P]; the sum of (n * light), exactly
        # Where a point faces away from the light its term below is 0, shadowed or not: trace only the others.
        blocked = shadowed(origin, light[:, None], scene, lit > 0)
        half = light[:, None] - direction
        half_norm = half.norm(dim=-1)  # torch's norm, not sqrt(h · h): they differ in the last bit
        spec = first_dot(normal, [half[..., i] / half_norm for i in range(3)]).clamp_min_(0).pow_(shine)
        colour += (~blocked) * LIGHT_POWER[li] * (diffuse * lit + specular_k * spec * (lit > 0))
    return colour


def render(scene, N, S=2):
    """Images, each object's coverage and what of it shows:
        image [B, N, N, 3] in [0, 1], coverage [B, K, N, N] and visible [B, K, N, N], both in [0, 1].

    Coverage is the fraction of a pixel's rays that meet the object, the others ignored
    (the object rendered alone: its amodal mask); visible, the fraction whose nearest hit it is.
    """
    B = scene["camera"].shape[0]
    origin = scene["camera"][:, None]
    d = camera_rays(scene["camera"], N, S)  # [B, P, 3]
    t = distances(origin, d, scene)
    t_obj, nearest = t.min(1)  # [B, P]
    t_ground = torch.where(d[..., 2] < 0, -origin[..., 2] / d[..., 2].clamp(max=-1e-9), FAR)
    hits_object = t_obj < t_ground
    t_hit = torch.where(hits_object, t_obj, t_ground)
    point = origin + t_hit[..., None] * d
    n = surface_normal(origin, d, t_obj, nearest, hits_object, scene)
    colour = shade(scene, d, point + 1e-3 * n, n, hits_object, nearest)
    image = colour.clamp_(0, 1).pow_(1 / 2.2).permute(1, 2, 0).contiguous()  # display gamma; [B, P, 3]
    image = image.reshape(B, N, N, S * S, 3).mean(3)
    coverage = (t < FAR).float().reshape(B, -1, N, N, S * S).mean(-1)
    K = t.shape[1]
    nearest_k = nearest[:, None] == torch.arange(K, device=t.device)[None, :, None]
    visible = (nearest_k & hits_object[:, None]).float().reshape(B, K, N, N, S * S).mean(-1)
    return image, coverage, visible
