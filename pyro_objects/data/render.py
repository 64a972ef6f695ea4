"""A small ray caster for CLEVR-like scenes, in torch (CPU or GPU), batched over scenes.

Spheres, cubes (turned about the vertical, their edges chamfered where CLEVR's are rounded)
and cylinders stand on CLEVR's ground: flat, bending up some 11 units behind the origin into
a backdrop (a quarter ellipse, then a wall). A pinhole camera looks at the origin. The light is CLEVR's, in its units (linear
radiance, Blender's Watts): three square area lamps facing the origin (key, fill, back),
each sampled at one point of an S×S grid over its square per ray of a pixel (soft
shadows, inverse-square falloff), a sun (its disc sampled the same way), and the light
that bounces off the ground as an ambient term from below and above. Rubber is
Lambertian under a Fresnel-weighted Beckmann coat; metal two GGX lobes that reflect the
lamps and the lit ground and backdrop (no other objects). Each pixel averages S×S rays,
then the standard sRGB transfer function.

Only ray/object pairs whose ray passes near the object's bounding sphere are tested (the
others miss), and shadow rays start only at points that face their light (elsewhere its
light adds nothing, shadowed or not) and skip the object they start on (convex, it lies
behind them): the images are those of testing every pair, bit for bit.

A scene is a dict of tensors, B scenes of K object slots:
    shape [B, K] (0 sphere, 1 cube, 2 cylinder), centre [B, K, 2] (x, y on the ground),
    size [B, K] (half-extent), angle [B, K] (azimuth), colour [B, K, 3] (linear reflectance),
    metal [B, K] (bool), present [B, K] (bool), camera [B, 3], light_position [B, 3, 3] (the
    lamps' centres), ground [B] (the ground's diffuse reflectivity)
"""
import math

import torch

FOV = 2 * math.atan(16 / 35)  # CLEVR's camera: a 35 mm lens on a 32 mm sensor, about 49° across
LAMPS = (  # key, fill, back: square area lamps facing the origin: (width, power W, linear RGB)
    (0.5, 25 * math.pi, (1.0, 0.9323, 0.8167)),
    (0.5, 7.5 * math.pi, (0.7617, 0.8177, 1.0)),
    (1.0, 12.5 * math.pi, (1.0, 1.0, 1.0)),
)
SUN = {"direction": (-0.4145, 0.1946, -0.8890), "strength": 0.45, "angle": 0.1993}  # travel; W/m²; radians across
BACKDROP_AXIS = (-0.9032, 0.4292)  # on the ground, from the scene towards the backdrop
BACKDROP = (10.67, 6.11, 10.16, 23.2)  # where the bend starts along the axis; its semi-axes along and up; top
AMBIENT = {"ground": 0.025, "above": 0.02, "below": 0.2}  # bounced light, irradiance / π: on the ground (and backdrop),
# on objects from above and from below their horizon (fitted to Blender's renders)
RUBBER = {"ior": 1.2, "alpha": 0.35, "coat": 0.8}  # the coat: Beckmann, alpha = Blender's roughness²
METAL = (0.2, 0.01)  # GGX alpha of the metal's 0.4 and 0.6 lobes (CLEVR's; the authors' CLEVR-3: 0.425, 0.402)
SPREAD = 8.0  # a metal lobe's taps lie ±SPREAD/4 alpha off the mirror direction (fitted to Blender)
FAR = 1e6
GEOMETRY = ("shape", "size", "angle", "centre", "present")  # what intersect reads of a scene
CHAMFER = 0.131  # of the half-extent: cuts as much of a cube's edges as CLEVR's rounding (radius 0.2) does
# Bounding-sphere radius over size: sphere, cube (its farthest points, where three chamfers meet, lie
# (1 - CHAMFER / 2) along each axis), cylinder
BOUND = (1.0, math.sqrt(3) * (1 - CHAMFER / 2), math.sqrt(2))


def camera_rays(camera, N, S, zoom=1.0):
    """Unit ray directions through S×S points of each of the N×N pixels: [B, N*N*S*S, 3], pixel-major.
    zoom > 1 narrows the view: the centre 1/zoom of CLEVR's frame."""
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
    h = math.tan(FOV / 2) / zoom
    d = forward[:, None] + h * (u[None, :, None] * right[:, None] - v[None, :, None] * true_up[:, None])
    return d / d.norm(dim=-1, keepdim=True)


def objects(scene):
    """Each object's centre (its bounding box's, one size above the ground) [B, K, 3], and the
    cos and sin of its azimuth [B, K]."""
    return torch.cat([scene["centre"], scene["size"][..., None]], -1), scene["angle"].cos(), scene["angle"].sin()


def rotate(v, c, s):
    """v [M, 3] turned about the vertical into the frame of an object whose azimuth has cos c and sin s [M]."""
    return torch.stack([c * v[..., 0] + s * v[..., 1], -s * v[..., 0] + c * v[..., 1], v[..., 2]], -1)


def candidates(origin, direction, scene, centre, reach=None):
    """Ray/object pairs that may meet: bool [B, K, P].

    A pair is dropped only where the ray misses the object's bounding sphere, widened by a
    margin far above rounding error (1% and 0.02, some thousand times the largest seen), so that
    the exact tests would have missed too.
    Rays from one point (the camera's, a lamp's) or parallel rays (to the sun), of unit directions:
    origin [B, P or 1, 3], direction [B, 1 or P, 3]; rays from one point may end at reach [B, P]
    (pairs whose bounding sphere starts beyond it are dropped too).
    """
    bound = scene["size"] * torch.tensor(BOUND, device=centre.device)[scene["shape"]] * 1.01 + 0.02  # [B, K]
    present = scene["present"]
    if origin.shape[1] == 1:
        return from_one_point(origin, direction, centre, bound, present, reach)
    return along_one_direction(origin, direction, centre, bound, present)


def dot(a, b):
    """a · b over the last axis, [..., 3] -> [...], broadcast without a [..., 3] product in between."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def first_dot(a, b):
    """a · b over the first axis, [3, ...] -> [...]: the same sum, in the same order, as dot."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def from_one_point(origin, direction, centre, bound, present, reach=None):
    """Rays from origin [B, 1, 3] along unit directions [B, P, 3] that pass through present [B, K] spheres
    [B, K, 3] of radii bound [B, K]: those within asin(bound / distance) of the direction to the centre.
    -> bool [B, K, P]"""
    to_centre = centre - origin
    distance = to_centre.norm(dim=-1)
    cos_max = (1 - (bound / distance).clamp(max=1) ** 2).sqrt()  # [B, K]
    cos_max[(distance <= bound) | (distance > 50)] = -2  # inside, or so far the angles are too small to trust: all
    cos_max[~present] = 2  # none
    axis = to_centre / distance[..., None]  # [B, K, 3]
    cos = torch.bmm(axis, direction.transpose(1, 2))  # [B, K, P]: the [B, K, P] passes are the cost, one here
    near = cos >= cos_max[..., None]
    if reach is not None:
        near &= (distance - bound)[..., None] < reach[:, None]  # rays that end before the sphere starts miss it
    return near


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


SLABS = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -1, 0], [1, 0, 1], [1, 0, -1], [0, 1, 1],
                      [0, 1, -1]])  # a chamfered cube: |p · n| <= half-width, for each n
SLAB_WIDTH = torch.tensor([1.0] * 3 + [2 - CHAMFER] * 6)


def hit_cube(o, d, r, c, s):
    """Distance to a cube of half-extent r, its edges chamfered, turned by the azimuth (c, s): slabs in its own frame."""
    slabs = SLABS.to(d.device)
    ol, dl = rotate(o, c, s) @ slabs.T, rotate(d, c, s) @ slabs.T  # [M, 9]
    inv = torch.where(dl.abs() < 1e-9, 1e-9, dl).reciprocal()
    half = r[:, None] * SLAB_WIDTH.to(d.device)
    t0, t1 = (-half - ol) * inv, (half - ol) * inv
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


def rows(x, i):
    """Rows i [M] of x [A, C, ...] taken as A*C rows: [M, ...]. (Faster than x[a, c], and the same values.)"""
    return x.flatten(0, 1).index_select(0, i)


def cols(x, i):
    """Entries i [M] of x [..., B, P] taken as B*P entries: [..., M]."""
    return x.flatten(-2).index_select(-1, i)


def intersect(origin, direction, scene, rays=None, reach=None, own=None):
    """Distances along rays to objects, for the ray/object pairs that may meet (all others miss).

    origin, direction [B, P or 1, 3]; rays bool [B, P]: the rays to trace (default all); reach [B, P]:
    where rays from one point end (pairs that cannot meet before are dropped); own [B, P]: an object
    each ray is known to miss (-1: none), its pair dropped too
    -> bk, bp (each pair's object and ray, as flat indices b * K + k and b * P + p) and t (distance, FAR
    where it misses), each [M]
    """
    centre, cos, sin = objects(scene)  # cos and sin taken before gathering: they must not depend on M
    near = candidates(origin, direction, scene, centre, reach)
    if rays is not None:
        near &= rays[:, None]
    B, K, P = near.shape
    if own is not None:
        near &= own[:, None] != torch.arange(K, device=own.device)[:, None]
    b, k, p = near.nonzero(as_tuple=True)  # each pair's test is independent: run only those that may hit
    bk, bp = b * K + k, b * P + p
    shape = scene["shape"].flatten().index_select(0, bk)
    size, cos, sin = scene["size"].flatten(), cos.flatten(), sin.flatten()
    one_origin, one_direction = origin.shape[1] == 1, direction.shape[1] == 1
    if one_origin:  # rays from one point start at one place relative to each object
        start = (origin - centre).flatten(0, 1)  # [B*K, 3]
    out = []
    for kind, hit in enumerate((hit_sphere, hit_cube, hit_cylinder)):
        i = (shape == kind).nonzero()[:, 0]
        bki, bpi = bk.index_select(0, i), bp.index_select(0, i)
        o = start.index_select(0, bki) if one_origin else rows(origin, bpi) - rows(centre, bki)
        d = direction[:, 0].index_select(0, bpi // P) if one_direction else rows(direction, bpi)
        out.append((bki, bpi, hit(o, d, size.index_select(0, bki), cos.index_select(0, bki), sin.index_select(0, bki))))
    bk, bp, t = (torch.cat(x) for x in zip(*out))  # the pairs grouped by shape
    t = torch.where((t > 1e-4) & scene["present"].flatten().index_select(0, bk), t, FAR)
    return bk, bp, t


def distances(origin, direction, scene):
    """Distance along each ray to each object, FAR where it misses: [B, K, P]."""
    B, K = scene["present"].shape
    P = direction.shape[1]
    bk, bp, t_pairs = intersect(origin, direction, scene)
    t = torch.full((B * K * P,), FAR, device=direction.device)
    t.index_copy_(0, bk * P + bp % P, t_pairs)
    return t.view(B, K, P)


def blocked(rays, bp, hit):
    """bool [B, P]: the rays [B, P] that some pair of theirs (flat ray indices bp [M]) hits (hit bool [M])."""
    out = torch.zeros(rays.numel(), dtype=torch.bool, device=rays.device)
    out.index_fill_(0, bp[hit], True)
    return out.view(rays.shape)


def per_cell(x, S2):
    """[B, S2*Q, ...] in pixel-major ray order -> [B*S2, Q, ...]: each cell's rays a batch of their own."""
    B, P = x.shape[:2]
    return x.reshape(B, P // S2, S2, *x.shape[2:]).transpose(1, 2).flatten(0, 1)


def cell_scenes(scene, S2):
    """Each scene once per cell, as per_cell orders them: the GEOMETRY fields, [B*S2, K, ...]."""
    return {k: scene[k].repeat_interleave(S2, 0) for k in GEOMETRY}


def from_cells(x, S2):
    """per_cell's inverse: [B*S2, Q] -> [B, S2*Q]."""
    return x.reshape(-1, S2, x.shape[1]).transpose(1, 2).flatten(1)


def in_cells(points, scene, own, S2):
    """What every light's shadow rays start from, laid out a cell at a time (per_cell), once for all
    lights: points [B, P, 3] (pixel-major), the scenes' GEOMETRY, own [B, P] (the object each point
    lies on, -1: none) -> ([B*S2, Q, 3], {field: [B*S2, K, ...]}, [B*S2, Q])"""
    return per_cell(points, S2), cell_scenes(scene, S2), per_cell(own, S2)


def shadowed(sun, cells, rays):
    """Whether anything lies between each point and the sun, seen along its cell's direction.

    sun [B, S2, 3] (towards the sun, per cell), cells: in_cells(points, scene, own, S2), rays bool [B, P]
    (those to trace; the others are not shadowed) -> [B, P]
    """
    S2 = sun.shape[1]
    points, scene, own = cells
    rays = per_cell(rays, S2)
    _, bp, t = intersect(points, sun.flatten(0, 1)[:, None], scene, rays, own=own)
    return from_cells(blocked(rays, bp, t < FAR), S2)


def blocked_from(lamp, cells, rays):
    """Whether anything lies between each point and its cell's point of a lamp.

    lamp [B, S2, 3] (the lamp's point per cell), cells: in_cells(points, scene, own, S2), rays bool [B, P]
    (those to trace; the others are not shadowed) -> [B, P]
    """
    S2 = lamp.shape[1]
    points, scene, own = cells
    lamp, rays = lamp.flatten(0, 1)[:, None], per_cell(rays, S2)  # a scene per cell
    to = points - lamp
    distance = to.norm(dim=-1)
    _, bp, t = intersect(lamp, to / distance[..., None].clamp_min(1e-9), scene, rays, distance, own=own)
    hit = t < distance.flatten().index_select(0, bp) - 1e-3
    return from_cells(blocked(rays, bp, hit), S2)


def hit_ground(origin, direction):
    """Where rays meet the ground: flat, then (BACKDROP) a quarter ellipse bending up from s0 along
    the backdrop's axis, then a wall up to its top. origin, direction [..., 3] (broadcast)
    -> distance t [...] (FAR where a ray passes over it all) and the unit normal there [..., 3]"""
    s0, a, b, top = BACKDROP
    axis = torch.tensor([*BACKDROP_AXIS, 0.0], device=direction.device)
    up = torch.tensor([0.0, 0.0, 1.0], device=direction.device)
    so, ds, zo, dz = dot(origin, axis), dot(direction, axis), origin[..., 2], direction[..., 2]
    t_floor = -zo / dz.clamp(max=-1e-9)
    t_floor = torch.where((dz < 0) & (so + t_floor * ds < s0), t_floor, FAR)
    x0, z0, x1, z1 = (so - s0) / a, zo / b - 1, ds / a, dz / b  # the ellipse made a unit circle
    qa, qb, qc = x1 * x1 + z1 * z1, x0 * x1 + z0 * z1, x0 * x0 + z0 * z0 - 1
    disc = qb * qb - qa * qc
    t_bend = (disc.clamp_min(0).sqrt() - qb) / qa.clamp_min(1e-12)  # leaving the ellipse: the air is inside
    s_bend, z_bend = so + t_bend * ds, zo + t_bend * dz
    t_bend = torch.where((disc > 0) & (t_bend > 1e-4) & (s_bend >= s0) & (z_bend <= b), t_bend, FAR)
    t_wall = (s0 + a - so) / ds.clamp_min(1e-9)
    z_wall = zo + t_wall * dz
    t_wall = torch.where((ds > 0) & (t_wall > 1e-4) & (z_wall >= b) & (z_wall <= top), t_wall, FAR)
    t = torch.minimum(t_floor, torch.minimum(t_bend, t_wall))
    wall = t == t_wall  # (also where nothing is met: FAR all three)
    bend = (t == t_bend) & ~wall
    normal = up.expand(*t.shape, 3).clone()
    normal[wall] = -axis
    i = bend.nonzero(as_tuple=True)  # the bend's normal only where it is met: a fifth of the camera's rays
    n_bend = -((s_bend[i] - s0) / a ** 2)[:, None] * axis - ((z_bend[i] - b) / b ** 2)[:, None] * up
    normal[i] = n_bend / n_bend.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return t, normal


def surface_normal(origin, direction, t, nearest, hits, scene, elsewhere):
    """Outward unit normals where rays hit their nearest object, `elsewhere` [B, P, 3] (the ground's) elsewhere.

    origin [B, 1, 3], direction [B, P, 3], t and nearest [B, P] (distance to and index of the
    nearest object), hits bool [B, P] -> [B, P, 3]
    """
    (B, P), K = hits.shape, scene["present"].shape[1]
    i = hits.flatten().nonzero()[:, 0]  # only these rays: a normal for every object would cost K times more
    b = i // P
    bk = b * K + nearest.flatten().index_select(0, i)  # flat object indices, as intersect's
    centre, cos, sin = objects(scene)  # cos and sin of all objects, then gathered, as in intersect
    c, s, shape, r = (x.flatten().index_select(0, bk) for x in (cos, sin, scene["shape"], scene["size"]))
    centre, r = rows(centre, bk), r[:, None]
    d = rows(direction, i)
    point = (origin[:, 0].index_select(0, b) - centre) + t.flatten().index_select(0, i)[:, None] * d  # from the centre
    n_sphere = point / r
    slabs = SLABS.to(d.device)
    across = rotate(point, c, s) @ slabs.T  # [M, 9]
    face = (across.abs() / SLAB_WIDTH.to(d.device)).argmax(-1)  # the slab the point lies on
    n_cube = rotate(slabs[face] * across.gather(-1, face[:, None]).sign(), c, -s)  # back to the world's frame
    on_top = point[:, 2:] >= r - 1e-3
    n_cyl = torch.where(on_top, torch.tensor([0.0, 0.0, 1.0], device=d.device),
                        torch.cat([point[:, :2] / r, torch.zeros_like(point[:, :1])], -1))
    shape = shape[:, None]
    normal = torch.where(shape == 0, n_sphere, torch.where(shape == 1, n_cube, n_cyl))
    out = elsewhere.clone()
    out.view(-1, 3).index_copy_(0, i, normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-9))
    return out


def frame(w):
    """Two unit vectors [..., 3] across unit vectors w [..., 3] (not vertical), the first horizontal."""
    right = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0], device=w.device).expand_as(w), w)
    right = right / right.norm(dim=-1, keepdim=True)
    return right, torch.linalg.cross(w, right)


def strata(S, device):
    """Each of a pixel's S×S rays gets one cell of an S×S grid over [-1/2, 1/2]²: [S*S, 2], in ray order."""
    g = (torch.arange(S, device=device) + 0.5) / S - 0.5
    v, u = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([u.flatten(), v.flatten()], -1)


def lights(scene, S):
    """Every light, sampled at the S×S cells of a grid over its square (lamps) or disc (the sun): a list of
    (kind, where [B, S*S, 3] (a lamp's points, or directions towards the sun), emit [B, 3] (the way a lamp
    faces), irradiance scale, colour [3], cell width (lamps: in length, the sun: in angle))."""
    B, device = scene["camera"].shape[0], scene["camera"].device
    cells = strata(S, device)[None]  # [1, S*S, 2]
    out = []
    for i, (width, power, colour) in enumerate(LAMPS):
        centre = scene["light_position"][:, i]  # [B, 3]
        emit = -centre / centre.norm(dim=-1, keepdim=True)  # the lamp faces the origin
        e1, e2 = frame(-emit)
        at = centre[:, None] + width * (cells[..., :1] * e1[:, None] + cells[..., 1:] * e2[:, None])
        out.append(("lamp", at, emit, power / math.pi, colour, width / S))
    sun = -torch.tensor(SUN["direction"], device=device)
    sun = (sun / sun.norm()).expand(B, 3)
    e1, e2 = frame(sun)
    across = 2 * math.tan(SUN["angle"] / 2)
    towards = sun[:, None] + across * (cells[..., :1] * e1[:, None] + cells[..., 1:] * e2[:, None])
    out.append(("sun", towards / towards.norm(dim=-1, keepdim=True), None, SUN["strength"], (1.0, 1.0, 1.0),
                SUN["angle"] / S))
    return out


def ggx(cos_h, alpha):
    a2 = alpha * alpha
    return a2 / (math.pi * (cos_h * cos_h * (a2 - 1) + 1) ** 2)


def beckmann(cos_h, alpha):
    c2 = (cos_h * cos_h).clamp_min(1e-6)
    return torch.exp((c2 - 1) / (c2 * alpha * alpha)) / (math.pi * alpha * alpha * c2 * c2)


def smith(cos, alpha):
    return 2 * cos / (cos + (alpha * alpha + (1 - alpha * alpha) * cos * cos).sqrt()).clamp_min(1e-9)


def fresnel(cos, ior):
    """Unpolarised Fresnel reflectance of a dielectric, from outside (Blender's Fresnel node)."""
    g = (ior * ior - 1 + cos * cos).sqrt()
    return 0.5 * ((g - cos) / (g + cos)) ** 2 * (1 + ((cos * (g + cos) - 1) / (cos * (g - cos) + 1)) ** 2)


def ambient(n):
    """The bounced light on objects, as irradiance / π, for normals n [..., 3] -> [...]"""
    return AMBIENT["above"] * (1 + n[..., 2]) / 2 + AMBIENT["below"] * (1 - n[..., 2]) / 2


def ground_radiance(point, normal, scene, b):
    """Linear radiance [M, 3] of ground points [M, 3] with normals [M, 3] of scenes b [M], lit by every
    lamp's centre and the sun, unshadowed: what metal reflects."""
    irradiance = torch.zeros_like(point)
    for kind, where, emit, scale, colour, _ in lights(scene, 1):
        where = where[b, 0]
        if kind == "lamp":
            to = where - point
            d2 = dot(to, to)
            w = to * d2.rsqrt()[:, None]
            e = scale * (-dot(emit[b], w)).clamp_min(0) / d2
        else:
            w, e = where, scale
        irradiance += (e * dot(normal, w).clamp_min(0))[:, None] * torch.tensor(colour, device=point.device)
    return scene["ground"][b, None] * (irradiance / math.pi + AMBIENT["ground"])


def reflections(scene, direction, point, normal, i, S, alphas):
    """What the metal at rays i [M] (flat indices b * P + p) reflects of the ground and backdrop, per lobe
    of GGX alpha: each ray of a pixel takes its cell of a grid over the lobe. -> [len(alphas), M, 3]"""
    b, p = i // direction.shape[1], i % direction.shape[1]
    d, x, n = rows(direction, i), rows(point, i), rows(normal, i)
    r = d - 2 * (d * n).sum(-1, keepdim=True) * n
    e1, e2 = frame(r)
    cell = strata(S, d.device)[p % (S * S)]
    out = []
    for alpha in alphas:
        tap = r + SPREAD * alpha * (cell[:, :1] * e1 + cell[:, 1:] * e2)
        tap = tap / tap.norm(dim=-1, keepdim=True)
        t, n_ground = hit_ground(x, tap)
        hit = x + t.clamp(max=1e3)[:, None] * tap
        axis = torch.tensor([*BACKDROP_AXIS, 0.0], device=d.device)
        on_sheet = (t < FAR) & ((hit * axis).sum(-1) > -9.6) & (tap * n).sum(-1).gt(0)  # the ground ends below the camera
        out.append(torch.where(on_sheet[:, None], ground_radiance(hit, n_ground, scene, b), 0.0))
    return torch.stack(out)


def shade(scene, direction, point, n, hits, ground, nearest, S, metal_alphas):
    """Linear radiance [3, B, P] of the nearest thing each ray meets (black where it meets nothing).

    direction [B, P, 3] (the camera rays), point [B, P, 3] (their hits, lifted off the surface for the
    shadow rays), n [B, P, 3] (normals there), hits, ground, nearest [B, P] (whether an object is hit,
    whether the ground is, and which object). Rays are pixel-major: a ray's cell of each light's grid
    is its place among its pixel's S×S rays.
    """
    B, P = hits.shape
    S2 = S * S
    colours = scene["colour"].permute(2, 0, 1).gather(2, nearest[None].expand(3, -1, -1))  # [3, B, P]
    albedo = torch.where(hits, colours, scene["ground"][:, None])
    # Highlights only where rays meet objects (the ground is diffuse): gathered, [M]
    o = hits.flatten().nonzero()[:, 0]  # flat ray indices b * P + p
    n_o, v_o = rows(n, o), -rows(direction, o)
    K = scene["metal"].shape[1]
    metal = scene["metal"].flatten().index_select(0, o // P * K + nearest.flatten().index_select(0, o))
    cos_o = dot(n_o, v_o).clamp(1e-4, 1)
    F = fresnel(cos_o, RUBBER["ior"])
    irradiance = torch.zeros(3, B, P, device=n.device)
    specular = torch.zeros(len(o), 3, device=n.device)
    # Per-point terms channel-first, [3, B, P]: sums over the 3 axes then run over whole contiguous rows.
    pt, nt = point.permute(2, 0, 1).contiguous(), n.permute(2, 0, 1).contiguous()
    own = torch.where(hits, nearest, -1)  # the object each point lies on
    cells = in_cells(point, scene, own, S2)
    for kind, where, emit, scale, colour, cell in lights(scene, S):
        if kind == "lamp":
            to = (where.permute(2, 0, 1)[:, :, None] - pt.view(3, B, P // S2, S2)).reshape(3, B, P)
            d2 = first_dot(to, to)
            w = to * d2.rsqrt()
            e = scale * (-first_dot(w, emit.T[:, :, None])).clamp_min(0) / d2
        else:
            w = where.permute(2, 0, 1)[:, :, None].expand(3, B, P // S2, S2).reshape(3, B, P)
            e = torch.full((B, P), scale, device=n.device)
        cos_i = first_dot(nt, w)
        lit = (cos_i > 0) & (e > 0) & (hits | ground)
        # Where a point faces away from the light its term is 0, shadowed or not: trace only the others,
        # all cells at once (the rays of a cell come from one point of a lamp, or go one way to the sun),
        # and not against the object they lie on: convex, it lies behind its tangent plane, which they leave.
        dark = (blocked_from if kind == "lamp" else shadowed)(where, cells, lit)
        e = torch.where(lit & ~dark, e, 0.0)
        c = torch.tensor(colour, device=n.device)
        irradiance += c[:, None, None] * (e * cos_i)
        w_o, e_o, cos_i_o = cols(w, o).T, cols(e, o), cols(cos_i, o).clamp(0, 1)
        h = w_o + v_o
        cos_h = (dot(n_o, h) * dot(h, h).clamp_min(1e-12).rsqrt()).clamp(0, 1)
        spread = cell / 2 * (cols(d2, o).rsqrt() if kind == "lamp" else 1.0)  # the cell's angular half-width
        alpha = RUBBER["alpha"]
        coat = RUBBER["coat"] * F * beckmann(cos_h, alpha) * smith(cos_i_o, alpha) * smith(cos_o, alpha)
        shine = sum(weight * ggx(cos_h, (a * a + spread * spread) ** 0.5)  # lobes widened by the cell's size
                    for weight, a in zip((0.4, 0.6), metal_alphas))
        specular += (e_o * torch.where(metal, shine, coat) / (4 * cos_o))[:, None] * c
    diffuse = albedo * (irradiance / math.pi + torch.where(hits, ambient(n), AMBIENT["ground"]))
    colour = torch.where(ground, diffuse, 0.0)
    mirrored = reflections(scene, direction, point, n, o[metal], S, metal_alphas)  # [2, M, 3]
    shown = specular.clone()
    shown[metal] += 0.4 * mirrored[0] + 0.6 * mirrored[1]
    albedo_o = cols(albedo, o).T
    colour.view(3, -1).index_copy_(1, o, torch.where(metal[:, None], albedo_o * shown,
                                                     (1 - F[:, None]) * cols(diffuse, o).T + shown).T)
    return colour


def srgb(x):
    """Blender's standard view: the sRGB transfer function of linear x in [0, 1]."""
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def render(scene, N, S=2, zoom=1.0, metal=METAL, keep=None):
    """Images, each object's coverage and what of it shows:
        image [B, N, N, 3] in [0, 1], coverage [B, K, N, N] and visible [B, K, N, N], both in [0, 1].

    Coverage is the fraction of a pixel's rays that meet the object, the others ignored
    (the object rendered alone: its amodal mask); visible, the fraction whose nearest hit it is.
    zoom: the centre 1/zoom of CLEVR's frame; metal: the GGX alpha of the metal's two lobes.
    keep: a function of visible -> bool [B], the scenes worth shading. Only those are shaded, and
    the outputs are theirs alone, with keep's answer as a fourth (generate drops scenes whose
    objects show too little, a fifth of clevr5's, before their lights and shadows are traced).
    """
    origin = scene["camera"][:, None]
    d = camera_rays(scene["camera"], N, S, zoom)  # [B, P, 3]
    t = distances(origin, d, scene)
    t_obj, nearest = t.min(1)  # [B, P]
    t_ground, n_ground = hit_ground(origin, d)
    hits_object = t_obj < t_ground
    K = t.shape[1]
    nearest_k = nearest[:, None] == torch.arange(K, device=t.device)[None, :, None]
    visible = (nearest_k & hits_object[:, None]).float().reshape(-1, K, N, N, S * S).mean(-1)
    if keep is not None:
        kept = keep(visible)
        if not bool(kept.all()):
            scene = {k: v[kept] for k, v in scene.items()}
            origin, d, t, t_obj, nearest, t_ground, n_ground, hits_object, visible = (
                x[kept] for x in (origin, d, t, t_obj, nearest, t_ground, n_ground, hits_object, visible))
    B = d.shape[0]
    ground = ~hits_object & (t_ground < FAR)
    t_hit = torch.where(hits_object, t_obj, torch.where(ground, t_ground, 0.0))
    point = origin + t_hit[..., None] * d
    n = surface_normal(origin, d, t_obj, nearest, hits_object, scene, n_ground)
    colour = shade(scene, d, point + 1e-3 * n, n, hits_object, ground, nearest, S, metal)
    image = srgb(colour.clamp_(0, 1)).permute(1, 2, 0).contiguous()  # [B, P, 3]
    image = image.reshape(B, N, N, S * S, 3).mean(3)
    coverage = (t < FAR).float().reshape(B, K, N, N, S * S).mean(-1)
    return (image, coverage, visible) if keep is None else (image, coverage, visible, kept)
