using Sqair.Evaluation;
using Sqair.Inference;
using Sqair.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Tests.Model;

public class ObjectPruningTests
{
    const int G = 5;
    const double ShiftRange = 1.6;
    const int Side = 50;

    /// <summary>where logits of a window of half-extent <paramref name="s"/> centred at (tx, ty).</summary>
    static float[] Where(double s, double tx, double ty = 0)
    {
        static float Shift(double t) => (float)(ShiftRange * Math.Atanh(t / ShiftRange));
        var scale = (float)Math.Log(s / (1 - s));
        return [scale, scale, Shift(tx), Shift(ty)];
    }

    /// <summary>
    /// One row of slots: windows, presence and ids per slot (the fields pruning does not read are zeros).
    /// </summary>
    static ObjectSlots Slots(float[][] where, float[] presence, long[] ids)
    {
        int n = where.Length;
        return new ObjectSlots(zeros(1, n, 2), tensor(where.SelectMany(w => w).ToArray()).view(1, n, 4),
                               tensor(presence).view(1, n), tensor(presence).view(1, n), tensor(ids).view(1, n),
                               zeros(1, n, 3), zeros(1, n, 3));
    }

    /// <summary>
    /// Decoded glimpses [1, N, 1, G, G]: a slot that draws is 0.9 everywhere, one that does not is 0.
    /// </summary>
    static Tensor Glimpses(params bool[] draws) =>
        stack(draws.Select(d => full(1, G, G, d ? 0.9f : 0f)).ToArray()).unsqueeze(0);

    static float[] Presence(ObjectSlots s) => s.Presence.data<float>().ToArray();
    static long[] Ids(ObjectSlots s) => s.Ids.data<long>().ToArray();

    [Fact]
    public void An_object_that_draws_nothing_on_the_canvas_is_ended_and_the_others_are_not()
    {
        // slot 0 draws on the canvas; slot 1 draws nothing; slot 2 draws only off the canvas (x in [1.2, 1.8]);
        // slot 3 is absent
        var slots = Slots([Where(0.3, -0.5), Where(0.3, 0.2), Where(0.3, 1.5), Where(0.3, 0)], [1, 1, 1, 0],
                          [4, 7, 9, -1]);
        var (pruned, run) = ObjectPruning.Apply(slots, Glimpses(true, false, true, true), full(1, 4, -1L),
                                                zeros(1, 4), new Pruning(EndEmptyAfter: 1), ShiftRange, Side);
        Assert.Equal([1f, 0, 0, 0], Presence(pruned));
        Assert.Equal([4L, -1, -1, -1], Ids(pruned));
        Assert.Equal([0f, 0, 0, 0], run.data<float>().ToArray());
    }

    [Fact]
    public void An_empty_run_follows_its_object_by_id_across_slots_until_it_reaches_the_limit()
    {
        var rule = new Pruning(EndEmptyAfter: 2);
        // frame 1: id 5 in slot 1 draws nothing: its first empty frame, kept
        var first = Slots([Where(0.3, -0.5), Where(0.3, 0.3)], [1, 1], [2, 5]);
        var (kept, run) = ObjectPruning.Apply(first, Glimpses(true, false), full(1, 2, -1L), zeros(1, 2), rule,
                                              ShiftRange, Side);
        Assert.Equal([1f, 1], Presence(kept));
        Assert.Equal([0f, 1], run.data<float>().ToArray());
        // frame 2: id 2 is gone, id 5 moved to slot 0 and still draws nothing: its second empty frame ends it
        var second = Slots([Where(0.3, 0.3), Where(0.3, 0)], [1, 0], [5, -1]);
        var (ended, run2) = ObjectPruning.Apply(second, Glimpses(false, true), kept.Ids, run, rule, ShiftRange, Side);
        Assert.Equal([0f, 0], Presence(ended));
        Assert.Equal([-1L, -1], Ids(ended));
        Assert.Equal([0f, 0], run2.data<float>().ToArray());
        // an object that draws again starts its count afresh
        var (drawing, run3) = ObjectPruning.Apply(first, Glimpses(true, true), first.Ids, run, rule, ShiftRange, Side);
        Assert.Equal([1f, 1], Presence(drawing));
        Assert.Equal([0f, 0], run3.data<float>().ToArray());
    }

    [Fact]
    public void Of_two_overlapping_objects_the_younger_is_ended_and_one_ended_suppresses_nothing()
    {
        // drawn squares, along x: A [-0.5, 0.1], B [-0.3, 0.3], C [-0.1, 0.5]: pixel IoU(A, B) = IoU(B, C) ≈ 0.5,
        // IoU(A, C) ≈ 0.2
        var slots = Slots([Where(0.3, -0.2), Where(0.3, 0), Where(0.3, 0.2)], [1, 1, 1], [0, 1, 2]);
        var glimpses = Glimpses(true, true, true);
        var (pruned, _) = ObjectPruning.Apply(slots, glimpses, full(1, 3, -1L), zeros(1, 3),
                                              new Pruning(SuppressIoU: 0.4), ShiftRange, Side);
        Assert.Equal([1f, 0, 1], Presence(pruned));
        Assert.Equal([0L, -1, 2], Ids(pruned));
        var (loose, _) = ObjectPruning.Apply(slots, glimpses, full(1, 3, -1L), zeros(1, 3),
                                             new Pruning(SuppressIoU: 0.65), ShiftRange, Side);
        Assert.Equal([1f, 1, 1], Presence(loose));
        var (strict, _) = ObjectPruning.Apply(slots, glimpses, full(1, 3, -1L), zeros(1, 3),
                                              new Pruning(SuppressIoU: 0.12), ShiftRange, Side);
        Assert.Equal([1f, 0, 0], Presence(strict));
    }

    [Fact]
    public void Two_digits_that_cross_in_one_box_are_both_kept_and_a_copy_of_one_is_ended()
    {
        // a horizontal and a vertical bar in the same window (box IoU 1, pixel IoU about 1/9), then a second
        // object drawing the horizontal bar again
        var horizontal = zeros(G, G).index_put_(tensor(0.9f), TensorIndex.Single(G / 2));
        var vertical = zeros(G, G).index_put_(tensor(0.9f), TensorIndex.Colon, TensorIndex.Single(G / 2));
        var glimpses = stack([horizontal, vertical, horizontal]).view(1, 3, 1, G, G);
        var slots = Slots([Where(0.3, 0), Where(0.3, 0), Where(0.3, 0)], [1, 1, 1], [0, 1, 2]);
        var (pruned, _) = ObjectPruning.Apply(slots, glimpses, full(1, 3, -1L), zeros(1, 3),
                                              new Pruning(SuppressIoU: 0.5), ShiftRange, Side);
        Assert.Equal([1f, 1, 0], Presence(pruned));
    }

    [Fact]
    public void Pruning_that_ends_nothing_leaves_inference_unchanged_and_pruning_that_does_leaves_no_empty_object()
    {
        manual_seed(3);
        var model = new SqairModel(SqairModelTests.Tiny(discBias: 3.0));
        var frames = SqairModelTests.Frames(6, 4);
        InferredBatch Run(Pruning? pruning) => Infer.Run(model, frames, new InferenceOptions(2, Pruning: pruning));
        var plain = Run(null);
        var never = Run(new Pruning(EndEmptyAfter: 1000));
        Assert.Equal(plain.Output.LogWeights.data<float>().ToArray(), never.Output.LogWeights.data<float>().ToArray());
        Assert.Equal(plain.Output.Counts.data<float>().ToArray(), never.Output.Counts.data<float>().ToArray());

        var pruned = Run(new Pruning(EndEmptyAfter: 1, ContentThreshold: 0.5f));
        var drawsNothing = 0;
        foreach (var f in pruned.Frames)
        {
            var present = f.Presence.gt(0.5f);
            var draws = f.Glimpses.amax(2).gt(0.5f).any(-1).any(-1);
            drawsNothing += present.logical_and(draws.logical_not()).sum().item<long>() > 0 ? 1 : 0;
        }
        Assert.Equal(0, drawsNothing);
        Assert.True(pruned.Output.Counts.sum().item<float>() < plain.Output.Counts.sum().item<float>(),
                    "the untrained model has objects that draw nothing above 0.5, so some were ended");
    }
}
