using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Inference;
using Sqair.Jobs;
using Sqair.Model;
using Sqair.Runs;
using Sqair.Training;
using TorchSharp;

namespace Sqair.Cli;

/// <summary>
/// <c>sqair eval</c>: every docs/design.md §5 measurement of a checkpoint on the validation or test set.
/// </summary>
static class EvalCommand
{
    static readonly Option<long?> Count = CommonOptions.AtLeast(1L, new Option<long?>("--count")
    {
        Description = "Evaluate the first N sequences (default: the whole set)",
    });

    static readonly Option<string?> DataFile = new("--data")
    {
        Description = "Evaluate on this dataset file (any length, digit count or scale) instead of a split",
    };

    static readonly Option<int> Batch = CommonOptions.BatchSize(50);

    static readonly Option<string?> Json = new("--json")
    {
        Description = "Where to write the JSON report (default: eval-<split>-<step>.json beside the checkpoint)",
    };

    public static Command Build()
    {
        var eval = new Command("eval", "Measure a checkpoint: IWAE bound, ELBO, log p(x|z), KL, ESS, MSE, " +
                                       "count accuracy, MOTA/MOTP/IDF1")
        {
            CommonOptions.Checkpoint, CommonOptions.Split, DataFile, Count,
            CommonOptions.K, CommonOptions.Resample, CommonOptions.RejectIoU,
            CommonOptions.EndEmpty, CommonOptions.SuppressIoU, Batch, CommonOptions.Seed, Json,
            CommonOptions.Device, CommonOptions.Threads, CommonOptions.Cache, CommonOptions.MnistDir,
        };
        eval.SetAction(Run);
        return eval;
    }

    static int Run(ParseResult r)
    {
        var device = CommonOptions.DeviceFrom(r);
        var checkpoint = CommonOptions.ReadCheckpoint(r.GetValue(CommonOptions.Checkpoint)!);
        var (model, iteration) = Checkpoint.LoadModel(checkpoint, device);
        var path = checkpoint.Path;
        var split = r.GetValue(DataFile) is { } dataPath
            ? Path.GetFileNameWithoutExtension(dataPath)
            : r.GetValue(CommonOptions.Split)!;
        var output = r.GetValue(Json)
            ?? Path.Combine(Path.GetDirectoryName(path)!, $"eval-{split}-{iteration:D9}.json");
        // Checked before the data is opened (a split's may be generated first), and again against the
        // cached file a split names.
        Outputs.CheckFile("--json", output, ("the checkpoint being evaluated", path),
                          ("the data being evaluated", r.GetValue(DataFile)));
        using var data = Cli.ModelData(r, DataFile, model.Config, r.GetValue(CommonOptions.Split)!,
                                       r.GetValue(Count));
        Outputs.CheckFile("--json", output, ("the data being evaluated", data.Path));
        long n = Math.Min(r.GetValue(Count) ?? data.Count!.Value, data.Count!.Value);
        var inference = CommonOptions.Inference(r);
        MemoryEstimate.Check(model.Config, Math.Min(r.GetValue(Batch), n), inference.K, data.Config.SeqLen,
                             MemoryEstimate.AvailableBytes(), MemoryEstimate.Inference);
        var report = Measure(r, model, data, n, inference, device, split);
        Print(report, $"{Path.GetFileName(path)} (iteration {iteration}) on {split}");
        Cli.WriteJson(output, new Dictionary<string, object>
        {
            ["checkpoint"] = Path.GetFullPath(path), ["iteration"] = iteration,
            ["split"] = split, ["data"] = data.Path, ["ground_truth"] = report.HasTruth,
            ["k"] = inference.K, ["resample"] = inference.Resampling.ToString().ToLowerInvariant(),
            ["reject_iou"] = inference.RejectIoU ?? model.Config.RejectIoU,
            ["end_empty"] = inference.Pruning?.EndEmptyAfter ?? 0,
            ["suppress_iou"] = inference.Pruning?.SuppressIoU ?? 0,
            ["seed"] = r.GetValue(CommonOptions.Seed),
            // JSON has no NaN: an undefined measure (MOTP without a match) is null, not the string
            // "NaN", which JSON readers refuse.
            ["metrics"] = report.Flat().ToDictionary(kv => kv.Key,
                                                     kv => double.IsFinite(kv.Value) ? (object?)kv.Value : null),
        });
        Console.WriteLine(Path.GetFullPath(output));
        return 0;
    }

    /// <summary>The evaluation of the first <paramref name="n"/> sequences, with a progress bar.</summary>
    static EvaluationReport Measure(ParseResult r, SqairModel model, SequenceFile data, long n,
                                    InferenceOptions inference, TorchSharp.torch.Device device, string split)
    {
        EvaluationReport report = null!;
        Cli.ModelProgress().Start(ctx =>
        {
            var task = ctx.AddTask($"{split}, {n} sequences, K = {inference.K}, " +
                                   $"resampling {inference.Resampling.ToString().ToLowerInvariant()}", maxValue: n);
            report = Evaluator.Run(model, data, n, inference, r.GetValue(Batch), device, done =>
            {
                Cli.Stopping.ThrowIfCancellationRequested();
                task.Value = done;
                ctx.Refresh();
            }, r.GetValue(CommonOptions.Seed));
        });
        return report;
    }

    /// <summary>Every measure of <paramref name="report"/> as a table.</summary>
    static void Print(EvaluationReport report, string title)
    {
        var table = new Table().Title(title).AddColumns("measure", "value");
        foreach (var (key, value) in report.Flat())
            table.AddRow(key, value.ToString("G6", CultureInfo.InvariantCulture));
        if (!report.HasTruth) table.AddRow("count accuracy, tracking", "absent: the data has no ground truth");
        AnsiConsole.Write(table);
    }
}
