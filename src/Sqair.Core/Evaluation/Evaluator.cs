using Sqair.Data;
using Sqair.Model;
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
/// (<see cref="TrackingDontCare"/>, "…_dontcare", <see cref="DontCare"/>). Without ground truth
/// (<see cref="HasTruth"/> false: imported frames) the count accuracies and tracking measures are
/// absent, not zero.
/// </summary>
public sealed record EvaluationReport(BatchMetrics Totals, MotSummary Tracking, MotSummary TrackingGlimpse, MotSummary TrackingWindowP50,
                                      MotSummary TrackingDontCare, bool HasTruth = true)
{
    /// <summary>Presence probability above which an object counts in <see cref="TrackingWindowP50"/>.</summary>
    public const float WindowP50Probability = 0.5f;

    /// <summary>The measures that compare with ground truth, left out when there is none.</summary>
    public static readonly IReadOnlySet<string> TruthMeasures = new HashSet<string>
    {
        "count_acc_present", "count_acc_visible", "mota", "motp_iou", "idf1", "idp", "idr", "id_switches", "false_positives", "misses",
        "misses_box_off", "false_positives_box_off", "gt_boxes", "mota_glimpse", "motp_iou_glimpse", "idf1_glimpse",
        "mota_window_p50", "idf1_window_p50", "mota_dontcare", "idf1_dontcare", "misses_dontcare", "false_positives_dontcare",
    };

    /// <summary>Every measure by its name in the JSON report and metrics.jsonl (count accuracies and tracking left out without ground truth).</summary>
    public IReadOnlyDictionary<string, double> Flat()
    {
        var d = new Dictionary<string, double>(Totals.Means())
        {
            ["mota"] = Tracking.Mota,
            ["motp_iou"] = Tracking.Motp,
            ["idf1"] = Tracking.Idf1,
            ["idp"] = Tracking.Idp,
            ["idr"] = Tracking.Idr,
            ["id_switches"] = Tracking.IdSwitches,
            ["false_positives"] = Tracking.FalsePositives,
            ["misses"] = Tracking.Misses,
            ["misses_box_off"] = Tracking.MissesBoxOff,
            ["false_positives_box_off"] = Tracking.FalsePositivesBoxOff,
            ["gt_boxes"] = Tracking.GroundTruth,
            ["mota_glimpse"] = TrackingGlimpse.Mota,
            ["motp_iou_glimpse"] = TrackingGlimpse.Motp,
            ["idf1_glimpse"] = TrackingGlimpse.Idf1,
            ["mota_window_p50"] = TrackingWindowP50.Mota,
            ["idf1_window_p50"] = TrackingWindowP50.Idf1,
            ["mota_dontcare"] = TrackingDontCare.Mota,
            ["idf1_dontcare"] = TrackingDontCare.Idf1,
            ["misses_dontcare"] = TrackingDontCare.Misses,
            ["false_positives_dontcare"] = TrackingDontCare.FalsePositives,
            ["sequences"] = Totals.Sequences,
        };
        if (!HasTruth)
        {
            foreach (var key in TruthMeasures) d.Remove(key);
            return d;
        }
        // on sequences longer than 10 frames: drift as a curve over the tenths of the sequence
        for (int i = 0; i < Tracking.MotaByTenth.Count; i++)
        {
            d[$"mota_tenth_{i + 1:D2}"] = Tracking.MotaByTenth[i];
            d[$"hyp_per_digit_tenth_{i + 1:D2}"] = Tracking.HypothesesPerDigitByTenth[i];
        }
        return d;
    }
}

/// <summary>
/// Runs a model over (part of) a dataset in inference mode and adds up the docs/design.md §5 measurements.
/// Every batch samples from its own generator, seeded by <c>seed</c> and the index of its first
/// sequence (<see cref="BatchSeed"/>), so a report depends only on the model, the data, K and the
/// seed (and, in the last digits, on the thread count through libtorch's reductions), not on what
/// ran before or on the batch size's effect on other batches.
/// </summary>
public static class Evaluator
{
    /// <summary>Measures <paramref name="model"/> on the first <paramref name="sequences"/> of <paramref name="source"/>, inferred as <paramref name="inference"/> says, in batches; <paramref name="progress"/> gets the sequences done.</summary>
    public static EvaluationReport Run(SqairModel model, ISequenceSource source, long sequences, InferenceOptions inference, int batchSize, Device device,
                                       Action<long>? progress = null, ulong seed = 0)
    {
        if (sequences < 1) throw new ArgumentException($"evaluation needs at least 1 sequence, not {sequences}");
        var loader = new BatchLoader(source, batchSize, shuffle: false, seed: 0, device);
        var total = new BatchMetrics();
        var mot = new MotAccumulator();
        var motGlimpse = new MotAccumulator();
        var motWindowP50 = new MotAccumulator();
        var motDontCare = new MotAccumulator();
        long done = 0;
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var _ = no_grad();
            foreach (var batch in loader.Ordered(sequences))
            {
                using var scope = NewDisposeScope();
                using (batch)
                {
                    using var generator = new Generator(BatchSeed(seed, done));
                    var inferred = Inference.Run(model, batch.Frames, inference, generator);
                    total += BatchMetrics.Of(inferred.Output, batch);
                    var truth = TrackExtraction.Truth(batch);
                    var content = inferred.Boxes(BoxKind.Content);
                    var windows = inferred.Boxes(BoxKind.Glimpse);
                    for (int b = 0; b < batch.B; b++)
                    {
                        mot.AddSequence(truth[b], content[b]);
                        motGlimpse.AddSequence(truth[b], windows[b]);
                        motWindowP50.AddSequence(truth[b], [.. windows[b].Select(f => (IReadOnlyList<TrackBox>)[.. f.Where(x => x.Probability > EvaluationReport.WindowP50Probability)])]);
                        var (truthCounted, contentCounted) = DontCare.Remove(truth[b], content[b]);
                        motDontCare.AddSequence(truthCounted, contentCounted);
                    }
                    done += batch.B;
                    progress?.Invoke(done);
                }
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }
        return new EvaluationReport(total, mot.Summary(), motGlimpse.Summary(), motWindowP50.Summary(), motDontCare.Summary(), source.HasTruth);
    }

    /// <summary>
    /// The generator seed of the batch starting at sequence <paramref name="first"/>: seed 0 gives
    /// the index itself (the numbers reported before seeds existed); other seeds move every batch
    /// to a far-away stream (an odd multiplier keeps distinct seeds distinct).
    /// </summary>
    public static ulong BatchSeed(ulong seed, long first) => unchecked(seed * 0x9E3779B97F4A7C15UL + (ulong)first);
}

/// <summary>Which box stands for an inferred object: its attention window, or the tight box of what it draws.</summary>
public enum BoxKind
{
    /// <summary>The object's attention window.</summary>
    Glimpse,
    /// <summary>The tight box of the pixels the object draws (the headline measures use it).</summary>
    Content,
}

/// <summary>Turns ground truth and model outputs into per-sequence, per-frame box lists for tracking measures.</summary>
public static class TrackExtraction
{
    /// <summary>
    /// Decoded glimpse value above which a pixel belongs to the object (images are in [0, 1]).
    /// Ground-truth boxes hold every non-zero pixel of the digit, faint anti-aliased edges
    /// included, so the threshold is low; 0.1 stays above the decoder's background haze.
    /// </summary>
    public const float ContentThreshold = 0.1f;

    /// <summary>Visible ground-truth boxes (clipped to the canvas) with their object ids, [B][T][boxes].</summary>
    public static List<IReadOnlyList<TrackBox>>[] Truth(SequenceBatch batch)
    {
        int t = batch.T, b = batch.B, m = (int)batch.Ids.shape[1];
        // No slots (imported frames without ground truth): empty frames; TorchSharp cannot read an empty tensor's data.
        if (m == 0) return [.. Enumerable.Range(0, b).Select(_ => Enumerable.Range(0, t).Select(_ => (IReadOnlyList<TrackBox>)[]).ToList())];
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
                    frame.Add(new TrackBox(ids[s * m + k], boxes[o], boxes[o + 1], boxes[o + 2], boxes[o + 3]).ClipTo(height, width));
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
    public static List<IReadOnlyList<TrackBox>>[] Hypotheses(IReadOnlyList<FrameOutput> frames, long[] rows, int side, BoxKind kind,
                                                             float threshold = ContentThreshold)
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
            int glimpseSize = (int)step.Glimpses.shape[^1], glimpseLength = (int)(step.Glimpses.numel() / step.Glimpses.shape[0] / step.Glimpses.shape[1]);
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
                        Boxes.ContentBox(glimpses.AsSpan((s * n + k) * glimpseLength, glimpseLength), glimpseSize, coordArray.AsSpan(o, 4),
                                         side, side, threshold) is { } tight)
                        box = tight;
                    frame.Add(new TrackBox(ids[s * n + k], box.Item1, box.Item2, box.Item3, box.Item4, probability[s * n + k]).ClipTo(side, side));
                }
                result[s].Add(frame);
            }
        }
        return result;
    }
}
