using SkiaSharp;
using Sqair.Visualisation;

namespace Sqair.Tests.Visualisation;

public class GifTests
{
    [Fact]
    public void Frames_round_trip_through_a_gif_decoder()
    {
        var rng = new Random(1);
        var frames = new List<SKBitmap>();
        for (int f = 0; f < 3; f++)
        {
            var bmp = new SKBitmap(37, 23);
            for (int y = 0; y < 23; y++)
                for (int x = 0; x < 37; x++)
                {
                    // grey ramp plus a few box-coloured pixels: everything on the palette
                    var c = rng.Next(10) == 0 ? Grid.ColorOf(rng.Next(10))
                                              : new SKColor((byte)(x * 7), (byte)(x * 7), (byte)(x * 7));
                    bmp.SetPixel(x, y, c);
                }
            frames.Add(bmp);
        }
        var path = Path.Combine(TestUtil.TempDir(), "a.gif");
        Gif.Write(path, frames, 10);

        using var codec = SKCodec.Create(path);
        Assert.Equal(3, codec.FrameCount);
        for (int f = 0; f < 3; f++)
        {
            using var decoded = new SKBitmap(codec.Info.Width, codec.Info.Height);
            Assert.Equal(SKCodecResult.Success,
                         codec.GetPixels(decoded.Info, decoded.GetPixels(), new SKCodecOptions(f)));
            for (int y = 0; y < 23; y++)
                for (int x = 0; x < 37; x++)
                {
                    var a = frames[f].GetPixel(x, y);
                    var b = decoded.GetPixel(x, y);
                    Assert.True(Math.Abs(a.Red - b.Red) <= 1 && Math.Abs(a.Green - b.Green) <= 1 &&
                                Math.Abs(a.Blue - b.Blue) <= 1, $"frame {f} ({x},{y}): {a} vs {b}");
                }
        }
    }

    [Fact]
    public void Long_runs_of_noise_exercise_the_code_table_reset()
    {
        var rng = new Random(2);
        var bmp = new SKBitmap(200, 200);
        for (int y = 0; y < 200; y++)
            for (int x = 0; x < 200; x++) { byte v = (byte)rng.Next(256); bmp.SetPixel(x, y, new SKColor(v, v, v)); }
        var path = Path.Combine(TestUtil.TempDir(), "noise.gif");
        Gif.Write(path, [bmp]);
        using var decoded = SKBitmap.Decode(path);
        for (int y = 0; y < 200; y += 7)
            for (int x = 0; x < 200; x += 3)
                Assert.InRange(Math.Abs(bmp.GetPixel(x, y).Red - decoded.GetPixel(x, y).Red), 0, 1);
    }
}
