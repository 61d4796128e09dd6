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

    /// <summary>Sequences drawn side by side in the --gif animation: more would not fit a screen.</summary>
    const int GifSequences = 8;

    /// <summary>
    /// Frames drawn into the --gif animation: it holds every drawn frame until it is written (about 0.16 MB a
    /// frame of 8 sequences, measured: 1 000 frames took 416 MB where tracking alone takes 256), and 300 frames
    /// play for a minute, more than anyone watches. The tracks themselves cover every frame.
    /// </summary>
    internal const int GifFrames = 300;

    /// <summary>--format mot writes PREFIX-mot/, a folder of one text file per sequence.</summary>
    const string MotSuffix = "-mot";

    /// <summary>
    /// Digits written: a thousandth of a pixel and a millionth of probability, beyond what the model
    /// resolves, and few enough that float32 rounding noise (README, "Reproducible inference") does
    /// not change the files between runs.
    /// </summary>
    const int PixelDigits = 3, ProbabilityDigits = 6;

    /// <summary>One tracked object in one frame, in the model's canvas pixels.</summary>
    sealed record Tracked(int Frame, long Id, TrackBox Box, TrackBox Window);

    /// <summary>
    /// A tracked sequence: its name (folder or index), its objects, and the scale from canvas to
    /// original pixels.
    /// </summary>
    sealed record TrackedSequence(string Name, int Frames, List<Tracked> Objects, double ScaleX, double ScaleY);

    public static Command Build()
    {
        var input = new Argument<string>("input")
        {
            Description = "A dataset file of ours (.safetensors) or a folder of PNG/JPEG frames " +
                          "(one sequence, in name order)",
        };
        var count = CommonOptions.AtLeast(1, new Option<int?>("--count")
        {
            Description = "Track the first N sequences of a dataset file (default: all)",
        });
        var output = new Option<string>("--out")
        {
            Description = "Output prefix: PREFIX.csv and PREFIX.json, or PREFIX-mot/<sequence>.txt, and PREFIX.gif",
            DefaultValueFactory = _ => "tracks",
        };
        var format = CommonOptions.OneOfNames<TrackFormat>(new Option<string>("--format")
        {
            Description = "csv (ours: boxes, windows, probabilities, plus JSON) " +
                          "or mot (MOT Challenge text, as py-motmetrics and TrackEval read)",
            DefaultValueFactory = _ => "csv",
        });
        var gif = new Option<bool>("--gif")
        {
            Description = "Also draw the tracks (attention windows coloured by id) over the input frames " +
                          $"of up to {GifSequences} sequences, their first {GifFrames} frames",
        };
        var batch = CommonOptions.BatchSize(32);
        var lag = CommonOptions.AtLeast(1, new Option<int>("--lag")
        {
            Description = "Frames held before the oldest is fixed: sequences up to this long get the tracks " +
                          "of the whole-sequence choice; longer ones fix each frame on the best particle " +
                          "this many frames later (memory grows with it, not with the video)",
            DefaultValueFactory = _ => TrackStream.DefaultLag,
        });
        var track = new Command("track", "Detect and track objects in new sequences; writes frame, id, box " +
                                         "and presence probability")
        {
            CommonOptions.Checkpoint, input, count, format, gif,
            CommonOptions.K, CommonOptions.Resample, CommonOptions.RejectIoU,
            CommonOptions.EndEmpty, CommonOptions.SuppressIoU, CommonOptions.Seed, output, batch, lag,
            CommonOptions.Device, CommonOptions.Threads,
        };
        track.SetAction(r =>
        {
            var device = CommonOptions.DeviceFrom(r);
            var checkpoint = CommonOptions.ReadCheckpoint(r.GetValue(CommonOptions.Checkpoint)!);
            var (model, _) = Checkpoint.LoadModel(checkpoint, device);
            var path = r.GetValue(input)!;
            if (!Directory.Exists(path) && !File.Exists(path))
                throw new UserError($"input {path}: no such file or folder");
            var (batches, names, scale, totalFrames) = Directory.Exists(path)
                ? FolderInput(path, model.Config)
                : FileInput(path, model.Config, r.GetValue(count), r.GetValue(batch));
            ulong seed = r.GetValue(CommonOptions.Seed);
            var inference = CommonOptions.Inference(r);
            // a folder is one sequence; the stream holds --lag frames and the one being inferred
            MemoryEstimate.Check(model.Config, Directory.Exists(path) ? 1 : r.GetValue(batch), inference.K,
                                 r.GetValue(lag) + 1L, MemoryEstimate.AvailableBytes(),
                                 MemoryEstimate.Inference with { Frames = "--lag" }, shownFrames: r.GetValue(lag));
            var prefix = r.GetValue(output)!;
            bool mot = Enum.Parse<TrackFormat>(r.GetValue(format)!, ignoreCase: true) == TrackFormat.Mot;
            (string, string?)[] inputs = [("the checkpoint being used", checkpoint.Path), ("the input", path)];
            if (mot) CheckMotFolder(prefix + MotSuffix, inputs);
            IEnumerable<string> files = mot ? [] : [prefix + ".csv", prefix + ".json"];
            foreach (var file in r.GetValue(gif) ? files.Append(prefix + ".gif") : files)
                Outputs.CheckFile("--out", file, inputs);

            var sequences = new List<TrackedSequence>();
            var drawn = new List<ModelFigures.Track>();
            Cli.ModelProgress().Start(ctx =>
            {
                var task = ctx.AddTask(
                    $"{Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(path)))}: " +
                    $"{totalFrames:N0} frames, K = {inference.K}", maxValue: totalFrames);
                var how = new Settings(inference, seed, r.GetValue(lag), device, r.GetValue(gif), names, scale);
                foreach (var (size, frames) in batches)
                    TrackBatch(model, size, frames, how, sequences, drawn, done =>
                    {
                        task.Increment(done);
                        ctx.Refresh();
                    });
            });

            var written = mot ? WriteMot(sequences, prefix + MotSuffix) : WriteCsvAndJson(sequences, prefix, path);
            if (drawn.Count > 0)
            {
                if (sequences.Any(s => s.Frames > GifFrames))
                    Cli.Warn($"--gif draws the first {GifFrames} frames of each sequence; the tracks cover them all");
                written.Add(prefix + ".gif");
                ModelFigures.TrackedAnimation(drawn, prefix + ".gif",
                    $"{Path.GetFileName(Path.GetFullPath(path).TrimEnd('/'))}: attention windows, coloured by id");
            }
            foreach (var f in written) Console.WriteLine(Path.GetFullPath(f));
            return ExitCodes.Success;
        });
        return track;
    }

    /// <summary>How <c>track</c> was asked to track: the same for every batch.</summary>
    sealed record Settings(InferenceOptions Inference, ulong Seed, int Lag, Device Device, bool Gif,
                           Func<int, string> Names, (double X, double Y) Scale);

    /// <summary>
    /// Tracks one batch of <paramref name="size"/> sequences frame by frame and adds them to
    /// <paramref name="sequences"/> (and, with --gif, to <paramref name="drawn"/> up to
    /// <see cref="GifSequences"/>); <paramref name="advanced"/> hears of every frame of the batch done.
    /// </summary>
    static void TrackBatch(Model.SqairModel model, long size, IEnumerable<Tensor> frames, Settings how,
                           List<TrackedSequence> sequences, List<ModelFigures.Track> drawn, Action<long> advanced)
    {
        // a generator per sequence, as in eval, so the same input and seed give the same tracks in any batch
        using var stream = new TrackStream(model, size, how.Inference, how.Seed, first: sequences.Count, how.Device,
                                           how.Lag);
        var objects = Enumerable.Range(0, (int)size).Select(_ => new List<Tracked>()).ToArray();
        bool draw = how.Gif && drawn.Count < GifSequences;
        var inputs = new List<Tensor>();
        var chosen = new List<Model.FrameOutput>();
        void Collect(IReadOnlyList<StreamedFrame> fixedFrames)
        {
            foreach (var f in fixedFrames)
            {
                for (int b = 0; b < size; b++)
                    objects[b].AddRange(f.Content[b]
                        .Zip(f.Windows[b], (box, window) => new Tracked(f.Frame, box.Id, box, window)));
                if (draw && f.Frame < GifFrames) chosen.Add(f.Chosen);   // --gif keeps the frames it draws
                else foreach (var t in f.Chosen.Tensors()) t.Dispose();
            }
        }
        int length = 0;
        foreach (var frame in frames)
            using (frame)
            using (var onDevice = frame.to(how.Device))
            {
                Cli.Stopping.ThrowIfCancellationRequested();   // SIGINT/SIGTERM: exit 130 before any file is written
                Collect(stream.Push(onDevice));
                if (draw && length < GifFrames) inputs.Add(frame.clone());
                length++;
                advanced(size);
            }
        Collect(stream.Finish());
        // Held in a variable (and freed here) rather than passed as a temporary, which no dispose scope roots
        // and another thread's collection could finalize while libtorch reads it.
        using var drawnFrames = draw ? stack(inputs) : null;
        for (int b = 0; b < size; b++)
        {
            sequences.Add(new TrackedSequence(how.Names(sequences.Count), length, objects[b],
                                              how.Scale.X, how.Scale.Y));
            if (drawnFrames is not null && drawn.Count < GifSequences)
                drawn.Add(ModelFigures.Extract(drawnFrames, chosen, b, b));
        }
    }

    static List<string> WriteCsvAndJson(List<TrackedSequence> sequences, string prefix, string input)
    {
        var csv = new StringBuilder("sequence,frame,id,y,x,h,w,window_y,window_x,window_h,window_w,presence_prob\n");
        var json = new List<object>();
        foreach (var (s, index) in sequences.Select((s, i) => (s, i)))
        {
            foreach (var o in s.Objects)
                csv.AppendLine(string.Join(",", new object[] { index, o.Frame, o.Id }
                    .Concat(Yxhw(o.Box).Cast<object>()).Concat(Yxhw(o.Window).Cast<object>())
                    .Append(Math.Round(o.Box.Probability, ProbabilityDigits)).Select(Invariant)));
            var frames = Enumerable.Range(0, s.Frames).Select(t => new
            {
                frame = t,
                objects = s.Objects.Where(o => o.Frame == t).Select(o => new
                {
                    id = o.Id,
                    box = Yxhw(o.Box),
                    window = Yxhw(o.Window),
                    presence_prob = Math.Round(o.Box.Probability, ProbabilityDigits),
                }),
            });
            json.Add(new { sequence = index, name = s.Name, frames });
        }
        AtomicFile.WriteAllText(prefix + ".csv", csv.ToString());
        Cli.WriteJson(prefix + ".json", new
        {
            input = Path.GetFullPath(input),
            box_format = "y,x,h,w in canvas pixels; box: tight box of what the object draws, " +
                         "window: its attention glimpse",
            sequences = json,
        });
        return [prefix + ".csv", prefix + ".json"];
    }

    /// <summary>
    /// One MOT Challenge file per sequence: <c>frame,id,bb_left,bb_top,bb_width,bb_height,conf,-1,-1,-1</c>
    /// with 1-based frames, ids and pixels, the tight box of what each object draws (the box the
    /// headline MOTA uses), in the original frames' pixels for a folder of frames.
    /// </summary>
    static List<string> WriteMot(List<TrackedSequence> sequences, string dir)
    {
        // The folder is replaced whole, so its files need no atomic write of their own (each would
        // scan the growing folder for stale temporaries: quadratic in the number of sequences).
        AtomicFile.WriteFolder(dir, tmp =>
        {
            foreach (var s in sequences) WriteMot(s, Path.Combine(tmp, s.Name + ".txt"));
        });
        return [.. sequences.Select(s => Path.Combine(dir, s.Name + ".txt"))];
    }

    static void WriteMot(TrackedSequence s, string file)
    {
        var lines = s.Objects.OrderBy(o => o.Frame).ThenBy(o => o.Id).Select(o => string.Join(",", new object[]
        {
            o.Frame + 1, o.Id + 1,
            Math.Round(o.Box.X * s.ScaleX + 1, PixelDigits), Math.Round(o.Box.Y * s.ScaleY + 1, PixelDigits),
            Math.Round(o.Box.W * s.ScaleX, PixelDigits), Math.Round(o.Box.H * s.ScaleY, PixelDigits),
            Math.Round(o.Box.Probability, ProbabilityDigits), -1, -1, -1,
        }.Select(Invariant)));
        File.WriteAllText(file, string.Concat(lines.Select(l => l + "\n")));
    }

    /// <summary>
    /// The MOT output folder is replaced whole on every run (<see cref="AtomicFile.WriteFolder"/>), so
    /// it must hold nothing but an earlier run's .txt files, and none of <paramref name="inputs"/>: anything else is
    /// refused before tracking starts.
    /// </summary>
    static void CheckMotFolder(string dir, (string What, string? Path)[] inputs)
    {
        if (File.Exists(dir)) throw new UserError($"--out: {dir} is a file; the MOT output is a folder");
        if (RealPath.Of(dir) is { } real &&
            inputs.FirstOrDefault(i => RealPath.Of(i.Path!) is { } p && (p + "/").StartsWith(real + "/",
                StringComparison.Ordinal)) is { What: { } what })
            throw new UserError($"--out: {dir} holds {what}, and track replaces the folder; choose another --out");
        if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir)
                .FirstOrDefault(e => !(File.Exists(e) && e.EndsWith(".txt", StringComparison.Ordinal))) is { } foreign)
            throw new UserError($"--out: {dir} holds {Path.GetFileName(foreign)}, which track did not write; " +
                                "it replaces the folder on every run, so choose another --out or empty it");
    }

    static double[] Yxhw(TrackBox b) => [.. new[] { b.Y, b.X, b.H, b.W }.Select(v => Math.Round(v, PixelDigits))];

    static string Invariant(object v) => Convert.ToString(v, CultureInfo.InvariantCulture)!;

    /// <summary>
    /// Batches of sequences, each as its size and its frames [B, C, H, W] one at a time (read as they are needed).
    /// </summary>
    sealed record Input(IEnumerable<(long Size, IEnumerable<Tensor> Frames)> Batches, Func<int, string> Names,
                        (double X, double Y) Scale, long Frames);

    /// <summary>
    /// A folder of frames: one sequence named after the folder, read a frame at a time, boxes scaled
    /// back to the frames' own pixels.
    /// </summary>
    static Input FolderInput(string folder, Model.SqairConfig c)
    {
        var (frames, size) = FrameFolder.Stream(folder, c.ImgSize, c.Channels);
        var name = Path.GetFileName(Path.GetFullPath(folder).TrimEnd('/'));
        return new([(1, frames)], _ => name, ((double)size.Width / c.ImgSize, (double)size.Height / c.ImgSize),
                   FrameFolder.Files(folder).Count);
    }

    /// <summary>A dataset file: its sequences in batches, named by index, boxes in canvas pixels.</summary>
    static Input FileInput(string path, Model.SqairConfig c, int? count, int batchSize)
    {
        var file = SequenceFile.Open(path).Checked(Cli.Log, Cli.Warn);
        if (c.Misfit(file.Config) is { } misfit)
        {
            file.Dispose();
            throw new UserError($"input {path}: {misfit}");
        }
        long sequences = Math.Min(count ?? file.Count!.Value, file.Count!.Value);
        return new(Batches(file, sequences, batchSize), i => $"seq-{i:D6}", (1.0, 1.0), sequences * file.Config.SeqLen);
    }

    static IEnumerable<(long, IEnumerable<Tensor>)> Batches(SequenceFile file, long count, int batchSize)
    {
        using (file)
        {
            var loader = new BatchLoader(file, batchSize, shuffle: false, seed: 0, CPU);
            foreach (var batch in loader.Ordered(count))
                using (batch)
                    yield return (batch.B, Enumerable.Range(0, batch.T).Select(t => batch.Frames[t].clone()));
        }
    }
}
