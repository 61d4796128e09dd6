using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Files;
using Sqair.Inference;
using Sqair.Jobs;
using Sqair.Runs;
using Sqair.Training;
using Sqair.Visualisation;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Cli;

/// <summary>
/// <c>sqair track</c>: runs a trained model on new sequences and writes its tracks (CSV and JSON, or
/// MOT Challenge text), optionally as a GIF.
/// </summary>
static class TrackCommand
{
    /// <summary>Output formats: ours (CSV + JSON, boxes and windows) or MOT Challenge text files.</summary>
    enum TrackFormat { Csv, Mot }

    /// <summary>--format mot writes PREFIX-mot/, a folder of one text file per sequence.</summary>
    const string MotSuffix = "-mot";

    static readonly Argument<string> Input = new("input")
    {
        Description = "A dataset file of ours (.safetensors) or a folder of PNG/JPEG frames " +
                      "(one sequence, in name order)",
    };

    static readonly Option<int?> Count = CommonOptions.AtLeast(1, new Option<int?>("--count")
    {
        Description = "Track the first N sequences of a dataset file (default: all)",
    });

    static readonly Option<string> Output = new("--out")
    {
        Description = "Output prefix: PREFIX.csv and PREFIX.json, or PREFIX-mot/<sequence>.txt, and PREFIX.gif",
        DefaultValueFactory = _ => "tracks",
    };

    static readonly Option<string> Format = CommonOptions.OneOfNames<TrackFormat>(new Option<string>("--format")
    {
        Description = "csv (ours: boxes, windows, probabilities, plus JSON) " +
                      "or mot (MOT Challenge text, as py-motmetrics and TrackEval read)",
        DefaultValueFactory = _ => "csv",
    });

    static readonly Option<bool> Gif = new("--gif")
    {
        Description = "Also draw the tracks (attention windows coloured by id) over the input frames " +
                      $"of up to {TrackRun.GifSequences} sequences, their first {TrackRun.GifFrames} frames",
    };

    static readonly Option<int> Batch = CommonOptions.BatchSize(32);

    static readonly Option<int> Lag = CommonOptions.AtLeast(1, new Option<int>("--lag")
    {
        Description = "Frames held before the oldest is fixed: sequences up to this long get the tracks " +
                      "of the whole-sequence choice; longer ones fix each frame on the best particle " +
                      "this many frames later (memory grows with it, not with the video)",
        DefaultValueFactory = _ => TrackStream.DefaultLag,
    });

    public static Command Build()
    {
        var track = new Command("track", "Detect and track objects in new sequences; writes frame, id, box " +
                                         "and presence probability")
        {
            CommonOptions.Checkpoint, Input, Count, Format, Gif,
            CommonOptions.K, CommonOptions.Resample, CommonOptions.RejectIoU,
            CommonOptions.EndEmpty, CommonOptions.SuppressIoU, CommonOptions.Seed, Output, Batch, Lag,
            CommonOptions.Device, CommonOptions.Threads,
        };
        track.SetAction(Run);
        return track;
    }

    static int Run(ParseResult r)
    {
        var device = CommonOptions.DeviceFrom(r);
        var checkpoint = CommonOptions.ReadCheckpoint(r.GetValue(CommonOptions.Checkpoint)!);
        var (model, _) = Checkpoint.LoadModel(checkpoint, device);
        var path = r.GetValue(Input)!;
        if (!Directory.Exists(path) && !File.Exists(path))
            throw new UserError($"input {path}: no such file or folder");
        var source = Directory.Exists(path)
            ? TrackRun.Folder(path, model.Config)
            : TrackRun.File(path, model.Config, r.GetValue(Count), r.GetValue(Batch), Cli.Log, Cli.Warn);
        var inference = CommonOptions.Inference(r);
        // a folder is one sequence; the stream holds --lag frames and the one being inferred
        MemoryEstimate.Check(model.Config, source.BatchSize, inference.K,
                             r.GetValue(Lag) + 1L, MemoryEstimate.AvailableBytes(),
                             MemoryEstimate.Inference with { Frames = "--lag" }, shownFrames: r.GetValue(Lag));
        var prefix = r.GetValue(Output)!;
        bool mot = Enum.Parse<TrackFormat>(r.GetValue(Format)!, ignoreCase: true) == TrackFormat.Mot;
        (string, string?)[] inputs = [("the checkpoint being used", checkpoint.Path), ("the input", path)];
        if (mot) TrackRun.CheckMotFolder(prefix + MotSuffix, "--out", inputs);
        IEnumerable<string> files = mot ? [] : [prefix + ".csv", prefix + ".json"];
        foreach (var file in r.GetValue(Gif) ? files.Append(prefix + ".gif") : files)
            Outputs.CheckFile("--out", file, inputs);

        var how = new TrackRun.Settings(inference, r.GetValue(CommonOptions.Seed), r.GetValue(Lag), device,
                                        r.GetValue(Gif));
        TrackRun.Result? result = null;
        Cli.ModelProgress().Start(ctx =>
        {
            var task = ctx.AddTask(
                $"{Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(path)))}: " +
                $"{source.Frames:N0} frames, K = {inference.K}", maxValue: source.Frames);
            result = TrackRun.Track(model, source, how, done =>
            {
                task.Increment(done);
                ctx.Refresh();
            }, Cli.Stopping);   // SIGINT/SIGTERM: exit 130 before any file is written
        });

        var written = mot
            ? TrackRun.WriteMot(result!.Sequences, prefix + MotSuffix)
            : TrackRun.WriteCsvAndJson(result!.Sequences, prefix, path);
        if (result.Drawn.Count > 0)
        {
            if (result.Sequences.Any(s => s.Frames > TrackRun.GifFrames))
                Cli.Warn($"--gif draws the first {TrackRun.GifFrames} frames of each sequence; " +
                         "the tracks cover them all");
            written.Add(prefix + ".gif");
            ModelFigures.TrackedAnimation(result.Drawn, prefix + ".gif",
                $"{Path.GetFileName(Path.GetFullPath(path).TrimEnd('/'))}: attention windows, coloured by id");
        }
        foreach (var f in written) Console.WriteLine(Path.GetFullPath(f));
        return ExitCodes.Success;
    }
}
