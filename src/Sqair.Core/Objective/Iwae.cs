using TorchSharp;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Objective;

/// <summary>
/// The importance-weighted bound (docs/design.md §4) and its effective sample size. Log weights are
/// [B, K]: B sequences, K particles. The training loss is <see cref="Vimco"/>'s.
/// </summary>
internal static class Iwae
{
    /// <summary>log (1/K) Σ_k exp(x_k) along the last dimension.</summary>
    public static Tensor LogMeanExp(Tensor x) => x.logsumexp(-1).sub(Kept(Math.Log(x.shape[^1])));

    /// <summary>Effective sample size of the normalised importance weights, per sequence [B].</summary>
    public static Tensor EffectiveSampleSize(Tensor logW)
    {
        var w = nn.functional.softmax(logW, -1);
        return (w * w).sum(-1).reciprocal();
    }
}
