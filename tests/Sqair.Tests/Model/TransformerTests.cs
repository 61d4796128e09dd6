using Sqair.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Tests.Model;

public class TransformerTests
{
    /// <summary>
    /// Coordinates whose 20×20 glimpse samples exactly the pixels [top, top + 20) of a 50×50 image.
    /// </summary>
    static Tensor PixelAlignedCoords(int topY, int topX)
    {
        double s = 19.0 / 49.0;
        double ty = 2.0 * topY / 49 + s - 1, tx = 2.0 * topX / 49 + s - 1;
        return tensor(new[] { s, s, tx, ty }, dtype: ScalarType.Float64).unsqueeze(0);
    }

    static Tensor KnownImage()
    {
        var img = arange(2500, dtype: ScalarType.Float64).view(1, 1, 50, 50);
        return (img * 7 % 101) / 100;
    }

    [Fact]
    public void Extracting_a_pixel_aligned_glimpse_lands_the_known_pixels()
    {
        var img = KnownImage();
        var glimpse = SpatialTransformer.Extract(img, PixelAlignedCoords(12, 5), 20);
        var expected = img[.., .., 12..32, 5..25];
        Assert.True(glimpse.allclose(expected, rtol: 0, atol: 1e-9));
    }

    [Fact]
    public void Writing_inverts_extraction_on_the_glimpse_support_and_is_zero_elsewhere()
    {
        var img = KnownImage();
        var coords = PixelAlignedCoords(20, 30);
        var glimpse = SpatialTransformer.Extract(img, coords, 20);
        var canvas = SpatialTransformer.Write(glimpse, coords, 50);
        Assert.True(canvas[.., .., 20..40, 30..50].allclose(img[.., .., 20..40, 30..50], rtol: 0, atol: 1e-9));
        Assert.Equal(0.0, canvas[.., .., 0..19, ..].abs().max().item<double>(), 12);
        Assert.Equal(0.0, canvas[.., .., .., 0..29].abs().max().item<double>(), 12);
    }

    /// <summary>
    /// docs/design.md §2.1, one axis in an image of side L: size = (L + 1)s, top = (L − 1)(t − s + 1)/2.
    /// </summary>
    static (double Top, double Size) ToPixels(double s, double t, int side) =>
        (0.5 * (side - 1) * (t - s + 1), (side + 1) * s);

    [Fact]
    public void Pixel_boxes_follow_the_design_formula()
    {
        var rng = new Random(3);
        for (int i = 0; i < 50; i++)
        {
            double sx = 0.05 + rng.NextDouble(), sy = 0.05 + rng.NextDouble(),
                   tx = rng.NextDouble() * 2 - 1, ty = rng.NextDouble() * 2 - 1;
            int height = rng.Next(10, 100), width = rng.Next(10, 100);
            var box = Boxes.CoordsToPixelBoxes(tensor(new[] { sx, sy, tx, ty }, dtype: ScalarType.Float64),
                                               height, width).data<double>().ToArray();
            var (y, h) = ToPixels(sy, ty, height);
            var (x, w) = ToPixels(sx, tx, width);
            Assert.Equal(new[] { y, x, h, w }, box, new ToleranceComparer(1e-9));
        }
    }

    [Fact]
    public void Pixel_aligned_glimpse_box_starts_at_the_sampled_pixel()
    {
        var box = Boxes.CoordsToPixelBoxes(PixelAlignedCoords(12, 5), 50, 50).data<double>().ToArray();
        Assert.Equal(12, box[0], 9);
        Assert.Equal(5, box[1], 9);
    }

    [Fact]
    public void Scale_is_clipped_below_with_a_straight_through_gradient()
    {
        var logits = tensor(new[] { -30.0, 0.0, 0.3, -0.1 }, dtype: ScalarType.Float64, requires_grad: true);
        var coords = Boxes.Coords(logits, 1);
        Assert.Equal(Boxes.MinScale, coords[0].item<double>(), 12);
        coords[0].backward();
        var expected = Math.Exp(-30) / Math.Pow(1 + Math.Exp(-30), 2); // sigmoid'(−30)
        Assert.Equal(1.0, logits.grad![0].item<double>() / expected, 9);
    }

    [Fact]
    public void Shift_range_one_is_tanh_and_a_wider_range_keeps_its_slope_at_the_centre()
    {
        var logits = tensor(new[] { 0.0, 0.0, 0.7, -2.5 }, dtype: ScalarType.Float64);
        var tanh = Boxes.Coords(logits, 1).data<double>().ToArray();
        Assert.Equal(Math.Tanh(0.7), tanh[2], 12);
        Assert.Equal(Math.Tanh(-2.5), tanh[3], 12);
        var wide = Boxes.Coords(logits, 1.6).data<double>().ToArray();
        Assert.Equal(1.6 * Math.Tanh(0.7 / 1.6), wide[2], 12);
        var small = tensor(new[] { 0.0, 0.0, 1e-4, 0.0 }, dtype: ScalarType.Float64);
        Assert.Equal(1e-4, Boxes.Coords(small, 1.6).data<double>()[2], 10);   // d shift / d logit = 1 at 0, as tanh
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(1.6)]
    [InlineData(3.0)]
    public void A_window_centre_reaches_the_intended_margin_past_the_canvas_and_round_trips_through_pixel_boxes(
        double range)
    {
        const int side = 50;
        // top + size/2 = (L − 1)(t + 1)/2 + s: the window centre in pixels plus the scale.
        // A logit far out saturates the shift at ±range: the window centre lies range·(L − 1)/2 from the
        // canvas centre.
        var logits = tensor(new[] { 0.0, 0.0, 40.0, -40.0 }, dtype: ScalarType.Float64);
        var coords = Boxes.Coords(logits, range);
        var box = Boxes.CoordsToPixelBoxes(coords, side, side).data<double>().ToArray();   // y, x, h, w
        double centre = (side - 1) / 2.0, reach = range * (side - 1) / 2.0;
        Assert.Equal(centre + reach, box[1] + box[3] / 2 - box[3] / (side + 1), 6);   // x: right of the centre
        Assert.Equal(centre - reach, box[0] + box[2] / 2 - box[2] / (side + 1), 6);   // y: above it
        // pixel box → coordinates → the same shift (the inverse of the box formulas of docs/design.md §2.1)
        double s = box[3] / (side + 1), t = box[1] * 2 / (side - 1) - 1 + s;
        Assert.Equal(coords[2].item<double>(), t, 9);
        Assert.Equal(range, t, 9);
    }

    [Fact]
    public void Extraction_gradient_matches_finite_differences()
    {
        var img = KnownImage();
        var logits = tensor(new[] { -0.3, 0.2, 0.1, -0.25 }, dtype: ScalarType.Float64).unsqueeze(0).requires_grad_();
        Tensor F(Tensor l) =>
            (SpatialTransformer.Extract(img, Boxes.Coords(l, 1.6), 20) * img[.., .., 0..20, 0..20]).sum();
        F(logits).backward();
        var analytic = logits.grad!.data<double>().ToArray();
        for (int i = 0; i < 4; i++)
        {
            const double h = 1e-6;
            var plus = logits.detach().clone(); plus[0, i] += h;
            var minus = logits.detach().clone(); minus[0, i] -= h;
            double numeric = (F(plus).item<double>() - F(minus).item<double>()) / (2 * h);
            Assert.Equal(numeric, analytic[i], 5);
        }
    }
}

sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
{
    public bool Equals(double a, double b) => Math.Abs(a - b) <= tolerance;
    public int GetHashCode(double x) => 0;
}

public class ContentBoxTests
{
    [Fact]
    public void The_content_box_of_a_pixel_aligned_glimpse_is_the_drawn_pixels()
    {
        double s = 19.0 / 49.0;
        int top = 12, left = 5;
        var coords = new[] { (float)s, (float)s, (float)(2.0 * left / 49 + s - 1), (float)(2.0 * top / 49 + s - 1) };
        var glimpse = new float[20 * 20];
        for (int r = 3; r <= 9; r++)
            for (int c = 6; c <= 10; c++) glimpse[r * 20 + c] = 0.9f;
        glimpse[0] = 0.1f; // below the threshold
        var box = Boxes.ContentBox(glimpse, 20, coords, 50, 50, 0.25f)!.Value;
        Assert.Equal(top + 3, box.Y, 4);
        Assert.Equal(left + 6, box.X, 4);
        Assert.Equal(7, box.H, 4);
        Assert.Equal(5, box.W, 4);
        Assert.Null(Boxes.ContentBox(new float[400], 20, coords, 50, 50, 0.25f));
    }

    [Fact]
    public void A_full_glimpse_content_box_is_the_sampled_span_plus_one_glimpse_pixel()
    {
        var coords = new[] { 0.5f, 0.4f, 0.1f, -0.2f };
        var glimpse = Enumerable.Repeat(1f, 2 * 20 * 20).ToArray(); // two channels
        var box = Boxes.ContentBox(glimpse, 20, coords, 50, 40, 0.25f)!.Value;
        Assert.Equal(0.5 * 49 * (-0.2 - 0.4 + 1), box.Y, 4);
        Assert.Equal(0.4 * 49 * (1 + 1.0 / 19), box.H, 4);
        Assert.Equal(0.5 * 39 * (0.1 - 0.5 + 1), box.X, 4);
        Assert.Equal(0.5 * 39 * (1 + 1.0 / 19), box.W, 4);
    }
}
