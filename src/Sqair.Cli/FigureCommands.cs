using System.CommandLine;
using Sqair.Data;
using Sqair.Model;
using Sqair.Training;
using Sqair.Visualisation;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Cli;

/// <summary><c>sqair render</c> and <c>sqair generate</c>: pictures and animations of what a trained model does.</summary>
static class FigureCommands
{
    static readonly Option<int> First = new("--first") { Description = "Index of the first sequence", DefaultValueFactory = _ => 0 };
    static readonly Option<int> Sequences = new("--count") { Description = "Number of sequences", DefaultValueFactory = _ => 4 };
    static readonly Option<string> Out = new("--out") { Description = "Output folder", DefaultValueFactory = _ => "renders" };
    static readonly Option<int> Delay = new("--delay") { Description = "GIF frame delay in hundredths of a second", DefaultValueFactory = _ => 20 };

    /// <summary>Frames [T, B, C, H, W] of sequences first..first+count of a split, of any length (longer ones generated on the fly).</summary>
    static Tensor Frames(ParseResult r, SqairConfig config, int length, Device device)
    {
        var split = r.GetValue(EvalCommand.Split)!;
        int first = r.GetValue(First), count = r.GetValue(Sequences);
        ISequenceSource source;
        SequenceFile? file = null;
        if (length <= config.SeqLen) source = file = EvalCommand.Dataset(r, config, split, first + count);
        else
        {
            // Longer than the stored sets: the same generator and pool, with seq_len = length.
            var mnist = Cli.EnsureMnist(r.GetValue(Cli.Cache)!, r.GetValue(Cli.MnistDir));
            source = new GeneratedSource(Datasets.Generator(mnist, config.DataConfig() with { SeqLen = length }, DataCommands.ParsePool(split), config.DataSeed));
        }
        using (file)
        {
            var seqs = Enumerable.Range(first, count).Select(i => source.Get(i)).ToList();
            using var batch = SequenceBatch.From(seqs, source.Config, length, device);
            return batch.Frames.clone();
        }
    }

    static (SqairModel Model, long Iteration) Load(ParseResult r, Device device) =>
        Checkpoint.LoadModel(EvalCommand.ResolveCheckpoint(r.GetValue(EvalCommand.CheckpointArg)!), device);

    static void Write(IReadOnlyList<ModelFigures.Track> tracks, string dir, string name, string title, int delay, bool showInputs = true)
    {
        Directory.CreateDirectory(dir);
        // A PNG row of more than 20 frames is unreadable; the GIF has them all.
        var shortTracks = tracks.Select(tr => tr with
        {
            Inputs = tr.Inputs[..Math.Min(20, tr.Inputs.Length)], Recons = tr.Recons[..Math.Min(20, tr.Recons.Length)],
        }).ToList();
        var png = Path.Combine(dir, $"{name}.png");
        var gif = Path.Combine(dir, $"{name}.gif");
        ModelFigures.SequenceFigure(shortTracks, png, title, showInputs);
        ModelFigures.Animation(tracks, gif, title, delay, showInputs);
        var still = Path.Combine(dir, $"{name}-still.png");
        ModelFigures.StillFigure(tracks, tracks[0].Inputs.Length - 1, still, $"{title}, last frame");
        foreach (var f in new[] { png, still, gif }) Console.WriteLine(Path.GetFullPath(f));
    }

    public static Command BuildRender()
    {
        var length = new Option<int?>("--seq-len") { Description = "Frames per sequence (default: the model's training length; longer ones, e.g. 100, are generated)" };
        var render = new Command("render", "Sequence figure, still figure and GIF of inputs and reconstructions with id-coloured boxes")
        {
            EvalCommand.CheckpointArg, EvalCommand.Split, First, Sequences, length, EvalCommand.K, Out, Delay,
            TrainCommand.DeviceOption, TrainCommand.Threads, Cli.Cache, Cli.MnistDir,
        };
        render.SetAction(r =>
        {
            var device = TrainCommand.Device(r);
            var (model, iteration) = Load(r, device);
            int len = r.GetValue(length) ?? model.Config.SeqLen;
            var frames = Frames(r, model.Config, len, device);
            using var _ = no_grad();
            var output = model.Forward(frames, r.GetValue(EvalCommand.K), keepFrames: true);
            var rows = output.ResampleRows(new Generator(0)).data<long>().ToArray();
            var tracks = rows.Select((row, b) => ModelFigures.Extract(frames, output.Frames!, b, row)).ToList();
            Write(tracks, r.GetValue(Out)!, $"render-{r.GetValue(EvalCommand.Split)}-{r.GetValue(First)}-T{len}",
                  $"iteration {iteration}, {r.GetValue(EvalCommand.Split)} sequences from #{r.GetValue(First)}, {len} frames (caption: count: ids)", r.GetValue(Delay));
            return 0;
        });
        return render;
    }

    public static Command BuildPlot()
    {
        var runs = new Argument<string[]>("runs") { Description = "Run folders", Arity = ArgumentArity.OneOrMore };
        var outDir = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "curves" };
        var plot = new Command("plot", "Learning curves (IWAE, count accuracy, MOTA, KL, log p(x|z), loss) of one or more runs, as PNGs") { runs, outDir };
        plot.SetAction(r =>
        {
            foreach (var f in Curves.Plot(r.GetValue(runs)!, r.GetValue(outDir)!)) Console.WriteLine(Path.GetFullPath(f));
            return 0;
        });
        return plot;
    }

    public static Command BuildGenerate()
    {
        var length = new Option<int>("--length") { Description = "Frames per generated sequence", DefaultValueFactory = _ => 10 };
        var observe = new Option<int>("--observe") { Description = "Condition on the first k frames of real sequences (0: sample from the prior)", DefaultValueFactory = _ => 0 };
        var seed = new Option<long>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 0 };
        var generate = new Command("generate", "Sample sequences from the model, unconditionally or continuing observed frames; PNG and GIF")
        {
            EvalCommand.CheckpointArg, length, observe, Sequences, First, EvalCommand.Split, EvalCommand.K, seed, Out, Delay,
            TrainCommand.DeviceOption, TrainCommand.Threads, Cli.Cache, Cli.MnistDir,
        };
        generate.SetAction(r =>
        {
            var device = TrainCommand.Device(r);
            var (model, iteration) = Load(r, device);
            manual_seed(r.GetValue(seed));
            int len = r.GetValue(length), k = r.GetValue(observe), count = r.GetValue(Sequences);
            if (k < 0 || k > len) throw new UserError($"--observe {k} must be in 0..--length ({len})");
            var c = model.Config;
            var observed = k > 0 ? Frames(r, c, k, device) : null;
            using var _ = no_grad();
            var steps = model.Generate(len, count, observed, r.GetValue(EvalCommand.K), device);
            var inputs = observed ?? zeros([0, count, c.Channels, c.ImgSize, c.ImgSize], device: device);
            var tracks = Enumerable.Range(0, count).Select(b => ModelFigures.Extract(inputs, steps, b, b)).ToList();
            var what = k > 0 ? $"{k} observed frames, then the prior" : "samples from the prior";
            Write(tracks, r.GetValue(Out)!, k > 0 ? $"generate-observe{k}-T{len}" : $"generate-prior-T{len}",
                  $"iteration {iteration}: {what} ({len} frames; caption: count: ids)", r.GetValue(Delay), showInputs: k > 0);
            return 0;
        });
        return generate;
    }
}
