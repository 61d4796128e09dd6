using SkiaSharp;
using Sqair.Model;
using TorchSharp;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Visualisation;

/// <summary>
/// Pictures of what the model inferred (docs/design.md §6), from frames [T, B, C, H, W] and the kept
/// per-step outputs of one particle per sequence (rows picked by importance resampling).
/// </summary>
public static class ModelFigures
{
    /// <summary>One resampled particle per sequence, as CPU arrays ready for drawing.</summary>
    public sealed record Track(float[][] Inputs, float[][] Recons, float[][][] Boxes, float[][] Presence,
                               float[][] Probs, long[][] Ids, float[][][] Glimpses,
                               int Channels, int Side, int GlimpseSide);

    /// <summary>
    /// Extracts sequence <paramref name="b"/> at row <paramref name="row"/> of each kept step. Steps
    /// past the last input frame (generated ones) get a blank input.
    /// </summary>
    public static Track Extract(Tensor frames, IReadOnlyList<FrameOutput> steps, int b, long row)
    {
        // Every tensor below is a temporary (an index, a clamp, a copy to the CPU). TorchSharp reads a tensor's
        // handle and calls libtorch without keeping the tensor alive, so outside a dispose scope (generate and
        // render call this from none) a collection started by another thread could finalize a temporary, freeing
        // its native tensor, while libtorch still reads it (a segfault in CoordsToPixelBoxes' mul). The scope
        // holds each one until the arrays are copied out.
        using var scope = NewDisposeScope();
        int t = steps.Count, ch = (int)frames.shape[2], side = (int)frames.shape[3];
        long observed = frames.shape[0];
        int g = (int)steps[0].Glimpses.shape[^1];
        var inputs = new float[t][]; var recons = new float[t][]; var boxes = new float[t][]; var pres = new float[t][];
        var probs = new float[t][]; var ids = new long[t][]; var glimpses = new float[t][][];
        for (int i = 0; i < t; i++)
        {
            var s = steps[i];
            inputs[i] = i < observed
                ? frames[i, b].cpu().flatten().data<float>().ToArray()
                : new float[ch * side * side];
            recons[i] = s.Canvas[row].clamp(Kept(0.0), Kept(1.0)).cpu().flatten().data<float>().ToArray();
            boxes[i] = Boxes.CoordsToPixelBoxes(s.Window[row], side, side).cpu().flatten().data<float>().ToArray();
            pres[i] = s.Presence[row].cpu().data<float>().ToArray();
            probs[i] = s.PresenceProb[row].cpu().data<float>().ToArray();
            ids[i] = s.Ids[row].cpu().data<long>().ToArray();
            var gl = s.Glimpses[row].clamp(Kept(0.0), Kept(1.0)).cpu();
            glimpses[i] = Enumerable.Range(0, (int)gl.shape[0])
                .Select(k => gl[k].flatten().data<float>().ToArray()).ToArray();
        }
        // The caller's tensors are not in the scope: they must outlive the last op that reads them here too.
        GC.KeepAlive(frames);
        GC.KeepAlive(steps);
        return new Track(inputs, recons, [.. boxes.Select(bx =>
                             Enumerable.Range(0, bx.Length / 4).Select(k => bx[(4 * k)..(4 * k + 4)]).ToArray())],
                         pres, probs, ids, glimpses, ch, side, g);
    }

    /// <summary>
    /// The chosen particle of every sequence (<see cref="SequenceOutput.PickParticles"/>) of an
    /// output kept with its frames.
    /// </summary>
    public static List<Track> Extract(Tensor frames, SequenceOutput output, long[] rows) =>
        [.. rows.Select((row, b) => Extract(frames,
            output.Frames ?? throw new ArgumentException("the output was computed without keepFrames"), b, row))];

    static List<DrawBox> PresentBoxes(Track tr, int t) =>
        Enumerable.Range(0, tr.Presence[t].Length).Where(k => tr.Presence[t][k] > 0.5f)
            .Select(k => new DrawBox(tr.Boxes[t][k][0], tr.Boxes[t][k][1], tr.Boxes[t][k][2], tr.Boxes[t][k][3],
                                     (int)tr.Ids[t][k])).ToList();

    static string CountCaption(Track tr, int t)
    {
        var ids = Enumerable.Range(0, tr.Presence[t].Length).Where(k => tr.Presence[t][k] > 0.5f)
            .Select(k => tr.Ids[t][k]).ToList();
        return $"{ids.Count}: {string.Join(",", ids)}";
    }

    /// <summary>
    /// Per sequence a row of inputs and a row of reconstructions with id-coloured boxes, captioned "count: ids".
    /// </summary>
    public static void SequenceFigure(IReadOnlyList<Track> tracks, string path, string title, bool showInputs = true)
    {
        var rows = new List<IReadOnlyList<Cell>>();
        var labels = new List<string>();
        for (int s = 0; s < tracks.Count; s++)
        {
            var tr = tracks[s];
            if (showInputs)
            {
                rows.Add(tr.Inputs.Select((px, t) => new Cell(px, tr.Channels, tr.Side, tr.Side, null, $"t={t}"))
                    .ToList());
                labels.Add($"#{s} input");
            }
            rows.Add(tr.Recons.Select((px, t) =>
                new Cell(px, tr.Channels, tr.Side, tr.Side, PresentBoxes(tr, t), CountCaption(tr, t))).ToList());
            labels.Add(showInputs ? $"#{s} recon" : $"#{s}");
        }
        Grid.SavePng(Grid.Render(rows, 2, title, labels), path);
    }

    /// <summary>
    /// An animated GIF: per frame, a row of inputs and a row of reconstructions with id-coloured
    /// boxes, one column per sequence.
    /// </summary>
    public static void Animation(IReadOnlyList<Track> tracks, string path, string title, int delayCs = 20,
                                 bool showInputs = true)
    {
        int t = tracks.Max(tr => tr.Inputs.Length);
        var frames = new List<SKBitmap>();
        try
        {
            for (int i = 0; i < t; i++)
            {
                var inputs = tracks.Select(tr => new Cell(tr.Inputs[i], tr.Channels, tr.Side, tr.Side,
                                                          null, $"t={i}")).ToList();
                var recons = tracks.Select(tr => new Cell(tr.Recons[i], tr.Channels, tr.Side, tr.Side,
                                                          PresentBoxes(tr, i), CountCaption(tr, i))).ToList();
                frames.Add(showInputs
                    ? Grid.Render([inputs, recons], 3, title, ["input", "model"])
                    : Grid.Render([recons], 3, $"{title}, t={i}", ["model"]));
            }
            Gif.Write(path, frames, delayCs);
        }
        finally
        {
            foreach (var f in frames) f.Dispose();
        }
    }

    /// <summary>
    /// An animated GIF of the input frames with each present object's attention window coloured by
    /// its id, one column per sequence.
    /// </summary>
    public static void TrackedAnimation(IReadOnlyList<Track> tracks, string path, string title, int delayCs = 20)
    {
        int t = tracks.Max(tr => tr.Inputs.Length);
        var frames = new List<SKBitmap>();
        try
        {
            for (int i = 0; i < t; i++)
                frames.Add(Grid.Render(
                    [tracks.Select(tr => new Cell(tr.Inputs[i], tr.Channels, tr.Side, tr.Side, PresentBoxes(tr, i),
                                                  $"t={i} {CountCaption(tr, i)}")).ToList()],
                    3, title));
            Gif.Write(path, frames, delayCs);
        }
        finally
        {
            foreach (var f in frames) f.Dispose();
        }
    }

    /// <summary>
    /// Inputs, reconstructions with boxes, and each slot's decoded glimpse with its presence
    /// probability, at frame <paramref name="t"/>.
    /// </summary>
    public static void StillFigure(IReadOnlyList<Track> tracks, int t, string path, string title)
    {
        var rows = new List<IReadOnlyList<Cell>>();
        foreach (var tr in tracks)
        {
            var row = new List<Cell>
            {
                new(tr.Inputs[t], tr.Channels, tr.Side, tr.Side, null, "input"),
                new(tr.Recons[t], tr.Channels, tr.Side, tr.Side, PresentBoxes(tr, t), CountCaption(tr, t)),
            };
            for (int k = 0; k < tr.Glimpses[t].Length; k++)
            {
                var id = tr.Presence[t][k] > 0.5f ? (int)tr.Ids[t][k] : -1;
                var border = new DrawBox(0, 0, tr.GlimpseSide, tr.GlimpseSide, id);
                row.Add(new Cell(tr.Glimpses[t][k], tr.Channels, tr.GlimpseSide, tr.GlimpseSide,
                                 id >= 0 ? [border] : null, $"p={tr.Probs[t][k]:F2}"));
            }
            rows.Add(row);
        }
        Grid.SavePng(Grid.Render(rows, 3, title), path);
    }
}
