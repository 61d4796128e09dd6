#!/usr/bin/env python3
# Values and gradients of pieces of SQAIR's objective computed with PyTorch, independently of the C# code,
# for tests/Sqair.Tests/Objective/IndependentReferenceTests.cs to compare with. Everything is written here
# from the mathematics (VIMCO: Mnih & Rezende 2016; the densities; bilinear sampling), not translated from
# the C#, and gradients come from PyTorch's autograd. CI does not run this script: it reads the committed
# output. Regenerate (Debian's PyTorch: apt-get install python3-torch) after a deliberate change of the
# mathematics, and review the difference:
#
#   /usr/bin/python3 scripts/independent-reference.py > tests/Sqair.Tests/Objective/independent-reference.json
#
# Inputs are drawn from a seeded generator and rounded to 4 decimals, so they read as written and
# parse to the same doubles in C#. All arithmetic is float64.
import json
import math
import sys

import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal

torch.set_default_dtype(torch.float64)
generator = torch.Generator().manual_seed(20181203)
DECIMALS = 4


def draw(*shape, low=-1.0, high=1.0):
    """Uniform values in [low, high), rounded to DECIMALS places."""
    x = torch.rand(*shape, generator=generator) * (high - low) + low
    return torch.round(x * 10**DECIMALS) / 10**DECIMALS


def cotangent(shape):
    """A fixed pattern of weights sin(0.7 i + 1), so that sum(weights * f) sees every element differently."""
    n = math.prod(shape)
    return torch.sin(torch.arange(n) * 0.7 + 1.0).reshape(shape)


def leaf(x):
    return x.clone().requires_grad_(True)


def lists(x):
    return x.detach().tolist()


# --- VIMCO ------------------------------------------------------------------------------------------


def log_mean_exp(log_w):
    """The IWAE bound log (1/K) sum_k w_k, per sequence."""
    k = log_w.shape[-1]
    top = log_w.max(-1, keepdim=True).values
    return (top.squeeze(-1) + torch.log(torch.exp(log_w - top).sum(-1))) - math.log(k)


def leave_one_out(log_w):
    """L_{-k}: the bound with w_k replaced by the geometric mean of the other K - 1 weights."""
    k = log_w.shape[-1]
    columns = []
    for j in range(k):
        others = torch.cat([log_w[:, :j], log_w[:, j + 1:]], dim=1)
        geometric = others.mean(1, keepdim=True)
        columns.append(log_mean_exp(torch.cat([others, geometric], dim=1)))
    return torch.stack(columns, dim=1)


def vimco(log_w, log_q, seq_len, original):
    """
    The surrogate whose gradient is VIMCO's estimator, per sequence -L - sum_k sg(signal_k) log q_k with
    signal_k = L - L_{-k} (the paper), or -L - mean_k sg(log w_k - L_{-k}) log q_k (the original release);
    mean over sequences, divided by the sequence length.
    """
    bound = log_mean_exp(log_w)
    loo = leave_one_out(log_w)
    signal = (log_w if original else bound.unsqueeze(1)) - loo
    score = signal.detach() * log_q
    score = score.mean(1) if original else score.sum(1)
    return (-bound - score).mean() / seq_len, bound, loo, signal


def vimco_case():
    b, k, seq_len = 3, 4, 5
    log_w = draw(b, k, low=-30.0, high=-20.0)
    log_w[2, 1] = -200.0   # one weight negligible beside the others: the bound must stay finite and exact
    log_q = draw(b, k, low=-4.0, high=0.0)
    case = {"log_w": lists(log_w), "log_q": lists(log_q), "seq_len": seq_len}
    for name, original in [("paper", False), ("original", True)]:
        w, q = leaf(log_w), leaf(log_q)
        loss, bound, loo, signal = vimco(w, q, seq_len, original)
        loss.backward()
        # what the gradient must be, by hand: -softmax(log w)/(B T) through the bound alone (the signal is
        # held fixed), and -signal/(B T) (the original: also / K) through log q
        scale = b * seq_len * (k if original else 1)
        assert torch.allclose(w.grad, -torch.softmax(log_w, 1) / (b * seq_len), rtol=1e-12, atol=0)
        assert torch.allclose(q.grad, -signal.detach() / scale, rtol=1e-12, atol=1e-15)
        case["bound"] = lists(bound)
        case["leave_one_out"] = lists(loo)
        case[name] = {"signal": lists(signal), "loss": loss.item(), "grad_log_w": lists(w.grad),
                      "grad_log_q": lists(q.grad)}
    weights = torch.softmax(log_w, 1)
    case["ess"] = lists(1.0 / (weights**2).sum(1))
    return case


# --- densities --------------------------------------------------------------------------------------


def densities_case():
    n = 7
    x, loc = draw(n, low=-3.0, high=3.0), draw(n)
    scale = draw(n, low=0.05, high=2.0)
    weights = cotangent([n])
    xs, locs, scales = leaf(x), leaf(loc), leaf(scale)
    normal = Normal(locs, scales).log_prob(xs)
    (weights * normal).sum().backward()
    out = {"weights": lists(weights),
           "normal": {"x": lists(x), "loc": lists(loc), "scale": lists(scale), "log_prob": lists(normal),
                      "grad_x": lists(xs.grad), "grad_loc": lists(locs.grad), "grad_scale": lists(scales.grad)}}

    # Bernoulli(sigmoid(logit)) at 0/1 values, logits up to ±60 where 1 - sigmoid underflows in float32
    value = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    logits = torch.tensor([0.3, -1.7, 60.0, 60.0, -60.0, 2.5, -0.4])
    ls = leaf(logits)
    bernoulli = Bernoulli(logits=ls).log_prob(value)
    (weights * bernoulli).sum().backward()
    out["bernoulli"] = {"x": lists(value), "logits": lists(logits), "log_prob": lists(bernoulli),
                        "grad_logits": lists(ls.grad)}

    # binary Concrete in logit space: x = (l + logistic noise)/tau has density tau f(tau x - l), f the
    # standard logistic density, log f(s) = log sigmoid(s) + log sigmoid(-s)
    tau = 0.66
    y, logit = draw(n, low=-8.0, high=8.0), draw(n, low=-3.0, high=3.0)
    ys, lg = leaf(y), leaf(logit)
    s = tau * ys - lg
    concrete = math.log(tau) + F.logsigmoid(s) + F.logsigmoid(-s)
    (weights * concrete).sum().backward()
    out["concrete"] = {"x": lists(y), "logits": lists(logit), "tau": tau, "log_prob": lists(concrete),
                       "grad_x": lists(ys.grad), "grad_logits": lists(lg.grad)}

    # the categorical p(n), n = 0..N, as a chain of Bernoullis "step j happens given steps before it did":
    # the logit of step j is log P(n >= j) - log P(n = j - 1)
    rows, steps = 2, 3
    log_p = torch.log_softmax(draw(rows, steps + 1, low=-2.0, high=2.0), 1)
    lp = leaf(log_p)
    probs = lp.exp()
    chain = torch.stack([torch.log(probs[:, j:].sum(1)) - lp[:, j - 1] for j in range(1, steps + 1)], 1)
    chain_weights = cotangent([rows, steps])
    (chain_weights * chain).sum().backward()
    out["stick_breaking"] = {"log_probs": lists(log_p), "weights": lists(chain_weights), "logits": lists(chain),
                             "grad_log_probs": lists(lp.grad)}
    return out


# --- spatial transformer ----------------------------------------------------------------------------


def tent(position, pixels):
    """Bilinear weights max(0, 1 - |position - q|) of pixels q = 0..pixels - 1 (zero outside)."""
    return torch.clamp(1.0 - (position.unsqueeze(-1) - torch.arange(pixels)).abs(), min=0.0)


def extract(image, coords, g):
    """
    Glimpse pixel (r, c) of a window (sx, sy, tx, ty) reads the image at x = sx x_g + tx, y = sy y_g + ty,
    with x_g, y_g = -1 + 2 c/(G - 1), -1 + 2 r/(G - 1), at pixel position (x + 1)(L - 1)/2: a bilinear
    read, zero outside the image.
    """
    side = image.shape[-1]
    grid = torch.linspace(-1.0, 1.0, g)
    sx, sy, tx, ty = coords.unbind(-1)
    px = ((sx[:, None] * grid + tx[:, None]) + 1) * (side - 1) / 2    # [n, G]
    py = ((sy[:, None] * grid + ty[:, None]) + 1) * (side - 1) / 2
    wx, wy = tent(px, side), tent(py, side)                             # [n, G, L]
    return torch.einsum("nrh,nchw,nsw->ncrs", wy, image, wx)


def write(glimpse, coords, side):
    """
    The inverse map: canvas pixel (i, j) reads the glimpse at x_g = (x - tx)/sx, y_g = (y - ty)/sy with
    zero padding, PyTorch's grid_sample with align_corners (an implementation independent of the C#'s
    separable products).
    """
    axis = torch.linspace(-1.0, 1.0, side)
    sx, sy, tx, ty = coords.unbind(-1)
    gx = (axis[None, :] - tx[:, None]) / sx[:, None]                   # [n, L]
    gy = (axis[None, :] - ty[:, None]) / sy[:, None]
    n = glimpse.shape[0]
    grid = torch.stack([gx[:, None, :].expand(n, side, side), gy[:, :, None].expand(n, side, side)], -1)
    return F.grid_sample(glimpse, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def transformer_case():
    n, channels, side, g = 3, 2, 7, 4
    image = draw(n, channels, side, side, low=0.0, high=1.0)
    glimpse = draw(n, channels, g, g, low=0.0, high=1.0)
    # (sx, sy, tx, ty): the second window hangs over the right and bottom edges, the third over the left
    coords = torch.cat([draw(n, 2, low=0.3, high=0.8), draw(n, 2, low=-0.4, high=0.4)], 1)
    coords[1, 2:] = torch.tensor([0.7, 0.65])
    coords[2, 2] = -0.75
    out = {"image": lists(image), "glimpse": lists(glimpse), "coords": lists(coords), "glimpse_size": g,
           "side": side}
    im, co = leaf(image), leaf(coords)
    glimpses = extract(im, co, g)
    weights = cotangent(list(glimpses.shape))
    (weights * glimpses).sum().backward()
    out["extract"] = {"value": lists(glimpses), "weights": lists(weights), "grad_image": lists(im.grad),
                      "grad_coords": lists(co.grad)}
    gl, co = leaf(glimpse), leaf(coords)
    canvas = write(gl, co, side)
    weights = cotangent(list(canvas.shape))
    (weights * canvas).sum().backward()
    out["write"] = {"value": lists(canvas), "weights": lists(weights), "grad_glimpse": lists(gl.grad),
                    "grad_coords": lists(co.grad)}
    return out


# --- a tiny model ----------------------------------------------------------------------------------


def tiny_model_case():
    """
    A fixed network with fixed noise whose log weights have SQAIR's form: for each sequence (input x), a
    presence z ~ Bernoulli(sigmoid(l)) and a latent y ~ N(mu, sigma) from h = tanh(W1 x + b1), l = wp.h + bp,
    mu = Wmu h, sigma = softplus(Wsig h) + 0.01; priors Bernoulli(sigmoid(0.3)) and N(0, 1); the observation
    o ~ N(z y, 0.5). log w = log p(o | y, z) + log p(y) + log p(z) - log q(y) - log q(z), K particles from
    the noise eps (y = mu + sigma eps) and the fixed presences z; the loss is VIMCO's surrogate.
    """
    b, k, inputs, hidden, latent, seq_len = 2, 4, 3, 5, 2, 3
    prior_logit, obs_scale, min_scale = 0.3, 0.5, 0.01
    x, obs = draw(b, inputs), draw(b, latent, low=-2.0, high=2.0)
    eps = draw(b, k, latent, low=-2.0, high=2.0)
    z = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    params = {"w1": draw(hidden, inputs), "b1": draw(hidden, low=-0.5, high=0.5), "wp": draw(hidden),
              "bp": draw(1, low=-0.5, high=0.5), "wmu": draw(latent, hidden), "wsig": draw(latent, hidden)}
    out = {"x": lists(x), "obs": lists(obs), "eps": lists(eps), "z": lists(z), "seq_len": seq_len,
           "prior_logit": prior_logit, "obs_scale": obs_scale, "min_scale": min_scale,
           "params": {name: lists(p) for name, p in params.items()}}
    for name, original in [("paper", False), ("original", True)]:
        p = {key: leaf(v) for key, v in params.items()}
        h = torch.tanh(x @ p["w1"].T + p["b1"])
        logit = (h @ p["wp"] + p["bp"]).unsqueeze(1).expand(b, k)
        mu = (h @ p["wmu"].T).unsqueeze(1)
        sigma = (F.softplus(h @ p["wsig"].T) + min_scale).unsqueeze(1)
        y = mu + sigma * eps
        log_q_y = Normal(mu, sigma).log_prob(y).sum(-1)
        log_p_y = Normal(0.0, 1.0).log_prob(y).sum(-1)
        log_q_z = Bernoulli(logits=logit).log_prob(z)
        log_p_z = Bernoulli(logits=torch.full_like(z, prior_logit)).log_prob(z)
        log_lik = Normal(z.unsqueeze(-1) * y, obs_scale).log_prob(obs.unsqueeze(1)).sum(-1)
        log_w = log_lik + log_p_y + log_p_z - log_q_y - log_q_z
        loss, _, _, _ = vimco(log_w, log_q_z, seq_len, original)
        loss.backward()
        out[name] = {"log_w": lists(log_w), "log_q": lists(log_q_z), "loss": loss.item(),
                     "grads": {key: lists(v.grad) for key, v in p.items()}}
    return out


if __name__ == "__main__":
    reference = {
        "generated_by": "scripts/independent-reference.py",
        "torch": torch.__version__,
        "vimco": vimco_case(),
        "densities": densities_case(),
        "transformer": transformer_case(),
        "tiny_model": tiny_model_case(),
    }
    json.dump(reference, sys.stdout, indent=1)
    sys.stdout.write("\n")
