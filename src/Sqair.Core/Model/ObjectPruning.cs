using TorchSharp;
using static Sqair.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Model;

/// <summary>
/// Inference-time pruning of the objects a trained model keeps but no longer explains (docs/design.md §2.9,
/// a departure: the paper has none). After a frame is inferred, an object that has drawn nothing on the
/// canvas for <see cref="EndEmptyAfter"/> frames in a row is ended, and of two present objects whose drawn
/// boxes overlap with IoU above <see cref="SuppressIoU"/> the younger is ended, as a detector's non-maximum
/// suppression keeps one of two proposals. "Drawn" is what the content box of the tracking measures reads:
/// the decoded glimpse pixels above <see cref="ContentThreshold"/> that land on the canvas. An ended object
/// is absent from that frame's outputs on, and no longer propagated. 0 turns either rule off; with both off
/// inference is the model's own.
/// </summary>
public sealed record Pruning(int EndEmptyAfter = 0, double SuppressIoU = 0, float ContentThreshold = 0.1f)
{
    /// <summary>No pruning: the model's own inference.</summary>
    public static Pruning Off { get; } = new();

    /// <summary>Whether either rule is on.</summary>
    public bool Any => EndEmptyAfter > 0 || SuppressIoU > 0;
}

/// <summary>The two pruning rules of <see cref="Pruning"/> on a batch of particle rows.</summary>
internal static class ObjectPruning
{
    /// <summary>
    /// The slots after pruning, and per slot the frames in a row it has now drawn nothing [R, N] (0 for
    /// absent and ended slots). <paramref name="glimpses"/> [R, N, C, G, G] are the decoded glimpses
    /// of <paramref name="slots"/>; <paramref name="previousIds"/> and <paramref name="previousEmptyRun"/>
    /// [R, N] are the slots' ids and empty runs a frame earlier (slots move between frames, ids do not).
    /// </summary>
    public static (ObjectSlots Slots, Tensor EmptyRun) Apply(ObjectSlots slots, Tensor glimpses, Tensor previousIds,
                                                            Tensor previousEmptyRun, Pruning pruning,
                                                            double shiftRange)
    {
        var (drawn, imageX, imageY) = DrawnOnCanvas(glimpses, Boxes.Coords(slots.Where, shiftRange),
                                                    pruning.ContentThreshold);
        var present = slots.Presence.gt(Kept(0.5));
        var draws = drawn.any(-1).any(-1);                                                  // [R, N]
        var emptyRun = EmptyRun(present.logical_and(draws.logical_not()), slots.Ids, previousIds,
                                previousEmptyRun);
        var ended = pruning.EndEmptyAfter > 0
            ? emptyRun.ge(Kept((long)pruning.EndEmptyAfter))
            : zeros_like(present);
        if (pruning.SuppressIoU > 0)
            ended = ended.logical_or(Younger(DrawnBoxes(drawn, imageX, imageY, glimpses.shape[^1]),
                                             present.logical_and(draws), pruning.SuppressIoU));
        var kept = ended.logical_not();
        var pruned = slots with
        {
            Presence = slots.Presence * kept,
            Ids = slots.Ids.masked_fill(ended, Kept(-1L)),
        };
        return (pruned, emptyRun * kept);
    }

    /// <summary>
    /// Per slot the glimpse pixels [R, N, G, G] (rows y, columns x) whose decoded value exceeds
    /// <paramref name="threshold"/> in any channel and whose image position lies on the canvas, and the
    /// image positions of the glimpse's columns and rows [R, N, G]. Glimpse pixel j sits at
    /// x_g = −1 + 2j/(G − 1), which the window (sx, sy, tx, ty) maps to s·x_g + t.
    /// </summary>
    static (Tensor Drawn, Tensor ImageX, Tensor ImageY) DrawnOnCanvas(Tensor glimpses, Tensor window,
                                                                      float threshold)
    {
        var grid = GlimpseGrid(glimpses.shape[^1], glimpses.device);                         // [G]
        var c = window.unsqueeze(-1).unbind(-2);                                             // each [R, N, 1]
        var imageX = (c[0] * grid).Plus(c[2]);                                               // [R, N, G]
        var imageY = (c[1] * grid).Plus(c[3]);
        var above = glimpses.amax(2).gt(Kept((double)threshold));                           // [R, N, G, G]
        var drawn = above.logical_and(imageY.abs().le(Kept(1.0)).unsqueeze(-1))
            .logical_and(imageX.abs().le(Kept(1.0)).unsqueeze(-2));
        return (drawn, imageX, imageY);
    }

    /// <summary>
    /// −1 + 2j/(G − 1) for j = 0 … G − 1: the glimpse grid in the transformer's coordinates.
    /// </summary>
    static Tensor GlimpseGrid(long g, Device device) =>
        Arange(g, ScalarType.Float32, device).Affine(2.0 / Math.Max(1, g - 1), -1);

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
    /// The slots [R, N] among <paramref name="candidates"/> whose drawn box <paramref name="box"/> [R, N, 4] a kept
    /// older candidate's overlaps with IoU above <paramref name="iou"/>.
    /// Slots hold objects oldest first (propagated objects keep their order ahead of discovered ones,
    /// <see cref="ObjectSlots.Merge"/>), so one pass in slot order keeps the older of every pair and a slot
    /// suppressed by an older one suppresses nothing.
    /// </summary>
    static Tensor Younger(Tensor box, Tensor candidates, double iou)
    {
        var overlap = Boxes.WindowIoU(box.unsqueeze(2), box.unsqueeze(1)).gt(Kept(iou));   // [R, N, N]
        long n = box.shape[1];
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

    /// <summary>
    /// The tight boxes of the drawn pixels [R, N, G, G] in the image, as half-extents and centres
    /// (sx, sy, tx, ty) [R, N, 4] (<see cref="Boxes.WindowIoU"/>'s form): from the first to the last drawn
    /// row and column, each pixel reaching half the grid spacing to either side. Slots that draw nothing get
    /// meaningless boxes; callers leave them out.
    /// </summary>
    static Tensor DrawnBoxes(Tensor drawn, Tensor imageX, Tensor imageY, long g)
    {
        (Tensor Half, Tensor Centre) Axis(Tensor any, Tensor position)
        {
            // half the spacing of two glimpse pixels in the image: the window's scale over G − 1
            var half = (position.narrow(-1, g - 1, 1) - position.narrow(-1, 0, 1)).div(Kept(2.0 * Math.Max(1, g - 1)));
            var lo = position.masked_fill(any.logical_not(), Kept(FarOff)).amin([-1], keepdim: true) - half;
            var hi = position.masked_fill(any.logical_not(), Kept(-FarOff)).amax([-1], keepdim: true).Plus(half);
            return ((hi - lo).div(Kept(2.0)), hi.Plus(lo).div(Kept(2.0)));
        }
        var (sx, tx) = Axis(drawn.any(-2), imageX);
        var (sy, ty) = Axis(drawn.any(-1), imageY);
        return cat([sx, sy, tx, ty], -1);
    }

    /// <summary>Beyond any image position (the canvas spans [−1, 1]): the fill that min and max skip.</summary>
    const double FarOff = 1e4;
}
