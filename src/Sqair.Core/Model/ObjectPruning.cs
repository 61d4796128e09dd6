using TorchSharp;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Model;

/// <summary>
/// Inference-time pruning of the objects a trained model keeps but no longer explains (docs/design.md §2.9,
/// a departure: the paper has none). After a frame is inferred, an object that has drawn nothing on the
/// canvas for <see cref="EndEmptyAfter"/> frames in a row is ended, and of two present objects whose drawn
/// pixels overlap with IoU above <see cref="SuppressIoU"/> the younger is ended, as a detector's non-maximum
/// suppression keeps one of two proposals. "Drawn" uses the threshold of the tracking measures' content boxes:
/// the canvas pixels where the object's decoded glimpse, written alone, exceeds <see cref="ContentThreshold"/>.
/// An ended object is absent from that frame's outputs on, and no longer propagated. 0 turns either rule off;
/// with both off inference is the model's own.
/// </summary>
public sealed record Pruning(int EndEmptyAfter = 0, double SuppressIoU = 0,
                             float ContentThreshold = Pruning.DrawnThreshold)
{
    /// <summary>
    /// Decoded glimpse value above which a pixel belongs to the object (images are in [0, 1]): low, because
    /// ground-truth boxes hold every non-zero pixel of a digit, faint anti-aliased edges included; 0.1 stays above
    /// the decoder's background haze. The tracking measures' content boxes read the same threshold.
    /// </summary>
    public const float DrawnThreshold = 0.1f;

    /// <summary>Whether either rule is on.</summary>
    public bool Any => EndEmptyAfter > 0 || SuppressIoU > 0;
}

/// <summary>The two pruning rules of <see cref="Pruning"/> on a batch of particle rows.</summary>
internal static class ObjectPruning
{
    /// <summary>
    /// The slots after pruning, and per slot the frames in a row it has now drawn nothing [R, N] (0 for
    /// absent and ended slots). <paramref name="glimpses"/> [R, N, C, G, G] are the decoded glimpses
    /// of <paramref name="slots"/> on a canvas of side <paramref name="side"/>; <paramref name="previousIds"/>
    /// and <paramref name="previousEmptyRun"/> [R, N] are the slots' ids and empty runs a frame earlier (slots
    /// move between frames, ids do not).
    /// </summary>
    public static (ObjectSlots Slots, Tensor EmptyRun) Apply(ObjectSlots slots, Tensor glimpses, Tensor previousIds,
                                                            Tensor previousEmptyRun, Pruning pruning,
                                                            double shiftRange, int side)
    {
        var drawn = Drawn(glimpses, Boxes.Coords(slots.Where, shiftRange), side, pruning.ContentThreshold);
        var present = slots.Presence.gt(Kept(0.5));
        var draws = drawn.any(-1);                                                           // [R, N]
        var emptyRun = EmptyRun(present.logical_and(draws.logical_not()), slots.Ids, previousIds,
                                previousEmptyRun);
        var ended = pruning.EndEmptyAfter > 0
            ? emptyRun.ge(Kept((long)pruning.EndEmptyAfter))
            : zeros_like(present);
        if (pruning.SuppressIoU > 0)
            ended = ended.logical_or(Younger(drawn, present.logical_and(draws), pruning.SuppressIoU));
        var kept = ended.logical_not();
        var pruned = slots with
        {
            Presence = slots.Presence * kept,
            Relaxed = slots.Relaxed is { } relaxed ? relaxed * kept : null,
            Ids = slots.Ids.masked_fill(ended, Kept(-1L)),
        };
        return (pruned, emptyRun * kept);
    }

    /// <summary>
    /// Per slot the canvas pixels [R, N, L·L] where the object draws more than <paramref name="threshold"/>
    /// in any channel: its glimpse written alone through its window (<paramref name="window"/> [R, N, 4]).
    /// </summary>
    static Tensor Drawn(Tensor glimpses, Tensor window, int side, float threshold)
    {
        long r = glimpses.shape[0], n = glimpses.shape[1], g = glimpses.shape[^1];
        var strongest = glimpses.amax(2).view(r * n, 1, g, g);
        return SpatialTransformer.Write(strongest, window.view(r * n, 4), side).view(r, n, (long)side * side)
            .gt(Kept((double)threshold));
    }

    /// <summary>
    /// Frames in a row each slot has drawn nothing [R, N]: 1 + its run a frame earlier (found by id) where
    /// <paramref name="empty"/>, else 0.
    /// </summary>
    static Tensor EmptyRun(Tensor empty, Tensor ids, Tensor previousIds, Tensor previousEmptyRun)
    {
        var same = ids.unsqueeze(-1).eq(previousIds.unsqueeze(-2))
            .logical_and(ids.ge(Kept(0L)).unsqueeze(-1));                                   // [R, N, N]
        var before = (same.to(previousEmptyRun.dtype) * previousEmptyRun.unsqueeze(-2)).sum(-1);
        return before.Plus(Kept(1L)) * empty;
    }

    /// <summary>
    /// The slots [R, N] among <paramref name="candidates"/> whose drawn pixels <paramref name="drawn"/>
    /// [R, N, L·L] a kept older candidate's overlap with IoU above <paramref name="iou"/>. Pixels, not boxes:
    /// two digits that cross share boxes but few pixels, while a second object drawing the same digit
    /// shares most of them. Slots hold objects oldest first (propagated objects keep their order ahead of
    /// discovered ones, <see cref="ObjectSlots.Merge"/>), so one pass in slot order keeps the older of every
    /// pair and a slot suppressed by an older one suppresses nothing.
    /// </summary>
    static Tensor Younger(Tensor drawn, Tensor candidates, double iou)
    {
        var pixels = drawn.to(ScalarType.Float32);
        var inter = pixels.matmul(pixels.transpose(1, 2));                                  // [R, N, N]
        var area = inter.diagonal(0, 1, 2);                                                 // [R, N]
        var union = area.unsqueeze(2).Plus(area.unsqueeze(1)) - inter;
        var overlap = inter.gt(union.mul(Kept(iou)));
        long n = drawn.shape[1];
        var keptSoFar = candidates.narrow(1, 0, 1);
        var suppressed = new List<Tensor> { zeros_like(keptSoFar) };
        for (long k = 1; k < n; k++)
        {
            var hit = overlap.select(2, k).narrow(1, 0, k).logical_and(keptSoFar).any(1, keepdim: true);
            suppressed.Add(hit.logical_and(candidates.narrow(1, k, 1)));
            keptSoFar = cat([keptSoFar, candidates.narrow(1, k, 1).logical_and(hit.logical_not())], 1);
        }
        return cat(suppressed.ToArray(), 1);
    }
}
