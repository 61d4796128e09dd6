using Sqair.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Inference;

/// <summary>
/// How tracks are inferred: K particles per sequence, whether they are resampled frame by frame
/// (<see cref="Model.Resampling"/>), the IoU above which discovery rejects a proposal that
/// duplicates a followed object (null: the model's <c>reject_iou</c>; 0: never), and which objects are
/// ended after each frame (<see cref="Model.Pruning"/>; null: none). The options of
/// <c>eval</c>, <c>track</c>, <c>render</c>, the benchmarks and the scripts alike.
/// </summary>
public sealed record InferenceOptions(int K = 5, Resampling Resampling = Resampling.None, double? RejectIoU = null,
                                      Pruning? Pruning = null)
{
    /// <summary>One particle, no resampling: the cheapest tracking (no bound).</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720",
        Justification = "a single particle: the word, not the type")]
    public static InferenceOptions Single { get; } = new(1);
}

/// <summary>
/// One batch inferred: the model's outputs with every frame kept, and the particle row chosen for
/// each sequence (by importance resampling on its final weights, as the original chooses).
/// </summary>
public sealed record InferredBatch(SequenceOutput Output, long[] Rows, int Side)
{
    /// <summary>Every step's outputs (kept).</summary>
    public IReadOnlyList<FrameOutput> Frames => Output.Frames!;

    /// <summary>
    /// The chosen particle's present objects per sequence and frame, [B][T][boxes], as
    /// <paramref name="kind"/> boxes clipped to the canvas (content boxes at <paramref name="threshold"/>).
    /// </summary>
    public List<IReadOnlyList<TrackBox>>[] Boxes(BoxKind kind, float threshold = TrackExtraction.ContentThreshold) =>
        TrackExtraction.Hypotheses(Frames, Rows, Side, kind, threshold);
}

/// <summary>
/// The one inference path: frames → the model with K particles (a particle filter if asked) →
/// the chosen particle of each sequence → its boxes. Evaluation, tracking, figures, benchmarks,
/// scripts and examples all run it, so an inference change lands in one place.
/// </summary>
public static class Infer
{
    /// <summary>
    /// Infers <paramref name="frames"/> [T, B, C, H, W] without gradients. The B sequences are
    /// numbered <paramref name="first"/>, <paramref name="first"/> + 1, … and each draws every sample
    /// (and its particle choice) from its own generator, seeded by <paramref name="seed"/> and its
    /// number (docs/design.md §2.8): the same sequence, options and seed give the same tracks in any
    /// batch. <paramref name="stop"/> is heard before every frame (a long sequence stops within a frame).
    /// </summary>
    public static InferredBatch Run(SqairModel model, Tensor frames, InferenceOptions options, ulong seed = 0,
                                    long first = 0, CancellationToken stop = default)
    {
        using var _ = no_grad();
        using var mode = EvalMode.Of(model);
        // Roots the particle choice's temporaries, which a collection started by another thread could otherwise
        // finalize while libtorch reads them (see SqairModel.Infer); the output moves to the caller's scope.
        using var scope = NewDisposeScope();
        using var noise = new SequenceNoise(model.Config, seed, first, frames.shape[1]);
        var (output, _) = model.Infer(frames, options.K, keepFrames: true, noise, options.Resampling,
                                      options.RejectIoU, options.Pruning, stop);
        var rows = ParticleFilter.Pick(output.LogWeights, noise).cpu().data<long>().ToArray();
        scope.MoveToOuter([.. output.Tensors(), .. output.Frames!.SelectMany(f => f.Tensors())]);
        return new InferredBatch(output, rows, model.Config.ImgSize);
    }
}

/// <summary>
/// The model in eval mode for a scope (no training-only noise: discovery dropout, relaxed presences), then back in
/// the mode it had. Inference owns the switch so that no caller has to remember it.
/// </summary>
internal readonly struct EvalMode : IDisposable
{
    readonly nn.Module? restore;

    EvalMode(nn.Module? restore) => this.restore = restore;

    /// <summary>Switches <paramref name="model"/> to eval mode until the result is disposed.</summary>
    public static EvalMode Of(nn.Module model)
    {
        bool wasTraining = model.training;
        model.eval();
        return new EvalMode(wasTraining ? model : null);
    }

    /// <inheritdoc/>
    public void Dispose() => restore?.train();
}
