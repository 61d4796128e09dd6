using System.CommandLine;
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Inference;
using Sqair.Model;
using Sqair.Runs;
using Sqair.Training;
using Sqair.Visualisation;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Cli;

/// <summary>
/// <c>sqair render</c> and <c>sqair generate</c>: pictures and animations of what a trained model does.
/// </summary>
static class FigureCommands
{
    static readonly Option<int> First = CommonOptions.AtLeast(0, new Option<int>("--first")
    {
        Description = "Index of the first sequence",
        DefaultValueFactory = _ => 0,
    });
    static readonly Option<int> Sequences = CommonOptions.AtLeast(1, new Option<int>("--count")
    {
        Description = "Number of sequences",
        DefaultValueFactory = _ => 4,
    });
    static readonly Option<string> Out = new("--out")
    {
        Description = "Output folder",
        DefaultValueFactory = _ => "renders",
    };
    static readonly Option<int> Delay = CommonOptions.AtLeast(1, new Option<int>("--delay")
    {
        Description = "GIF frame delay in hundredths of a second",
        DefaultValueFactory = _ => 20,
    });
    static readonly Option<string?> DataFile = new("--data")
    {
        Description = "Take the sequences from this dataset file instead of a split",
    };

    /// <summary>
    /// Frames [T, B, C, H, W] of <c>count</c> sequences of a split from <c>first</c> on, skipping
    /// those without a digit, of any length (longer ones generated on the fly).
    /// </summary>
    static Tensor Frames(ParseResult r, SqairConfig config, int length, string lengthOption, Device device)
    {
        var split = r.GetValue(CommonOptions.Split)!;
        int first = r.GetValue(First), count = r.GetValue(Sequences);
        ISequenceSource source;
        SequenceFile? file = null;
        if (r.GetValue(DataFile) is not null || length <= config.SeqLen)
            source = file = Cli.ModelData(r, DataFile, config, split, first + count);
        else
        {
            // Longer than the stored sets: the same generator and pool, with seq_len = length.
            source = new GeneratedSource(Datasets.Generator(Cli.EnsureMnist(r),
                                                            config.DataConfig() with { SeqLen = length },
                                                            CommonOptions.ParsePool(split), config.DataSeed));
        }
        using (file)
        {
            if (source.Count is { } n && first + count > n)
                throw new UserError($"--first {first} --count {count}: " +
                                    $"{(file?.Path ?? "the data")} holds {n} sequences");
            if (source.Config.SeqLen < length)
                throw new UserError($"{lengthOption} {length}: {(file?.Path ?? "the data")} has " +
                                    $"{source.Config.SeqLen} frames per sequence");
            using var batch = SequenceBatch.Of(source, SequenceBatch.Showing(source, count, first), length, device);
            return batch.Frames.clone();
        }
    }

    static (SqairModel Model, long Iteration) Load(ParseResult r, Device device) =>
        Checkpoint.LoadModel(CommonOptions.ReadCheckpoint(r.GetValue(CommonOptions.Checkpoint)!), device);

    /// <summary>
    /// The sequence figure, the GIF and the still figure of <paramref name="tracks"/>; a stop request (SIGINT,
    /// SIGTERM) between them removes those already written, so a stopped command leaves no part of its output.
    /// </summary>
    static void Write(IReadOnlyList<ModelFigures.Track> tracks, string dir, string name, string title, int delay,
                      bool showInputs = true)
    {
        Cli.Stopping.ThrowIfCancellationRequested();
        bool created = !Directory.Exists(dir);
        Directory.CreateDirectory(dir);
        // A PNG row of more than 20 frames is unreadable; the GIF has them all.
        var shortTracks = tracks.Select(tr => tr with
        {
            Inputs = tr.Inputs[..Math.Min(20, tr.Inputs.Length)],
            Recons = tr.Recons[..Math.Min(20, tr.Recons.Length)],
        }).ToList();
        var png = Path.Combine(dir, $"{name}.png");
        var gif = Path.Combine(dir, $"{name}.gif");
        var still = Path.Combine(dir, $"{name}-still.png");
        var figures = new (string Path, Action Draw)[]
        {
            (png, () => ModelFigures.SequenceFigure(shortTracks, png, title, showInputs)),
            (gif, () => ModelFigures.Animation(tracks, gif, title, delay, showInputs)),
            (still, () => ModelFigures.StillFigure(tracks, tracks[0].Inputs.Length - 1, still,
                                                   $"{title}, last frame")),
        };
        var written = new List<string>();
        try
        {
            foreach (var (path, draw) in figures)
            {
                Cli.Stopping.ThrowIfCancellationRequested();
                draw();
                written.Add(path);
            }
        }
        catch (OperationCanceledException)
        {
            foreach (var path in written) File.Delete(path);
            if (created && !Directory.EnumerateFileSystemEntries(dir).Any()) Directory.Delete(dir);
            throw;
        }
        foreach (var f in new[] { png, still, gif }) Console.WriteLine(Path.GetFullPath(f));
    }

    public static Command BuildRender()
    {
        var length = CommonOptions.AtLeast(1, new Option<int?>("--seq_len")
        {
            Description = "Frames per sequence (default: the model's training length; " +
                          "longer ones, e.g. 100, are generated)",
        });
        var render = new Command("render", "Sequence figure, still figure and GIF of inputs and reconstructions " +
                                           "with id-coloured boxes")
        {
            CommonOptions.Checkpoint, CommonOptions.Split, DataFile, First, Sequences, length,
            CommonOptions.K, CommonOptions.Resample, CommonOptions.RejectIoU,
            CommonOptions.EndEmpty, CommonOptions.SuppressIoU, CommonOptions.Seed, Out, Delay,
            CommonOptions.Device, CommonOptions.Threads, CommonOptions.Cache, CommonOptions.MnistDir,
        };
        render.SetAction(r =>
        {
            Outputs.CheckFolder("--out", r.GetValue(Out)!);
            var device = CommonOptions.DeviceFrom(r);
            var (model, iteration) = Load(r, device);
            int len = r.GetValue(length) ?? model.Config.SeqLen;
            var frames = Frames(r, model.Config, len, "--seq_len", device);
            Cli.Stopping.ThrowIfCancellationRequested();
            var inferred = Infer.Run(model, frames, CommonOptions.Inference(r), r.GetValue(CommonOptions.Seed),
                                     stop: Cli.Stopping);
            var tracks = ModelFigures.Extract(frames, inferred.Output, inferred.Rows);
            var from = r.GetValue(DataFile) is { } dataPath
                ? Path.GetFileNameWithoutExtension(dataPath)
                : r.GetValue(CommonOptions.Split)!;
            Write(tracks, r.GetValue(Out)!, $"render-{from}-{r.GetValue(First)}-T{len}",
                  $"iteration {iteration}, {from} sequences from #{r.GetValue(First)}, {len} frames " +
                  "(caption: count: ids)", r.GetValue(Delay));
            return 0;
        });
        return render;
    }

    public static Command BuildPlot()
    {
        var runs = new Argument<string[]>("runs") { Description = "Run folders", Arity = ArgumentArity.OneOrMore };
        var outDir = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "curves" };
        var plot = new Command("plot", "Learning curves (IWAE, count accuracy, MOTA, KL, log p(x|z), loss) " +
                                       "of one or more runs, as PNGs")
        {
            runs, outDir,
        };
        plot.SetAction(r =>
        {
            var written = Curves.Plot(r.GetValue(runs)!, r.GetValue(outDir)!, Cli.Warn);
            if (written.Count == 0)
                throw new UserError("nothing to plot: no measurements in the metrics.jsonl of " +
                                    $"{string.Join(", ", r.GetValue(runs)!)}");
            foreach (var f in written) Console.WriteLine(Path.GetFullPath(f));
            return ExitCodes.Success;
        });
        return plot;
    }

    public static Command BuildGenerate()
    {
        var length = CommonOptions.AtLeast(1, new Option<int>("--length")
        {
            Description = "Frames per generated sequence",
            DefaultValueFactory = _ => 10,
        });
        var observe = CommonOptions.AtLeast(0, new Option<int>("--observe")
        {
            Description = "Condition on the first k frames of real sequences (0: sample from the prior)",
            DefaultValueFactory = _ => 0,
        });
        var generate = new Command("generate", "Sample sequences from the model, unconditionally or continuing " +
                                               "observed frames; PNG and GIF")
        {
            CommonOptions.Checkpoint, length, observe, Sequences, First, CommonOptions.Split, DataFile,
            CommonOptions.K, CommonOptions.Seed, Out, Delay,
            CommonOptions.Device, CommonOptions.Threads, CommonOptions.Cache, CommonOptions.MnistDir,
        };
        generate.SetAction(r =>
        {
            Outputs.CheckFolder("--out", r.GetValue(Out)!);
            var device = CommonOptions.DeviceFrom(r);
            var (model, iteration) = Load(r, device);
            manual_seed((long)r.GetValue(CommonOptions.Seed));
            int len = r.GetValue(length), k = r.GetValue(observe), count = r.GetValue(Sequences);
            if (k < 0 || k > len) throw new UserError($"--observe {k}: must be in 0..--length ({len})");
            var c = model.Config;
            var observed = k > 0 ? Frames(r, c, k, "--observe", device) : null;
            using var _ = no_grad();
            Cli.Stopping.ThrowIfCancellationRequested();
            var steps = model.Generate(len, count, observed, r.GetValue(CommonOptions.K), device, Cli.Stopping);
            var inputs = observed ?? zeros([0, count, c.Channels, c.ImgSize, c.ImgSize], device: device);
            var tracks = Enumerable.Range(0, count).Select(b => ModelFigures.Extract(inputs, steps, b, b)).ToList();
            var what = k > 0 ? $"{k} observed frames, then the prior" : "samples from the prior";
            Write(tracks, r.GetValue(Out)!, k > 0 ? $"generate-observe{k}-T{len}" : $"generate-prior-T{len}",
                  $"iteration {iteration}: {what} ({len} frames; caption: count: ids)", r.GetValue(Delay),
                  showInputs: k > 0);
            return 0;
        });
        return generate;
    }
}
