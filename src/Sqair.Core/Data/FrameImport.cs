using System.Globalization;
using System.Text.Json;

namespace Sqair.Data;

/// <summary>
/// One object's box in a frame of MOT Challenge ground truth: (x, y) is the top-left corner,
/// 0-based pixels of the original frame.
/// </summary>
public readonly record struct MotBox(int Frame, int Id, float X, float Y, float W, float H);

/// <summary>How <see cref="FrameImport.Import"/> turns folders of frames into a dataset.</summary>
/// <param name="CanvasSize">Side of the square canvas every frame is stretched to.</param>
/// <param name="Channels">1 (grey: mean of R, G, B) or 3 (colour).</param>
/// <param name="SeqLen">
/// Cut each folder into consecutive windows of this many frames (the remainder is dropped); null: one
/// sequence per folder, all of one length.
/// </param>
/// <param name="Filter">How frames are resized to the canvas.</param>
public sealed record ImportOptions(int CanvasSize, int Channels, int? SeqLen,
                                   ResizeFilter Filter = ResizeFilter.Linear);

/// <summary>What an import wrote.</summary>
public sealed record ImportSummary(int Folders, long Sequences, int Frames, bool HasTruth, int Slots,
                                   int DroppedFrames);

/// <summary>
/// Turns a user's videos (folders of frames, <see cref="FrameFolder"/>) into a dataset file. Ground
/// truth in the MOT Challenge text format is imported when a folder has <c>gt/gt.txt</c> (as MOT17
/// lays it out): one line per box, <c>frame,id,bb_left,bb_top,bb_width,bb_height[,conf,class,visibility]</c>,
/// frames and pixels 1-based; lines whose <c>conf</c> is 0 are MOT17's "ignore" entries and are
/// skipped. Boxes are scaled with their frames; an object's slot is the order of its first
/// appearance in the sequence; its label is −1 (MOT has no digit classes).
/// </summary>
public static class FrameImport
{
    /// <summary>Where a sequence folder keeps its ground truth, as MOT17 lays it out.</summary>
    public const string TruthFile = "gt/gt.txt";

    /// <summary>
    /// Reads a MOT ground-truth file; every problem names the file and line. Frames must lie in
    /// 1..<paramref name="frames"/>.
    /// </summary>
    public static List<MotBox> ReadMotTruth(string path, int frames)
    {
        var boxes = new List<MotBox>();
        // an object is in one place per frame: a second line for it would be a second digit with its id
        var firstLine = new Dictionary<(int Frame, int Id), int>();
        int lineNumber = 0;
        foreach (var raw in File.ReadLines(path))
        {
            lineNumber++;
            var line = raw.Trim();
            if (line.Length == 0) continue;
            var f = line.Split(',');
            string where = $"{path}:{lineNumber}";
            if (f.Length < 6)
                throw new InvalidDataException($"{where}: expected frame,id,bb_left,bb_top,bb_width,bb_height" +
                                               $"[,conf,class,visibility], found {f.Length} fields");
            // Boxes are stored as floats: a value beyond float's range would become infinite.
            double Field(int i) =>
                double.TryParse(f[i], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) &&
                Math.Abs(v) <= float.MaxValue
                    ? v
                    : throw new InvalidDataException(
                        $"{where}: field {i + 1} '{f[i]}' is not a number (within ±{float.MaxValue:G3})");
            // A fraction or an id past int's range would be cut or clamped silently, moving a box to another
            // frame or merging two objects.
            int Whole(int i, string name, int min) =>
                Field(i) is var v && v == Math.Floor(v) && v >= min && v <= int.MaxValue
                    ? (int)v
                    : throw new InvalidDataException(
                        $"{where}: {name} '{f[i]}' is not a whole number in {min}..{int.MaxValue}");
            if (f.Length >= 7 && Field(6) == 0) continue;
            int frame = Whole(0, "frame", 1), id = Whole(1, "id", 0);
            if (frame > frames)
                throw new InvalidDataException($"{where}: frame {frame} is outside the folder's frames 1..{frames}");
            if (!firstLine.TryAdd((frame, id), lineNumber))
                throw new InvalidDataException(
                    $"{where}: frame {frame}, id {id} is given twice (first on line {firstLine[(frame, id)]})");
            double w = Field(4), h = Field(5);
            if (w <= 0 || h <= 0) throw new InvalidDataException($"{where}: box size {w}×{h} is not positive");
            boxes.Add(new MotBox(frame - 1, id, (float)(Field(2) - 1), (float)(Field(3) - 1), (float)w, (float)h));
        }
        return boxes;
    }

    sealed record Window(string Folder, IReadOnlyList<string> Files, int First, List<MotBox>? Truth);

    /// <summary>
    /// Imports folders of frames (and their ground truth, if every folder has some) into a dataset
    /// file at <paramref name="outPath"/>.
    /// </summary>
    public static ImportSummary Import(IReadOnlyList<string> folders, string outPath, ImportOptions options,
                                       Action<long>? progress = null, int? threads = null,
                                       CancellationToken stop = default)
    {
        if (folders.Count == 0) throw new ArgumentException("no folders to import");
        if (options.Channels is not (1 or 3))
            throw new ArgumentException($"--channels {options.Channels}: allowed are 1 (grey) and 3 (colour)");
        if (options.CanvasSize < 8) throw new ArgumentException($"--size {options.CanvasSize}: must be at least 8");
        var files = folders.Select(FrameFolder.Files).ToList();
        bool hasTruth = HasTruth(folders);
        int seqLen = SequenceLength(folders, files, options.SeqLen);
        var (windows, dropped) = Windows(folders, files, seqLen, hasTruth);
        int slots = hasTruth ? windows.Max(w => w.Truth!.Select(b => b.Id).Distinct().Count()) : 0;
        var config = new MovingMnistConfig
        {
            CanvasSize = options.CanvasSize,
            SeqLen = seqLen,
            MinDigits = 0,
            MaxDigits = slots,
            Channels = options.Channels,
        };

        Sequence Build(long index)
        {
            var window = windows[(int)index];
            var frameFiles = window.Files.Skip(window.First).Take(seqLen).ToList();
            var seq = new Sequence(seqLen, options.CanvasSize, slots, options.Channels);
            FrameFolder.Read(frameFiles, options.CanvasSize, options.Channels, options.Filter, out var size)
                .CopyTo(seq.Frames, 0);
            if (window.Truth is { } truth) FillTruth(seq, truth, slots, options.CanvasSize, size);
            return seq;
        }

        var metadata = SourceMetadata(folders, windows, seqLen, options.Filter, hasTruth);
        SequenceFile.Write(outPath, config, windows.Count, Build, metadata, progress, threads, stop);
        return new ImportSummary(folders.Count, windows.Count, windows.Count * seqLen, hasTruth, slots, dropped);
    }

    /// <summary>Whether the folders have ground truth: all of them, or none; some only is refused.</summary>
    static bool HasTruth(IReadOnlyList<string> folders)
    {
        var withTruth = folders.Where(d => File.Exists(Path.Combine(d, TruthFile))).ToList();
        if (withTruth.Count > 0 && withTruth.Count < folders.Count)
            throw new ArgumentException(
                $"{folders.First(d => !withTruth.Contains(d))} has no {TruthFile} but {withTruth[0]} has: " +
                "import folders with ground truth and without it separately");
        return withTruth.Count > 0;
    }

    /// <summary>
    /// The frames of a sequence: <paramref name="seqLen"/> if given, else the folders' one number of frames.
    /// </summary>
    static int SequenceLength(IReadOnlyList<string> folders, List<IReadOnlyList<string>> files, int? seqLen)
    {
        int length = seqLen ?? files[0].Count;
        if (seqLen is null && files.Any(f => f.Count != length))
            throw new ArgumentException(
                "the folders hold different numbers of frames " +
                $"({string.Join(", ", folders.Zip(files, (d, f) => $"{Path.GetFileName(d)}: {f.Count}").Take(4))}); " +
                "give --seq_len to cut them into windows of equal length");
        if (length < 1) throw new ArgumentException($"--seq_len {length}: must be at least 1");
        return length;
    }

    /// <summary>
    /// Each folder cut into windows of <paramref name="seqLen"/> frames, with their ground truth, and how many
    /// frames were left over at the folders' ends.
    /// </summary>
    static (List<Window> Windows, int Dropped) Windows(IReadOnlyList<string> folders,
                                                       List<IReadOnlyList<string>> files, int seqLen, bool hasTruth)
    {
        var windows = new List<Window>();
        int dropped = 0;
        for (int i = 0; i < folders.Count; i++)
        {
            if (hasTruth) CheckNumbered(files[i]);
            var truth = hasTruth ? ReadMotTruth(Path.Combine(folders[i], TruthFile), files[i].Count) : null;
            int count = files[i].Count / seqLen;
            if (count == 0)
                throw new ArgumentException(
                    $"{folders[i]} holds {files[i].Count} frames, fewer than --seq_len {seqLen}");
            dropped += files[i].Count - count * seqLen;
            for (int w = 0; w < count; w++)
                windows.Add(new Window(folders[i], files[i], w * seqLen,
                    truth?.Where(b => b.Frame >= w * seqLen && b.Frame < (w + 1) * seqLen)
                        .Select(b => b with { Frame = b.Frame - w * seqLen }).ToList()));
        }
        return (windows, dropped);
    }

    /// <summary>
    /// The dataset's metadata: its <c>source</c> (folders, windows, filter) and, without ground truth,
    /// <c>ground_truth</c> = <see cref="SequenceFile.NoTruth"/>.
    /// </summary>
    static Dictionary<string, string> SourceMetadata(IReadOnlyList<string> folders, List<Window> windows, int seqLen,
                                                     ResizeFilter filter, bool hasTruth)
    {
        var metadata = new Dictionary<string, string>
        {
            ["source"] = JsonSerializer.Serialize(new
            {
                folders = folders.Select(Path.GetFullPath),
                seq_len = seqLen,
                filter = filter.ToString().ToLowerInvariant(),
                windows = windows.Select(w =>
                    new { folder = Path.GetFileName(Path.GetFullPath(w.Folder)), first_frame = w.First + 1 }),
            }),
        };
        if (!hasTruth) metadata["ground_truth"] = SequenceFile.NoTruth;
        return metadata;
    }

    /// <summary>
    /// Ground truth's frame N is the image numbered N (MOT17's <c>000001.jpg</c>, …), not the Nth file:
    /// a missing image or numbers starting elsewhere would put every later box on the wrong frame,
    /// so the files of a folder with ground truth must be numbered 1..n without gaps.
    /// </summary>
    static void CheckNumbered(IReadOnlyList<string> files)
    {
        for (int i = 0; i < files.Count; i++)
        {
            var stem = Path.GetFileNameWithoutExtension(files[i]);
            if (!int.TryParse(stem, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
                throw new InvalidDataException(
                    $"{files[i]}: with {TruthFile}, frames are matched to ground truth by number, " +
                    "so every frame file is named by its number (000001.jpg, …)");
            if (number != i + 1)
                throw new InvalidDataException($"{files[i]}: numbered {number} but frame {i + 1} in name order; " +
                                               $"{TruthFile}'s frame N is the image numbered N, " +
                                               $"so the frames must be numbered 1..{files.Count} without gaps" +
                                               (number > i + 1 ? $" (no frame {i + 1})" : ""));
        }
    }

    /// <summary>
    /// Scales a window's MOT boxes from the original frame size to the canvas and fills the sequence's ground truth.
    /// </summary>
    static void FillTruth(Sequence seq, List<MotBox> truth, int slots, int side, (int Width, int Height) size)
    {
        var slotOf = new Dictionary<int, int>();
        foreach (var b in truth.OrderBy(b => b.Frame))
            if (!slotOf.ContainsKey(b.Id)) slotOf[b.Id] = slotOf.Count;
        foreach (var (id, k) in slotOf) seq.Ids[k] = id;
        float sx = (float)side / size.Width, sy = (float)side / size.Height;
        foreach (var b in truth)
        {
            int k = slotOf[b.Id], at = (b.Frame * slots + k) * 4;
            float y = b.Y * sy, x = b.X * sx, h = b.H * sy, w = b.W * sx;
            (seq.Boxes[at], seq.Boxes[at + 1], seq.Boxes[at + 2], seq.Boxes[at + 3]) = (y, x, h, w);
            seq.Present[b.Frame * slots + k] = 1;
            seq.Visible[b.Frame * slots + k] = (byte)(y < side && x < side && y + h > 0 && x + w > 0 ? 1 : 0);
        }
    }
}
