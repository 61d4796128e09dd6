using Sqair.Data;

namespace Sqair.Tests;

static class TestUtil
{
    /// <summary>A fresh empty folder under the system temp directory.</summary>
    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "sqair-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>Digit-like templates: filled blobs of random size (8..28) with random grey levels, all edges non-zero.</summary>
    public static List<Template> Templates(int n, ulong seed = 1)
    {
        var rng = new Rng(seed);
        var list = new List<Template>();
        for (int i = 0; i < n; i++)
        {
            int h = rng.NextInt(8, 28), w = rng.NextInt(6, 28);
            var px = new byte[h * w];
            for (int p = 0; p < px.Length; p++) px[p] = (byte)rng.NextInt(1, 255);
            list.Add(new Template(px, h, w, i % 10));
        }
        return list;
    }

    public static MovingMnist Generator(MovingMnistConfig? config = null, ulong seed = 7, int templates = 200) =>
        new(config ?? new MovingMnistConfig(), Templates(templates), seed);
}
