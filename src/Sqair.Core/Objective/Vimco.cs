using TorchSharp;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Objective;

/// <summary>
/// VIMCO (Mnih &amp; Rezende 2016), the gradient estimator for SQAIR's discrete choices (presence,
/// the number of new objects) in the IWAE objective (docs/design.md §4): each particle's score
/// function is weighted by how much the bound drops when its log weight is replaced by the mean of
/// the others. Log weights are [B, K].
/// </summary>
internal static class Vimco
{
    /// <summary>
    /// VIMCO's leave-one-out bounds L_{−k} [B, K]: the IWAE bound with log w_k replaced by the
    /// mean of the other K − 1 log weights.
    /// </summary>
    public static Tensor LeaveOneOut(Tensor logW)
    {
        long k = logW.shape[^1];
        if (k < 2) throw new ArgumentException("VIMCO needs at least two particles");
        var othersMean = (logW.sum(-1, keepdim: true) - logW).div(Kept(k - 1));
        var eye = torch.eye(k, dtype: ScalarType.Bool, device: logW.device);
        // row k of the last two dims: the K log weights with the k-th replaced
        var replaced = where(eye, othersMean.unsqueeze(-1), logW.unsqueeze(-2));
        return Iwae.LogMeanExp(replaced);
    }

    /// <summary>
    /// VIMCO learning signals [B, K]: L − L_{−k} (Mnih &amp; Rezende 2016, the default), or with
    /// <paramref name="original"/> the original release's log w_k − L_{−k}. With one particle there
    /// is no leave-one-out baseline and the signal is plain REINFORCE's, log w.
    /// </summary>
    public static Tensor LearningSignal(Tensor logW, bool original = false)
    {
        if (logW.shape[^1] < 2) return logW.detach();
        using var _ = no_grad();
        return (original ? logW : Iwae.LogMeanExp(logW).unsqueeze(-1)) - LeaveOneOut(logW);
    }

    /// <summary>
    /// The loss to minimise, divided by the sequence length T: the mean over sequences of
    /// −L − Σ_k stop_grad(signal_k)·log q(discrete_k) (the paper's estimator), or with
    /// <paramref name="original"/> the original release's, whose score-function term is the mean
    /// over particles (not the sum) of its signal (<see cref="LearningSignal"/>). Returns the loss
    /// and the per-sequence bound L [B].
    /// </summary>
    public static (Tensor Loss, Tensor Bound) Surrogate(Tensor logW, Tensor logQDiscrete, int seqLen,
                                                        bool original = false)
    {
        var bound = Iwae.LogMeanExp(logW);
        var signal = LearningSignal(logW, original);
        var score = signal * logQDiscrete;
        var surrogate = -bound - (original ? score.mean([-1]) : score.sum(-1));
        return (surrogate.mean().div(Kept((long)seqLen)), bound);
    }
}
