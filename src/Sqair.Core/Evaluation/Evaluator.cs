using Sqair.Data;
using Sqair.Inference;
using Sqair.Model;
using Sqair.Native;
using Sqair.Objective;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Evaluation;

/// <summary>
/// Everything docs/design.md §5 measures on a set of sequences. Tracking is measured with the tight
/// boxes of what each object draws (<see cref="Tracking"/>, the headline "mota", "idf1") and, beside
/// it, three ways the field scores: the raw attention windows (<see cref="TrackingGlimpse"/>,
/// "…_glimpse"), which are usually larger than the digit they hold; the windows of objects with
/// presence probability above 0.5 (<see cref="TrackingWindowP50"/>, "…_window_p50", as SILOT scores
/// SQAIR); and the tight boxes with digits mostly off the canvas as don't-care
/// (<see cref="TrackingDontCare"/>, "…_dontcare", <see cref="DontCare"/>). Where the errors are: the
/// same tight boxes scored on the digits wholly on the canvas (<see cref="TrackingInside"/>, "…_inside")
/// and on the digits the canvas's edge cuts (<see cref="TrackingEdge"/>, "…_edge"), each with the other
/// digits as don't-care; a false positive matched to no digit counts in both; and the misses among the edge's
/// slivers (<see cref="TrackingSliver"/>, "…_sliver": only misses and ground truth, since its MOTA would charge
/// every unmatched false positive to a tenth of the digits). Without ground truth
/// (<see cref="HasTruth"/> false: imported frames) the count accuracies and tracking measures are
/// absent, not zero.
/// </summary>
public sealed record EvaluationReport(BatchMetrics Totals, MotSummary Tracking, MotSummary TrackingGlimpse,
                                      MotSummary TrackingWindowP50, MotSummary TrackingDontCare,
                                      MotSummary TrackingInside, MotSummary TrackingEdge,
                                      MotSummary TrackingSliver, bool HasTruth = true)
{
    /// <summary>Presence probability above which an object counts in <see cref="TrackingWindowP50"/>.</summary>
    public const float WindowP50Probability = 0.5f;

    /// <summary>
    /// The headline measures: the first columns of a sweep's table (<c>sqair sweep</c>) and the columns of README's
    /// table of what the shipped model measures.
    /// </summary>
    internal static readonly IReadOnlyList<Metric> Headline =
        [Metrics.Iwae, Metrics.CountAccVisible, Metrics.Mota, Metrics.Idf1];

    /// <summary>
    /// The keys of the measures that compare with ground truth, left out when there is none (besides the per-tenth
    /// drift, which is measured only with ground truth).
    /// </summary>
    public static readonly IReadOnlySet<string> TruthMeasures =
        Metrics.All.Where(m => m.NeedsTruth && !m.PerTenth).Select(m => m.Key).ToHashSet();

    /// <summary>
    /// Every measure by its name in the JSON report and metrics.jsonl (count accuracies and
    /// tracking left out without ground truth).
    /// </summary>
    public IReadOnlyDictionary<string, double> Flat()
    {
        var d = new Dictionary<string, double>(Totals.Means())
        {
            [Metrics.Mota.Key] = Tracking.Mota,
            [Metrics.MotpIou.Key] = Tracking.Motp,
            [Metrics.Idf1.Key] = Tracking.Idf1,
            [Metrics.Idp.Key] = Tracking.Idp,
            [Metrics.Idr.Key] = Tracking.Idr,
            [Metrics.IdSwitches.Key] = Tracking.IdSwitches,
            [Metrics.FalsePositives.Key] = Tracking.FalsePositives,
            [Metrics.Misses.Key] = Tracking.Misses,
            [Metrics.MissesBoxOff.Key] = Tracking.MissesBoxOff,
            [Metrics.FalsePositivesBoxOff.Key] = Tracking.FalsePositivesBoxOff,
            [Metrics.GroundTruthBoxes.Key] = Tracking.GroundTruth,
            [Metrics.MotaGlimpse.Key] = TrackingGlimpse.Mota,
            [Metrics.MotpIouGlimpse.Key] = TrackingGlimpse.Motp,
            [Metrics.Idf1Glimpse.Key] = TrackingGlimpse.Idf1,
            [Metrics.MotaWindowP50.Key] = TrackingWindowP50.Mota,
            [Metrics.Idf1WindowP50.Key] = TrackingWindowP50.Idf1,
            [Metrics.MotaDontCare.Key] = TrackingDontCare.Mota,
            [Metrics.Idf1DontCare.Key] = TrackingDontCare.Idf1,
            [Metrics.MissesDontCare.Key] = TrackingDontCare.Misses,
            [Metrics.FalsePositivesDontCare.Key] = TrackingDontCare.FalsePositives,
            [Metrics.MotaInside.Key] = TrackingInside.Mota,
            [Metrics.MissesInside.Key] = TrackingInside.Misses,
            [Metrics.GroundTruthInside.Key] = TrackingInside.GroundTruth,
            [Metrics.MotaEdge.Key] = TrackingEdge.Mota,
            [Metrics.MissesEdge.Key] = TrackingEdge.Misses,
            [Metrics.GroundTruthEdge.Key] = TrackingEdge.GroundTruth,
            [Metrics.MissesSliver.Key] = TrackingSliver.Misses,
            [Metrics.GroundTruthSliver.Key] = TrackingSliver.GroundTruth,
            [Metrics.Sequences.Key] = Totals.Sequences,
        };
        if (!HasTruth)
        {
            foreach (var key in TruthMeasures) d.Remove(key);
            return d;
        }
        // on sequences longer than 10 frames: drift as a curve over the tenths of the sequence
        for (int i = 0; i < Tracking.MotaByTenth.Count; i++)
        {
            d[Metrics.MotaByTenth.KeyOfTenth(i + 1)] = Tracking.MotaByTenth[i];
            d[Metrics.HypothesesPerDigitByTenth.KeyOfTenth(i + 1)] = Tracking.HypothesesPerDigitByTenth[i];
            d[Metrics.MotaInsideByTenth.KeyOfTenth(i + 1)] = TrackingInside.MotaByTenth[i];
            d[Metrics.MotaEdgeByTenth.KeyOfTenth(i + 1)] = TrackingEdge.MotaByTenth[i];
            long all = Tracking.GroundTruthByTenth[i];
            d[Metrics.EdgeShareByTenth.KeyOfTenth(i + 1)] =
                all == 0 ? double.NaN : (double)TrackingEdge.GroundTruthByTenth[i] / all;
        }
        return d;
    }
}

/// <summary>
/// Runs a model over (part of) a dataset in inference mode and adds up the docs/design.md §5 measurements.
/// Every sequence samples from its own generator, seeded by <c>seed</c> and its index
/// (<see cref="Infer.Run"/>, docs/design.md §2.8), so a report depends only on the model, the
/// data, K and the seed (and, in the last digits, on the thread count and the batch size through
/// libtorch's reductions), not on what ran before nor on how the sequences are batched.
/// </summary>
public static class Evaluator
{
    /// <summary>
    /// Measures <paramref name="model"/> on the first <paramref name="sequences"/> of
    /// <paramref name="source"/>, inferred as <paramref name="inference"/> says, in batches;
    /// <paramref name="progress"/> gets the sequences done. On the CPU each batch is cut into one shard per
    /// libtorch thread, each shard on its own thread with one intra-op thread (<see cref="ThreadShards"/>):
    /// per-sequence generators give the shards the samples of the uncut batch, so the report is the same up to
    /// the order of float32 sums.
    /// </summary>
    public static EvaluationReport Run(SqairModel model, ISequenceSource source, long sequences,
                                       InferenceOptions inference, int batchSize, Device device,
                                       Action<long>? progress = null, ulong seed = 0)
    {
        // Set once here, not by each shard's Infer.Run: restoring a training mode from one shard thread while
        // another still infers would switch on training's noise mid-batch.
        using var mode = EvalMode.Of(model);
        return Run((batch, first) => Infer.Run(model, batch.Frames, inference, seed, first), source, sequences,
                   batchSize, device, progress);
    }

    /// <summary>
    /// The measuring behind <see cref="Run(SqairModel, ISequenceSource, long, InferenceOptions, int, Device,
    /// Action{long}?, ulong)"/> with the inference given: <paramref name="infer"/> gets each shard of a batch and
    /// the number of its first sequence. Tests pass hand-built outputs (oracle tracks, known weights) here, so the
    /// measures are checked against values known without any model.
    /// </summary>
    internal static EvaluationReport Run(Func<SequenceBatch, long, InferredBatch> infer, ISequenceSource source,
                                         long sequences, int batchSize, Device device, Action<long>? progress = null)
    {
        if (sequences < 1) throw new ArgumentException($"evaluation needs at least 1 sequence, not {sequences}");
        var loader = new BatchLoader(source, batchSize, shuffle: false, seed: 0, device);
        var total = new BatchMetrics();
        var mot = new MotAccumulator();
        var motGlimpse = new MotAccumulator();
        var motWindowP50 = new MotAccumulator();
        var motDontCare = new MotAccumulator();
        var motInside = new MotAccumulator();
        var motEdge = new MotAccumulator();
        var motSliver = new MotAccumulator();
        long done = 0;
        int threads = get_num_threads();
        int shards = device.type == DeviceType.CPU ? threads : 1;
        try
        {
            foreach (var batch in loader.Ordered(sequences))
                using (batch)
                {
                    int n = Math.Min(shards, batch.B);
                    var sizes = ThreadShards.Sizes(batch.B, n);
                    var starts = new int[n];
                    for (int i = 1; i < n; i++) starts[i] = starts[i - 1] + sizes[i - 1];
                    // one shard runs on the calling thread, as the uncut batch did
                    var parts = ThreadShards.Run(n, Math.Max(1, threads / n), i =>
                    {
                        using var part = batch.Slice(starts[i], sizes[i]);
                        return Measure(infer, part, done + starts[i]);
                    });
                    foreach (var p in parts)
                    {
                        total += p.Metrics;
                        for (int b = 0; b < p.Truth.Length; b++)
                        {
                            mot.AddSequence(p.Truth[b], p.Content[b]);
                            motGlimpse.AddSequence(p.Truth[b], p.Windows[b]);
                            motWindowP50.AddSequence(p.Truth[b], [.. p.Windows[b].Select(f =>
                                (IReadOnlyList<TrackBox>)[.. f.Where(x => x.Probability >
                                                                          EvaluationReport.WindowP50Probability)])]);
                            AddCounted(motDontCare, p.Truth[b], p.Content[b], DontCare.MostlyOn);
                            AddCounted(motInside, p.Truth[b], p.Content[b], DontCare.WhollyOn);
                            AddCounted(motEdge, p.Truth[b], p.Content[b], DontCare.CutByEdge);
                            AddCounted(motSliver, p.Truth[b], p.Content[b], DontCare.Sliver);
                        }
                    }
                    done += batch.B;
                    progress?.Invoke(done);
                }
        }
        finally
        {
            set_num_threads(threads);
        }
        return new EvaluationReport(total, mot.Summary(), motGlimpse.Summary(), motWindowP50.Summary(),
                                    motDontCare.Summary(), motInside.Summary(), motEdge.Summary(),
                                    motSliver.Summary(), source.HasTruth);
    }

    /// <summary>
    /// Adds a sequence to <paramref name="mot"/> with the digits <paramref name="counted"/> leaves out as don't-care.
    /// </summary>
    static void AddCounted(MotAccumulator mot, IReadOnlyList<IReadOnlyList<TrackBox>> truth,
                           IReadOnlyList<IReadOnlyList<TrackBox>> content, Func<TrackBox, bool> counted)
    {
        var (truthCounted, contentCounted) = DontCare.Remove(truth, content, counted: counted);
        mot.AddSequence(truthCounted, contentCounted);
    }

    /// <summary>One batch (or shard) measured: its sums and, per sequence, the true and inferred tracks.</summary>
    sealed record Measured(BatchMetrics Metrics, List<IReadOnlyList<TrackBox>>[] Truth,
                           List<IReadOnlyList<TrackBox>>[] Content, List<IReadOnlyList<TrackBox>>[] Windows);

    /// <summary>
    /// Infers <paramref name="batch"/>, its sequences numbered from <paramref name="first"/>, and measures it;
    /// every tensor it makes is freed before it returns.
    /// </summary>
    static Measured Measure(Func<SequenceBatch, long, InferredBatch> infer, SequenceBatch batch, long first)
    {
        using var scope = NewDisposeScope();
        var inferred = infer(batch, first);
        return new(BatchMetrics.Of(inferred.Output, batch), TrackExtraction.Truth(batch),
                   inferred.Boxes(BoxKind.Content), inferred.Boxes(BoxKind.Glimpse));
    }
}
