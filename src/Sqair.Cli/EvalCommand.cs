using System.CommandLine;
using System.Text.Json;
using Spectre.Console;
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Model;
using Sqair.Training;
using TorchSharp;

namespace Sqair.Cli;

/// <summary><c>sqair eval</c>: every docs/design.md §5 measurement of a checkpoint on the validation or test set.</summary>
static class EvalCommand
{
    public static readonly Argument<string> CheckpointArg = new("checkpoint") { Description = "A checkpoint file, or a run folder (its newest checkpoint)" };
    public static readonly Option<string> Split = new("--split") { Description = "validation or test", DefaultValueFactory = _ => "validation" };
    public static readonly Option<long?> Count = new("--count") { Description = "Evaluate the first N sequences (default: the whole set)" };
    public static readonly Option<int> K = new("--k") { Description = "Particles (importance samples)", DefaultValueFactory = _ => 5 };

    public static string ResolveCheckpoint(string path) =>
        Directory.Exists(path)
            ? Checkpoint.InRun(path).FirstOrDefault() ?? throw new UserError($"{path} has no checkpoints")
            : File.Exists(path) ? path : throw new UserError($"checkpoint {path} does not exist");

    /// <summary>The cached standard dataset of a split, generated with the model's data parameters.</summary>
    public static SequenceFile Dataset(ParseResult r, SqairConfig config, string split, long? count = null)
    {
        var cache = r.GetValue(Cli.Cache)!;
        var pool = DataCommands.ParsePool(split);
        var mnist = Cli.EnsureMnist(cache, r.GetValue(Cli.MnistDir));
        long size = pool == Pool.Train ? config.TrainSize : config.ValidSize;
        return Cli.Dataset(cache, mnist, config.DataConfig(), pool, Math.Max(size, count ?? 0), config.DataSeed);
    }

    public static Command Build()
    {
        var batch = new Option<int>("--batch-size") { Description = "Sequences per batch", DefaultValueFactory = _ => 50 };
        var json = new Option<string?>("--json") { Description = "Where to write the JSON report (default: eval-<split>-<step>.json beside the checkpoint)" };
        var eval = new Command("eval", "Measure a checkpoint: IWAE bound, ELBO, log p(x|z), KL, ESS, MSE, count accuracy, MOTA/MOTP/IDF1")
        {
            CheckpointArg, Split, Count, K, batch, json, TrainCommand.DeviceOption, TrainCommand.Threads, Cli.Cache, Cli.MnistDir,
        };
        eval.SetAction(r =>
        {
            var device = TrainCommand.Device(r);
            var path = ResolveCheckpoint(r.GetValue(CheckpointArg)!);
            var (model, iteration) = Checkpoint.LoadModel(path, device);
            var split = r.GetValue(Split)!;
            using var data = Dataset(r, model.Config, split, r.GetValue(Count));
            long n = Math.Min(r.GetValue(Count) ?? data.Count!.Value, data.Count!.Value);
            int k = r.GetValue(K);
            EvaluationReport report = null!;
            Cli.ModelProgress().Start(ctx =>
            {
                var task = ctx.AddTask($"{split}, {n} sequences, K = {k}", maxValue: n);
                report = Evaluator.Run(model, data, n, k, r.GetValue(batch), device, done => { task.Value = done; ctx.Refresh(); });
            });

            var flat = report.Flat();
            var table = new Table().Title($"{Path.GetFileName(path)} (iteration {iteration}) on {split}").AddColumns("measure", "value");
            foreach (var (key, value) in flat) table.AddRow(key, value.ToString("G6"));
            AnsiConsole.Write(table);
            var output = r.GetValue(json) ?? Path.Combine(Path.GetDirectoryName(path)!, $"eval-{split}-{iteration:D9}.json");
            var doc = new Dictionary<string, object>
            {
                ["checkpoint"] = Path.GetFullPath(path), ["iteration"] = iteration, ["split"] = split, ["k"] = k,
                ["metrics"] = flat.ToDictionary(kv => kv.Key, kv => double.IsFinite(kv.Value) ? (object)kv.Value : kv.Value.ToString()),
            };
            AtomicFile.WriteAllText(output, JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine(Path.GetFullPath(output));
            return 0;
        });
        return eval;
    }
}
