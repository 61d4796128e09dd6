using SkiaSharp;
using Sqair.Data;
using TorchSharp;

namespace Sqair.Tests.Data;

public class FrameFolderTests
{
    [Fact]
    public void A_frame_that_is_gone_is_an_error_saying_so_not_a_decoder_code()
    {
        var missing = Path.Combine(TestUtil.TempDir(), "0300.png");
        var e = Assert.Throws<IOException>(() => FrameFolder.Decode(missing));
        Assert.Equal($"{missing}: does not exist (any more)", e.Message);
    }

    [Fact]
    public void Frames_load_in_name_order_as_grey_or_colour()
    {
        var dir = TestUtil.TempDir();
        for (int t = 0; t < 3; t++)
        {
            using var bmp = new SKBitmap(50, 50);
            bmp.Erase(SKColors.Black);
            bmp.SetPixel(10 + t, 20, new SKColor(255, 0, 0));
            bmp.SetPixel(30, 40, new SKColor(60, 120, 180));
            using var png = bmp.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(Path.Combine(dir, $"frame{t:D3}.png"), png.ToArray());
        }
        var grey = FrameFolder.Load(dir, 50, 1);
        Assert.Equal(new long[] { 3, 1, 1, 50, 50 }, grey.shape);
        Assert.Equal(1f / 3, grey[2, 0, 0, 20, 12].item<float>(), 5);
        Assert.Equal(0f, grey[2, 0, 0, 20, 10].item<float>());
        Assert.Equal(120f / 255, grey[0, 0, 0, 40, 30].item<float>(), 5);
        var colour = FrameFolder.Load(dir, 50, 3);
        Assert.Equal(new[] { 60f / 255, 120f / 255, 180f / 255 }, colour[1, 0, .., 40, 30].data<float>().ToArray());
        Assert.Equal(new long[] { 3, 1, 1, 25, 25 }, FrameFolder.Load(dir, 25, 1).shape);
    }

    [Fact]
    public void An_empty_folder_is_named()
    {
        var dir = TestUtil.TempDir();
        var e = Assert.Throws<FileNotFoundException>(() => FrameFolder.Load(dir, 50, 1));
        Assert.Contains(dir, e.Message);
    }

    [Fact]
    public void Jpeg_frames_and_the_MOT_img1_layout_load_too()
    {
        var dir = TestUtil.TempDir();
        Directory.CreateDirectory(Path.Combine(dir, "img1"));
        using var bmp = new SKBitmap(64, 48);
        bmp.Erase(new SKColor(200, 100, 0));
        using (var jpg = bmp.Encode(SKEncodedImageFormat.Jpeg, 95))
            foreach (var name in new[] { "000002.jpg", "000001.jpg" })
                File.WriteAllBytes(Path.Combine(dir, "img1", name), jpg.ToArray());
        Assert.Equal(["000001.jpg", "000002.jpg"], FrameFolder.Files(dir).Select(Path.GetFileName));
        var frames = FrameFolder.Read(FrameFolder.Files(dir), 16, 3, ResizeFilter.Cubic, out var size);
        Assert.Equal((64, 48), size);
        Assert.Equal(2 * 3 * 16 * 16, frames.Length);
        Assert.InRange(frames[0], 190, 210);          // red plane
        Assert.InRange(frames[16 * 16], 90, 110);     // green plane
    }
}
