using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

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

    record TensorSpec(string Name, string Dtype, long[] Shape);

    static TensorSpec[] Specs(long n, int t, int side, int m) =>
    [
        new("frames", "U8", [n, t, 1, side, side]),
        new("boxes", "F32", [n, t, m, 4]),
        new("present", "U8", [n, t, m]),
        new("visible", "U8", [n, t, m]),
        new("labels", "I32", [n, m]),
        new("ids", "I32", [n, m]),
    ];

    static int ElementSize(string dtype) => dtype switch { "U8" => 1, "F32" or "I32" => 4, _ => throw new ArgumentException(dtype) };

    /// <summary>
    /// Generates <paramref name="count"/> sequences in parallel and writes them atomically to
    /// <paramref name="path"/>. <paramref name="progress"/> receives the number done so far.
    /// </summary>
    public static void Write(string path, MovingMnist generator, long count, Pool pool, Action<long>? progress = null, int? threads = null)
    {
        var c = generator.Config;
        int t = c.SeqLen, side = c.CanvasSize, m = c.MaxDigits;
        var specs = Specs(count, t, side, m);
        var meta = new JsonObject
        {
            ["format"] = Format,
            ["config"] = JsonSerializer.Serialize(c),
            ["seed"] = generator.Seed.ToString(),
            ["pool"] = pool.ToString().ToLowerInvariant(),
        };
        var header = new JsonObject { ["__metadata__"] = meta };
        long offset = 0;
        foreach (var s in specs)
        {
            long bytes = s.Shape.Aggregate(1L, (a, b) => a * b) * ElementSize(s.Dtype);
            header[s.Name] = new JsonObject
            {
                ["dtype"] = s.Dtype,
                ["shape"] = new JsonArray(s.Shape.Select(x => (JsonNode)x).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        var headerBytes = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(headerBytes, (ulong)padded);
        json.CopyTo(headerBytes, 8);
        headerBytes.AsSpan(8 + json.Length).Fill((byte)' ');

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
        var length = new FileInfo(path).Length;
        if (length < 8) throw new InvalidDataException($"{path}: {length} bytes is too short for a safetensors file");
        ulong headerLength;
        byte[] json;
        using (var fs = File.OpenRead(path))
        {
            var lenBytes = new byte[8];
            fs.ReadExactly(lenBytes);
            headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
            if (headerLength > (ulong)(length - 8) || headerLength > 100_000_000)
                throw new InvalidDataException($"{path}: header length {headerLength} exceeds the file ({length} bytes): truncated or not a safetensors file");
            json = new byte[headerLength];
            fs.ReadExactly(json);
        }
        JsonObject header;
        try { header = JsonNode.Parse(json)?.AsObject() ?? throw new InvalidDataException("empty header"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: unreadable safetensors header ({e.Message})", e); }

        var meta = header["__metadata__"]?.AsObject() ?? throw new InvalidDataException($"{path}: no __metadata__ in the header; not a SQAIR dataset");
        if ((string?)meta["format"] != Format)
            throw new InvalidDataException($"{path}: format '{(string?)meta["format"]}' is not {Format}");
        try
        {
            Config = JsonSerializer.Deserialize<MovingMnistConfig>((string)meta["config"]!) ?? throw new InvalidDataException("null config");
            Seed = ulong.Parse((string)meta["seed"]!);
            Pool = Enum.Parse<Pool>((string)meta["pool"]!, ignoreCase: true);
        }
        catch (Exception e) when (e is JsonException or FormatException or ArgumentException or InvalidCastException or NullReferenceException)
        {
            throw new InvalidDataException($"{path}: bad metadata ({e.Message})", e);
        }

        var frames = header["frames"]?["shape"]?.AsArray() ?? throw new InvalidDataException($"{path}: no 'frames' tensor");
        _n = (long)frames[0]!;
        _t = Config.SeqLen; _side = Config.CanvasSize; _m = Config.MaxDigits;
        long dataStart = 8 + (long)headerLength;
        var offsets = new Dictionary<string, long>();
        foreach (var s in Specs(_n, _t, _side, _m))
        {
            var node = header[s.Name] ?? throw new InvalidDataException($"{path}: no '{s.Name}' tensor");
            var dtype = (string?)node["dtype"];
            var shape = node["shape"]!.AsArray().Select(x => (long)x!).ToArray();
            var range = node["data_offsets"]!.AsArray().Select(x => (long)x!).ToArray();
            if (dtype != s.Dtype) throw new InvalidDataException($"{path}: tensor '{s.Name}' has dtype {dtype}, expected {s.Dtype}");
            if (!shape.SequenceEqual(s.Shape))
                throw new InvalidDataException($"{path}: tensor '{s.Name}' has shape [{string.Join(", ", shape)}], expected [{string.Join(", ", s.Shape)}] from the header's config");
            long bytes = s.Shape.Aggregate(1L, (a, b) => a * b) * ElementSize(s.Dtype);
            if (range.Length != 2 || range[1] - range[0] != bytes || range[0] < 0)
                throw new InvalidDataException($"{path}: tensor '{s.Name}' has data offsets [{string.Join(", ", range)}] for {bytes} bytes");
            if (dataStart + range[1] > length)
                throw new InvalidDataException($"{path}: truncated: tensor '{s.Name}' ends at byte {dataStart + range[1]}, the file has {length}");
            offsets[s.Name] = dataStart + range[0];
        }
        _mmf = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _mmf.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p;
        (_frames, _boxes, _present, _visible, _labels, _ids) =
            (offsets["frames"], offsets["boxes"], offsets["present"], offsets["visible"], offsets["labels"], offsets["ids"]);
    }

    public static SequenceFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"dataset file {path} does not exist", path);
        return new SequenceFile(path);
    }

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
