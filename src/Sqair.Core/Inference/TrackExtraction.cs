using Sqair.Data;
using Sqair.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Inference;

/// <summary>Which box stands for an inferred object: its attention window, or the tight box of what it draws.</summary>
public enum BoxKind
{
    /// <summary>The object's attention window.</summary>
    Glimpse,
    /// <summary>The tight box of the pixels the object draws (the headline measures use it).</summary>
    Content,
}

/// <summary>
/// Turns ground truth and model outputs into per-sequence, per-frame box lists for tracking measures.
/// </summary>
public static class TrackExtraction
{
    /// <summary>
    /// Decoded glimpse value above which a pixel belongs to the object (<see cref="Pruning.DrawnThreshold"/>).
    /// </summary>
    public const float ContentThreshold = Pruning.DrawnThreshold;

    /// <summary>Visible ground-truth boxes (clipped to the canvas) with their object ids, [B][T][boxes].</summary>
    public static List<IReadOnlyList<TrackBox>>[] Truth(SequenceBatch batch)
    {
        int t = batch.T, b = batch.B, m = (int)batch.Ids.shape[1];
        // No slots (imported frames without ground truth): empty frames; TorchSharp cannot read an empty
        // tensor's data.
        if (m == 0)
            return [.. Enumerable.Range(0, b)
                .Select(_ => Enumerable.Range(0, t).Select(_ => (IReadOnlyList<TrackBox>)[]).ToList())];
        int height = (int)batch.Frames.shape[^2], width = (int)batch.Frames.shape[^1];
        var boxes = batch.Boxes.cpu().data<float>().ToArray();
        var visible = batch.Visible.cpu().data<float>().ToArray();
        var ids = batch.Ids.cpu().data<long>().ToArray();
        var result = new List<IReadOnlyList<TrackBox>>[b];
        for (int s = 0; s < b; s++)
        {
            result[s] = [];
            for (int f = 0; f < t; f++)
            {
                var frame = new List<TrackBox>();
                for (int k = 0; k < m; k++)
                {
                    if (visible[(f * b + s) * m + k] < 0.5f) continue;
                    int o = ((f * b + s) * m + k) * 4;
                    frame.Add(new TrackBox(ids[s * m + k], boxes[o], boxes[o + 1], boxes[o + 2], boxes[o + 3])
                        .ClipTo(height, width));
                }
                result[s].Add(frame);
            }
        }
        return result;
    }

    /// <summary>
    /// Present inferred boxes with their ids for the chosen particle row of each sequence, clipped to
    /// the canvas, [B][T][boxes]. A content box falls back to the window when the object draws
    /// nothing above <paramref name="threshold"/> (default <see cref="ContentThreshold"/>, the measure's).
    /// </summary>
    public static List<IReadOnlyList<TrackBox>>[] Hypotheses(IReadOnlyList<FrameOutput> frames, long[] rows, int side,
                                                             BoxKind kind, float threshold = ContentThreshold)
    {
        var result = rows.Select(_ => new List<IReadOnlyList<TrackBox>>()).ToArray();
        using var index = tensor(rows);
        foreach (var step in frames)
        {
            using var scope = NewDisposeScope();
            var sel = index.to(step.Where.device);
            var coords = step.Window[sel];
            var boxes = Boxes.CoordsToPixelBoxes(coords, side, side).cpu().data<float>().ToArray();
            var coordArray = coords.cpu().data<float>().ToArray();
            var glimpses = kind == BoxKind.Content ? step.Glimpses[sel].cpu().data<float>().ToArray() : null;
            int glimpseSize = (int)step.Glimpses.shape[^1],
                glimpseLength = (int)(step.Glimpses.numel() / step.Glimpses.shape[0] / step.Glimpses.shape[1]);
            var presence = step.Presence[sel].cpu().data<float>().ToArray();
            var probability = step.PresenceProb[sel].cpu().data<float>().ToArray();
            var ids = step.Ids[sel].cpu().data<long>().ToArray();
            int n = (int)step.Presence.shape[1];
            for (int s = 0; s < rows.Length; s++)
            {
                var frame = new List<TrackBox>();
                for (int k = 0; k < n; k++)
                {
                    if (presence[s * n + k] < 0.5f) continue;
                    int o = (s * n + k) * 4;
                    var box = (boxes[o], boxes[o + 1], boxes[o + 2], boxes[o + 3]);
                    if (glimpses is not null &&
                        Boxes.ContentBox(glimpses.AsSpan((s * n + k) * glimpseLength, glimpseLength), glimpseSize,
                                         coordArray.AsSpan(o, 4), side, side, threshold) is { } tight)
                        box = tight;
                    frame.Add(new TrackBox(ids[s * n + k], box.Item1, box.Item2, box.Item3, box.Item4,
                                           probability[s * n + k]).ClipTo(side, side));
                }
                result[s].Add(frame);
            }
        }
        return result;
    }
}
