using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Inference;
using Sqair.Model;
using Sqair.Objective;
using static TorchSharp.torch;

namespace Sqair.Tests.Evaluation;

/// <summary>
/// The evaluator's measures against values worked out by hand from hand-built model outputs, and the
/// report's names for them: what the invariance tests in <see cref="EvaluatorTests"/> cannot see (a
/// measure that is consistently wrong, or reported under another measure's name).
/// </summary>
public class GoldenMetricsTests
{
    static Tensor Doubles(double[] values, params long[] shape) =>
        tensor(values, dtype: ScalarType.Float64).view(shape);

    static Tensor Floats(float[] values, params long[] shape) => tensor(values).view(shape);

    /// <summary>
    /// One canvas row per particle (rows of a sequence contiguous), every pixel of particle k of sequence b
    /// at <paramref name="value"/>(b, k); 4×4 pixels.
    /// </summary>
    static FrameOutput Step(Func<int, int, float> value)
    {
        const int B = 2, K = 2, Side = 4;
        var canvas = new float[B * K * Side * Side];
        for (int r = 0; r < B * K; r++) Array.Fill(canvas, value(r / K, r % K), r * Side * Side, Side * Side);
        Tensor Rows() => zeros(B * K);
        // no objects: only the canvas is measured
        return new FrameOutput(Floats(canvas, B * K, 1, Side, Side), zeros([B * K, 0, 1, 1, 1]), zeros(B * K, 0, 4),
                               zeros(B * K, 0, 4), zeros(B * K, 0), zeros(B * K, 0),
                               zeros([B * K, 0], ScalarType.Int64), Rows(), Rows(), Rows(), Rows(), Rows());
    }

    /// <summary>
    /// Two sequences of two frames, two particles each, two object slots; every number below is chosen so that
    /// the weighted sums come out in short fractions. Normalised weights ŵ: sequence 0 (log 1, log 3) → (1/4, 3/4),
    /// sequence 1 (0, 0) → (1/2, 1/2).
    /// <list type="bullet">
    /// <item>IWAE log mean w: log 2 and 0, mean log(2)/2; ELBO mean log w: log(3)/2 and 0, mean log(3)/4.</item>
    /// <item>ESS 1/Σŵ²: 1/(1/16 + 9/16) = 1.6 and 2, mean 1.8.</item>
    /// <item>log p(x|z) Σŵ·ll: (−10, −20) → −17.5 and (−4, −8) → −6; per sequence −11.75, per frame −5.875.</item>
    /// <item>KL Σŵ·kl: (1, 5) → 4 and (2, 6) → 4; per sequence 4, per frame 2.</item>
    /// <item>Sequence 0 holds two digits, both visible at frame 0 and one at frame 1; sequence 1 one digit
    /// (slot 1 empty), visible at frame 0 only. Counts (frame 0: (2, 1) and (1, 0); frame 1: (1, 2) and (1, 0))
    /// are right about the present digits with weight 1/4 + 1/2 + 3/4 + 1/2 = 2 of 4 frames (0.5), about the
    /// visible ones with weight 1/4 + 1/2 + 1/4 + 1/2 = 1.5 (0.375).</item>
    /// <item>Squared error: sequence 0's frames are 0 and its particles draw 0.5 and 0.25; sequence 1's frames
    /// are 1 and its particles draw 0.5 and 0.75. Each frame index adds (0.25·1/4 + 0.0625·3/4) +
    /// (0.25 + 0.0625)/2 = 17/64; two of them over four frames, 17/128. Particle rows paired with the other
    /// sequence's frames would give other errors (0.5625 for one pair).</item>
    /// <item>Propagated (frame 1 only): (1, 2) → 1/4 + 3/2 and (1, 0) → 1/2, per frame 2.25/4; discovered
    /// (frame 0 only, the counts): (2, 1) → 5/4 and (1, 0) → 1/2, per frame 1.75/4.</item>
    /// </list>
    /// </summary>
    [Fact]
    public void Batch_measures_equal_their_hand_computed_values_under_their_report_names()
    {
        const int T = 2, B = 2, K = 2, M = 2, Side = 4;
        double log3 = Math.Log(3);
        var frames = new float[T * B * Side * Side];
        for (int f = 0; f < T; f++) Array.Fill(frames, 1f, (f * B + 1) * Side * Side, Side * Side);
        // [T, B, M] as (frame 0: sequence 0 slots, sequence 1 slots), (frame 1: …)
        var present = new float[] { 1, 1, 1, 0, 1, 1, 1, 0 };
        var visible = new float[] { 1, 1, 1, 0, 1, 0, 0, 0 };
        using var batch = new SequenceBatch(Floats(frames, T, B, 1, Side, Side), zeros(T, B, M, 4),
                                            Floats(present, T, B, M), Floats(visible, T, B, M),
                                            zeros([B, M], ScalarType.Int64), zeros([B, M], ScalarType.Int64));
        var output = new SequenceOutput(
            LogWeights: Doubles([0, log3, 0, 0], B, K),
            LogQDiscrete: zeros(B, K),
            LogLikelihood: Doubles([-10, -20, -4, -8], B, K),
            Kl: Doubles([1, 5, 2, 6], B, K),
            Counts: Doubles([2, 1, 1, 0, 1, 2, 1, 0], T, B, K),
            Propagated: Doubles([0, 0, 0, 0, 1, 2, 1, 0], T, B, K),
            Discovered: Doubles([2, 1, 1, 0, 0, 0, 0, 0], T, B, K),
            Frames: [Step((b, k) => b == 0 ? (k == 0 ? 0.5f : 0.25f) : (k == 0 ? 0.5f : 0.75f)),
                     Step((b, k) => b == 0 ? (k == 0 ? 0.5f : 0.25f) : (k == 0 ? 0.5f : 0.75f))]);

        var metrics = BatchMetrics.Of(output, batch);
        Assert.Equal((2.0, 4.0), (metrics.Sequences, metrics.Frames));
        var report = new EvaluationReport(metrics, NoTracks, NoTracks, NoTracks, NoTracks, NoTracks, NoTracks,
                                          NoTracks).Flat();
        var expected = new Dictionary<string, double>
        {
            ["iwae"] = Math.Log(2) / 2,
            ["elbo"] = log3 / 4,
            ["ess"] = 1.8,
            ["log_p_x_given_z"] = -11.75,
            ["log_p_x_given_z_per_frame"] = -5.875,
            ["kl"] = 4,
            ["kl_per_frame"] = 2,
            ["count_acc_present"] = 0.5,
            ["count_acc_visible"] = 0.375,
            ["mse"] = 17 / 128.0,
            ["objects_propagated"] = 2.25 / 4,
            ["objects_discovered"] = 1.75 / 4,
            ["sequences"] = 2,
        };
        foreach (var (key, value) in expected)
            Assert.True(Math.Abs(report[key] - value) <= 1e-12, $"{key}: {report[key]:R}, by hand {value:R}");
    }

    /// <summary>A summary whose every number is distinct, so a measure read from the wrong field shows.</summary>
    static MotSummary Distinct(double offset) => new(
        GroundTruth: (long)offset + 1, Hypotheses: (long)offset + 2, Matches: (long)offset + 3,
        FalsePositives: (long)offset + 4, Misses: (long)offset + 5, IdSwitches: (long)offset + 6,
        Mota: offset + 0.1, Motp: offset + 0.2, Idf1: offset + 0.3, Idp: offset + 0.4, Idr: offset + 0.5,
        MissesBoxOff: (long)offset + 7, FalsePositivesBoxOff: (long)offset + 8,
        MotaByTenth: [], HypothesesPerDigitByTenth: [], GroundTruthByTenth: []);

    static readonly MotSummary NoTracks = Distinct(0);

    /// <summary>
    /// Which field of which of the seven tracking summaries each report name reads: the headline names read the
    /// tight-box summary; the suffixes name the others (docs/design.md §5). Written out by hand, not derived from
    /// <see cref="EvaluationReport.Flat"/>.
    /// </summary>
    [Fact]
    public void Each_tracking_name_reads_its_own_summary_and_field()
    {
        // offsets 100 apart: a value tells its summary (hundreds) and its field (the rest)
        var (tight, glimpse, p50, dontCare, inside, edge, sliver) =
            (Distinct(100), Distinct(200), Distinct(300), Distinct(400), Distinct(500), Distinct(600), Distinct(700));
        var totals = new BatchMetrics { Sequences = 1, Frames = 1 };
        var report = new EvaluationReport(totals, tight, glimpse, p50, dontCare, inside, edge, sliver).Flat();
        var expected = new Dictionary<string, double>
        {
            ["mota"] = 100.1, ["motp_iou"] = 100.2, ["idf1"] = 100.3, ["idp"] = 100.4, ["idr"] = 100.5,
            ["gt_boxes"] = 101, ["false_positives"] = 104, ["misses"] = 105, ["id_switches"] = 106,
            ["misses_box_off"] = 107, ["false_positives_box_off"] = 108,
            ["mota_glimpse"] = 200.1, ["motp_iou_glimpse"] = 200.2, ["idf1_glimpse"] = 200.3,
            ["mota_window_p50"] = 300.1, ["idf1_window_p50"] = 300.3,
            ["mota_dontcare"] = 400.1, ["idf1_dontcare"] = 400.3, ["misses_dontcare"] = 405,
            ["false_positives_dontcare"] = 404,
            ["mota_inside"] = 500.1, ["misses_inside"] = 505, ["gt_inside"] = 501,
            ["mota_edge"] = 600.1, ["misses_edge"] = 605, ["gt_edge"] = 601,
            ["misses_sliver"] = 705, ["gt_sliver"] = 701,
        };
        foreach (var (key, value) in expected) Assert.Equal(value, report[key]);
        // without ground truth exactly these names (and the count accuracies) go, and nothing else
        var truthless =
            new EvaluationReport(totals, tight, glimpse, p50, dontCare, inside, edge, sliver, HasTruth: false).Flat();
        var truthNames = expected.Keys.Append("count_acc_present").Append("count_acc_visible");
        Assert.Equal(truthNames.Order(StringComparer.Ordinal),
                     report.Keys.Except(truthless.Keys).Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// The per-tenth names: MOTA and hypotheses per digit from the tight-box summary, MOTA (inside, edge) from their
    /// summaries, and the edge's share of the digits as the edge summary's ground truth over the tight one's.
    /// </summary>
    [Fact]
    public void Each_tenth_name_reads_its_own_summary()
    {
        static MotSummary WithTenths(double offset, long[] truth) => Distinct(offset) with
        {
            MotaByTenth = [.. Enumerable.Range(1, 10).Select(i => offset + i)],
            HypothesesPerDigitByTenth = [.. Enumerable.Range(1, 10).Select(i => offset + 0.5 + i)],
            GroundTruthByTenth = truth,
        };
        long[] all = [.. Enumerable.Repeat(10L, 10)], edgeTruth = [.. Enumerable.Range(0, 10).Select(i => (long)i)];
        long[] insideTruth = [.. edgeTruth.Select(e => 10 - e)];
        var report = new EvaluationReport(new BatchMetrics { Sequences = 1, Frames = 1 }, WithTenths(100, all),
                                          Distinct(200), Distinct(300), Distinct(400), WithTenths(500, insideTruth),
                                          WithTenths(600, edgeTruth), Distinct(700)).Flat();
        for (int i = 1; i <= 10; i++)
        {
            Assert.Equal(100 + i, report[$"mota_tenth_{i:D2}"]);
            Assert.Equal(100.5 + i, report[$"hyp_per_digit_tenth_{i:D2}"]);
            Assert.Equal(500 + i, report[$"mota_inside_tenth_{i:D2}"]);
            Assert.Equal(600 + i, report[$"mota_edge_tenth_{i:D2}"]);
            Assert.Equal((i - 1) / 10.0, report[$"edge_share_tenth_{i:D2}"], 12);
        }
    }

    // Odd, so that a glimpse of G = (Side + 1) / 2 pixels, all drawn, has the window itself as its drawn box:
    // the drawn box of a window of scale s spans s·(Side − 1)·G/(G − 1) pixels, the window s·(Side + 1).
    const int OracleSide = 49;
    const int OracleGlimpse = (OracleSide + 1) / 2;
    // Frames per sequence: a multiple of 10 above 10, so the report has its curve over tenths of the sequence.
    const int OracleLength = 20;
    // The oracle's ids differ from the ground truth's: tracking must pair tracks, not compare ids.
    const long IdOffset = 1000;
    // Particle 1 tracks perfectly, particle 0 finds nothing; their log weights give ŵ = (1/4, 3/4).
    static readonly double[] OracleLogWeights = [0, Math.Log(3)];

    /// <summary>
    /// The inference of an oracle: for each sequence of <paramref name="batch"/>, particle 1 has one object per
    /// visible digit, its window the digit's box, its glimpse all drawn, its id the digit's plus
    /// <see cref="IdOffset"/>, and counts the visible digits; particle 0 has no objects and counts −1 (never
    /// right). The chosen particle is 1.
    /// </summary>
    static InferredBatch Oracle(SequenceBatch batch)
    {
        int t = batch.T, b = batch.B, m = (int)batch.Ids.shape[1], k = OracleLogWeights.Length, r = b * k;
        const int G = OracleGlimpse;
        var boxes = batch.Boxes.data<float>().ToArray();
        var visible = batch.Visible.data<float>().ToArray();
        var ids = batch.Ids.data<long>().ToArray();
        var steps = new List<FrameOutput>();
        var counts = new double[t * r];
        for (int f = 0; f < t; f++)
        {
            var window = new float[r * m * 4];
            var presence = new float[r * m];
            var objectIds = Enumerable.Repeat(-1L, r * m).ToArray();
            for (int s = 0; s < b; s++)
            {
                int row = s * k + 1;
                counts[(f * b + s) * k] = -1;
                for (int j = 0; j < m; j++)
                {
                    if (visible[(f * b + s) * m + j] < 0.5f) continue;
                    int o = ((f * b + s) * m + j) * 4;
                    float y = boxes[o], x = boxes[o + 1], h = boxes[o + 2], w = boxes[o + 3];
                    // Boxes.CoordsToPixelBoxes inverted: y = (t − s + 1)(L − 1)/2, h = s(L + 1)
                    float sy = h / (OracleSide + 1), sx = w / (OracleSide + 1);
                    int at = (row * m + j) * 4;
                    window[at] = sx;
                    window[at + 1] = sy;
                    window[at + 2] = 2 * x / (OracleSide - 1) - 1 + sx;
                    window[at + 3] = 2 * y / (OracleSide - 1) - 1 + sy;
                    presence[row * m + j] = 1;
                    objectIds[row * m + j] = ids[s * m + j] + IdOffset;
                    counts[(f * b + s) * k + 1]++;
                }
            }
            var perRow = zeros(r);
            steps.Add(new FrameOutput(batch.Frames[f].repeat_interleave(k, 0), ones([r, m, 1, G, G]), zeros(r, m, 4),
                                      Floats(window, r, m, 4), Floats(presence, r, m), Floats(presence, r, m),
                                      tensor(objectIds).view(r, m), perRow, perRow, perRow, perRow, perRow));
        }
        var logWeights = Doubles([.. Enumerable.Range(0, b).SelectMany(_ => OracleLogWeights)], b, k);
        var perParticle = zeros(b, k);
        var output = new SequenceOutput(logWeights, perParticle, perParticle, perParticle, Doubles(counts, t, b, k),
                                        zeros(t, b, k), zeros(t, b, k), steps);
        return new InferredBatch(output, [.. Enumerable.Range(0, b).Select(s => (long)(s * k + 1))], OracleSide);
    }

    /// <summary>
    /// Oracle tracks (the ground-truth boxes, under ids of their own) through the whole of
    /// <see cref="Evaluator.Run(Func{SequenceBatch, long, InferredBatch}, ISequenceSource, long, int, Device,
    /// Action{long}?)"/>: batches, shards on two threads, the chosen particle's boxes as windows and as drawn
    /// boxes, the don't-care and edge splits, and the report. Every tracking measure is perfect, the weights'
    /// measures are the hand-computed ones of ŵ = (1/4, 3/4), and only the oracle particle counts right.
    /// </summary>
    [Fact]
    public void Oracle_tracks_score_perfectly_through_the_whole_evaluation()
    {
        int threads = get_num_threads();
        try
        {
            set_num_threads(2);
            var config = new MovingMnistConfig { CanvasSize = OracleSide, SeqLen = OracleLength, MaxDigits = 3 };
            var source = new GeneratedSource(new MovingMnist(config, TestUtil.Templates(50, 5), 5));
            const int Sequences = 7, BatchSize = 4;   // a full batch and a short one, each cut into two shards
            var firsts = new System.Collections.Concurrent.ConcurrentBag<long>();
            var report = Evaluator.Run((batch, first) =>
            {
                firsts.Add(first);
                return Oracle(batch);
            }, source, Sequences, BatchSize, CPU).Flat();

            Assert.Equal([0L, 2L, 4L, 6L], firsts.Order());
            Assert.Equal(Sequences, report["sequences"]);
            Assert.True(report["gt_inside"] > 0 && report["gt_edge"] > 0, "digits wholly on the canvas and cut by it");
            foreach (var key in new[] { "mota", "idf1", "idp", "idr", "mota_glimpse", "idf1_glimpse",
                                        "mota_window_p50", "idf1_window_p50", "mota_dontcare", "idf1_dontcare",
                                        "mota_inside", "mota_edge" })
                Assert.True(report[key] == 1, $"{key}: {report[key]}");
            for (int i = 1; i <= 10; i++)
            {
                Assert.Equal(1, report[$"mota_tenth_{i:D2}"]);
                Assert.Equal(1, report[$"hyp_per_digit_tenth_{i:D2}"]);
                // a tenth without digits of a kind has no MOTA for them
                foreach (var kind in new[] { "inside", "edge" })
                {
                    double mota = report[$"mota_{kind}_tenth_{i:D2}"];
                    Assert.True(mota == 1 || double.IsNaN(mota), $"mota_{kind}_tenth_{i:D2}: {mota}");
                }
                Assert.InRange(report[$"edge_share_tenth_{i:D2}"], 0, 1);
            }
            foreach (var kind in new[] { "inside", "edge" })
                Assert.Contains(Enumerable.Range(1, 10), i => report[$"mota_{kind}_tenth_{i:D2}"] == 1);
            foreach (var key in new[] { "id_switches", "false_positives", "misses", "misses_box_off",
                                        "false_positives_box_off", "misses_dontcare", "false_positives_dontcare",
                                        "misses_inside", "misses_edge", "misses_sliver" })
                Assert.True(report[key] == 0, $"{key}: {report[key]}");
            // the boxes are the ground truth's up to float32 rounding of the window coordinates
            Assert.Equal(1, report["motp_iou"], 1e-4);
            Assert.Equal(1, report["motp_iou_glimpse"], 1e-4);
            Assert.Equal(report["gt_boxes"], report["gt_inside"] + report["gt_edge"]);
            Assert.InRange(report["gt_sliver"], 0, report["gt_edge"]);

            // ŵ = (1/4, 3/4): IWAE log 2, ELBO log(3)/2, ESS 1/(1/16 + 9/16)
            Assert.Equal(Math.Log(2), report["iwae"], 12);
            Assert.Equal(Math.Log(3) / 2, report["elbo"], 12);
            Assert.Equal(1.6, report["ess"], 12);
            Assert.Equal(0.75, report["count_acc_visible"], 12);
            Assert.Equal(0, report["mse"]);   // the canvases are the frames
        }
        finally { set_num_threads(threads); }
    }
}
