using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Files;

/// <summary>
/// The safetensors format (8-byte little-endian header length, a JSON header, raw little-endian
/// tensor bytes), used for datasets and checkpoints so that PyTorch, numpy and TorchSharp users
/// open them with their usual tools. We write it ourselves for the <c>__metadata__</c> map
/// (config, step, generator parameters), which TorchSharp.PyBridge does not write.
/// </summary>
internal static class Safetensors
{
    public sealed record Entry(string Name, string Dtype, long[] Shape)
    {
        /// <summary>
        /// The data's size; an <see cref="OverflowException"/> for a shape no file can hold (a
        /// crafted or corrupt header).
        /// </summary>
        public long Bytes => checked(Shape.Aggregate(1L, (a, b) => checked(a * b)) * ElementSize(Dtype));
    }

    /// <summary>A parsed header: entries with absolute file offsets of their data, and the metadata.</summary>
    public sealed record Header(IReadOnlyDictionary<string, (Entry Entry, long Offset)> Entries,
                                IReadOnlyDictionary<string, string> Metadata);

    public static int ElementSize(string dtype) => dtype switch
    {
        "U8" or "BOOL" => 1,
        "F32" or "I32" => 4,
        "F64" or "I64" => 8,
        _ => throw new ArgumentException($"unsupported safetensors dtype {dtype}"),
    };

    static string DtypeOf(ScalarType t) => t switch
    {
        ScalarType.Byte => "U8",
        ScalarType.Float32 => "F32",
        ScalarType.Float64 => "F64",
        ScalarType.Int32 => "I32",
        ScalarType.Int64 => "I64",
        _ => throw new ArgumentException($"unsupported tensor dtype {t}"),
    };

    static ScalarType ScalarTypeOf(string dtype) => dtype switch
    {
        "U8" => ScalarType.Byte,
        "F32" => ScalarType.Float32,
        "F64" => ScalarType.Float64,
        "I32" => ScalarType.Int32,
        "I64" => ScalarType.Int64,
        _ => throw new ArgumentException($"unsupported safetensors dtype {dtype}"),
    };

    /// <summary>The header bytes (length prefix included, padded to 8 bytes) for entries laid out in order.</summary>
    public static byte[] EncodeHeader(IEnumerable<Entry> entries, IReadOnlyDictionary<string, string> metadata)
    {
        var meta = new JsonObject();
        foreach (var (k, v) in metadata) meta[k] = v;
        var header = new JsonObject { ["__metadata__"] = meta };
        long offset = 0;
        foreach (var e in entries)
        {
            header[e.Name] = new JsonObject
            {
                ["dtype"] = e.Dtype,
                ["shape"] = new JsonArray(e.Shape.Select(x => (JsonNode)x).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + e.Bytes),
            };
            offset += e.Bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        var bytes = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)padded);
        json.CopyTo(bytes, 8);
        bytes.AsSpan(8 + json.Length).Fill((byte)' ');
        return bytes;
    }

    /// <summary>
    /// Reads and checks a header: every entry's offsets must fit its dtype and shape and lie inside
    /// the file, and nothing may follow the last.
    /// </summary>
    public static Header ReadHeader(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist", path);
        var (json, length) = ReadHeaderBytes(path);
        var header = ParseHeader(path, json);
        long dataStart = 8 + json.Length;
        var entries = new Dictionary<string, (Entry, long)>();
        var metadata = new Dictionary<string, string>();
        long dataEnd = dataStart;
        foreach (var (name, node) in header)
        {
            try
            {
                if (name == "__metadata__")
                {
                    foreach (var (k, v) in node!.AsObject()) metadata[k] = (string)v!;
                    continue;
                }
                var (entry, start, end) = ReadEntry(path, name, node!, dataStart, length);
                entries[name] = (entry, start);
                dataEnd = Math.Max(dataEnd, end);
            }
            catch (Exception e) when (e is InvalidOperationException or NullReferenceException or FormatException or
                                      ArgumentException or OverflowException)
            {
                var why = e is OverflowException ? "its shape holds more than 2^63 bytes" : e.Message;
                throw new InvalidDataException($"{path}: malformed header entry '{name}' ({why})", e);
            }
        }
        // The format's own reader (Hugging Face's safetensors) refuses bytes past the last tensor as an
        // incomplete buffer: they are damage or an append, never data.
        if (dataEnd < length)
            throw new InvalidDataException($"{path}: {length - dataEnd} bytes after the last tensor " +
                                           $"(which ends at byte {dataEnd}): appended to or damaged");
        return new Header(entries, metadata);
    }

    /// <summary>The header's JSON bytes (as many as its length prefix says) and the file's length.</summary>
    static (byte[] Json, long FileLength) ReadHeaderBytes(string path)
    {
        // The size of what a symbolic link leads to: FileInfo of the link itself gives the link's own size.
        long length = new FileInfo(RealPath.Of(path) ?? path).Length;
        if (length < 8) throw new InvalidDataException($"{path}: {length} bytes is too short for a safetensors file");
        using var fs = File.OpenRead(path);
        var lenBytes = new byte[8];
        fs.ReadExactly(lenBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLength > (ulong)(length - 8) || headerLength > 100_000_000)
            throw new InvalidDataException(
                $"{path}: header length {headerLength} exceeds the file ({length} bytes): " +
                "truncated or not a safetensors file");
        var json = new byte[headerLength];
        fs.ReadExactly(json);
        return (json, length);
    }

    /// <summary>The header's JSON object; <see cref="InvalidDataException"/> when it is not one.</summary>
    static JsonObject ParseHeader(string path, byte[] json)
    {
        try
        {
            return JsonNode.Parse(json)?.AsObject()
                ?? throw new InvalidDataException($"{path}: empty safetensors header");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: unreadable safetensors header ({e.Message})", e);
        }
    }

    /// <summary>
    /// Tensor <paramref name="name"/>'s entry, with the absolute offsets where its data starts and ends, checked
    /// against its dtype and shape and the file's <paramref name="length"/>; the JSON's own faults (a missing key,
    /// a wrong type) are left to the caller to name.
    /// </summary>
    static (Entry Entry, long Start, long End) ReadEntry(string path, string name, JsonNode node, long dataStart,
                                                         long length)
    {
        var dtype = (string)node["dtype"]!;
        var shape = node["shape"]!.AsArray().Select(x => (long)x!).ToArray();
        var range = node["data_offsets"]!.AsArray().Select(x => (long)x!).ToArray();
        if (shape.Any(d => d < 0))
            throw new InvalidDataException(
                $"{path}: tensor '{name}' has a negative dimension in its shape [{string.Join(", ", shape)}]");
        var entry = new Entry(name, dtype, shape);
        if (range.Length != 2 || range[0] < 0 || range[1] - range[0] != entry.Bytes)
            throw new InvalidDataException(
                $"{path}: tensor '{name}' has data offsets [{string.Join(", ", range)}] " +
                $"for {entry.Bytes} bytes of {dtype} [{string.Join(", ", shape)}]");
        if (dataStart + range[1] > length)
            throw new InvalidDataException($"{path}: truncated: tensor '{name}' ends at byte " +
                                           $"{dataStart + range[1]}, the file has {length}");
        return (entry, dataStart + range[0], dataStart + range[1]);
    }

    /// <summary>
    /// Writes tensors (copied to the CPU) and metadata atomically, with each tensor's checksum in the metadata
    /// (<see cref="Checksums"/>), which <see cref="Load"/> verifies.
    /// </summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors,
                            IReadOnlyDictionary<string, string> metadata)
    {
        var ordered = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var entries = ordered.Select(kv => new Entry(kv.Key, DtypeOf(kv.Value.dtype), kv.Value.shape)).ToList();
        // The header comes first in the file, so the checksums are computed in a pass of their own (a CPU
        // tensor's copy to the CPU is the tensor itself: no second copy of the data is made).
        var withSums = new Dictionary<string, string>(metadata)
        {
            [Checksums.MetadataKey] = Checksums.Encode(
                ordered.Select(kv => KeyValuePair.Create(kv.Key, WithBytes(kv.Value, Checksums.Of)))),
        };
        var header = EncodeHeader(entries, withSums);
        AtomicFile.Write(path, s =>
        {
            s.Write(header);
            foreach (var (_, t) in ordered) WithBytes(t, bytes => { s.Write(bytes); return 0; });
        });
    }

    /// <summary><paramref name="use"/> applied to the bytes of <paramref name="t"/> as laid out in the file.</summary>
    static T WithBytes<T>(Tensor t, Func<ReadOnlySpan<byte>, T> use)
    {
        // The scope roots detach's and cpu's temporaries, which another thread's collection could otherwise
        // finalize while libtorch reads them (checkpoints are saved outside any scope).
        using var scope = NewDisposeScope();
        var bytes = t.detach().cpu().contiguous().bytes;
        return use(bytes);
    }

    /// <summary>
    /// Loads every tensor onto the CPU, with the metadata. A file with checksums (<see cref="Save"/>) has each
    /// tensor's bytes verified: a mismatch is an <see cref="InvalidDataException"/> naming the file and the
    /// tensor. One written before checksums existed loads unverified.
    /// </summary>
    public static (Dictionary<string, Tensor> Tensors, IReadOnlyDictionary<string, string> Metadata) Load(string path)
    {
        var header = ReadHeader(path);
        Dictionary<string, string>? sums;
        try { sums = Checksums.Decode(header.Metadata); }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: unreadable {Checksums.MetadataKey} in the metadata ({e.Message})",
                                           e);
        }
        var result = new Dictionary<string, Tensor>();
        using var fs = File.OpenRead(path);
        foreach (var (name, (entry, offset)) in header.Entries)
        {
            var bytes = new byte[entry.Bytes];
            fs.Position = offset;
            fs.ReadExactly(bytes);
            if (sums is not null && Checksums.Problem(name, Checksums.Of(bytes), sums) is { } problem)
            {
                foreach (var t in result.Values) t.Dispose();
                throw new InvalidDataException($"{path}: {problem}");
            }
            var tensor = empty(entry.Shape, ScalarTypeOf(entry.Dtype));
            if (bytes.Length > 0) tensor.bytes = bytes;
            result[name] = tensor;
        }
        return (result, header.Metadata);
    }
}
