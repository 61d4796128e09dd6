using System.Globalization;
using System.Reflection;

namespace Sqair.Objective;

/// <summary>
/// One measure as users' files name it and people read it: <paramref name="Key"/> in metrics.jsonl and in the
/// <c>sqair eval</c> JSON, <paramref name="Label"/> as a table's column and a sweep plot's title,
/// <paramref name="Description"/> as a learning curve's title (the label when null), <paramref name="Format"/> for
/// its value in a table. <paramref name="NeedsTruth"/>: it compares with ground truth, so it is absent on frames
/// without. <paramref name="PerTenth"/>: a family of keys, one per tenth of the frames (<see cref="KeyOfTenth"/>).
/// </summary>
internal sealed record Metric(string Key, string Label, string Format, bool NeedsTruth = false,
                              string? Description = null, bool PerTenth = false)
{
    /// <summary>A learning curve's title: the description, or the label when that says it all.</summary>
    public string Title => Description ?? Label;

    /// <summary>What a table shows for a value it does not have.</summary>
    public const string Missing = "–";

    /// <summary>
    /// <paramref name="value"/> in <see cref="Format"/> as a table shows it: <see cref="Missing"/> for NaN, and
    /// without a sign when it rounds to zero ("-0.000" would read as a sign the value does not have).
    /// </summary>
    public string Text(double value)
    {
        if (double.IsNaN(value)) return Missing;
        var text = value.ToString(Format, CultureInfo.InvariantCulture);
        return text.StartsWith('-') && text.AsSpan(1).IndexOfAnyExcept('0', '.') < 0 ? text[1..] : text;
    }

    /// <summary>The key of tenth <paramref name="tenth"/> (1 to 10) of a <see cref="PerTenth"/> family.</summary>
    public string KeyOfTenth(int tenth) =>
        PerTenth ? $"{Key}_{tenth:D2}" : throw new InvalidOperationException($"{Key} is not measured per tenth");
}

/// <summary>
/// Every measure a run or an evaluation writes, declared once: what metrics.jsonl, the <c>sqair eval</c> report,
/// the learning curves, the sweep's table and plots, README's table and the training log read their keys, labels
/// and formats from. It lives in Objective, the lowest layer that writes measures (<see cref="BatchMetrics"/>), so
/// that every writer and reader above (Runs, Training, Evaluation, Visualisation, Sweeps, the command line) sees it;
/// the tracking measures are declared here too, though Evaluation computes them, so that no key is spelled twice.
/// The keys are the contract with users' files: a key never changes.
/// </summary>
internal static class Metrics
{
    // The bounds and divergences, per sequence and per frame (BatchMetrics.Means).
    public static readonly Metric Iwae = new("iwae", "IWAE", "F1", Description: "IWAE bound (per sequence)");
    public static readonly Metric Elbo = new("elbo", "ELBO", "F1", Description: "ELBO (per sequence)");
    public static readonly Metric LogLikelihood = new("log_p_x_given_z", "log p(x|z)", "F1",
                                                      Description: "log p(x|z) (per sequence)");
    public static readonly Metric Kl = new("kl", "KL", "F1", Description: "KL (per sequence)");
    public static readonly Metric LogLikelihoodPerFrame = new("log_p_x_given_z_per_frame", "log p(x|z) per frame",
                                                              "F2");
    public static readonly Metric KlPerFrame = new("kl_per_frame", "KL per frame", "F2");
    public static readonly Metric Ess = new("ess", "ESS", "F2", Description: "effective sample size (per sequence)");
    public static readonly Metric Mse = new("mse", "MSE", "F4", Description: "squared error per pixel");
    public static readonly Metric CountAccPresent = new("count_acc_present", "count acc. (present)", "F3", true,
                                                        "count accuracy (digits present in the sequence)");
    public static readonly Metric CountAccVisible = new("count_acc_visible", "count acc. (visible)", "F3", true,
                                                        "count accuracy (visible digits)");
    public static readonly Metric ObjectsPropagated = new("objects_propagated", "propagated", "F2",
                                                          Description: "objects propagated per frame");
    public static readonly Metric ObjectsDiscovered = new("objects_discovered", "discovered", "F2",
                                                          Description: "objects discovered per frame");

    // Tracking on the tight boxes of what each object draws: the headline.
    public static readonly Metric Mota = new("mota", "MOTA", "F3", true);
    public static readonly Metric MotpIou = new("motp_iou", "MOTP (IoU)", "F3", true);
    public static readonly Metric Idf1 = new("idf1", "IDF1", "F3", true);
    public static readonly Metric Idp = new("idp", "IDP", "F3", true);
    public static readonly Metric Idr = new("idr", "IDR", "F3", true);
    public static readonly Metric IdSwitches = new("id_switches", "ID switches", "F0", true);
    public static readonly Metric FalsePositives = new("false_positives", "false positives", "F0", true);
    public static readonly Metric Misses = new("misses", "misses", "F0", true);
    public static readonly Metric MissesBoxOff = new("misses_box_off", "misses (box misfit)", "F0", true);
    public static readonly Metric FalsePositivesBoxOff = new("false_positives_box_off",
                                                             "false positives (box misfit)", "F0", true);
    public static readonly Metric GroundTruthBoxes = new("gt_boxes", "digit boxes", "F0", true);

    // Tracking scored as others score it: the raw windows, the windows of likely objects, don't-care digits.
    public static readonly Metric MotaGlimpse = new("mota_glimpse", "MOTA (windows)", "F3", true);
    public static readonly Metric MotpIouGlimpse = new("motp_iou_glimpse", "MOTP (windows)", "F3", true);
    public static readonly Metric Idf1Glimpse = new("idf1_glimpse", "IDF1 (windows)", "F3", true);
    public static readonly Metric MotaWindowP50 = new("mota_window_p50", "MOTA (windows, p > 0.5)", "F3", true);
    public static readonly Metric Idf1WindowP50 = new("idf1_window_p50", "IDF1 (windows, p > 0.5)", "F3", true);
    public static readonly Metric MotaDontCare = new("mota_dontcare", "MOTA (don't-care)", "F3", true);
    public static readonly Metric Idf1DontCare = new("idf1_dontcare", "IDF1 (don't-care)", "F3", true);
    public static readonly Metric MissesDontCare = new("misses_dontcare", "misses (don't-care)", "F0", true);
    public static readonly Metric FalsePositivesDontCare = new("false_positives_dontcare",
                                                               "false positives (don't-care)", "F0", true);

    // Where the errors are: digits wholly on the canvas, and digits its edge cuts.
    public static readonly Metric MotaInside = new("mota_inside", "MOTA (inside)", "F3", true);
    public static readonly Metric MissesInside = new("misses_inside", "misses (inside)", "F0", true);
    public static readonly Metric GroundTruthInside = new("gt_inside", "digit boxes (inside)", "F0", true);
    public static readonly Metric MotaEdge = new("mota_edge", "MOTA (edge)", "F3", true);
    public static readonly Metric MissesEdge = new("misses_edge", "misses (edge)", "F0", true);
    public static readonly Metric GroundTruthEdge = new("gt_edge", "digit boxes (edge)", "F0", true);
    public static readonly Metric MissesSliver = new("misses_sliver", "misses (slivers)", "F0", true);
    public static readonly Metric GroundTruthSliver = new("gt_sliver", "digit boxes (slivers)", "F0", true);

    // Drift over long sequences: one key per tenth of the frames.
    public static readonly Metric MotaByTenth = new("mota_tenth", "MOTA by tenth", "F3", true, PerTenth: true);
    public static readonly Metric HypothesesPerDigitByTenth = new("hyp_per_digit_tenth", "hypotheses per digit",
                                                                  "F2", true, "hypotheses per digit by tenth",
                                                                  PerTenth: true);
    // Whether a tenth scores lower because tracking drifts or because more of its digits are cut by the edge (at
    // the first frames every digit starts wholly on the canvas, so the first tenth has fewest): MOTA by tenth on
    // each kind of digit, and the share of the visible digits the edge cuts.
    public static readonly Metric MotaInsideByTenth = new("mota_inside_tenth", "MOTA (inside) by tenth", "F3", true,
                                                          PerTenth: true);
    public static readonly Metric MotaEdgeByTenth = new("mota_edge_tenth", "MOTA (edge) by tenth", "F3", true,
                                                        PerTenth: true);
    public static readonly Metric EdgeShareByTenth = new("edge_share_tenth", "edge share", "F3", true,
                                                         "share of the visible digits cut by the edge, by tenth",
                                                         PerTenth: true);

    /// <summary>Sequences measured.</summary>
    public static readonly Metric Sequences = new("sequences", "sequences", "F0");

    // The training window's own: its loss, gradient and schedule.
    public static readonly Metric Loss = new("loss", "loss", "F1", Description: "training loss");
    public static readonly Metric GradNorm = new("grad_norm", "gradient norm", "F2");
    public static readonly Metric LearningRate = new("lr", "learning rate", "G3");
    public static readonly Metric SeqLen = new("seq_len", "sequence length", "F0");
    public static readonly Metric IterationsPerSecond = new("iterations_per_second", "it/s", "F2",
                                                            Description: "iterations per second");

    /// <summary>
    /// Every measure above, read from the fields, so that a measure is declared by its field alone
    /// and no second list can leave one out. Declared after them: static fields start in the order written.
    /// </summary>
    public static readonly IReadOnlyList<Metric> All =
    [
        .. typeof(Metrics).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.FieldType == typeof(Metric)).Select(f => (Metric)f.GetValue(null)!),
    ];

    /// <summary>
    /// The measure of <paramref name="key"/>, a <see cref="Metric.PerTenth"/> family's for one of its keys; null
    /// for a key that no measure declares.
    /// </summary>
    public static Metric? Of(string key) =>
        All.FirstOrDefault(m => m.Key == key) ??
        All.FirstOrDefault(m => m.PerTenth && key.StartsWith(m.Key + "_", StringComparison.Ordinal) &&
                                int.TryParse(key.AsSpan(m.Key.Length + 1), NumberStyles.None,
                                             CultureInfo.InvariantCulture, out int tenth) &&
                                m.KeyOfTenth(tenth) == key);
}
