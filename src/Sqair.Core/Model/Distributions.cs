using TorchSharp;
using static Sqair.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Model;

/// <summary>
/// The log-densities the model needs, written out in closed form (TorchSharp's RelaxedBernoulli is
/// broken and its distributions cost extra ops per call), and the AIR posterior over the number of
/// discovery steps.
/// </summary>
internal static class Distributions
{
    public static readonly double HalfLog2Pi = 0.5 * Math.Log(2 * Math.PI);

    /// <summary>Elementwise log N(x; loc, scale).</summary>
    public static Tensor NormalLogProb(Tensor x, Tensor loc, Tensor scale)
    {
        var z = (x - loc) / scale;
        return (z * z).mul(Kept(-0.5)) - scale.log() - Kept(HalfLog2Pi);
    }

    /// <summary>
    /// Standard normal noise shaped like <paramref name="like"/>, from <paramref name="generator"/>
    /// (null: libtorch's global generator, the same stream as <c>randn_like</c>).
    /// </summary>
    public static Tensor StandardNormal(Tensor like, Generator? generator) =>
        randn(like.shape, dtype: like.dtype, device: like.device, generator: generator);

    /// <summary>Elementwise log N(x; 0, 1).</summary>
    public static Tensor StandardNormalLogProb(Tensor x) => (x * x).mul(Kept(-0.5)) - Kept(HalfLog2Pi);

    /// <summary>
    /// Elementwise log-density of the sample loc + scale·eps under N(loc, scale), from its noise:
    /// log N(eps; 0, 1) − log scale.
    /// </summary>
    public static Tensor NoiseLogProb(Tensor eps, Tensor scale) => (eps * eps).mul(Kept(-0.5)) - scale.log() - Kept(HalfLog2Pi);

    /// <summary>Elementwise log Bernoulli(x; sigmoid(logits)), stable for large |logits|.</summary>
    public static Tensor BernoulliLogProb(Tensor x, Tensor logits) =>
        (x * logits.log_sigmoid()).Plus(x.OneMinus() * logits.neg().log_sigmoid());

    /// <summary>
    /// Presence gating (docs/design.md §2.2): logit ← gate·logit + (gate − 1)·88 for a 0/1 gate, so an
    /// absent gate gives probability e^−88 ≈ 0 while a present one leaves the logit as it is. Gates
    /// are sampled presences, never differentiated, so this is the logit with the closed places
    /// filled with −88 (two ops, not four; the gradient reaches the open logits alone either way).
    /// </summary>
    public static Tensor GateLogits(Tensor logits, Tensor gate) => logits.masked_fill(gate.lt(Kept(0.5)), Kept(AbsentLogit));

    /// <summary>
    /// The logit of a presence that is ruled out: sigmoid(−88) = e^−88 ≈ 6·10⁻³⁹ is 0 for all
    /// purposes, yet, unlike −∞, it keeps every product with a zero gate finite (the original's value).
    /// </summary>
    public const double AbsentLogit = -88.0;

    /// <summary>
    /// log q(n) for n = 0..N of AIR's number-of-steps posterior: with step probabilities
    /// p_j = sigmoid(logits_j) and at most <paramref name="allowed"/> steps A,
    /// q(n) = Π_{j≤n} p_j · (1 − p_{n+1}) for n &lt; A, Π_{j≤A} p_j for n = A, and 0 for n &gt; A.
    /// logits [..., N], allowed [...] (integer-valued float) → [..., N + 1].
    /// </summary>
    public static Tensor NumStepsLogProbs(Tensor logits, Tensor allowed)
    {
        long n = logits.shape[^1];
        var logP = logits.log_sigmoid();
        var log1mP = logits.neg().log_sigmoid();
        var zerosCol = zeros_like(logP.narrow(-1, 0, 1));
        // cumulative Σ_{j≤n} log p_j for n = 0..N
        var cum = cat([zerosCol, logP.cumsum(-1)], -1);
        // log(1 − p_{n+1}) for n = 0..N−1; the last count has no further step
        var stop = cat([log1mP, zerosCol], -1);
        var counts = Arange(n + 1, logits.dtype, logits.device);
        var a = allowed.unsqueeze(-1);
        var stopTerm = where(counts.lt(a), stop, zeros_like(stop));
        var logq = cum.Plus(stopTerm);
        return logq.masked_fill(counts.gt(a), Kept(double.NegativeInfinity));
    }
}
