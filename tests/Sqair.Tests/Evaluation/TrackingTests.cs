using CsCheck;
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Inference;
using TorchSharp;

namespace Sqair.Tests.Evaluation;

public class TrackingTests
{
    static TrackBox B(long id, float y, float x) => new(id, y, x, 10, 10);

    static IReadOnlyList<IReadOnlyList<TrackBox>> Frames(params TrackBox[][] frames) => frames;

    [Fact]
    public void Perfect_tracks_give_MOTA_1_IDF1_1_and_MOTP_1()
    {
        var truth = Frames([B(0, 0, 0), B(1, 30, 30)], [B(0, 2, 1), B(1, 28, 31)], [B(0, 4, 2), B(1, 26, 32)]);
        var hyp = Frames([B(7, 0, 0), B(9, 30, 30)], [B(7, 2, 1), B(9, 28, 31)], [B(7, 4, 2), B(9, 26, 32)]);
        var acc = new MotAccumulator();
        acc.AddSequence(truth, hyp);
        var s = acc.Summary();
        Assert.Equal((1.0, 1.0, 1.0), (s.Mota, s.Idf1, s.Motp));
        Assert.Equal((0L, 0L, 0L, 6L), (s.FalsePositives, s.Misses, s.IdSwitches, s.Matches));
    }

    [Fact]
    public void Unmatched_boxes_that_still_overlap_are_counted_as_box_misfits()
    {
        var acc = new MotAccumulator();
        // digit 0: a box shifted by half its width (IoU 1/3); digit 1: nothing near; one invented box far away
        acc.AddSequence(Frames([B(0, 0, 0), B(1, 30, 0)]), Frames([B(5, 0, 5), B(6, 30, 38)]));
        var s = acc.Summary();
        Assert.Equal((2L, 2L), (s.Misses, s.FalsePositives));
        Assert.Equal((1L, 1L), (s.MissesBoxOff, s.FalsePositivesBoxOff));
    }

    [Fact]
    public void Clipping_keeps_the_visible_part_of_a_box()
    {
        Assert.Equal(new TrackBox(3, 40, 0, 10, 6, OnCanvas: 60f / 280),
                     new TrackBox(3, 40, -4, 28, 10).ClipTo(50, 50));
        Assert.Equal(new TrackBox(1, 5, 6, 7, 8), new TrackBox(1, 5, 6, 7, 8).ClipTo(50, 50));
        var outside = new TrackBox(2, 60, 10, 5, 5).ClipTo(50, 50);
        Assert.Equal(0, outside.H * outside.W);
    }

    [Fact]
    public void Ground_truth_of_a_digit_leaving_the_canvas_is_its_visible_part()
    {
        // one sequence, one frame, one digit whose 20×20 box hangs 10 pixels off the bottom
        using var batch = new SequenceBatch(torch.zeros([1, 1, 1, 50, 50]),
                                            torch.tensor(new float[] { 40, 5, 20, 20 }).reshape(1, 1, 1, 4),
                                            torch.ones(1, 1, 1), torch.ones(1, 1, 1),
                                            torch.zeros(1, 1, torch.int64), torch.zeros(1, 1, torch.int64));
        var truth = TrackExtraction.Truth(batch);
        Assert.Equal(new TrackBox(0, 40, 5, 10, 20, OnCanvas: 0.5f), Assert.Single(truth[0][0]));
    }

    [Fact]
    public void A_dont_care_digit_is_no_miss_and_a_hypothesis_on_it_no_false_positive()
    {
        // frame: digit 0 on the canvas and found; digit 1 mostly off the canvas (don't care) and found;
        // digit 2 mostly off and not found; one hypothesis far from everything stays a false positive.
        var truth = Frames([B(0, 0, 0), B(1, 30, 0) with { OnCanvas = 0.3f }, B(2, 40, 40) with { OnCanvas = 0.1f }]);
        var hyp = Frames([B(5, 0, 0), B(6, 31, 0), B(7, 20, 20)]);
        var (t, h) = DontCare.Remove(truth, hyp);
        Assert.Equal([0L], t[0].Select(b => b.Id));
        Assert.Equal([5L, 7L], h[0].Select(b => b.Id));
        var acc = new MotAccumulator();
        acc.AddSequence(t, h);
        var s = acc.Summary();
        Assert.Equal((1L, 0L, 1L), (s.Matches, s.Misses, s.FalsePositives));
        Assert.Equal(0.0, s.Mota, 12);   // strictly: 1 − (1 miss + 1 false positive) / 3
    }

    [Fact]
    public void Digits_wholly_on_the_canvas_and_digits_cut_by_its_edge_are_scored_apart()
    {
        // digit 0 wholly on and found; digit 1 wholly on and missed; digit 2 cut by the edge and found;
        // digit 3 cut (only a sliver on) and missed; hypothesis 9 matches nothing.
        var truth = Frames([B(0, 0, 0), B(1, 20, 0), B(2, 30, 30) with { OnCanvas = 0.8f },
                            B(3, 0, 40) with { OnCanvas = 0.05f }]);
        var hyp = Frames([B(5, 0, 0), B(6, 30, 30), B(9, 40, 10)]);
        var (inside, insideHyp) = DontCare.Remove(truth, hyp, counted: DontCare.WhollyOn);
        var (edge, edgeHyp) = DontCare.Remove(truth, hyp, counted: DontCare.CutByEdge);
        Assert.Equal([0L, 1L], inside[0].Select(b => b.Id));
        Assert.Equal([5L, 9L], insideHyp[0].Select(b => b.Id));
        Assert.Equal([2L, 3L], edge[0].Select(b => b.Id));
        Assert.Equal([6L, 9L], edgeHyp[0].Select(b => b.Id));
        foreach (var (t, h) in new[] { (inside, insideHyp), (edge, edgeHyp) })
        {
            var acc = new MotAccumulator();
            acc.AddSequence(t, h);
            var s = acc.Summary();
            // one match, one miss, and the stray hypothesis counts as a false positive in both
            Assert.Equal((1L, 1L, 1L), (s.Matches, s.Misses, s.FalsePositives));
            Assert.Equal(0.0, s.Mota, 12);
        }
    }

    [Fact]
    public void A_hypothesis_that_fits_a_counted_digit_better_is_not_taken_by_a_dont_care_neighbour()
    {
        // both digits overlap hypothesis 5 enough; the Hungarian match over all ground truth gives it to
        // digit 0 (IoU 1) and hypothesis 6 to the don't-care digit 1, so only 6 goes.
        var truth = Frames([B(0, 0, 0), B(1, 0, 2) with { OnCanvas = 0.4f }]);
        var hyp = Frames([B(5, 0, 0), B(6, 0, 3)]);
        var (t, h) = DontCare.Remove(truth, hyp);
        Assert.Equal([0L], t[0].Select(b => b.Id));
        Assert.Equal([5L], h[0].Select(b => b.Id));
    }

    [Fact]
    public void Errors_are_split_by_tenth_of_the_sequence_and_add_up_to_the_whole()
    {
        // 20 frames, one digit, found in the first half; in the second half a wrong box (a miss and a false positive)
        var truth = Enumerable.Range(0, 20).Select(f => (IReadOnlyList<TrackBox>)[B(0, f, 0)]).ToList();
        var hyp = Enumerable.Range(0, 20)
            .Select(f => (IReadOnlyList<TrackBox>)[f < 10 ? B(3, f, 0) : B(3, f, 30)]).ToList();
        var acc = new MotAccumulator();
        acc.AddSequence(truth, hyp);
        var s = acc.Summary();
        Assert.Equal([1, 1, 1, 1, 1, -1, -1, -1, -1, -1], s.MotaByTenth);
        Assert.All(s.HypothesesPerDigitByTenth, x => Assert.Equal(1.0, x));
        Assert.Equal(Enumerable.Repeat(2L, 10), s.GroundTruthByTenth);
        Assert.Equal(s.MotaByTenth.Average(), s.Mota, 12);   // equal ground truth per tenth
        var ten = new MotAccumulator();
        ten.AddSequence(truth[..10], hyp[..10]);
        Assert.Empty(ten.Summary().MotaByTenth);   // 10 frames: no curve
    }

    [Fact]
    public void A_track_whose_id_changes_once_gives_exactly_one_switch()
    {
        var truth = Frames([B(0, 0, 0)], [B(0, 1, 1)], [B(0, 2, 2)], [B(0, 3, 3)]);
        var hyp = Frames([B(5, 0, 0)], [B(5, 1, 1)], [B(6, 2, 2)], [B(6, 3, 3)]);
        var acc = new MotAccumulator();
        acc.AddSequence(truth, hyp);
        var s = acc.Summary();
        Assert.Equal(1, s.IdSwitches);
        Assert.Equal(1 - 1 / 4.0, s.Mota, 12);
        // the best single pairing covers two of the four frames
        Assert.Equal(2 * 2 / 8.0, s.Idf1, 12);
    }

    [Fact]
    public void An_extra_box_is_one_false_positive_and_a_far_box_is_a_miss_and_a_false_positive()
    {
        var acc = new MotAccumulator();
        acc.AddSequence(Frames([B(0, 0, 0)]), Frames([B(1, 0, 0), B(2, 30, 30)]));
        var s = acc.Summary();
        Assert.Equal((1L, 0L, 0L), (s.FalsePositives, s.Misses, s.IdSwitches));
        Assert.Equal(0.0, s.Mota, 12);

        acc = new MotAccumulator();
        acc.AddSequence(Frames([B(0, 0, 0)]), Frames([B(1, 6, 6)])); // IoU 16/184 < 0.5
        s = acc.Summary();
        Assert.Equal((1L, 1L), (s.FalsePositives, s.Misses));
    }

    /// <summary>
    /// py-motmetrics' own test_mota_motp (tests/test_metrics.py), its distance matrices turned into boxes:
    /// two false positives, two misses, a frame of matches, a frame where both objects swap
    /// hypotheses (two switches), and a frame where better-overlapping hypotheses appear but the
    /// previous matches still overlap enough and are kept. py-motmetrics: 4 matches and 2 switches
    /// (its matches exclude switches; ours count every matched pair: 6), 2 FP, 2 misses, MOTA 1 − 6/8.
    /// </summary>
    [Fact]
    public void The_py_motmetrics_mota_motp_case_gives_its_counts_and_hand_computed_MOTP_and_IDF1()
    {
        var truth = Frames([], [B(1, 0, 0), B(2, 30, 30)], [B(1, 0, 0), B(2, 30, 30)], [B(1, 0, 0), B(2, 30, 30)],
                           [B(1, 0, 0), B(2, 0, 4)], []);
        var hyp = Frames([B(1, 0, 0), B(2, 30, 30)], [], [B(1, 0, 0), B(2, 30, 30)], [B(2, 0, 0), B(1, 30, 30)],
                         [B(1, 0, 1), B(2, 0, 3)], []);
        var acc = new MotAccumulator();
        acc.AddSequence(truth, hyp);
        var s = acc.Summary();
        Assert.Equal((8L, 8L, 6L, 2L, 2L, 2L),
                     (s.GroundTruth, s.Hypotheses, s.Matches, s.FalsePositives, s.Misses, s.IdSwitches));
        Assert.Equal(1 - 6 / 8.0, s.Mota, 12);
        // last frame: the kept pairs are 3 pixels apart, IoU 70/130 (the newcomers 1 pixel apart, 90/110);
        // the others IoU 1
        Assert.Equal((4 + 2 * 70 / 130.0) / 6, s.Motp, 6);
        // every pairing of whole tracks matches in two frames: IDTP 4 of 8 + 8
        Assert.Equal(2 * 4 / 16.0, s.Idf1, 12);
    }

    [Fact]
    public void Continuity_keeps_an_existing_match_over_a_slightly_better_newcomer()
    {
        // gt 0 is matched to hypothesis 1; at frame 2 hypothesis 2 overlaps more, but 1 still overlaps enough:
        // no switch.
        var truth = Frames([B(0, 0, 0)], [B(0, 0, 0)]);
        var hyp = Frames([B(1, 1, 0)], [B(1, 2, 0), B(2, 0, 0)]);
        var acc = new MotAccumulator();
        acc.AddSequence(truth, hyp);
        Assert.Equal(0, acc.Summary().IdSwitches);
        Assert.Equal(1, acc.Summary().FalsePositives);
    }

    [Fact]
    public void Hungarian_finds_the_minimum_cost_assignment()
    {
        var cost = new double[,] { { 4, 1, 3 }, { 2, 0, 5 }, { 3, 2, 2 } };
        Assert.Equal(new[] { 1, 0, 2 }, Hungarian.Solve(cost));
        var rect = new double[,]
        {
            { 1, double.PositiveInfinity },
            { double.PositiveInfinity, double.PositiveInfinity },
            { 0.5, 3 }
        };
        Assert.Equal(new[] { 0, -1, 1 }, Hungarian.Solve(rect));
    }

    [Fact]
    public void Hungarian_matches_brute_force_on_random_matrices()
    {
        Gen.Int[1, 5]
            .SelectMany(n => Gen.Int[1, 5].SelectMany(m => Gen.Double[0, 10].Array[n * m].Select(v => (n, m, v))))
            .Sample(t =>
            {
                var (n, m, v) = t;
                var cost = new double[n, m];
                for (int i = 0; i < n; i++) for (int j = 0; j < m; j++) cost[i, j] = v[i * m + j];
                var a = Hungarian.Solve(cost);
                double total = Enumerable.Range(0, n).Where(i => a[i] >= 0).Sum(i => cost[i, a[i]]);
                Assert.Equal(Math.Min(n, m), a.Count(x => x >= 0));
                Assert.Equal(a.Where(x => x >= 0).Count(), a.Where(x => x >= 0).Distinct().Count());
                Assert.True(Math.Abs(total - BruteForce(cost)) < 1e-9, $"{total} vs {BruteForce(cost)}");
            }, iter: 300);
    }

    static double BruteForce(double[,] cost)
    {
        int n = cost.GetLength(0), m = cost.GetLength(1);
        double best = double.PositiveInfinity;
        void Go(int i, bool[] used, double sum, int assigned)
        {
            if (i == n)
            {
                if (assigned == Math.Min(n, m)) best = Math.Min(best, sum);
                return;
            }
            // row may stay free only if rows outnumber columns
            if (n - i > m - assigned) Go(i + 1, used, sum, assigned);
            for (int j = 0; j < m; j++)
                if (!used[j]) { used[j] = true; Go(i + 1, used, sum + cost[i, j], assigned + 1); used[j] = false; }
        }
        Go(0, new bool[m], 0, 0);
        return best;
    }
}
