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

    /// <summary>Digit-like templates with no zero pixels (so visibility is exactly "corner on the canvas").</summary>
    public static List<Template> Templates(int n, ulong seed = 1) => MovingMnist.SyntheticTemplates(n, seed);

    public static MovingMnist Generator(MovingMnistConfig? config = null, ulong seed = 7, int templates = 200) =>
        new(config ?? new MovingMnistConfig(), Templates(templates), seed);
}
