using System.IO.Hashing;
using System.Text.Json;

namespace Sqair.Files;

/// <summary>
/// Per-tensor checksums of our safetensors files, datasets and checkpoints alike: the XXH3-64 of each tensor's
/// bytes as <c>xxh3:</c> and 16 hex digits, kept in the header's metadata under <c>checksums</c> as a JSON map
/// from tensor name to checksum. Files written before checksums existed have no such key: their bytes cannot
/// be checked, only their values.
/// </summary>
internal static class Checksums
{
    /// <summary>The metadata key of the JSON map.</summary>
    public const string MetadataKey = "checksums";

    /// <summary>The checksum of what <paramref name="hash"/> has read, as stored.</summary>
    public static string Text(XxHash3 hash) => $"xxh3:{hash.GetCurrentHashAsUInt64():x16}";

    /// <summary>The checksum of <paramref name="bytes"/>, as stored.</summary>
    public static string Of(ReadOnlySpan<byte> bytes)
    {
        var hash = new XxHash3();
        hash.Append(bytes);
        return Text(hash);
    }

    /// <summary>The metadata value of checksums by tensor name.</summary>
    public static string Encode(IEnumerable<KeyValuePair<string, string>> byTensor) =>
        JsonSerializer.Serialize(byTensor.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal));

    /// <summary>
    /// The checksums by tensor name in a file's metadata, or null when it has none (written before checksums
    /// existed). A <see cref="JsonException"/> when the value does not parse.
    /// </summary>
    public static Dictionary<string, string>? Decode(IReadOnlyDictionary<string, string> metadata) =>
        metadata.TryGetValue(MetadataKey, out var json)
            ? JsonSerializer.Deserialize<Dictionary<string, string>>(json) ?? throw new JsonException("null checksums")
            : null;

    /// <summary>
    /// What is wrong with tensor <paramref name="name"/>, whose bytes have checksum <paramref name="actual"/>,
    /// against the <paramref name="stored"/> checksums; null when it matches.
    /// </summary>
    public static string? Problem(string name, string actual, IReadOnlyDictionary<string, string> stored) =>
        !stored.TryGetValue(name, out var expected) ? $"tensor '{name}' has no stored checksum"
        : actual != expected ? $"tensor '{name}' does not match its checksum ({actual}, stored {expected}): " +
                               "the file was changed or damaged after it was written"
        : null;
}
