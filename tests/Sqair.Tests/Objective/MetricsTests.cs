using Sqair.Evaluation;
using Sqair.Objective;
using Sqair.Training;

namespace Sqair.Tests.Objective;

/// <summary>
/// The registry of measures (<see cref="Metrics"/>) against what is written: every key the evaluator's report and the
/// trainer's record hold is declared there, once, and every declaration is written by one of them.
/// </summary>
public class MetricsTests
{
    /// <summary>
    /// The keys of metrics.jsonl and the eval JSON, written out: the contract with users' files and scripts, which
    /// a change of the registry must not break unnoticed.
    /// </summary>
    static readonly string[] ContractKeys =
    [
        "iwae", "elbo", "log_p_x_given_z", "kl", "log_p_x_given_z_per_frame", "kl_per_frame", "ess", "mse",
        "count_acc_present", "count_acc_visible", "objects_propagated", "objects_discovered",
        "mota", "motp_iou", "idf1", "idp", "idr", "id_switches", "false_positives", "misses", "misses_box_off",
        "false_positives_box_off", "gt_boxes", "mota_glimpse", "motp_iou_glimpse", "idf1_glimpse",
        "mota_window_p50", "idf1_window_p50", "mota_dontcare", "idf1_dontcare", "misses_dontcare",
        "false_positives_dontcare", "mota_inside", "misses_inside", "gt_inside", "mota_edge", "misses_edge",
        "gt_edge", "misses_sliver", "gt_sliver", "mota_tenth", "hyp_per_digit_tenth", "mota_inside_tenth",
        "mota_edge_tenth", "edge_share_tenth", "sequences",
        "loss", "grad_norm", "lr", "seq_len", "iterations_per_second",
    ];

    /// <summary>Ten tenths: a tracking summary of sequences whose length is a multiple of 10 above 10.</summary>
    static readonly double[] Tenths = [.. Enumerable.Range(1, 10).Select(i => i / 10.0)];

    static readonly MotSummary Tracking = new(1, 2, 3, 4, 5, 6, 0.1, 0.2, 0.3, 0.4, 0.5, 7, 8, Tenths, Tenths,
                                              [.. Enumerable.Range(1, 10).Select(i => (long)i)]);

    static EvaluationReport Report(bool hasTruth) =>
        new(new BatchMetrics { Sequences = 1, Frames = 1 }, Tracking, Tracking, Tracking, Tracking, Tracking, Tracking,
            Tracking, hasTruth);

    static IReadOnlyCollection<string> TrainRecordKeys()
    {
        var window = new Trainer.TrainWindow();
        window.Add(new BatchMetrics { Sequences = 1, Frames = 1 }, stepLoss: 1, stepGradNorm: 1);
        return window.Means(lr: 1e-4, seqLen: 5, iterationsPerSecond: 1).Keys;
    }

    [Fact]
    public void The_registry_declares_each_key_once_and_only_the_keys_of_the_contract()
    {
        var keys = Metrics.All.Select(m => m.Key).ToList();
        Assert.Equal(keys.Distinct(), keys);
        Assert.Equal(ContractKeys.Order(StringComparer.Ordinal), keys.Order(StringComparer.Ordinal));
        // a family's keys are no one else's
        var tenthKeys = Metrics.All.Where(m => m.PerTenth)
            .SelectMany(m => Enumerable.Range(1, Tenths.Length).Select(m.KeyOfTenth)).ToList();
        Assert.Empty(tenthKeys.Intersect(keys));
        Assert.Equal(tenthKeys.Distinct(), tenthKeys);
    }

    [Fact]
    public void Every_key_of_the_report_and_the_train_record_is_declared_and_every_declaration_written()
    {
        var report = Report(hasTruth: true).Flat().Keys;
        var train = TrainRecordKeys();
        Assert.DoesNotContain(report.Concat(train), k => Metrics.Of(k) is null);
        var written = report.Concat(train).Select(k => Metrics.Of(k)!).ToHashSet();
        Assert.Empty(Metrics.All.Where(m => !written.Contains(m)).Select(m => m.Key));
        // and the two records share the batch's measures only: no measure is written under two meanings
        Assert.Equal(new BatchMetrics { Sequences = 1, Frames = 1 }.Means().Keys.Order(StringComparer.Ordinal),
                     report.Intersect(train).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Without_ground_truth_the_report_drops_exactly_the_measures_that_need_it()
    {
        var dropped = Report(hasTruth: true).Flat().Keys.Except(Report(hasTruth: false).Flat().Keys)
            .Select(k => Metrics.Of(k)!.Key).Distinct().Order(StringComparer.Ordinal);
        Assert.Equal(Metrics.All.Where(m => m.NeedsTruth).Select(m => m.Key).Order(StringComparer.Ordinal), dropped);
        Assert.Equal(Metrics.All.Where(m => m.NeedsTruth && !m.PerTenth).Select(m => m.Key).ToHashSet(),
                     EvaluationReport.TruthMeasures);
    }

    [Fact]
    public void Keys_of_a_family_name_their_tenth_and_other_keys_no_family()
    {
        Assert.Equal("mota_tenth_01", Metrics.MotaByTenth.KeyOfTenth(1));
        Assert.Equal("hyp_per_digit_tenth_10", Metrics.HypothesesPerDigitByTenth.KeyOfTenth(10));
        Assert.Same(Metrics.MotaByTenth, Metrics.Of("mota_tenth_07"));
        Assert.Null(Metrics.Of("mota_tenth_7"));
        Assert.Null(Metrics.Of("mota_tenth_x1"));
        Assert.Null(Metrics.Of("mota_7"));
        Assert.Throws<InvalidOperationException>(() => Metrics.Mota.KeyOfTenth(1));
    }

    [Fact]
    public void A_value_prints_in_its_format_without_the_sign_of_a_zero_nor_a_number_for_NaN()
    {
        Assert.Equal("0.123", Metrics.Mota.Text(0.12345));
        Assert.Equal("-0.500", Metrics.Mota.Text(-0.5));
        Assert.Equal("0.000", Metrics.Mota.Text(-0.0004));
        Assert.Equal("0.000", Metrics.Mota.Text(-0.0));
        Assert.Equal("-1234.5", Metrics.Iwae.Text(-1234.54));
        Assert.Equal(Metric.Missing, Metrics.Mota.Text(double.NaN));
    }
}
