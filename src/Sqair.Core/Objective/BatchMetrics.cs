using Sqair.Data;
using Sqair.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Objective;

/// <summary>
/// docs/design.md §5 measurements of one batch, as sums over its sequences so that batches add up:
/// divide by <see cref="Sequences"/> (or frames) for means. Per-sequence quantities are summed
/// over the frames of the sequence.
/// </summary>
public sealed record BatchMetrics
{
    /// <summary>Sequences measured.</summary>
    public double Sequences { get; init; }
    /// <summary>Frames measured (sequences × length).</summary>
    public double Frames { get; init; }
    /// <summary>Σ_b IWAE bound log (1/K) Σ_k w_k.</summary>
    public double Iwae { get; init; }
    /// <summary>Σ_b mean_k log w_k.</summary>
    public double Elbo { get; init; }
    /// <summary>Σ_b Σ_k ŵ_k log p(x|z_k) with normalised weights ŵ.</summary>
    public double LogLikelihood { get; init; }
    /// <summary>Σ_b Σ_k ŵ_k (log q − log p).</summary>
    public double Kl { get; init; }
    /// <summary>Sum over sequences of the effective sample size of the K importance weights.</summary>
    public double Ess { get; init; }
    /// <summary>
    /// Σ over frames of importance-weighted squared error of the canvas, per pixel mean (needs kept frames).
    /// </summary>
    public double Mse { get; init; }
    /// <summary>
    /// Σ over frames of Σ_k ŵ_k 1[count = digits present in the sequence] (the original's definition).
    /// </summary>
    public double CountCorrectPresent { get; init; }
    /// <summary>Σ over frames of Σ_k ŵ_k 1[count = digits visible in the frame].</summary>
    public double CountCorrectVisible { get; init; }
    /// <summary>Weighted number of propagated objects, summed over frames.</summary>
    public double Propagated { get; init; }
    /// <summary>Weighted number of discovered objects, summed over frames.</summary>
    public double Discovered { get; init; }

    /// <summary>
    /// The sums over one batch of model output and its ground truth, each particle weighted by its
    /// normalised importance weight.
    /// </summary>
    public static BatchMetrics Of(SequenceOutput o, SequenceBatch batch)
    {
        using var _ = NewDisposeScope();
        using var __ = no_grad();
        var logW = o.LogWeights.detach().to(ScalarType.Float64);
        var w = nn.functional.softmax(logW, 1);                   // [B, K]
        long t = o.Counts.shape[0], b = o.B;
        var counts = o.Counts.to(ScalarType.Float64);              // [T, B, K]
        var gtPresent = batch.Present.sum(-1).to(ScalarType.Float64).cpu().to(counts.device).unsqueeze(-1);
        var gtVisible = batch.Visible.sum(-1).to(ScalarType.Float64).cpu().to(counts.device).unsqueeze(-1);
        double Weighted(Tensor perFrameK) => (perFrameK * w.unsqueeze(0)).sum().item<double>();
        double mse = 0;
        if (o.Frames is { } frames)
        {
            for (int i = 0; i < frames.Count; i++)
            {
                var x = batch.Frames[i].to(frames[i].Canvas.device).repeat_interleave(o.K, 0);
                var diff = frames[i].Canvas - x;
                var err = (diff * diff).flatten(1).mean([1]).to(ScalarType.Float64).view(b, o.K);
                mse += (err * w).sum().item<double>();
            }
        }
        return new BatchMetrics
        {
            Sequences = b,
            Frames = b * t,
            Iwae = Objective.Iwae.LogMeanExp(logW).sum().item<double>(),
            Elbo = logW.mean([1]).sum().item<double>(),
            LogLikelihood = (o.LogLikelihood.to(ScalarType.Float64) * w).sum().item<double>(),
            Kl = (o.Kl.to(ScalarType.Float64) * w).sum().item<double>(),
            Ess = Objective.Iwae.EffectiveSampleSize(logW).sum().item<double>(),
            Mse = mse,
            CountCorrectPresent = Weighted(counts.eq(gtPresent).to(ScalarType.Float64)),
            CountCorrectVisible = Weighted(counts.eq(gtVisible).to(ScalarType.Float64)),
            Propagated = Weighted(o.Propagated.to(ScalarType.Float64)),
            Discovered = Weighted(o.Discovered.to(ScalarType.Float64)),
        };
    }

    /// <summary>Adds the sums of two sets of sequences.</summary>
    public static BatchMetrics operator +(BatchMetrics a, BatchMetrics b) => new()
    {
        Sequences = a.Sequences + b.Sequences,
        Frames = a.Frames + b.Frames,
        Iwae = a.Iwae + b.Iwae,
        Elbo = a.Elbo + b.Elbo,
        LogLikelihood = a.LogLikelihood + b.LogLikelihood,
        Kl = a.Kl + b.Kl,
        Ess = a.Ess + b.Ess,
        Mse = a.Mse + b.Mse,
        CountCorrectPresent = a.CountCorrectPresent + b.CountCorrectPresent,
        CountCorrectVisible = a.CountCorrectVisible + b.CountCorrectVisible,
        Propagated = a.Propagated + b.Propagated,
        Discovered = a.Discovered + b.Discovered,
    };

    /// <summary>Means: per sequence for bounds and divergences, per frame for counts, MSE and object numbers.</summary>
    public IReadOnlyDictionary<string, double> Means() => new Dictionary<string, double>
    {
        [Metrics.Iwae.Key] = Iwae / Sequences,
        [Metrics.Elbo.Key] = Elbo / Sequences,
        [Metrics.LogLikelihood.Key] = LogLikelihood / Sequences,
        [Metrics.Kl.Key] = Kl / Sequences,
        [Metrics.LogLikelihoodPerFrame.Key] = LogLikelihood / Frames,
        [Metrics.KlPerFrame.Key] = Kl / Frames,
        [Metrics.Ess.Key] = Ess / Sequences,
        [Metrics.Mse.Key] = Mse / Frames,
        [Metrics.CountAccPresent.Key] = CountCorrectPresent / Frames,
        [Metrics.CountAccVisible.Key] = CountCorrectVisible / Frames,
        [Metrics.ObjectsPropagated.Key] = Propagated / Frames,
        [Metrics.ObjectsDiscovered.Key] = Discovered / Frames,
    };
}
