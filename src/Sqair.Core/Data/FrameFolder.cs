using SkiaSharp;
using Sqair.Files;
using static TorchSharp.torch;

namespace Sqair.Data;

/// <summary>How frames are resized to the model's square canvas.</summary>
public enum ResizeFilter
{
    /// <summary>The nearest pixel: keeps hard edges and exact values.</summary>
    Nearest,
    /// <summary>Bilinear interpolation (the default).</summary>
    Linear,
    /// <summary>Mitchell's cubic: smoother when shrinking a lot.</summary>
    Cubic,
}

/// <summary>
/// A user's video as a folder of PNG or JPEG frames, read in ordinal file-name order (name them
/// with zero-padded numbers, as ffmpeg's <c>%05d</c> does). MOT Challenge folders keep their frames
/// in <c>img1/</c>, which is used when the folder itself holds none. Every frame is stretched to
/// the square canvas with the chosen filter (SkiaSharp's nearest, bilinear, or Mitchell cubic); grey
/// is the mean of the red, green and blue channels.
/// </summary>
public static class FrameFolder
{
    /// <summary>File extensions read as frames.</summary>
    public static readonly string[] Extensions = [".png", ".jpg", ".jpeg"];

    /// <summary>
    /// The frame files of a sequence folder, in name order; an error naming the folder if it holds none.
    /// </summary>
    public static IReadOnlyList<string> Files(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: no such folder");
        static List<string> In(string dir) => Directory.Exists(dir)
            ? Directory.GetFiles(dir).Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                .Order(StringComparer.Ordinal).ToList()
            : [];
        var files = In(folder);
        if (files.Count == 0) files = In(Path.Combine(folder, "img1"));
        if (files.Count == 0)
            throw new FileNotFoundException(
                $"{folder} holds no .png or .jpg frames (nor does {Path.Combine(folder, "img1")})");
        // Reading a FIFO blocks until something writes to it: refuse special files before opening any.
        return files.FirstOrDefault(SpecialFile.Is) is { } special
            ? throw new InvalidDataException(
                $"{special}: not a regular file (a FIFO, device or socket); frames must be image files")
            : files;
    }

    /// <summary>
    /// Frames of a folder as [T, 1, C, side, side] in [0, 1] (one sequence, batch of one), for tracking.
    /// </summary>
    public static Tensor Load(string folder, int side, int channels, ResizeFilter filter = ResizeFilter.Linear) =>
        Load(folder, side, channels, filter, out _);

    /// <summary>
    /// <see cref="Load(string, int, int, ResizeFilter)"/>, with the frames' own size (width,
    /// height), to map boxes back to it.
    /// </summary>
    public static Tensor Load(string folder, int side, int channels, ResizeFilter filter,
                              out (int Width, int Height) size)
    {
        var files = Files(folder);
        var bytes = Read(files, side, channels, filter, out size);
        return tensor(bytes.Select(b => b / 255f).ToArray(), [files.Count, 1, channels, side, side]);
    }

    /// <summary>
    /// The frames as bytes [T, C, side, side], each resized to side×side; all must share one size,
    /// which <paramref name="size"/> returns (width, height) so boxes can be mapped back.
    /// </summary>
    public static byte[] Read(IReadOnlyList<string> files, int side, int channels, ResizeFilter filter,
                              out (int Width, int Height) size)
    {
        int frame = channels * side * side;
        var data = new byte[files.Count * frame];
        size = default;
        for (int t = 0; t < files.Count; t++)
        {
            var own = ReadFrame(files[t], side, channels, filter, data.AsSpan(t * frame, frame));
            if (t == 0) size = own;
            else CheckSize(files[t], own, files[0], size);
        }
        return data;
    }

    /// <summary>
    /// The frames of a folder one at a time, each [1, C, side, side] in [0, 1] (a batch of one
    /// sequence), so that tracking a long video holds one frame, not all; and the frames' own size
    /// (width, height), read from the first. A frame of another size is an error naming it when it is reached.
    /// </summary>
    public static (IEnumerable<Tensor> Frames, (int Width, int Height) Size) Stream(
        string folder, int side, int channels, ResizeFilter filter = ResizeFilter.Linear)
    {
        var files = Files(folder);
        (int Width, int Height) size;
        using (var first = Decode(files[0])) size = (first.Width, first.Height);
        IEnumerable<Tensor> Frames()
        {
            var bytes = new byte[channels * side * side];
            foreach (var file in files)
            {
                CheckSize(file, ReadFrame(file, side, channels, filter, bytes), files[0], size);
                yield return tensor(bytes.Select(b => b / 255f).ToArray(), [1, channels, side, side]);
            }
        }
        return (Frames(), size);
    }

    static void CheckSize(string file, (int Width, int Height) size, string first, (int Width, int Height) firstSize)
    {
        if (size != firstSize)
            throw new InvalidDataException(
                $"{file}: {size.Width}×{size.Height} pixels, but {first} is {firstSize.Width}×{firstSize.Height}; " +
                "the frames of one sequence must share a size");
    }

    /// <summary>
    /// Decodes one frame, resizes it to side×side and writes its C planes into
    /// <paramref name="into"/>; returns its own size.
    /// </summary>
    static (int Width, int Height) ReadFrame(string file, int side, int channels, ResizeFilter filter, Span<byte> into)
    {
        int plane = side * side;
        using var decoded = Decode(file);
        using var resized = Resize(decoded, side, filter);
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
            {
                var p = resized.GetPixel(x, y);
                int o = y * side + x;
                if (channels == 1) into[o] = (byte)((p.Red + p.Green + p.Blue + 1) / 3);
                else
                {
                    into[o] = p.Red;
                    into[o + plane] = p.Green;
                    into[o + 2 * plane] = p.Blue;
                }
            }
        return (decoded.Width, decoded.Height);
    }

    static SKBitmap Resize(SKBitmap image, int side, ResizeFilter filter)
    {
        if (image.Width == side && image.Height == side) return image.Copy();
        var sampling = filter switch
        {
            ResizeFilter.Nearest => new SKSamplingOptions(SKFilterMode.Nearest),
            ResizeFilter.Cubic => new SKSamplingOptions(SKCubicResampler.Mitchell),
            _ => new SKSamplingOptions(SKFilterMode.Linear),
        };
        return image.Resize(new SKImageInfo(side, side, SKColorType.Rgba8888, SKAlphaType.Premul), sampling);
    }

    /// <summary>
    /// Decodes a whole image; a truncated or damaged one is an error naming the file (a partial
    /// decode would pass as a frame).
    /// </summary>
    public static SKBitmap Decode(string file)
    {
        using var codec = SKCodec.Create(file, out var created)
            // Skia answers InternalError for a file that is not there (a frame deleted while the folder is read)
            ?? throw (!File.Exists(file) ? new IOException($"{file}: does not exist (any more)")
                : new InvalidDataException(created == SKCodecResult.Unimplemented
                    // Skia answers Unimplemented for bytes it recognises as no image format at all
                    ? $"{file}: is not a PNG or JPEG image (its bytes are no image format)"
                    : $"{file}: not a readable image ({created})"));
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        var bitmap = new SKBitmap(info);
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result == SKCodecResult.Success) return bitmap;
        bitmap.Dispose();
        throw new InvalidDataException($"{file}: " +
            (result == SKCodecResult.IncompleteInput ? "truncated image" : $"cannot decode the image ({result})"));
    }
}
