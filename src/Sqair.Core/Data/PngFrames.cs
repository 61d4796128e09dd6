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
            using var decoded = Decode(files[t]);
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

    /// <summary>Decodes a whole image; a truncated or damaged one is an error naming the file (a partial decode would pass as a frame).</summary>
    public static SKBitmap Decode(string file)
    {
        using var codec = SKCodec.Create(file, out var created) ?? throw new InvalidDataException($"{file}: not a readable image ({created})");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        var bitmap = new SKBitmap(info);
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result == SKCodecResult.Success) return bitmap;
        bitmap.Dispose();
        throw new InvalidDataException($"{file}: {(result == SKCodecResult.IncompleteInput ? "truncated image" : $"cannot decode the image ({result})")}");
    }
}
