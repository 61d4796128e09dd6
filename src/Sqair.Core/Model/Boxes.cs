using TorchSharp;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Model;

/// <summary>
/// Conversions between <c>where</c> logits, transformer coordinates and pixel boxes (docs/design.md §2.1).
/// <c>where</c> = (sx, sy, tx, ty) logits; scale = sigmoid, shift = c·tanh(logit / c) with c =
/// <c>shift_range</c> (1: tanh, the original's), in normalised coordinates where the canvas spans
/// [−1, 1] (align-corners convention). Pixel boxes are (y, x, h, w).
/// </summary>
internal static class Boxes
{
    /// <summary>
    /// Transformer windows as scales (sx, sy) [..., 2] and shifts (tx, ty) [..., 2]: x_image = s·x_glimpse + t.
    /// </summary>
    public readonly record struct Window(Tensor Scale, Tensor Shift)
    {
        /// <summary>The windows given as (sx, sy, tx, ty) coordinates [..., 4].</summary>
        public static Window Of(Tensor coords) => new(coords.narrow(-1, 0, 2), coords.narrow(-1, 2, 2));

        /// <summary>(sx, sy, tx, ty) coordinates [..., 4].</summary>
        public Tensor Coords() => cat([Scale, Shift], -1);
    }

    public const double MinScale = 1e-4;

    /// <summary>
    /// [..., 4] logits → [..., 4] (sx, sy, tx, ty) coordinates, scales clipped below at 1e−4 with a
    /// straight-through gradient, shifts in (−<paramref name="shiftRange"/>, <paramref name="shiftRange"/>).
    /// Dividing the logit by c keeps the slope at the centre that of tanh, so a window centre
    /// moves as it did under tanh until it nears the border (docs/design.md §2.1, Departure).
    /// </summary>
    public static Tensor Coords(Tensor whereLogits, double shiftRange) => Windows(whereLogits, shiftRange).Coords();

    /// <summary>
    /// <see cref="Coords"/> as its two halves, for the spatial transformer, which reads them apart
    /// (no concatenation to cut again: three ops fewer per glimpse).
    /// </summary>
    public static Window Windows(Tensor whereLogits, double shiftRange)
    {
        var parts = whereLogits.split([2, 2], -1);
        var scale = parts[0].sigmoid();
        scale = scale.Plus((scale.clamp_min(Kept(MinScale)) - scale).detach());
        var shift = shiftRange == 1 ? parts[1].tanh() : parts[1].div(Kept(shiftRange)).tanh().mul(Kept(shiftRange));
        return new Window(scale, shift);
    }

    /// <summary>
    /// Intersection over union of windows given as (sx, sy, tx, ty) coordinates [..., 4] (broadcast):
    /// a window spans t ± s on each axis.
    /// </summary>
    public static Tensor WindowIoU(Tensor a, Tensor b)
    {
        var p = a.unbind(-1);
        var q = b.unbind(-1);
        Tensor Overlap(Tensor s1, Tensor t1, Tensor s2, Tensor t2) =>
            minimum(t1.Plus(s1), t2.Plus(s2)).sub(maximum(t1 - s1, t2 - s2)).clamp_min(Kept(0.0));
        var inter = Overlap(p[0], p[2], q[0], q[2]) * Overlap(p[1], p[3], q[1], q[3]);
        var union = (p[0] * p[1]).Plus(q[0] * q[1]).mul(Kept(4L)) - inter;
        return inter.div(union.clamp_min(Kept(1e-12)));
    }

    /// <summary>[..., 4] (sx, sy, tx, ty) coordinates → [..., 4] pixel boxes (y, x, h, w) in an H×W image.</summary>
    public static Tensor CoordsToPixelBoxes(Tensor coords, int height, int width)
    {
        var c = coords.unbind(-1);
        Tensor sx = c[0], sy = c[1], tx = c[2], ty = c[3];
        return stack([
            (ty - sy).Plus(Kept(1L)).mul(Kept(0.5 * (height - 1))),
            (tx - sx).Plus(Kept(1L)).mul(Kept(0.5 * (width - 1))),
            sy.mul(Kept((long)height + 1)),
            sx.mul(Kept((long)width + 1)),
        ], -1);
    }

    /// <summary>
    /// The tight pixel box (y, x, h, w) of what an object draws: the glimpse pixels whose decoded
    /// value exceeds <paramref name="threshold"/> in any channel, mapped into the image. SQAIR's
    /// where is an attention window, usually larger than the object inside it; this box is the
    /// object's extent, comparable to ground-truth bounding boxes. Null when nothing exceeds it.
    /// <paramref name="glimpse"/> is C×G×G; <paramref name="coords"/> (sx, sy, tx, ty).
    /// </summary>
    public static (float Y, float X, float H, float W)? ContentBox(ReadOnlySpan<float> glimpse, int g,
                                                                ReadOnlySpan<float> coords, int height, int width,
                                                                float threshold)
    {
        int r0 = g, r1 = -1, c0 = g, c1 = -1;
        for (int i = 0; i < glimpse.Length; i++)
        {
            if (glimpse[i] <= threshold) continue;
            int row = i / g % g, col = i % g;
            r0 = Math.Min(r0, row); r1 = Math.Max(r1, row);
            c0 = Math.Min(c0, col); c1 = Math.Max(c1, col);
        }
        if (r1 < 0) return null;
        // glimpse pixel j sits at x_g = −1 + 2j/(G − 1), i.e. image pixel (s·x_g + t + 1)(L − 1)/2
        static (float Start, float Size) Axis(int j0, int j1, int g, float s, float t, int side)
        {
            float Pixel(int j) => (s * (-1f + 2f * j / (g - 1)) + t + 1) * (side - 1) / 2;
            float step = s * (side - 1) / (g - 1);
            return (Pixel(j0), Pixel(j1) - Pixel(j0) + step);
        }
        var (y, h) = Axis(r0, r1, g, coords[1], coords[3], height);
        var (x, w) = Axis(c0, c1, g, coords[0], coords[2], width);
        return (y, x, h, w);
    }
}
