using System.IO.MemoryMappedFiles;
using System.Text.Json;

namespace Sqair.Data;

/// <summary>Anything that hands out moving-MNIST sequences by index: a dataset file or the on-the-fly generator.</summary>
public interface ISequenceSource
{
    /// <summary>Number of sequences, or null for an unbounded stream.</summary>
    long? Count { get; }
    MovingMnistConfig Config { get; }
    Sequence Get(long index);
}

/// <summary>The unbounded on-the-fly stream: sequence i is generated when asked for.</summary>
public sealed class GeneratedSource(MovingMnist generator) : ISequenceSource
{
    public long? Count => null;
    public MovingMnistConfig Config => generator.Config;
    public Sequence Get(long index) => generator.Generate(index);
}

/// <summary>
/// A moving-MNIST dataset stored as one safetensors file, so that PyTorch, numpy and TorchSharp
/// users open it with their usual tools:
/// <list type="bullet">
/// <item><c>frames</c> U8 [N, T, 1, H, W], the rendered frames (value/255 is what the model sees);</item>
/// <item><c>boxes</c> F32 [N, T, M, 4], (y, x, h, w) in pixels of each digit's unclipped placement;</item>
/// <item><c>present</c>, <c>visible</c> U8 [N, T, M];</item>
/// <item><c>labels</c>, <c>ids</c> I32 [N, M], −1 for absent slots (constant over a sequence).</item>
/// </list>
/// The header's <c>__metadata__</c> holds <c>format</c> (<see cref="Format"/>), <c>config</c> (the
/// generator parameters as JSON), <c>seed</c> and <c>pool</c>. The file is memory-mapped, so opening
/// even the 1.5 GB training set takes milliseconds; sequences are copied out on demand.
/// </summary>
public sealed unsafe class SequenceFile : ISequenceSource, IDisposable
{
    public const string Format = "sqair.moving_mnist.v1";

    public string Path { get; }
    public long? Count => _n;
    public MovingMnistConfig Config { get; }
    public ulong Seed { get; }
    public Pool Pool { get; }

    readonly long _n;
    readonly int _t, _side, _m;
    readonly MemoryMappedFile _mmf;
    readonly MemoryMappedViewAccessor _view;
    readonly byte* _base;
    readonly long _frames, _boxes, _present, _visible, _labels, _ids;

    static Safetensors.Entry[] Specs(long n, int t, int side, int m) =>
    [
        new("frames", "U8", [n, t, 1, side, side]),
        new("boxes", "F32", [n, t, m, 4]),
        new("present", "U8", [n, t, m]),
        new("visible", "U8", [n, t, m]),
        new("labels", "I32", [n, m]),
        new("ids", "I32", [n, m]),
    ];

    /// <summary>
    /// Generates <paramref name="count"/> sequences in parallel and writes them atomically to
    /// <paramref name="path"/>. <paramref name="progress"/> receives the number done so far.
    /// </summary>
    public static void Write(string path, MovingMnist generator, long count, Pool pool, Action<long>? progress = null, int? threads = null)
    {
        var c = generator.Config;
        int t = c.SeqLen, side = c.CanvasSize, m = c.MaxDigits;
        var specs = Specs(count, t, side, m);
        var metadata = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["config"] = JsonSerializer.Serialize(c),
            ["seed"] = generator.Seed.ToString(),
            ["pool"] = pool.ToString().ToLowerInvariant(),
        };
        var headerBytes = Safetensors.EncodeHeader(specs, metadata);

        // Sequences are generated in chunks in parallel, then each tensor is streamed out in order:
        // per-sequence random streams make the bytes independent of the chunking and thread count.
        const int chunk = 4096;
        var tmpDir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        Directory.CreateDirectory(tmpDir);
        var parts = specs.Select(_ => System.IO.Path.Combine(tmpDir, $".part-{Guid.NewGuid():N}")).ToArray();
        var streams = parts.Select(p => new FileStream(p, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 20, FileOptions.DeleteOnClose)).ToArray();
        try
        {
            var options = new ParallelOptions { MaxDegreeOfParallelism = threads ?? Environment.ProcessorCount };
            for (long start = 0; start < count; start += chunk)
            {
                int len = (int)Math.Min(chunk, count - start);
                var seqs = new Sequence[len];
                long s0 = start;
                Parallel.For(0, len, options, i => seqs[i] = generator.Generate(s0 + i));
                foreach (var q in seqs)
                {
                    streams[0].Write(q.Frames);
                    streams[1].Write(MemoryMarshalBytes(q.Boxes));
                    streams[2].Write(q.Present);
                    streams[3].Write(q.Visible);
                    streams[4].Write(MemoryMarshalBytes(q.Labels));
                    streams[5].Write(MemoryMarshalBytes(q.Ids));
                }
                progress?.Invoke(start + len);
            }
            AtomicFile.Write(path, output =>
            {
                output.Write(headerBytes);
                foreach (var s in streams)
                {
                    s.Position = 0;
                    s.CopyTo(output, 1 << 20);
                }
            });
        }
        finally
        {
            foreach (var s in streams) s.Dispose();
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
            throw new InvalidDataException($"{path}: format '{meta.GetValueOrDefault("format")}' is not {Format}; not a SQAIR dataset");
        try
        {
            Config = JsonSerializer.Deserialize<MovingMnistConfig>(meta["config"]) ?? throw new InvalidDataException("null config");
            Seed = ulong.Parse(meta["seed"]);
            Pool = Enum.Parse<Pool>(meta["pool"], ignoreCase: true);
        }
        catch (Exception e) when (e is JsonException or FormatException or ArgumentException or KeyNotFoundException)
        {
            throw new InvalidDataException($"{path}: bad metadata ({e.Message})", e);
        }
        if (!header.Entries.TryGetValue("frames", out var frames))
            throw new InvalidDataException($"{path}: no 'frames' tensor");
        _n = frames.Entry.Shape[0];
        _t = Config.SeqLen; _side = Config.CanvasSize; _m = Config.MaxDigits;
        var offsets = new Dictionary<string, long>();
        foreach (var s in Specs(_n, _t, _side, _m))
        {
            if (!header.Entries.TryGetValue(s.Name, out var found)) throw new InvalidDataException($"{path}: no '{s.Name}' tensor");
            if (found.Entry.Dtype != s.Dtype) throw new InvalidDataException($"{path}: tensor '{s.Name}' has dtype {found.Entry.Dtype}, expected {s.Dtype}");
            if (!found.Entry.Shape.SequenceEqual(s.Shape))
                throw new InvalidDataException($"{path}: tensor '{s.Name}' has shape [{string.Join(", ", found.Entry.Shape)}], expected [{string.Join(", ", s.Shape)}] from the header's config");
            offsets[s.Name] = found.Offset;
        }
        long length = new FileInfo(path).Length;
        _mmf = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _mmf.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p;
        (_frames, _boxes, _present, _visible, _labels, _ids) =
            (offsets["frames"], offsets["boxes"], offsets["present"], offsets["visible"], offsets["labels"], offsets["ids"]);
    }

    public static SequenceFile Open(string path) => new(path);

    public Sequence Get(long index)
    {
        if ((ulong)index >= (ulong)_n) throw new ArgumentOutOfRangeException(nameof(index), $"sequence {index} of {_n} in {Path}");
        var s = new Sequence(_t, _side, _m);
        Copy(_frames, index, s.Frames.AsSpan());
        Copy(_boxes, index, System.Runtime.InteropServices.MemoryMarshal.AsBytes(s.Boxes.AsSpan()));
        Copy(_present, index, s.Present.AsSpan());
        Copy(_visible, index, s.Visible.AsSpan());
        Copy(_labels, index, System.Runtime.InteropServices.MemoryMarshal.AsBytes(s.Labels.AsSpan()));
        Copy(_ids, index, System.Runtime.InteropServices.MemoryMarshal.AsBytes(s.Ids.AsSpan()));
        return s;
    }

    void Copy(long tensorStart, long index, Span<byte> dst) =>
        new ReadOnlySpan<byte>(_base + tensorStart + index * dst.Length, dst.Length).CopyTo(dst);

    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _mmf.Dispose();
    }
}
