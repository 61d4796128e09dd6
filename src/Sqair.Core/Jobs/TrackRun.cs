using System.Globalization;
using System.Text;
using System.Text.Json;
using Sqair.Data;
using Sqair.Files;
using Sqair.Inference;
using Sqair.Model;
using Sqair.Visualisation;
using static TorchSharp.torch;

namespace Sqair.Jobs;

/// <summary>
/// Tracking new sequences as <c>sqair track</c> does: the input (a folder of frames or a dataset file) read a frame at
/// a time, each batch followed by a <see cref="TrackStream"/>, and the tracks written as CSV and JSON or as MOT
/// Challenge text, optionally drawn as a GIF.
/// </summary>
public static class TrackRun
{
    /// <summary>Sequences drawn side by side in the GIF animation: more would not fit a screen.</summary>
    public const int GifSequences = 8;

    /// <summary>
    /// Frames drawn into the GIF animation: it holds every drawn frame until it is written (about 0.16 MB a frame of
    /// 8 sequences, measured: 1 000 frames took 416 MB where tracking alone takes 256), and 300 frames play for a
    /// minute, more than anyone watches. The tracks themselves cover every frame.
    /// </summary>
    public const int GifFrames = 300;

    /// <summary>
    /// Digits written: a thousandth of a pixel and a millionth of probability, beyond what the model resolves, and few
    /// enough that float32 rounding noise (README, "Reproducible inference") does not change the files between runs.
    /// </summary>
    const int PixelDigits = 3, ProbabilityDigits = 6;

    static readonly JsonSerializerOptions IndentedJson = new() { WriteIndented = true };

    /// <summary>One tracked object in one frame, in the model's canvas pixels: its drawn box and its window.</summary>
    public sealed record Tracked(int Frame, long Id, TrackBox Box, TrackBox Window);

    /// <summary>
    /// A tracked sequence: its name (folder or index), its length, its objects, and the scale from canvas to the
    /// original frames' pixels.
    /// </summary>
    public sealed record TrackedSequence(string Name, int Frames, List<Tracked> Objects, double ScaleX, double ScaleY);

    /// <summary>
    /// What is tracked: batches of sequences, each as its size and its frames [B, C, H, W] one at a time (read as they
    /// are needed), the sequences' names by number, the scale back to their own pixels, and all their frames.
    /// </summary>
    public sealed record Input(IEnumerable<(long Size, IEnumerable<Tensor> Frames)> Batches, Func<int, string> Names,
                               (double X, double Y) Scale, long Frames)
    {
        /// <summary>Sequences per batch (a folder is one sequence).</summary>
        public long BatchSize { get; init; } = 1;
    }

    /// <summary>How to track: the same for every batch.</summary>
    /// <param name="Inference">Particles, resampling and the ending of objects.</param>
    /// <param name="Seed">Seed of every sequence's generator (with its number).</param>
    /// <param name="Lag">Frames held before the oldest is fixed (<see cref="TrackStream.Lag"/>).</param>
    /// <param name="Device">Where the model runs.</param>
    /// <param name="Draw">Whether to keep the first <see cref="GifSequences"/> sequences' frames for a GIF.</param>
    public sealed record Settings(InferenceOptions Inference, ulong Seed, int Lag, Device Device, bool Draw);

    /// <summary>The tracks of every sequence, and the drawn ones (with <see cref="Settings.Draw"/>).</summary>
    public sealed record Result(List<TrackedSequence> Sequences, List<ModelFigures.Track> Drawn);

    /// <summary>
    /// A folder of frames: one sequence named after the folder, read a frame at a time, boxes scaled back to the
    /// frames' own pixels.
    /// </summary>
    public static Input Folder(string folder, SqairConfig c)
    {
        var (frames, size) = FrameFolder.Stream(folder, c.ImgSize, c.Channels);
        var name = Path.GetFileName(Path.GetFullPath(folder).TrimEnd('/'));
        return new([(1, frames)], _ => name, ((double)size.Width / c.ImgSize, (double)size.Height / c.ImgSize),
                   FrameFolder.Files(folder).Count);
    }

    /// <summary>
    /// The first <paramref name="count"/> (default: all) sequences of a dataset file in batches, named by index, boxes
    /// in canvas pixels; a file whose frames do not fit the model is refused (<see cref="ArgumentException"/>).
    /// </summary>
    public static Input File(string path, SqairConfig c, int? count, int batchSize, Action<string>? log = null,
                             Action<string>? warn = null)
    {
        var file = SequenceFile.Open(path).Checked(log, warn);
        if (c.Misfit(file.Config) is { } misfit)
        {
            file.Dispose();
            throw new ArgumentException($"input {path}: {misfit}");
        }
        long sequences = Math.Min(count ?? file.Count!.Value, file.Count!.Value);
        return new(Batches(file, sequences, batchSize), i => $"seq-{i:D6}", (1.0, 1.0),
                   sequences * file.Config.SeqLen)
        { BatchSize = batchSize };
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

    /// <summary>
    /// Tracks every sequence of <paramref name="input"/>; <paramref name="advanced"/> hears of the sequence-frames
    /// done; <paramref name="stop"/> ends it between frames (before anything is written).
    /// </summary>
    public static Result Track(SqairModel model, Input input, Settings how, Action<long>? advanced = null,
                               CancellationToken stop = default)
    {
        var result = new Result([], []);
        foreach (var (size, frames) in input.Batches)
            TrackBatch(model, size, frames, how, input, result, advanced ?? (_ => { }), stop);
        return result;
    }

    /// <summary>
    /// Tracks one batch of <paramref name="size"/> sequences frame by frame and adds them to
    /// <paramref name="result"/> (and, when drawing, its drawn tracks up to <see cref="GifSequences"/>).
    /// </summary>
    static void TrackBatch(SqairModel model, long size, IEnumerable<Tensor> frames, Settings how, Input input,
                           Result result, Action<long> advanced, CancellationToken stop)
    {
        // a generator per sequence, as in eval, so the same input and seed give the same tracks in any batch
        using var stream = new TrackStream(model, size, how.Inference, how.Seed, first: result.Sequences.Count,
                                           how.Device, how.Lag);
        var objects = Enumerable.Range(0, (int)size).Select(_ => new List<Tracked>()).ToArray();
        bool draw = how.Draw && result.Drawn.Count < GifSequences;
        var inputs = new List<Tensor>();
        var chosen = new List<FrameOutput>();
        void Collect(IReadOnlyList<StreamedFrame> fixedFrames)
        {
            foreach (var f in fixedFrames)
            {
                for (int b = 0; b < size; b++)
                    objects[b].AddRange(f.Content[b]
                        .Zip(f.Windows[b], (box, window) => new Tracked(f.Frame, box.Id, box, window)));
                if (draw && f.Frame < GifFrames) chosen.Add(f.Chosen);   // the GIF keeps the frames it draws
                else foreach (var t in f.Chosen.Tensors()) t.Dispose();
            }
        }
        int length = 0;
        foreach (var frame in frames)
            using (frame)
            using (var onDevice = frame.to(how.Device))
            {
                stop.ThrowIfCancellationRequested();
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
            result.Sequences.Add(new TrackedSequence(input.Names(result.Sequences.Count), length, objects[b],
                                                     input.Scale.X, input.Scale.Y));
            if (drawnFrames is not null && result.Drawn.Count < GifSequences)
                result.Drawn.Add(ModelFigures.Extract(drawnFrames, chosen, b, b));
        }
    }

    /// <summary>
    /// PREFIX.csv (a row per object and frame) and PREFIX.json (the same per sequence and frame, with the input's
    /// path), written atomically; returns their paths.
    /// </summary>
    public static List<string> WriteCsvAndJson(List<TrackedSequence> sequences, string prefix, string input)
    {
        var csv = new StringBuilder("sequence,frame,id,y,x,h,w,window_y,window_x,window_h,window_w,presence_prob\n");
        var json = new List<object>();
        foreach (var (s, index) in sequences.Select((s, i) => (s, i)))
        {
            foreach (var o in s.Objects)
                csv.AppendLine(string.Join(",", new object[] { index, o.Frame, o.Id }
                    .Concat(Yxhw(o.Box).Cast<object>()).Concat(Yxhw(o.Window).Cast<object>())
                    .Append(Math.Round(o.Box.Probability, ProbabilityDigits)).Select(Invariant)));
            json.Add(new { sequence = index, name = s.Name, frames = JsonFrames(s) });
        }
        AtomicFile.WriteAllText(prefix + ".csv", csv.ToString());
        AtomicFile.WriteAllText(prefix + ".json", JsonSerializer.Serialize(new
        {
            input = Path.GetFullPath(input),
            box_format = "y,x,h,w in canvas pixels; box: tight box of what the object draws, " +
                         "window: its attention glimpse",
            sequences = json,
        }, IndentedJson));
        return [prefix + ".csv", prefix + ".json"];
    }

    static IEnumerable<object> JsonFrames(TrackedSequence s) => Enumerable.Range(0, s.Frames).Select(t => new
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

    /// <summary>
    /// One MOT Challenge file per sequence in <paramref name="dir"/> (replaced whole):
    /// <c>frame,id,bb_left,bb_top,bb_width,bb_height,conf,-1,-1,-1</c> with 1-based frames, ids and pixels, the tight
    /// box of what each object draws (the box the headline MOTA uses), in the original frames' pixels for a folder of
    /// frames. Returns the files' paths.
    /// </summary>
    public static List<string> WriteMot(List<TrackedSequence> sequences, string dir)
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
        System.IO.File.WriteAllText(file, string.Concat(lines.Select(l => l + "\n")));
    }

    /// <summary>
    /// Refuses (<see cref="ArgumentException"/>, naming <paramref name="option"/>) a MOT output folder that holds
    /// anything but an earlier run's .txt files, or any of <paramref name="inputs"/>: it is replaced whole on every
    /// run, so this is checked before tracking starts.
    /// </summary>
    public static void CheckMotFolder(string dir, string option, (string What, string? Path)[] inputs)
    {
        if (System.IO.File.Exists(dir))
            throw new ArgumentException($"{option}: {dir} is a file; the MOT output is a folder");
        bool Inside(string? path, string folder) => path is not null && RealPath.Of(path) is { } p &&
                                                   (p + "/").StartsWith(folder + "/", StringComparison.Ordinal);
        if (RealPath.Of(dir) is { } real && inputs.FirstOrDefault(i => Inside(i.Path, real)) is { What: { } what })
            throw new ArgumentException($"{option}: {dir} holds {what}, and track replaces the folder; " +
                                        $"choose another {option}");
        if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir)
                .FirstOrDefault(e => !(System.IO.File.Exists(e) && e.EndsWith(".txt", StringComparison.Ordinal)))
            is { } foreign)
            throw new ArgumentException($"{option}: {dir} holds {Path.GetFileName(foreign)}, which track did not " +
                                        $"write; it replaces the folder on every run, so choose another {option} " +
                                        "or empty it");
    }

    static double[] Yxhw(TrackBox b) => [.. new[] { b.Y, b.X, b.H, b.W }.Select(v => Math.Round(v, PixelDigits))];

    static string Invariant(object v) => Convert.ToString(v, CultureInfo.InvariantCulture)!;
}
