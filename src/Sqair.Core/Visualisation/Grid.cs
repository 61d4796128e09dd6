using SkiaSharp;
using Sqair.Files;

namespace Sqair.Visualisation;

/// <summary>A box to draw on a cell: pixel (y, x, h, w) in the cell's image, coloured by object id.</summary>
internal readonly record struct DrawBox(float Y, float X, float H, float W, int Id);

/// <summary>One image of a figure: C×H×W values in [0, 1] (C = 1 grey or 3 colour), boxes and a caption.</summary>
internal sealed record Cell(float[] Pixels, int Channels, int Height, int Width, IReadOnlyList<DrawBox>? Boxes = null,
                            string? Caption = null);

/// <summary>
/// Renders rows of image cells into a PNG, with id-coloured boxes and captions. Every figure of
/// the project (data previews, sequence and still figures, GIF frames) goes through here so they
/// look alike.
/// </summary>
internal static class Grid
{
    /// <summary>Ten distinguishable colours (matplotlib's tab10); ids cycle through them.</summary>
    static readonly SKColor[] Palette =
    [
        new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189),
        new(140, 86, 75), new(227, 119, 194), new(188, 189, 34), new(23, 190, 207), new(127, 127, 127),
    ];

    public static SKColor ColorOf(int id) => id < 0 ? SKColors.White : Palette[id % Palette.Length];

    static readonly Lazy<SKTypeface> Font = new(() =>
    {
        foreach (var f in new[] { "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                                  "/usr/share/fonts/TTF/DejaVuSans.ttf" })
            if (File.Exists(f) && SKTypeface.FromFile(f) is { } t) return t;
        return SKTypeface.Default;
    });

    public static SKBitmap Render(IReadOnlyList<IReadOnlyList<Cell>> rows, int scale = 3, string? title = null,
                                  IReadOnlyList<string>? rowLabels = null)
    {
        int cellW = rows.SelectMany(r => r).Max(c => c.Width) * scale;
        int cellH = rows.SelectMany(r => r).Max(c => c.Height) * scale;
        bool captions = rows.SelectMany(r => r).Any(c => c.Caption is not null);
        int pad = 4, captionH = captions ? 14 : 0, titleH = title is null ? 0 : 20, labelW = rowLabels is null ? 0 : 70;
        int cols = rows.Max(r => r.Count);
        int width = labelW + cols * (cellW + pad) + pad;
        int height = titleH + rows.Count * (cellH + captionH + pad) + pad;
        var bmp = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var canvas = new SKCanvas(bmp);
        canvas.Clear(new SKColor(24, 24, 24));
        using var text = new SKFont(Font.Value, 11);
        using var textPaint = new SKPaint { Color = SKColors.White, IsAntialias = true };
        if (title is not null) canvas.DrawText(title, pad, 15, text, textPaint);
        for (int r = 0; r < rows.Count; r++)
        {
            int y0 = titleH + pad + r * (cellH + captionH + pad);
            if (rowLabels is not null && r < rowLabels.Count)
                canvas.DrawText(rowLabels[r], pad, y0 + captionH + cellH / 2f, text, textPaint);
            for (int c = 0; c < rows[r].Count; c++)
            {
                var cell = rows[r][c];
                int x0 = labelW + pad + c * (cellW + pad);
                if (cell.Caption is not null) canvas.DrawText(cell.Caption, x0, y0 + 11, text, textPaint);
                DrawCell(canvas, cell, x0, y0 + captionH, scale);
            }
        }
        return bmp;
    }

    static void DrawCell(SKCanvas canvas, Cell cell, int x0, int y0, int scale)
    {
        using var img = new SKBitmap(cell.Width, cell.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        int hw = cell.Height * cell.Width;
        for (int i = 0; i < hw; i++)
        {
            byte V(int ch) => (byte)Math.Clamp(MathF.Round(cell.Pixels[ch * hw + i] * 255f), 0, 255);
            var color = cell.Channels == 3 ? new SKColor(V(0), V(1), V(2)) : new SKColor(V(0), V(0), V(0));
            img.SetPixel(i % cell.Width, i / cell.Width, color);
        }
        var dest = new SKRect(x0, y0, x0 + cell.Width * scale, y0 + cell.Height * scale);
        using (var sampled = SKImage.FromBitmap(img))
            canvas.DrawImage(sampled, dest, new SKSamplingOptions(SKFilterMode.Nearest));
        canvas.Save();
        canvas.ClipRect(dest);
        foreach (var b in cell.Boxes ?? [])
        {
            using var paint = new SKPaint
            {
                Color = ColorOf(b.Id),
                Style = SKPaintStyle.Stroke,
                StrokeWidth = 1.5f,
                IsAntialias = true,
            };
            canvas.DrawRect(x0 + b.X * scale, y0 + b.Y * scale, b.W * scale, b.H * scale, paint);
        }
        canvas.Restore();
    }

    public static void SavePng(SKBitmap bmp, string path)
    {
        using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.Write(path, s => data.SaveTo(s));
    }
}
