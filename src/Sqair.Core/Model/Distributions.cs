using TorchSharp;
using static Sqair.Native.KeptScalars;
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

    /// <summary>Elementwise log N(x; 0, 1).</summary>
    public static Tensor StandardNormalLogProb(Tensor x) => (x * x).mul(Kept(-0.5)) - Kept(HalfLog2Pi);

    /// <summary>
    /// Elementwise log-density of the sample loc + scale·eps under N(loc, scale), from its noise:
    /// log N(eps; 0, 1) − log scale.
    /// </summary>
    public static Tensor NoiseLogProb(Tensor eps, Tensor scale) =>
        (eps * eps).mul(Kept(-0.5)) - scale.log() - Kept(HalfLog2Pi);

    /// <summary>
    /// Elementwise log Bernoulli(x; sigmoid(logits)), stable for large |logits|: minus libtorch's
    /// binary cross-entropy with logits, two ops where x·log σ(l) + (1 − x)·log σ(−l) takes seven.
    /// </summary>
    public static Tensor BernoulliLogProb(Tensor x, Tensor logits) =>
        nn.functional.binary_cross_entropy_with_logits(logits, x, null, nn.Reduction.None, null).neg();

    /// <summary>
    /// Presence gating (docs/design.md §2.2): logit ← gate·logit + (gate − 1)·88 for a 0/1 gate, so an
    /// absent gate gives probability e^−88 ≈ 0 while a present one leaves the logit as it is. Gates
    /// are sampled presences, never differentiated, so this is the logit with the closed places
    /// filled with −88 (two ops, not four; the gradient reaches the open logits alone either way).
    /// </summary>
    public static Tensor GateLogits(Tensor logits, Tensor gate) =>
        logits.masked_fill(gate.lt(Kept(0.5)), Kept(AbsentLogit));

    /// <summary>
    /// The logit of a presence that is ruled out: sigmoid(−88) = e^−88 ≈ 6·10⁻³⁹ is 0 for all
    /// purposes, yet, unlike −∞, it keeps every product with a zero gate finite (the original's value).
    /// </summary>
    public const double AbsentLogit = -88.0;

    /// <summary>
    /// log q(n) of AIR's number-of-steps posterior for the sampled steps, from the presences
    /// <paramref name="present"/> [..., N] and the gated logits <paramref name="gatedLogits"/> [..., N]
    /// of every step. With step probabilities p_j = sigmoid(logit_j) and at most A steps, q(n) =
    /// Π_{j&lt;n} p_j · (1 − p_n) for n &lt; A and Π_{j&lt;A} p_j for n = A. Those are exactly the
    /// Bernoulli probabilities of the steps whose gate was open (j ≤ n and j &lt; A); a closed step's
    /// logit is −88, so its absence adds log(1 − e^−88) ≈ 0. So log q(n) is the sum of the steps'
    /// Bernoulli log-probabilities [...].
    /// </summary>
    public static Tensor StepsLogProb(Tensor present, Tensor gatedLogits) =>
        BernoulliLogProb(present, gatedLogits).sum(-1);

    /// <summary>
    /// The categorical distribution over 0..N of <paramref name="logProbs"/> [R, N + 1] as a chain of conditional
    /// Bernoullis, "step j happens given steps 1..j − 1 did", with logits [R, N]
    /// π_j = log P(n ≥ j) − log p(n = j − 1): along the chain of n present steps and an absent one (none
    /// after N), their log-probabilities sum to log p(n).
    /// </summary>
    public static Tensor StickBreakingLogits(Tensor logProbs)
    {
        long n = logProbs.shape[1] - 1;
        // log P(n ≥ j) for j = 0..N: a reversed cumulative log-sum-exp
        var atLeast = logProbs.flip(1).logcumsumexp(1).flip(1);
        return atLeast.narrow(1, 1, n).sub(logProbs.narrow(1, 0, n));
    }

    /// <summary>
    /// A binary Concrete (Maddison et al. 2017; Jang et al. 2017) sample of presence from
    /// <paramref name="logits"/> at temperature <paramref name="tau"/>, reparameterised on the standard logistic
    /// noise <paramref name="logistic"/>: in logit space x = (logit − L)/τ, relaxed sigmoid(x), hard [x &gt; 0]
    /// (the Bernoulli sample of the same uniform, <see cref="Noise.Logistic"/>).
    /// </summary>
    public static (Tensor Hard, Tensor Relaxed, Tensor X) Relax(Tensor logits, Tensor logistic, double tau)
    {
        using var inverse = (1 / tau).ToScalar();
        var x = logits.sub(logistic).mul(inverse);
        return (x.gt(Kept(0.0)).to(logits.dtype), x.sigmoid(), x);
    }

    /// <summary>
    /// Elementwise log-density of a binary Concrete sample in logit space, x = (l − L)/τ with L standard
    /// logistic: log τ + log f(τx − l), f the logistic density, log f(s) = −softplus(s) − softplus(−s).
    /// In logit space the sigmoid's Jacobian is the same for the posterior and the prior, so their ratio is
    /// that of the relaxed presences themselves, and it is finite where a density of sigmoid(x) underflows.
    /// </summary>
    public static Tensor ConcreteLogProb(Tensor x, Tensor logits, double tau)
    {
        using var t = tau.ToScalar();
        using var logTau = Math.Log(tau).ToScalar();
        var s = x.mul(t).sub(logits);
        return Activations.Softplus(s).Plus(Activations.Softplus(s.neg())).neg().Plus(logTau);
    }
}
