using System.Buffers.Binary;
using Sqair.Files;
using Sqair.Model;
using Sqair.Runs;
using Sqair.Tests.Model;
using Sqair.Training;
using static TorchSharp.torch;

namespace Sqair.Tests.Training;

/// <summary>
/// Checkpoints carry a checksum per tensor, verified on every read: a changed byte anywhere (even in the random
/// generator's state, whose values no other check can judge) is an error naming the file and the tensor, while
/// files written before checksums existed still load.
/// </summary>
public class CheckpointChecksumTests
{
    static string Saved(out SqairModel model)
    {
        manual_seed(4);
        model = new SqairModel(SqairModelTests.Tiny());
        var optimizer = ParameterOptimizer.Create(OptimizerKind.Adam,
                                                  model.named_parameters().Select(p => (p.name, (Tensor)p.parameter)));
        var path = Path.Combine(TestUtil.TempDir(), "step-000000003.safetensors");
        Checkpoint.Save(path, model, optimizer, 3);
        return path;
    }

    /// <summary>Flips 4 bytes of the last tensor's data (rng/torch, last by name).</summary>
    internal static void FlipNearTheEnd(string path)
    {
        var bytes = File.ReadAllBytes(path);
        for (int i = bytes.Length - 8; i < bytes.Length - 4; i++) bytes[i] ^= 0xFF;
        File.WriteAllBytes(path, bytes);
    }

    [Fact]
    public void Flipped_bytes_in_the_rng_state_are_an_error_naming_the_file_and_the_tensor()
    {
        var path = Saved(out _);
        Assert.Equal("rng/torch", Safetensors.ReadHeader(path).Entries.MaxBy(e => e.Value.Offset).Key);
        FlipNearTheEnd(path);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Read(path));
        Assert.StartsWith($"{path}: tensor 'rng/torch' does not match its checksum", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_checkpoint_reads_through_a_symbolic_link_as_the_file_itself()
    {
        var path = Saved(out _);
        var link = Path.Combine(TestUtil.TempDir(), "link.safetensors");
        File.CreateSymbolicLink(link, path);
        Assert.Equal(Checkpoint.Read(path).Iteration, Checkpoint.Read(link).Iteration);
        Assert.Equal(Safetensors.ReadHeader(path).Entries.Keys, Safetensors.ReadHeader(link).Entries.Keys);
    }

    [Fact]
    public void An_unmodified_checkpoint_loads_with_its_checksums_verified()
    {
        var path = Saved(out var model);
        var c = Checkpoint.Read(path);
        Assert.Equal(c.Tensors.Keys.Order(StringComparer.Ordinal),
                     Checksums.Decode(c.Metadata)!.Keys.Order(StringComparer.Ordinal));
        var (loaded, iteration) = Checkpoint.LoadModel(c);
        Assert.Equal(3, iteration);
        var saved = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in loaded.named_parameters()) Assert.True(p.allclose(saved[name], rtol: 0, atol: 0));
    }

    [Fact]
    public void A_checkpoint_written_before_checksums_existed_loads()
    {
        // The same checkpoint with its header rewritten without checksums, as older versions wrote it.
        var path = Saved(out var model);
        var header = Safetensors.ReadHeader(path);
        var bytes = File.ReadAllBytes(path);
        long dataStart = 8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var old = Path.Combine(Path.GetDirectoryName(path)!, "old.safetensors");
        File.WriteAllBytes(old, [
            .. Safetensors.EncodeHeader(header.Entries.Values.OrderBy(e => e.Offset).Select(e => e.Entry),
                                        header.Metadata.Where(kv => kv.Key != Checksums.MetadataKey)
                                            .ToDictionary(kv => kv.Key, kv => kv.Value)),
            .. bytes[(int)dataStart..],
        ]);
        var c = Checkpoint.Read(old);
        Assert.False(c.Metadata.ContainsKey(Checksums.MetadataKey));
        Assert.True(Checkpoint.LoadModel(c).Model.named_parameters().First().parameter
                        .allclose(model.named_parameters().First().parameter, rtol: 0, atol: 0));
    }
}
