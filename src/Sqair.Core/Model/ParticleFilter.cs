using TorchSharp;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Model;

/// <summary>
/// How the K particles of a sequence are treated during inference (docs/design.md §2.7).
/// </summary>
public enum Resampling
{
    /// <summary>
    /// K independent importance samples of the whole sequence, one picked at the end (the paper and the original).
    /// </summary>
    None,
    /// <summary>
    /// A particle filter: a sequence's particles are resampled after a frame when their effective sample size
    /// falls below K/2.
    /// </summary>
    Ess,
    /// <summary>A particle filter resampling after every frame (the bootstrap filter's schedule).</summary>
    Always,
}

/// <summary>
/// What each particle row has summed over the frames so far: log w, log q of the discrete latents, log p(x|z), KL;
/// each [R].
/// </summary>
internal sealed record ParticleSums(Tensor LogWeight, Tensor LogQDiscrete, Tensor LogLikelihood, Tensor Kl)
{
    /// <summary>Nothing summed yet, for <paramref name="rows"/> rows.</summary>
    public static ParticleSums Zeros(long rows, Device device) =>
        new(zeros(rows, device: device), zeros(rows, device: device), zeros(rows, device: device),
            zeros(rows, device: device));

    /// <summary>Every tensor of the sums.</summary>
    public IEnumerable<Tensor> Tensors() => [LogWeight, LogQDiscrete, LogLikelihood, Kl];

    /// <summary>
    /// The sums after one more frame with log p(x|z) <paramref name="ll"/>, log p(z) <paramref name="logp"/>,
    /// log q(z) <paramref name="logq"/>: log w += ll + log p − log q.
    /// </summary>
    public ParticleSums Add(Tensor ll, Tensor logp, Tensor logq, Tensor logQDiscrete) =>
        new(LogWeight.Plus(ll).Plus(logp) - logq, LogQDiscrete.Plus(logQDiscrete), LogLikelihood.Plus(ll.detach()),
            Kl.Plus((logq - logp).detach()));
}

/// <summary>
/// Sequential Monte Carlo over SQAIR's particles (docs/design.md §2.7): after a frame, a sequence
/// whose normalised weights have degenerated draws K ancestors by systematic resampling (Douc &amp;
/// Cappé 2005: one uniform per sequence, the lowest variance of the usual schemes), every row
/// then continues the state of its ancestor (objects, ids, RNN states and sums together), and the
/// sequence's log weights are all set to their log-mean-exp, so that log-mean-exp over K at the
/// end is the filter's estimate of log p(x) (the FIVO bound, Maddison et al. 2017).
/// </summary>
internal static class ParticleFilter
{
    /// <summary>Resample when the effective sample size falls below this fraction of K (the usual choice).</summary>
    public const double EssFraction = 0.5;

    /// <summary>
    /// The row [R] each row continues from after this frame, given the log weights [B, K], or null when
    /// no sequence resamples (always with <see cref="Resampling.None"/>, which draws nothing).
    /// </summary>
    public static Resample? Ancestors(Tensor logWeights, Resampling resampling, Noise noise)
    {
        if (resampling == Resampling.None) return null;
        long b = logWeights.shape[0], k = logWeights.shape[1];
        var weights = nn.functional.softmax(logWeights, 1);
        var resampled = resampling == Resampling.Always
            ? ones(b, dtype: ScalarType.Bool, device: logWeights.device)
            : weights.Squared().sum(1).reciprocal().lt(Kept(EssFraction * k));
        if (resampling == Resampling.Ess && !resampled.any().item<bool>()) return null;
        var own = Arange(k, ScalarType.Int64, logWeights.device).unsqueeze(0).expand(b, k);
        var chosen = where(resampled.unsqueeze(1), Systematic(weights, noise.Uniform(b, logWeights.device)), own);
        var rows = Arange(b, ScalarType.Int64, logWeights.device).mul(Kept(k)).unsqueeze(1).Plus(chosen).view(-1);
        return new Resample(rows, resampled);
    }

    /// <summary>
    /// One particle per sequence drawn with probability ∝ w_k from log weights [B, K], as row indices [B] into the
    /// B·K rows.
    /// </summary>
    public static Tensor Pick(Tensor logWeights, Noise noise)
    {
        var k = noise.Choose(nn.functional.softmax(logWeights, 1));
        return Arange(logWeights.shape[0], ScalarType.Int64, k.device).mul(Kept(logWeights.shape[1])).Plus(k);
    }

    /// <summary>The particle of largest weight per sequence, from log weights [B, K], as row indices [B].</summary>
    public static Tensor Best(Tensor logWeights) =>
        Arange(logWeights.shape[0], ScalarType.Int64, logWeights.device).mul(Kept(logWeights.shape[1]))
            .Plus(logWeights.argmax(1));

    /// <summary>
    /// Systematic resampling: for each sequence one u ~ U[0, 1/K) (<paramref name="uniform"/> [B, 1] of U[0, 1)
    /// divided by K), positions u + i/K, i = 0..K−1, and the ancestor of position p is the first particle
    /// whose cumulative weight exceeds p. [B, K] → [B, K] indices.
    /// </summary>
    public static Tensor Systematic(Tensor weights, Tensor uniform)
    {
        long k = weights.shape[1];
        var positions = Arange(k, ScalarType.Float32, weights.device).unsqueeze(0).Plus(uniform).div(Kept(k));
        var cumulative = weights.cumsum(1).contiguous();
        return searchsorted(cumulative, positions.contiguous(), right: true).clamp_max(Kept(k - 1));
    }

    /// <summary>
    /// The sums of the rows after resampling: each row takes its ancestor's; a resampled sequence's log weights
    /// become their log-mean-exp.
    /// </summary>
    public static ParticleSums Resampled(ParticleSums sums, Resample resample, long b, long k)
    {
        var lw = sums.LogWeight.view(b, k);
        var mean = lw.logsumexp(1, keepdim: true).sub(Kept(Math.Log(k)));
        var logWeight = where(resample.Sequences.unsqueeze(1), mean.expand(b, k), lw).view(-1);
        return new ParticleSums(logWeight, sums.LogQDiscrete[resample.Rows], sums.LogLikelihood[resample.Rows],
                                sums.Kl[resample.Rows]);
    }

    /// <summary>
    /// For each step, the row at that step of every final particle's ancestor ([R], null: the rows
    /// themselves), from the ancestors drawn before each step but the first.
    /// </summary>
    public static Tensor?[] Lineages(IReadOnlyList<Resample?> ancestors)
    {
        var lineage = new Tensor?[ancestors.Count + 1];
        Tensor? rows = null;
        for (int step = ancestors.Count - 1; step >= 0; step--)
        {
            if (ancestors[step] is { } a) rows = rows is null ? a.Rows : a.Rows[rows];
            lineage[step] = rows;
        }
        return lineage;
    }
}

/// <summary>One resampling: the ancestor row of every row [R] and which sequences resampled [B] (bool).</summary>
internal sealed record Resample(Tensor Rows, Tensor Sequences)
{
    /// <summary>Both tensors.</summary>
    public IEnumerable<Tensor> Tensors() => [Rows, Sequences];
}
