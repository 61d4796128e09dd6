using Sqair.Data;
using Sqair.Files;

namespace Sqair.Tests.Data;

public class MovingMnistTests
{
    static readonly MovingMnist Gen = TestUtil.Generator();
    static readonly Sequence[] Seqs = Enumerable.Range(0, 1500).Select(i => Gen.Generate(i)).ToArray();
    const int Side = 50, M = 2, T = 10;

    static (float Y, float X, float H, float W) Box(Sequence s, int t, int k)
    {
        int b = (t * M + k) * 4;
        return (s.Boxes[b], s.Boxes[b + 1], s.Boxes[b + 2], s.Boxes[b + 3]);
    }

    [Fact]
    public void Digit_count_is_uniform_on_0_1_2()
    {
        var counts = new int[3];
        foreach (var s in Seqs) counts[s.Ids.Count(id => id >= 0)]++;
        // 500 expected each; 4.5 standard deviations (~18) either way would be a broken sampler.
        Assert.All(counts, c => Assert.InRange(c, 420, 580));
    }

    [Fact]
    public void Digits_do_not_overlap_at_t0_and_lie_inside_the_canvas()
    {
        foreach (var s in Seqs.Where(s => s.Ids[1] >= 0))
        {
            var a = Box(s, 0, 0);
            var b = Box(s, 0, 1);
            bool overlap = a.Y < b.Y + b.H && b.Y < a.Y + a.H && a.X < b.X + b.W && b.X < a.X + a.W;
            Assert.False(overlap);
            foreach (var q in new[] { a, b })
            {
                Assert.InRange(q.Y, 0, Side - q.H);
                Assert.InRange(q.X, 0, Side - q.W);
            }
        }
    }

    [Fact]
    public void Positions_stay_within_bounds_and_some_digits_leave_and_return()
    {
        bool left = false, returned = false;
        foreach (var s in Seqs)
            for (int k = 0; k < M; k++)
            {
                if (s.Ids[k] < 0) continue;
                bool wasOut = false;
                for (int t = 0; t < T; t++)
                {
                    var (y, x, _, _) = Box(s, t, k);
                    Assert.InRange(y, 0, Side);
                    Assert.InRange(x, 0, Side);
                    bool visible = s.Visible[t * M + k] == 1;
                    if (!visible) { left = true; wasOut = true; }
                    if (visible && wasOut) returned = true;
                }
            }
        Assert.True(left);
        Assert.True(returned);
    }

    [Fact]
    public void Step_bounces_off_both_bounds_and_clips_the_state()
    {
        var c = new MovingMnistConfig();
        double pos = 48, vel = 5, acc = 1;
        MovingMnist.Step(ref pos, ref vel, ref acc, 0.5, c);
        // 48 + 5 = 53 reflects about 50 to 47; vel 5 + 1 = 6 and acc 1.5 flip sign.
        Assert.Equal(47, pos, 12);
        Assert.Equal(-6, vel, 12);
        Assert.Equal(-1.5, acc, 12);

        pos = 2; vel = -5; acc = 0;
        MovingMnist.Step(ref pos, ref vel, ref acc, 0, c);
        Assert.Equal(3, pos, 12);
        Assert.Equal(5, vel, 12);

        pos = 10; vel = 9.5; acc = 2.9;
        MovingMnist.Step(ref pos, ref vel, ref acc, 0.5, c);
        Assert.Equal(19.5, pos, 12);
        Assert.Equal(10, vel, 12);
        Assert.Equal(3, acc, 12);
    }

    [Fact]
    public void Rendered_pixels_are_the_max_of_the_pasted_templates()
    {
        foreach (var s in Seqs.Take(300))
            for (int t = 0; t < T; t++)
            {
                var expected = new byte[Side * Side];
                for (int k = 0; k < M; k++)
                {
                    if (s.Ids[k] < 0) continue;
                    var tpl = Gen.Templates[s.TemplateIndices[k]];
                    var (y, x, h, w) = Box(s, t, k);
                    Assert.Equal((tpl.Height, tpl.Width), ((int)h, (int)w));
                    for (int ty = 0; ty < tpl.Height; ty++)
                        for (int tx = 0; tx < tpl.Width; tx++)
                        {
                            int py = (int)y + ty, px = (int)x + tx;
                            if (py < Side && px < Side)
                                expected[py * Side + px] =
                                    Math.Max(expected[py * Side + px], tpl.Pixels[ty * tpl.Width + tx]);
                        }
                }
                Assert.Equal(expected, s.Frames.AsSpan(t * Side * Side, Side * Side).ToArray());
            }
    }

    [Fact]
    public void A_lone_fully_visible_digit_has_its_box_equal_to_the_bounding_box_of_the_pixels()
    {
        int checkedFrames = 0;
        foreach (var s in Seqs.Where(s => s.Ids[0] >= 0 && s.Ids[1] < 0))
            for (int t = 0; t < T; t++)
            {
                var (y, x, h, w) = Box(s, t, 0);
                if (y + h > Side || x + w > Side) continue;
                int y0 = Side, y1 = -1, x0 = Side, x1 = -1;
                for (int p = 0; p < Side * Side; p++)
                    if (s.Frames[t * Side * Side + p] != 0)
                    {
                        y0 = Math.Min(y0, p / Side); y1 = Math.Max(y1, p / Side);
                        x0 = Math.Min(x0, p % Side); x1 = Math.Max(x1, p % Side);
                    }
                Assert.Equal((y, x, h, w), (y0, x0, y1 - y0 + 1, x1 - x0 + 1));
                checkedFrames++;
            }
        Assert.True(checkedFrames > 1000);
    }

    [Fact]
    public void Visible_means_some_pixel_lands_on_the_canvas_and_absent_slots_are_never_visible()
    {
        foreach (var s in Seqs)
            for (int t = 0; t < T; t++)
                for (int k = 0; k < M; k++)
                {
                    var (y, x, _, _) = Box(s, t, k);
                    bool present = s.Ids[k] >= 0;
                    Assert.Equal(present ? 1 : 0, s.Present[t * M + k]);
                    // Test templates have no zero pixels, so visibility is exactly "corner inside the canvas".
                    Assert.Equal(present && y < Side && x < Side ? 1 : 0, s.Visible[t * M + k]);
                }
    }

    [Fact]
    public void Same_seed_gives_the_same_bytes_at_one_and_two_threads_and_another_seed_differs()
    {
        var dir = TestUtil.TempDir();
        string Write(ulong seed, int threads)
        {
            var p = Path.Combine(dir, $"{seed}-{threads}.safetensors");
            SequenceFile.Write(p, TestUtil.Generator(seed: seed), 300, Pool.Train, threads: threads);
            return p;
        }
        var one = File.ReadAllBytes(Write(3, 1));
        var two = File.ReadAllBytes(Write(3, 2));
        var other = File.ReadAllBytes(Write(4, 2));
        Assert.Equal(one, two);
        Assert.NotEqual(one, other);
    }

    [Fact]
    public void Crop_takes_the_bounding_box_of_non_zero_pixels()
    {
        var img = new byte[28 * 28];
        img[5 * 28 + 7] = 10;
        img[9 * 28 + 3] = 20;
        var t = MovingMnist.Crop(img, 28, 4)!;
        Assert.Equal((5, 5), (t.Height, t.Width));
        Assert.Equal(10, t.Pixels[0 * 5 + 4]);
        Assert.Equal(20, t.Pixels[4 * 5 + 0]);
        Assert.Null(MovingMnist.Crop(new byte[28 * 28], 28, 0));
    }

    [Fact]
    public void Digit_scale_rescales_templates()
    {
        var t = TestUtil.Templates(1)[0];
        var s = MovingMnist.Rescale(t, 0.7);
        Assert.Equal((int)Math.Round(t.Height * 0.7), s.Height);
        Assert.Equal((int)Math.Round(t.Width * 0.7), s.Width);
    }

    [Fact]
    public void Digit_scale_min_draws_each_digit_at_its_own_scale_between_it_and_digit_scale()
    {
        const double min = 0.5;
        var gen = TestUtil.Generator(new MovingMnistConfig { DigitScaleMin = min });
        var ratios = new List<double>();
        foreach (var s in Enumerable.Range(0, 300).Select(i => gen.Generate(i)))
            for (int k = 0; k < M; k++)
                if (s.Ids[k] >= 0)
                {
                    var pooled = gen.Templates[s.TemplateIndices[k]];
                    var sizes = Enumerable.Range(0, T).Select(t => (Box(s, t, k).H, Box(s, t, k).W)).Distinct();
                    Assert.Single(sizes); // one scale per digit for the whole sequence
                    ratios.Add(Box(s, 0, k).H / pooled.Height);
                    var (y, x, h, w) = Box(s, 0, k);
                    if (s.Ids[1 - k] < 0 && y + h <= Side && x + w <= Side) // alone and whole: its pixels fill its box
                        Assert.Equal((int)(h * w), s.Frames.AsSpan(0, Side * Side).ToArray().Count(p => p != 0));
                }
        // Sizes are whole pixels: the ratio may fall below min by half a pixel of the smallest template (8 px).
        Assert.All(ratios, r => Assert.InRange(r, min - 0.5 / 8, 1.0));
        Assert.True(ratios.Min() < 0.6 && ratios.Max() > 0.9, $"ratios span [{ratios.Min()}, {ratios.Max()}]");
        Assert.Equal(gen.Generate(5).Frames, gen.Generate(5).Frames);
    }

    /// <summary>
    /// Known bytes: the default generator's first sequences as every build since the generator was written makes
    /// them (an extra random draw, e.g. for digit_scale_min when unset, would change them).
    /// </summary>
    [Fact]
    public void The_default_data_is_the_same_bytes_as_ever()
    {
        var bytes = Seqs.Take(50).SelectMany(s => s.Frames.Concat(s.Boxes.SelectMany(BitConverter.GetBytes)));
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes.ToArray()))[..16];
        Assert.Equal("c6effeef681b5bb0", hash);
    }

    [Fact]
    public void Data_without_digit_scale_min_keeps_its_json_and_so_its_cache_name()
    {
        Assert.DoesNotContain("digit_scale_min", System.Text.Json.JsonSerializer.Serialize(new MovingMnistConfig()));
        Assert.Contains("\"digit_scale_min\":0.7",
                        System.Text.Json.JsonSerializer.Serialize(new MovingMnistConfig { DigitScaleMin = 0.7 }));
    }

    [Fact]
    public void Bad_parameters_are_named()
    {
        var e = Assert.Throws<ArgumentException>(() =>
            TestUtil.Generator(new MovingMnistConfig { MinDigits = 3, MaxDigits = 2 }));
        Assert.Contains("max_digits", e.Message);
        e = Assert.Throws<ArgumentException>(() => new MovingMnistConfig { DigitScaleMin = double.NaN }.Validate());
        Assert.Contains("'digit_scale_min' = NaN", e.Message);
    }

    [Fact]
    public void A_config_whose_digits_cannot_be_placed_fails_quickly_instead_of_retrying_forever()
    {
        var generator = TestUtil.Generator(new MovingMnistConfig { MinDigits = 20, MaxDigits = 20 });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<ArgumentException>(() => generator.Generate(0));
        Assert.Contains("cannot place 20 digits", e.Message);
        Assert.Contains("max_digits", e.Message);
        Assert.True(clock.Elapsed.TotalSeconds < 10, $"took {clock.Elapsed}");
    }

    [Fact]
    public void Digits_that_cannot_be_placed_fail_quickly_however_many_placement_tries_are_allowed()
    {
        var generator = TestUtil.Generator(new MovingMnistConfig
        {
            MinDigits = 30, MaxDigits = 30, PlacementTries = int.MaxValue,
        });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<ArgumentException>(() => generator.Generate(0));
        Assert.Contains("cannot place 30 digits", e.Message);
        Assert.Contains("placement_tries", e.Message);
        Assert.True(clock.Elapsed.TotalSeconds < 10, $"took {clock.Elapsed}");
    }

    [Fact]
    public void Cancelled_generation_leaves_no_file_behind()
    {
        var dir = TestUtil.TempDir();
        using var cts = new CancellationTokenSource();
        Assert.Throws<OperationCanceledException>(() =>
            SequenceFile.Write(Path.Combine(dir, "d.safetensors"), TestUtil.Generator(), 10_000, Pool.Train,
                               done => cts.Cancel(), threads: 1, stop: cts.Token));
        Assert.Empty(Directory.GetFileSystemEntries(dir));
    }

    [Fact]
    public void Temporary_files_name_their_writer()
    {
        Assert.Equal(123, StaleTemporaries.WriterOf($"step-000000004.safetensors.tmp-123-{Guid.NewGuid():N}"));
        Assert.Equal(45, StaleTemporaries.WriterOf($".part-45-{Guid.NewGuid():N}"));
        Assert.Null(StaleTemporaries.WriterOf("step-000000004.safetensors"));
        Assert.Null(StaleTemporaries.WriterOf("notes.tmp-1-x"));
    }

    [Fact]
    public void Synthetic_blobs_are_rescaled_as_digits_are()
    {
        var full = MovingMnist.SyntheticTemplates(50, 3);
        var half = MovingMnist.SyntheticTemplates(50, 3, digitScale: 0.5);
        Assert.All(full.Zip(half), p =>
        {
            Assert.InRange(p.Second.Height, p.First.Height / 2 - 1, p.First.Height / 2 + 1);
            Assert.InRange(p.Second.Width, p.First.Width / 2 - 1, p.First.Width / 2 + 1);
        });
    }
}
