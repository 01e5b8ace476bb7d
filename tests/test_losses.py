"""Losses against independent per-example formulas written with python floats and math."""

import math

import pytest
import torch

from w2s_core.errors import InputError
from w2s_core.training.losses import (
    BATCH_TARGETS,
    LOSS_DEFAULTS,
    LOSSES,
    alpha_at,
    hard_labels,
    loss_alpha,
    make_batch_target,
    make_loss,
    soft_ce_rows,
)


def _batch(n: int, seed: int = 0, zeros: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 2, generator=g) * 2
    w1 = torch.rand(n, generator=g)
    if zeros:  # some confident weak labels, so 0·log 0 cases occur
        w1[: n // 3] = 0.0
        w1[n // 3 : 2 * n // 3] = 1.0
    return logits, torch.stack([1 - w1, w1], dim=1)


def _softmax_row(row: list[float]) -> list[float]:
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def _ce_row(row: list[float], target: list[float]) -> float:
    return -sum(t * math.log(p) for t, p in zip(target, _softmax_row(row)))


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def test_xent_and_kl_match_direct_formulas():
    logits, weak = _batch(12, zeros=True)
    rows, targets = logits.tolist(), weak.tolist()
    want_xent = _mean([_ce_row(r, t) for r, t in zip(rows, targets)])
    want_kl = _mean(
        [
            sum(w * (math.log(w) - math.log(p)) for w, p in zip(t, _softmax_row(r)) if w > 0)
            for r, t in zip(rows, targets)
        ]
    )
    assert make_loss("xent", {})(logits, weak, 0.3).item() == pytest.approx(want_xent, rel=1e-5)
    assert make_loss("kl", {})(logits, weak, 0.3).item() == pytest.approx(want_kl, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 2.0), (0.0, 1.0), (1.0, 0.0)])
def test_product_matches_direct_formula(alpha, beta):
    logits, weak = _batch(10, seed=1, zeros=True)
    losses = []
    for r, w in zip(logits.tolist(), weak.tolist()):
        unnorm = [p**beta * wi**alpha for p, wi in zip(_softmax_row(r), w)]
        losses.append(_ce_row(r, [u / sum(unnorm) for u in unnorm]))
    got = make_loss("product", {"alpha": alpha, "beta": beta})(logits, weak, 0.5)
    assert got.item() == pytest.approx(_mean(losses), rel=1e-5)


def test_product_with_beta_zero_is_xent():
    logits, weak = _batch(8, seed=2)
    got = make_loss("product", {"alpha": 1.0, "beta": 0.0})(logits, weak, 0.0)
    assert got.item() == pytest.approx(make_loss("xent", {})(logits, weak, 0.0).item(), rel=1e-6)


def test_logconf_matches_direct_formula():
    logits, weak = _batch(10, seed=3)
    step, alpha, warm = 0.05, 0.6, 0.2
    a = alpha * step / warm
    rows = logits.tolist()
    p1 = [_softmax_row(r)[1] for r in rows]
    k = round(sum(w[1] for w in weak.tolist()))  # expected number of hard positives
    top = sorted(range(len(rows)), key=lambda i: -p1[i])[:k]
    losses = []
    for i, (r, w) in enumerate(zip(rows, weak.tolist())):
        hard = [0.0, 1.0] if i in top else [1.0, 0.0]
        losses.append((1 - a) * _ce_row(r, w) + a * _ce_row(r, hard))
    got = make_loss("logconf", {"alpha": alpha, "warmup_frac": warm})(logits, weak, step)
    assert got.item() == pytest.approx(_mean(losses), rel=1e-5)


def test_logconf_alpha_zero_equals_xent():
    logits, weak = _batch(16, seed=4)
    got = make_loss("logconf", {"alpha": 0.0})(logits, weak, 0.9)
    assert got.item() == pytest.approx(make_loss("xent", {})(logits, weak, 0.9).item(), rel=1e-6)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_flows_and_bf16_computes_in_float32(name):
    logits, weak = _batch(6, seed=5)
    logits.requires_grad_(True)
    loss = make_loss(name, {})(logits, weak, 0.5)
    loss.backward()
    assert loss.dtype == torch.float32 and loss.ndim == 0
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    low = logits.detach().bfloat16()
    out = make_loss(name, {})(low, weak.bfloat16(), 0.5)
    assert out.dtype == torch.float32


def test_warmup_is_linear_and_zero_warmup_is_constant():
    alpha, warm = 0.5, 0.2
    assert alpha_at(0.0, alpha, warm) == 0.0
    assert alpha_at(warm / 2, alpha, warm) == pytest.approx(alpha / 2)
    assert alpha_at(warm, alpha, warm) == pytest.approx(alpha)
    assert alpha_at(1.0, alpha, warm) == pytest.approx(alpha)
    assert alpha_at(0.0, alpha, 0.0) == alpha
    assert loss_alpha("logconf", {"alpha": 0.4, "warmup_frac": 0.5}, 0.125) == pytest.approx(0.1)
    assert loss_alpha("xent", {}, 0.5) is None


def test_hard_labels_share_matches_weak_share_on_random_batches():
    g = torch.Generator().manual_seed(6)
    for n in [1, 2, 3, 7, 32]:
        for _ in range(20):
            p1 = torch.rand(n, generator=g)
            if n > 2:
                p1[: n // 2] = p1[0]  # ties
            share = torch.rand(1, generator=g).item()
            hard = hard_labels(p1, share)
            k = int(hard.sum().item())
            assert abs(k - share * n) <= 0.5
            if 0 < k < n:  # every hardened positive is at least as confident as every negative
                assert p1[hard == 1].min() >= p1[hard == 0].max()


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_hard_labels_all_one_class(share):
    p1 = torch.tensor([0.9, 0.1, 0.5, 0.5])
    assert hard_labels(p1, share).tolist() == [share] * 4


def test_logconf_all_positive_weak_batch_of_one():
    logits = torch.tensor([[2.0, -1.0]])
    weak = torch.tensor([[0.0, 1.0]])
    got = make_loss("logconf", {"alpha": 1.0, "warmup_frac": 0.0})(logits, weak, 0.0)
    # a = 1: target is the hard label, which must be class 1 even though the student prefers class 0
    assert got.item() == pytest.approx(_ce_row([2.0, -1.0], [0.0, 1.0]), rel=1e-6)


def _minibatches_of_one(name: str, logits: torch.Tensor, weak: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch loss, its value from minibatches of one against the target fixed over the batch), as the loop trains."""
    full = make_loss(name, {})(logits, weak, 0.5)
    target = make_batch_target(name, {})(torch.softmax(logits.detach(), dim=-1)[:, 1], weak, 0.5)
    n = len(logits)
    return full, sum(soft_ce_rows(logits[i : i + 1], target[i : i + 1]).mean() / n for i in range(n))


@pytest.mark.parametrize("name", sorted(BATCH_TARGETS))
def test_batch_level_loss_from_minibatches_equals_the_loss_on_the_batch(name):
    """What the loop relies on (issue 9): the target fixed over the whole batch, then minibatches of one
    trained against their rows, give the batch loss and its gradient."""
    logits, weak = _batch(8, seed=7)
    logits.requires_grad_(True)
    full, parts = _minibatches_of_one(name, logits, weak)
    (want,) = torch.autograd.grad(full, logits)
    (got,) = torch.autograd.grad(parts, logits)
    assert parts.item() == pytest.approx(full.item(), rel=1e-6)
    torch.testing.assert_close(got, want)


def test_logconf_called_per_minibatch_of_one_would_collapse_to_the_weak_argmax():
    """Why the loop fixes the target over the batch: called on each minibatch of one (what the loop did
    before issue 9), logconf is cross-entropy on the weak label's argmax, far from the batch loss."""
    logits, weak = _batch(8, seed=7)
    full, parts = _minibatches_of_one("logconf", logits, weak)
    per_minibatch = sum(make_loss("logconf", {})(logits[i : i + 1], weak[i : i + 1], 0.5) for i in range(8)) / 8
    argmax = torch.nn.functional.one_hot(weak.argmax(-1), 2).float()
    collapsed = make_loss("xent", {})(logits, 0.5 * weak + 0.5 * argmax, 0.5)  # α = 0.5 after warm-up
    assert per_minibatch.item() == pytest.approx(collapsed.item(), rel=1e-6)
    assert abs(per_minibatch.item() - full.item()) > 1e-3
    assert parts.item() == pytest.approx(full.item(), rel=1e-6)


def test_only_batch_level_losses_have_a_batch_target():
    assert make_batch_target("xent", {}) is None and make_batch_target("product", {}) is None
    assert make_batch_target("logconf", {"alpha": 0.3}).keywords == {"alpha": 0.3, "warmup_frac": 0.2}
    assert set(BATCH_TARGETS) <= set(LOSSES)


def test_defaults_are_merged():
    assert LOSS_DEFAULTS["logconf"] == {"alpha": 0.5, "warmup_frac": 0.2}
    assert make_loss("logconf", {"alpha": 0.3}).keywords == {"alpha": 0.3, "warmup_frac": 0.2}


@pytest.mark.parametrize(
    "name,params,fragments",
    [
        ("xnet", {}, ["unknown loss 'xnet'", "did you mean 'xent'", "logconf"]),
        ("logconf", {"alpah": 0.5}, ["'logconf'", "'alpah'", "did you mean 'alpha'", "alpha, warmup_frac"]),
        ("xent", {"alpha": 0.5}, ["'xent'", "'alpha'"]),
        ("logconf", {"alpha": 1.5}, ["'alpha'", "between 0 and 1"]),
        ("logconf", {"warmup_frac": -0.1}, ["'warmup_frac'"]),
        ("product", {"beta": -1}, ["'beta'", "at least 0"]),
        ("product", {"alpha": "high"}, ["'alpha'"]),
        ("logconf", {"alpha": True}, ["'alpha'"]),
        ("logconf", {"alpha": float("nan")}, ["'alpha'"]),
        ("product", {"beta": float("inf")}, ["'beta'"]),
    ],
)
def test_bad_names_and_params_raise_input_error(name, params, fragments):
    with pytest.raises(InputError) as err:
        make_loss(name, params)
    for fragment in fragments:
        assert fragment in str(err.value)
