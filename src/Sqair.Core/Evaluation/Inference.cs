using Sqair.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Evaluation;

/// <summary>
/// How tracks are inferred: K particles per sequence, whether they are resampled frame by frame
/// (<see cref="Model.Resampling"/>), and the IoU above which discovery rejects a proposal that
/// duplicates a followed object (null: the model's <c>reject_iou</c>; 0: never). The options of
/// <c>eval</c>, <c>track</c>, <c>render</c>, the benchmarks and the scripts alike.
/// </summary>
public sealed record InferenceOptions(int K = 5, Resampling Resampling = Resampling.None, double? RejectIoU = null)
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
public static class Inference
{
    /// <summary>
    /// Infers <paramref name="frames"/> [T, B, C, H, W] without gradients, drawing every sample (and
    /// the particle choice) from <paramref name="generator"/>, so the same frames, options and seed
    /// give the same tracks.
    /// </summary>
    public static InferredBatch Run(SqairModel model, Tensor frames, InferenceOptions options, Generator generator)
    {
        using var _ = no_grad();
        var output = model.Forward(frames, options.K, keepFrames: true, generator: generator,
                                   resampling: options.Resampling, rejectIoU: options.RejectIoU);
        return new InferredBatch(output, output.PickParticles(generator), model.Config.ImgSize);
    }
}
