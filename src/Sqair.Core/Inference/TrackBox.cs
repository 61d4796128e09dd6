namespace Sqair.Inference;

/// <summary>
/// One box of one frame: an object (or hypothesis) id, its pixel box (y, x, h, w), for inferred
/// objects the presence probability, and after <see cref="ClipTo"/> the fraction of the box's area
/// that was on the canvas.
/// </summary>
public readonly record struct TrackBox(long Id, float Y, float X, float H, float W, float Probability = 1,
                                       float OnCanvas = 1)
{
    /// <summary>Intersection over union with another box.</summary>
    public double IoU(TrackBox o)
    {
        double iy = Math.Max(0, Math.Min(Y + H, o.Y + o.H) - Math.Max(Y, o.Y));
        double ix = Math.Max(0, Math.Min(X + W, o.X + o.W) - Math.Max(X, o.X));
        double inter = iy * ix, union = H * W + o.H * o.W - inter;
        return union <= 0 ? 0 : inter / union;
    }

    /// <summary>
    /// The part of the box inside a height×width image (zero-sized when it lies outside). Tracking
    /// compares what is visible: a digit half off the canvas has only its visible half to be found.
    /// </summary>
    public TrackBox ClipTo(int height, int width)
    {
        float y0 = Math.Clamp(Y, 0, height), y1 = Math.Clamp(Y + H, 0, height);
        float x0 = Math.Clamp(X, 0, width), x1 = Math.Clamp(X + W, 0, width);
        float area = H * W, onCanvas = area > 0 ? (y1 - y0) * (x1 - x0) / area : 0;
        return this with { Y = y0, X = x0, H = y1 - y0, W = x1 - x0, OnCanvas = onCanvas };
    }
}
