using System.Text.Json.Nodes;
using Sqair.Files;
using Sqair.Objective;
using Sqair.Runs;

namespace Sqair.Visualisation;

/// <summary>Learning curves from the metrics.jsonl of one or more runs, one PNG per measure.</summary>
public static class Curves
{
    /// <summary>The measures drawn, with their titles; train and validation series share a plot.</summary>
    public static readonly (string Key, string Label)[] Measures =
    [
        .. new[]
        {
            Metrics.Iwae, Metrics.CountAccVisible, Metrics.Mota, Metrics.KlPerFrame, Metrics.LogLikelihoodPerFrame,
            Metrics.Loss,
        }.Select(m => (m.Key, m.Title)),
    ];

    /// <summary>Size of every curve plot: wide enough for a legend beside the lines on a laptop screen.</summary>
    const int Width = 800, Height = 450;

    /// <summary>
    /// Writes <paramref name="plot"/> as a PNG, atomically: a full disk never leaves an empty
    /// picture under its name.
    /// </summary>
    internal static void Save(ScottPlot.Plot plot, string path) =>
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(Width, Height, ScottPlot.ImageFormat.Png));

    /// <summary>
    /// Draws the curves of <paramref name="runDirs"/> into <paramref name="outDir"/>; lines that
    /// are not whole records are skipped and reported through <paramref name="warn"/>.
    /// </summary>
    public static IReadOnlyList<string> Plot(IReadOnlyList<string> runDirs, string outDir, Action<string>? warn = null)
    {
        var series = runDirs
            .Select(dir => (Name: Path.GetFileName(Path.GetFullPath(dir).TrimEnd('/')), Lines: Read(dir, warn)))
            .ToList();
        var written = new List<string>();
        foreach (var (key, label) in Measures)
        {
            var plot = new ScottPlot.Plot();
            bool any = false;
            foreach (var (name, lines) in series)
                foreach (var split in new[] { "train", "valid" })
                {
                    var points = lines.Where(l => (string?)l["split"] == split &&
                                                  l[key] is JsonValue v && v.TryGetValue<double>(out _))
                        .Select(l => ((double)l["iteration"]!, (double)l[key]!)).ToArray();
                    if (points.Length == 0) continue;
                    var scatter = plot.Add.Scatter(points.Select(p => p.Item1).ToArray(),
                                                   points.Select(p => p.Item2).ToArray());
                    scatter.LegendText = $"{name} {split}";
                    scatter.MarkerSize = split == "valid" ? 5 : 0;
                    any = true;
                }
            if (!any) continue;
            plot.Title(label);
            plot.XLabel("iteration");
            plot.ShowLegend();
            var path = Path.Combine(outDir, $"{key}.png");
            Save(plot, path);
            written.Add(path);
        }
        return written;
    }

    static List<JsonNode> Read(string runDir, Action<string>? warn)
    {
        var path = Path.Combine(runDir, RunFolder.MetricsFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist: not a run folder?", path);
        var records = new List<JsonNode>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Length == 0) continue;
            // A line cut short (the disk filled up, the process was killed mid-write) loses one point, not
            // the plot.
            if (RunLog.IterationOf(line) is null)
                warn?.Invoke($"{path}:{lineNumber}: not a whole record, skipped");
            else
                records.Add(JsonNode.Parse(line)!);
        }
        return records;
    }
}
