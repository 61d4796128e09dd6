using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Data;

/// <summary>A user's video as a folder of PNG frames (grey or colour), read in file-name order.</summary>
public static class PngFrames
{
    /// <summary>
    /// Frames as [T, 1, C, H, W] in [0, 1], resized to side×side; for one channel, grey is the mean
    /// of the colour channels.
    /// </summary>
    public static Tensor Load(string folder, int side, int channels)
    {
        var files = Directory.GetFiles(folder, "*.png").Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new FileNotFoundException($"{folder} holds no .png frames");
        var data = new float[files.Count * channels * side * side];
        int plane = side * side;
        for (int t = 0; t < files.Count; t++)
        {
            using var decoded = SKBitmap.Decode(files[t]) ?? throw new InvalidDataException($"{files[t]}: not a readable PNG");
            using var bmp = decoded.Width == side && decoded.Height == side
                ? decoded.Copy()
                : decoded.Resize(new SKImageInfo(side, side), new SKSamplingOptions(SKFilterMode.Linear));
            for (int y = 0; y < side; y++)
                for (int x = 0; x < side; x++)
                {
                    var p = bmp.GetPixel(x, y);
                    int o = t * channels * plane + y * side + x;
                    if (channels == 1) data[o] = (p.Red + p.Green + p.Blue) / (3f * 255f);
                    else
                    {
                        data[o] = p.Red / 255f;
                        data[o + plane] = p.Green / 255f;
                        data[o + 2 * plane] = p.Blue / 255f;
                    }
                }
        }
        return tensor(data, [files.Count, 1, channels, side, side]);
    }
}
