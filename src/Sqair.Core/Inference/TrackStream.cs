using Sqair.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Inference;

/// <summary>
/// One frame of a stream, fixed: per sequence its boxes, and the chosen particle's outputs ([B] rows, for drawing).
/// </summary>
public sealed record StreamedFrame(int Frame, List<TrackBox>[] Content, List<TrackBox>[] Windows, FrameOutput Chosen);

/// <summary>
/// Tracking that streams: frames [B, C, H, W] of B sequences go in one at a time and each frame's
/// boxes come out once fixed, so memory does not grow with the length of the video: only the
/// particles' state and the last <see cref="Lag"/> frames' outputs are held, and everything else a
/// frame computes is freed with it. A sequence of at most <see cref="Lag"/> frames gets exactly
/// <see cref="Infer.Run"/>'s tracks for the same generator (the particle is chosen at the end
/// by the same draw). In a longer one, frame t is fixed when frame t + Lag arrives, on the particle
/// of largest weight then, traced back through its ancestors (with K = 1 there is no choice, and
/// the tracks are the batch path's at any length).
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1711",
    Justification = "it tracks a stream of frames; not a System.IO.Stream, and renaming would break the public API")]
public sealed class TrackStream : IDisposable
{
    /// <summary>
    /// Frames held before the oldest is fixed: the length of the test set's long sequences, about
    /// 250 MB at K = 5 and 32 sequences.
    /// </summary>
    public const int DefaultLag = 100;

    readonly SqairModel model;
    readonly SqairModel.ParticleSettings settings;
    readonly SequenceNoise noise;
    readonly EvalMode mode;
    readonly long sequences;
    readonly int side;
    // Ancestors: the resampling before that frame
    readonly Queue<(FrameOutput Frame, Resample? Ancestors)> held = new();
    SqairModel.SequenceState state;
    ParticleSums sums;
    int step, emitted;

    /// <summary>The number of frames held before the oldest is fixed.</summary>
    public int Lag { get; }

    /// <summary>
    /// A stream of <paramref name="sequences"/> sequences, numbered <paramref name="first"/>, … for
    /// their noise as in <see cref="Infer.Run"/>, inferred as <paramref name="options"/> says.
    /// </summary>
    public TrackStream(SqairModel model, long sequences, InferenceOptions options, ulong seed = 0, long first = 0,
                       Device? device = null, int lag = DefaultLag)
    {
        if (lag < 1) throw new ArgumentOutOfRangeException(nameof(lag), lag, "the stream must hold at least one frame");
        this.model = model;
        mode = EvalMode.Of(model);
        noise = new SequenceNoise(model.Config, seed, first, sequences);
        this.sequences = sequences;
        side = model.Config.ImgSize;
        Lag = lag;
        settings = new SqairModel.ParticleSettings(options.K, options.Resampling,
                                                   options.RejectIoU ?? model.Config.RejectIoU, noise,
                                                   options.Pruning);
        using var _ = no_grad();
        state = model.InitialState(sequences * options.K, device ?? CPU);
        sums = ParticleSums.Zeros(sequences * options.K, device ?? CPU);
        foreach (var t in state.Tensors().Concat(sums.Tensors())) t.DetachFromDisposeScope();
    }

    /// <summary>
    /// Infers the next frame [B, C, H, W]; returns the frames now fixed (none until <see cref="Lag"/> are held).
    /// </summary>
    public IReadOnlyList<StreamedFrame> Push(Tensor frame)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var next = model.AdvanceFreeing(state, sums, step++, frame, settings, keep: true, disown: true);
        next.Count.Dispose();   // Propagated and Discovered are the held frame's own
        (state, sums) = (next.State, next.Sums);
        held.Enqueue((next.Frame!, next.Ancestors));
        var fixedFrames = new List<StreamedFrame>();
        while (held.Count > Lag)
            fixedFrames.Add(EmitOldest(ParticleFilter.Best(sums.LogWeight.view(sequences, settings.K))));
        return fixedFrames;
    }

    /// <summary>
    /// Fixes every held frame on the particle drawn ∝ its final weight, as <see cref="Infer.Run"/> chooses.
    /// </summary>
    public IReadOnlyList<StreamedFrame> Finish()
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var rows = ParticleFilter.Pick(sums.LogWeight.view(sequences, settings.K), noise);
        var fixedFrames = new List<StreamedFrame>();
        while (held.Count > 0) fixedFrames.Add(EmitOldest(rows));
        return fixedFrames;
    }

    /// <summary>
    /// The oldest held frame on the ancestors of <paramref name="rows"/> [B] (rows at the newest
    /// frame), freed once read.
    /// </summary>
    StreamedFrame EmitOldest(Tensor rows)
    {
        var frames = held.ToArray();
        for (int i = frames.Length - 1; i > 0; i--)
            if (frames[i].Ancestors is { } a) rows = a.Rows[rows];
        var (oldest, ancestors) = held.Dequeue();
        var chosen = oldest.Select(rows);
        foreach (var t in chosen.Tensors()) t.DetachFromDisposeScope();
        var picked = Enumerable.Range(0, (int)sequences).Select(i => (long)i).ToArray();
        var content = TrackExtraction.Hypotheses([chosen], picked, side, BoxKind.Content);
        var windows = TrackExtraction.Hypotheses([chosen], picked, side, BoxKind.Glimpse);
        foreach (var t in oldest.Tensors().Concat(ancestors?.Tensors() ?? [])) t.Dispose();
        return new StreamedFrame(emitted++, [.. content.Select(s => s[0].ToList())],
                                 [.. windows.Select(s => s[0].ToList())], chosen);
    }

    /// <summary>Frees the particles' state, the held frames and the generators.</summary>
    public void Dispose()
    {
        noise.Dispose();
        mode.Dispose();
        foreach (var t in state.Tensors().Concat(sums.Tensors())) t.Dispose();
        while (held.Count > 0)
        {
            var (frame, ancestors) = held.Dequeue();
            foreach (var t in frame.Tensors().Concat(ancestors?.Tensors() ?? [])) t.Dispose();
        }
    }
}
