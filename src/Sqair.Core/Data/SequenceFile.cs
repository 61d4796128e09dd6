using System.IO.Hashing;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using Sqair.Files;

namespace Sqair.Data;

/// <summary>Anything that hands out sequences by index: a dataset file or the on-the-fly generator.</summary>
public interface ISequenceSource
{
    /// <summary>Number of sequences, or null for an unbounded stream.</summary>
    long? Count { get; }
    /// <summary>
    /// The shape of the sequences (canvas, length, channels, object slots) and, for generated data, how they were made.
    /// </summary>
    MovingMnistConfig Config { get; }
    /// <summary>Whether sequences come with ground-truth objects (imported frames may have none).</summary>
    bool HasTruth => true;
    /// <summary>Sequence <paramref name="index"/> (0-based).</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1716",
        Justification = "Get is a keyword in Visual Basic only; the library is for C# and F#, " +
                        "and renaming would break the public API")]
    Sequence Get(long index);
}

/// <summary>The unbounded on-the-fly stream: sequence i is generated when asked for.</summary>
public sealed class GeneratedSource(MovingMnist generator) : ISequenceSource
{
    /// <inheritdoc/>
    public long? Count => null;
    /// <inheritdoc/>
    public MovingMnistConfig Config => generator.Config;
    /// <inheritdoc/>
    public Sequence Get(long index) => generator.Generate(index);
}

/// <summary>
/// A dataset (generated moving MNIST, or imported frames) stored as one safetensors file, so that
/// PyTorch, numpy and TorchSharp users open it with their usual tools:
/// <list type="bullet">
/// <item><c>frames</c> U8 [N, T, C, H, W], the frames (value/255 is what the model sees), C = 1 or 3;</item>
/// <item><c>boxes</c> F32 [N, T, M, 4], (y, x, h, w) in pixels of each object's unclipped box;</item>
/// <item><c>present</c>, <c>visible</c> U8 [N, T, M];</item>
/// <item>
/// <c>labels</c>, <c>ids</c> I32 [N, M], −1 for absent slots or unknown classes (constant over a sequence).
/// </item>
/// </list>
/// The header's <c>__metadata__</c> holds <c>format</c> (<see cref="Format"/>), <c>config</c> (the
/// generator parameters as JSON: canvas_size, seq_len, max_digits = M and channels give the
/// shapes), <c>checksums</c> (XXH3-64 of each tensor's bytes, as JSON; absent in files written
/// before checksums existed), which <see cref="Verify"/> checks, and any further keys of the
/// writer: <c>seed</c> and <c>pool</c> for generated data, <c>source</c> for imported frames, and
/// <c>ground_truth</c> = <c>none</c> when the file holds no objects to measure against (M = 0).
/// Opening reads only the header and the ground truth, so it takes milliseconds even for the 1.5 GB
/// training set; sequences are read on demand with positioned reads. Not memory-mapped: mapped pages
/// count in the process's resident memory once touched (all 0.25 GB of the test split after its
/// checksum, a quarter of an evaluation's peak; docs/performance.md, "Memory").
/// </summary>
public sealed class SequenceFile : ISequenceSource, IDisposable
{
    /// <summary>The <c>format</c> metadata value of dataset files.</summary>
    public const string Format = "sqair.moving_mnist.v1";

    /// <summary>The file.</summary>
    public string Path { get; }
    /// <inheritdoc/>
    public long? Count => _n;
    /// <inheritdoc/>
    public MovingMnistConfig Config { get; }
    /// <inheritdoc/>
    public bool HasTruth { get; }
    /// <summary>The writer's metadata (generator seed and pool, import source…), as stored.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    readonly long _n;
    readonly int _t, _side, _m, _c;
    readonly SafeFileHandle _file;
    readonly long _frames, _boxes, _present, _visible, _labels, _ids;
    readonly Dictionary<string, (long Offset, long Bytes)> _tensors = [];
    readonly Dictionary<string, string>? _checksums;

    /// <summary>Metadata value of <c>ground_truth</c> for files without objects to measure against.</summary>
    public const string NoTruth = "none";

    static Safetensors.Entry[] Specs(long n, MovingMnistConfig c)
    {
        int t = c.SeqLen, side = c.CanvasSize, m = c.MaxDigits;
        return
        [
            new("frames", "U8", [n, t, c.Channels, side, side]),
            new("boxes", "F32", [n, t, m, 4]),
            new("present", "U8", [n, t, m]),
            new("visible", "U8", [n, t, m]),
            new("labels", "I32", [n, m]),
            new("ids", "I32", [n, m]),
        ];
    }

    /// <summary>
    /// Refuses (<see cref="ArgumentException"/>) to write <paramref name="count"/> sequences to
    /// <paramref name="path"/> when the disk there has not the room: a write holds every tensor twice at its
    /// end (the parts, then the file they are copied into), so twice the data must be free.
    /// </summary>
    public static void CheckDiskSpace(string path, MovingMnistConfig config, long count)
    {
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        // the nearest folder that exists: the write creates the rest on the same disk
        while (!Directory.Exists(dir) && System.IO.Path.GetDirectoryName(dir) is { } parent) dir = parent;
        double need = 2 * Specs(1, config).Sum(e => (double)e.Bytes) * count;
        long free = new DriveInfo(dir).AvailableFreeSpace;
        if (need > free)
            throw new ArgumentException(
                $"{count:N0} sequences need about {Gb(need)} of disk while written (the data twice: its parts, " +
                $"then the file) and {Gb(free)} are free in {dir}");
    }

    static string Gb(double bytes) => $"{bytes / (1L << 30):F1} GB";

    /// <summary>
    /// Generates <paramref name="count"/> sequences in parallel and writes them atomically to
    /// <paramref name="path"/>. <paramref name="progress"/> receives the number done so far.
    /// </summary>
    /// <remarks>
    /// Cancelling <paramref name="stop"/> ends the work at the next chunk with
    /// <see cref="OperationCanceledException"/> and removes every temporary file.
    /// </remarks>
    public static void Write(string path, MovingMnist generator, long count, Pool pool, Action<long>? progress = null,
                             int? threads = null, CancellationToken stop = default) =>
        Write(path, generator.Config, count, i => generator.Generate(i),
              new Dictionary<string, string>
              {
                  ["seed"] = generator.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture),
                  ["pool"] = pool.ToString().ToLowerInvariant(),
              },
              progress, threads, stop);

    /// <summary>
    /// Writes sequences 0..count−1 of <paramref name="get"/> (called in parallel; each sequence must
    /// have the shapes of <paramref name="config"/>) atomically to <paramref name="path"/>, with
    /// <paramref name="metadata"/> beside the format, config and checksums.
    /// </summary>
    public static void Write(string path, MovingMnistConfig config, long count, Func<long, Sequence> get,
                             IReadOnlyDictionary<string, string> metadata, Action<long>? progress = null,
                             int? threads = null, CancellationToken stop = default)
    {
        if (count < 1) throw new ArgumentException($"a dataset needs at least 1 sequence, not {count}");
        CheckDiskSpace(path, config, count);
        var specs = Specs(count, config);
        var tmpDir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        // The outermost folder this write creates: removed again when the write fails or is stopped.
        string? made = null;
        for (var dir = tmpDir; dir is not null && !Directory.Exists(dir); dir = System.IO.Path.GetDirectoryName(dir))
            made = dir;
        Directory.CreateDirectory(tmpDir);
        try
        {
            using var parts = new PartFiles(tmpDir, specs.Length);
            PutSequences(parts, count, get, progress, threads, stop);
            var header = new Dictionary<string, string>(metadata)
            {
                ["format"] = Format,
                ["config"] = JsonSerializer.Serialize(config),
                [Checksums.MetadataKey] = Checksums.Encode(
                    specs.Select((e, i) => KeyValuePair.Create(e.Name, parts.Checksum(i)))),
            };
            var headerBytes = Safetensors.EncodeHeader(specs, header);
            stop.ThrowIfCancellationRequested();
            AtomicFile.Write(path, output =>
            {
                output.Write(headerBytes);
                parts.CopyTo(output);
            });
        }
        catch
        {
            // the part files are closed (and so deleted) by now
            if (made is not null && !Directory.EnumerateFiles(made, "*", SearchOption.AllDirectories).Any())
                Directory.Delete(made, recursive: true);
            throw;
        }
    }

    /// <summary>
    /// Puts sequences 0..count−1 of <paramref name="get"/> into <paramref name="parts"/> in order, generating them
    /// in chunks in parallel.
    /// </summary>
    static void PutSequences(PartFiles parts, long count, Func<long, Sequence> get, Action<long>? progress,
                             int? threads, CancellationToken stop)
    {
        // Sequences are generated in chunks in parallel, then each tensor is streamed out in order:
        // per-sequence random streams make the bytes independent of the chunking and thread count.
        const int chunk = 4096;
        var options = new ParallelOptions
        {
            MaxDegreeOfParallelism = threads ?? Environment.ProcessorCount,
            CancellationToken = stop,
        };
        for (long start = 0; start < count; start += chunk)
        {
            stop.ThrowIfCancellationRequested();
            int len = (int)Math.Min(chunk, count - start);
            var seqs = new Sequence[len];
            long s0 = start;
            try { Parallel.For(0, len, options, i => seqs[i] = get(s0 + i)); }
            catch (AggregateException e)
            {
                // Every worker fails alike on a bad config or file: report the first, as the sequential
                // code would.
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.Flatten().InnerExceptions[0]);
            }
            foreach (var q in seqs) parts.Put(q);
            progress?.Invoke(start + len);
        }
    }

    /// <summary>
    /// One temporary file per tensor of <see cref="Specs"/>, deleted when closed, and the XXH3-64 of what was put
    /// in it: sequences are appended tensor by tensor, and the files are copied in order after the header.
    /// </summary>
    sealed class PartFiles : IDisposable
    {
        readonly List<FileStream> _streams;
        readonly XxHash3[] _hashes;

        public PartFiles(string folder, int tensors)
        {
            var paths = Enumerable.Range(0, tensors)
                .Select(_ => System.IO.Path.Combine(folder, $".part-{Environment.ProcessId}-{Guid.NewGuid():N}"))
                .ToArray();
            _streams = new List<FileStream>(tensors);
            _hashes = [.. paths.Select(_ => new XxHash3())];
            // When one cannot be created (a full disk), those already open are closed, and so deleted.
            try
            {
                foreach (var part in paths)
                    _streams.Add(new FileStream(part, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None,
                                                1 << 20, FileOptions.DeleteOnClose));
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        /// <summary>Appends the tensors of sequence <paramref name="q"/>, in <see cref="Specs"/>'s order.</summary>
        public void Put(Sequence q)
        {
            Put(0, q.Frames);
            Put(1, MemoryMarshalBytes(q.Boxes));
            Put(2, q.Present);
            Put(3, q.Visible);
            Put(4, MemoryMarshalBytes(q.Labels));
            Put(5, MemoryMarshalBytes(q.Ids));
        }

        void Put(int tensor, ReadOnlySpan<byte> bytes)
        {
            _streams[tensor].Write(bytes);
            _hashes[tensor].Append(bytes);
        }

        /// <summary>The checksum of what was put in tensor <paramref name="tensor"/>'s file, as stored.</summary>
        public string Checksum(int tensor) => Checksums.Text(_hashes[tensor]);

        /// <summary>Copies every file, in order, to <paramref name="output"/>.</summary>
        public void CopyTo(Stream output)
        {
            foreach (var s in _streams)
            {
                s.Position = 0;
                s.CopyTo(output, 1 << 20);
            }
        }

        public void Dispose()
        {
            foreach (var s in _streams) s.Dispose();
        }
    }

    static ReadOnlySpan<byte> MemoryMarshalBytes<T>(T[] a) where T : unmanaged =>
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan());

    SequenceFile(string path)
    {
        Path = path;
        var header = Safetensors.ReadHeader(path);
        var meta = header.Metadata;
        if (meta.GetValueOrDefault("format") != Format)
            throw new InvalidDataException(
                $"{path}: format '{meta.GetValueOrDefault("format")}' is not {Format}; not a SQAIR dataset");
        try
        {
            Config = JsonSerializer.Deserialize<MovingMnistConfig>(meta["config"])
                ?? throw new InvalidDataException("null config");
            if (Config.Channels is not (1 or 3)) throw new FormatException($"channels = {Config.Channels}, not 1 or 3");
            _checksums = Checksums.Decode(meta);
        }
        catch (Exception e) when (e is JsonException or FormatException or ArgumentException or KeyNotFoundException)
        {
            throw new InvalidDataException($"{path}: bad metadata ({e.Message})", e);
        }
        Metadata = meta;
        HasTruth = meta.GetValueOrDefault("ground_truth") != NoTruth;
        if (!header.Entries.TryGetValue("frames", out var frames))
            throw new InvalidDataException($"{path}: no 'frames' tensor");
        _n = frames.Entry.Shape[0];
        _t = Config.SeqLen; _side = Config.CanvasSize; _m = Config.MaxDigits; _c = Config.Channels;
        foreach (var s in Specs(_n, Config))
        {
            if (!header.Entries.TryGetValue(s.Name, out var found))
                throw new InvalidDataException($"{path}: no '{s.Name}' tensor");
            if (found.Entry.Dtype != s.Dtype)
                throw new InvalidDataException(
                    $"{path}: tensor '{s.Name}' has dtype {found.Entry.Dtype}, expected {s.Dtype}");
            if (!found.Entry.Shape.SequenceEqual(s.Shape))
                throw new InvalidDataException(
                    $"{path}: tensor '{s.Name}' has shape [{string.Join(", ", found.Entry.Shape)}], " +
                    $"expected [{string.Join(", ", s.Shape)}] from the header's config");
            _tensors[s.Name] = (found.Offset, s.Bytes);
        }
        _file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        (_frames, _boxes, _present, _visible, _labels, _ids) =
            (_tensors["frames"].Offset, _tensors["boxes"].Offset, _tensors["present"].Offset,
             _tensors["visible"].Offset, _tensors["labels"].Offset, _tensors["ids"].Offset);
        try { CheckValues(); }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// The ground truth's values must be possible ones (finite boxes, 0/1 flags, labels −1..9, ids
    /// ≥ −1): a few milliseconds even for the training set, so every open checks them. The frames
    /// can hold any byte; only their checksum (<see cref="Verify"/>) finds a changed one.
    /// </summary>
    void CheckValues()
    {
        ForEachChunk("boxes", (chunk, _) =>
        {
            if (!AllFinite(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(chunk)))
                throw new InvalidDataException($"{Path}: tensor 'boxes' holds NaN or infinite values " +
                                               "(a damaged file; regenerate it, or check it with sqair data verify)");
        });
        foreach (var name in new[] { "present", "visible" })
            ForEachChunk(name, (chunk, start) =>
            {
                if (chunk.IndexOfAnyExcept((byte)0, (byte)1) is >= 0 and var i)
                    throw new InvalidDataException($"{Path}: tensor '{name}' holds {chunk[i]} at element " +
                                                   $"{start + i}; only 0 and 1 are allowed");
            });
        foreach (var (name, lo, hi) in new[] { ("labels", -1, 9), ("ids", -1, int.MaxValue) })
            ForEachChunk(name, (chunk, start) =>
            {
                var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(chunk);
                if (values.IndexOfAnyExceptInRange(lo, hi) is >= 0 and var i)
                    throw new InvalidDataException($"{Path}: tensor '{name}' holds {values[i]} at element " +
                                                   $"{start / sizeof(int) + i}; allowed are " +
                                                   $"{lo}..{(hi == int.MaxValue ? "" : hi)}");
            });
    }

    /// <summary>
    /// Reads tensor <paramref name="name"/> in chunks of at most <see cref="ChunkBytes"/> and hands each to
    /// <paramref name="visit"/> with its byte offset in the tensor.
    /// </summary>
    void ForEachChunk(string name, Action<ReadOnlySpan<byte>, long> visit)
    {
        var (offset, bytes) = _tensors[name];
        var buffer = new byte[(int)Math.Min(ChunkBytes, bytes)];
        for (long done = 0; done < bytes; done += buffer.Length)
        {
            var chunk = buffer.AsSpan(0, (int)Math.Min(buffer.Length, bytes - done));
            Read(offset + done, chunk);
            visit(chunk, done);
        }
    }

    /// <summary>4 MiB: a multiple of every element size, and few reads even for the training set.</summary>
    const int ChunkBytes = 1 << 22;

    /// <summary>Fills <paramref name="dst"/> from byte <paramref name="position"/> of the file.</summary>
    void Read(long position, Span<byte> dst)
    {
        while (dst.Length > 0)
        {
            int n = RandomAccess.Read(_file, dst, position);
            if (n == 0)
                throw new InvalidDataException($"{Path}: the file ends at byte {position}, inside a tensor; " +
                                               "it was cut short (regenerate it, or check it with sqair data verify)");
            dst = dst[n..];
            position += n;
        }
    }

    static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (var v in values)
            if (!float.IsFinite(v)) return false;
        return true;
    }

    /// <summary>
    /// The stored checksum of one tensor (e.g. "frames"), or null in files written before checksums existed.
    /// </summary>
    public string? Checksum(string tensor) => _checksums?.GetValueOrDefault(tensor);

    /// <summary>
    /// Recomputes every tensor's checksum and compares it with the one stored at writing. Returns
    /// the problems found (empty: the file is as written), or null when the file has no checksums.
    /// </summary>
    public IReadOnlyList<string>? Verify()
    {
        if (_checksums is null) return null;
        var problems = new List<string>();
        foreach (var name in _tensors.Keys)
        {
            var hash = new XxHash3();
            ForEachChunk(name, (chunk, _) => hash.Append(chunk));
            if (Checksums.Problem(name, Checksums.Text(hash), _checksums) is { } problem) problems.Add(problem);
        }
        return problems;
    }

    /// <summary>
    /// Verifies the file against its checksums before it is trained or measured on (a changed byte
    /// would silently change what is learnt or measured; reading even the 1.5 GB training set costs
    /// seconds) and returns it; on a mismatch it is closed and an <see cref="InvalidDataException"/>
    /// names the first problem. A file without checksums is reported through <paramref name="warn"/>.
    /// </summary>
    public SequenceFile Checked(Action<string>? log = null, Action<string>? warn = null)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        switch (Verify())
        {
            case null:
                warn?.Invoke($"{Path} has no checksums (written by an older version): its values were checked, " +
                             "its bytes cannot be; delete it to have it generated again with checksums");
                break;
            case []:
                log?.Invoke($"{Path}: checksums verified in {sw.Elapsed.TotalSeconds:F1} s");
                break;
            case var problems:
                Dispose();
                throw new InvalidDataException($"{Path}: {problems[0]}");
        }
        return this;
    }

    /// <summary>
    /// Opens and checks a dataset file (milliseconds even for 1.5 GB: frames are read on demand); every problem
    /// names the file.
    /// </summary>
    public static SequenceFile Open(string path) => new(path);

    /// <inheritdoc/>
    public Sequence Get(long index)
    {
        if ((ulong)index >= (ulong)_n)
            throw new ArgumentOutOfRangeException(nameof(index), $"sequence {index} of {_n} in {Path}");
        var s = new Sequence(_t, _side, _m, _c);
        Copy(_frames, index, s.Frames.AsSpan());
        Copy(_boxes, index, System.Runtime.InteropServices.MemoryMarshal.AsBytes(s.Boxes.AsSpan()));
        Copy(_present, index, s.Present.AsSpan());
        Copy(_visible, index, s.Visible.AsSpan());
        Copy(_labels, index, System.Runtime.InteropServices.MemoryMarshal.AsBytes(s.Labels.AsSpan()));
        Copy(_ids, index, System.Runtime.InteropServices.MemoryMarshal.AsBytes(s.Ids.AsSpan()));
        return s;
    }

    void Copy(long tensorStart, long index, Span<byte> dst) => Read(tensorStart + index * dst.Length, dst);

    bool _disposed;

    /// <summary>Closes the file.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _file.Dispose();
    }
}
