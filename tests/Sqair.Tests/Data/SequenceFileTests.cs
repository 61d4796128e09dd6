using Sqair.Data;
using Sqair.Files;
using TorchSharp;

namespace Sqair.Tests.Data;

public class SequenceFileTests
{
    static string WriteSmall(out MovingMnist gen, int count = 40)
    {
        gen = TestUtil.Generator(seed: 11);
        var path = Path.Combine(TestUtil.TempDir(), "small.safetensors");
        SequenceFile.Write(path, gen, count, Pool.Validation);
        return path;
    }

    [Fact]
    public void Round_trip_gives_back_every_sequence_and_the_header()
    {
        var path = WriteSmall(out var gen);
        using var file = SequenceFile.Open(path);
        Assert.Equal(40, file.Count);
        Assert.Equal(gen.Config, file.Config);
        Assert.Equal(gen.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture), file.Metadata["seed"]);
        Assert.Equal("validation", file.Metadata["pool"]);
        Assert.True(file.HasTruth);
        for (int i = 0; i < 40; i++)
        {
            var a = gen.Generate(i);
            var b = file.Get(i);
            Assert.Equal(a.Frames, b.Frames);
            Assert.Equal(a.Boxes, b.Boxes);
            Assert.Equal(a.Present, b.Present);
            Assert.Equal(a.Visible, b.Visible);
            Assert.Equal(a.Labels, b.Labels);
            Assert.Equal(a.Ids, b.Ids);
        }
    }

    [Fact]
    public void PyTorch_safetensors_readers_see_the_same_tensors()
    {
        var path = WriteSmall(out var gen, 5);
        var tensors = TorchSharp.PyBridge.Safetensors.LoadStateDict(path);
        Assert.Equal(new long[] { 5, 10, 1, 50, 50 }, tensors["frames"].shape);
        Assert.Equal(torch.ScalarType.Byte, tensors["frames"].dtype);
        var s3 = gen.Generate(3);
        Assert.Equal(s3.Frames, tensors["frames"][3].flatten().data<byte>().ToArray());
        Assert.Equal(s3.Ids, tensors["ids"][3].data<int>().ToArray());
    }

    [Fact]
    public void A_truncated_file_gives_an_error_naming_it()
    {
        var path = WriteSmall(out _);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 100)]);
        var e = Assert.Throws<InvalidDataException>(() => SequenceFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void A_file_read_in_several_chunks_verifies_and_a_byte_changed_in_its_last_chunk_is_found()
    {
        var path = WriteSmall(out var gen, 200);    // 5 MB of frames: more than one 4 MiB read
        using (var file = SequenceFile.Open(path))
        {
            Assert.Empty(file.Verify()!);
            Assert.Equal(gen.Generate(199).Frames, file.Get(199).Frames);
        }
        var frames = Safetensors.ReadHeader(path).Entries["frames"];
        using (var stream = File.Open(path, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Position = frames.Offset + frames.Entry.Bytes - 1;
            int last = stream.ReadByte();
            stream.Position--;
            stream.WriteByte((byte)(last ^ 0xFF));
        }
        using var changed = SequenceFile.Open(path);
        Assert.Contains(changed.Verify()!,
                        p => p.Contains("'frames' does not match its checksum", StringComparison.Ordinal));
    }

    [Fact]
    public void A_garbage_file_gives_an_error_naming_it()
    {
        var path = Path.Combine(TestUtil.TempDir(), "junk.safetensors");
        File.WriteAllBytes(path, Enumerable.Range(0, 4000).Select(i => (byte)(i * 31)).ToArray());
        var e = Assert.Throws<InvalidDataException>(() => SequenceFile.Open(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Loader_batches_are_time_major_scaled_and_truncated()
    {
        var path = WriteSmall(out var gen);
        using var file = SequenceFile.Open(path);
        var loader = new BatchLoader(file, 8, shuffle: false, seed: 0);
        using var batch = loader.Get(1, seqLen: 3);
        Assert.Equal(new long[] { 3, 8, 1, 50, 50 }, batch.Frames.shape);
        Assert.Equal(new long[] { 3, 8, 2, 4 }, batch.Boxes.shape);
        Assert.Equal(new long[] { 3, 8, 2 }, batch.Visible.shape);
        Assert.Equal(new long[] { 8, 2 }, batch.Ids.shape);
        var s = gen.Generate(8 + 5);
        var frame = batch.Frames[2, 5].flatten().data<float>().ToArray();
        Assert.Equal(s.Frames.AsSpan(2 * 2500, 2500).ToArray().Select(v => v / 255f), frame);
        Assert.InRange(batch.Frames.max().item<float>(), 0.5f, 1f);
    }

    [Fact]
    public void Random_windows_are_cuts_of_each_sequence_that_start_where_the_seed_says()
    {
        var path = WriteSmall(out var gen);
        using var file = SequenceFile.Open(path);
        var loader = new BatchLoader(file, 8, shuffle: false, seed: 3) { RandomWindows = true };
        using var batch = loader.Get(2, seqLen: 4);
        using var again = new BatchLoader(file, 8, shuffle: false, seed: 3) { RandomWindows = true }.Get(2, seqLen: 4);
        Assert.True(batch.Frames.eq(again.Frames).all().item<bool>());
        var starts = new HashSet<int>();
        for (int i = 0; i < 8; i++)
        {
            var s = gen.Generate(16 + i);
            var first = batch.Frames[0, i].flatten().data<float>().ToArray();
            // the window's frame 0 is some frame f of the sequence, its frame 3 is frame f + 3
            int f = Enumerable.Range(0, file.Config.SeqLen - 3)
                .First(g => s.Frames.AsSpan(g * 2500, 2500).ToArray().Select(v => v / 255f).SequenceEqual(first));
            Assert.Equal(s.Frames.AsSpan((f + 3) * 2500, 2500).ToArray().Select(v => v / 255f),
                         batch.Frames[3, i].flatten().data<float>());
            Assert.Equal(s.Visible.AsSpan((f + 3) * 2, 2).ToArray().Select(v => (float)v),
                         batch.Visible[3, i].data<float>().ToArray());
            starts.Add(f);
        }
        Assert.True(starts.Count > 1, "the windows all started at one frame");
        using var whole = loader.Get(2);
        Assert.Equal(file.Config.SeqLen, whole.T);
    }

    [Fact]
    public void Shuffled_epochs_are_permutations_fixed_by_the_seed()
    {
        var path = WriteSmall(out _);
        using var file = SequenceFile.Open(path);
        var a = new BatchLoader(file, 8, shuffle: true, seed: 5);
        var b = new BatchLoader(file, 8, shuffle: true, seed: 5);
        var epoch0 = Enumerable.Range(0, 40).Select(j => a.SequenceIndex(j)).ToArray();
        var epoch1 = Enumerable.Range(40, 40).Select(j => a.SequenceIndex(j)).ToArray();
        Assert.Equal(Enumerable.Range(0, 40).Select(i => (long)i), epoch0.Order());
        Assert.Equal(Enumerable.Range(0, 40).Select(i => (long)i), epoch1.Order());
        Assert.NotEqual(epoch0, epoch1);
        Assert.Equal(epoch1, Enumerable.Range(40, 40).Select(j => b.SequenceIndex(j)).ToArray());
    }

    [Fact]
    public void The_generated_stream_is_unbounded_and_matches_the_generator()
    {
        var gen = TestUtil.Generator(seed: 2);
        var loader = new BatchLoader(new GeneratedSource(gen), 4, shuffle: true, seed: 0);
        using var batch = loader.Get(1_000_000);
        var s = gen.Generate(4_000_002);
        Assert.Equal(s.Frames.AsSpan(0, 2500).ToArray().Select(v => v / 255f),
                     batch.Frames[0, 2].flatten().data<float>().ToArray());
    }

    [Fact]
    public void Colour_sequences_round_trip_and_draw_each_digit_in_one_colour()
    {
        var config = new MovingMnistConfig { Channels = 3, MinDigits = 2, MaxDigits = 2, SeqLen = 3 };
        var gen = TestUtil.Generator(config);
        var path = Path.Combine(TestUtil.TempDir(), "colour.safetensors");
        SequenceFile.Write(path, gen, 5, Pool.Train, stop: TestContext.Current.CancellationToken);
        using var file = SequenceFile.Open(path);
        Assert.Equal(3, file.Config.Channels);
        var s = file.Get(2);
        Assert.Equal(gen.Generate(2).Frames, s.Frames);
        Assert.Equal(3 * 3 * 50 * 50, s.Frames.Length);
        Assert.Empty(file.Verify()!);
        // the grey stream is untouched by colour: same boxes as the grey generator's
        var grey = TestUtil.Generator(config with { Channels = 1 }).Generate(2);
        Assert.Equal(grey.Boxes, s.Boxes);
        // a colour pixel is a template pixel scaled per channel; where only one digit is, the channels keep one ratio
        int plane = 50 * 50;
        var lit = Enumerable.Range(0, plane).Where(p => grey.Frames[p] > 200).ToList();
        Assert.NotEmpty(lit);
        Assert.Contains(lit, p => s.Frames[p] != s.Frames[p + plane] || s.Frames[p] != s.Frames[p + 2 * plane]);
    }

    [Fact]
    public void Grey_configs_keep_their_json_so_cached_datasets_keep_their_names()
    {
        Assert.DoesNotContain("channels", System.Text.Json.JsonSerializer.Serialize(new MovingMnistConfig()));
        Assert.Contains("\"channels\":3",
                        System.Text.Json.JsonSerializer.Serialize(new MovingMnistConfig { Channels = 3 }));
    }
}
