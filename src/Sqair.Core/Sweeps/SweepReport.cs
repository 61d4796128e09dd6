using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Files;
using Sqair.Objective;
using Sqair.Runs;
using Sqair.Training;
using Sqair.Visualisation;

namespace Sqair.Sweeps;

/// <summary>
/// A sweep's results from its tasks' metrics.jsonl validation records: sweep.csv (every record),
/// sweep.md (per seed and mean, at the largest iteration every task reached and at each task's
/// end) and plots/MEASURE.png (each arm's mean over seeds against iterations).
/// </summary>
internal static class SweepReport
{
    /// <summary>The measures of the table and plots.</summary>
    public static readonly IReadOnlyList<Metric> Measures =
        [.. EvaluationReport.Headline, Metrics.MotaGlimpse, Metrics.Mse];

    /// <summary>The report's files in the sweep folder.</summary>
    public const string CsvFile = "sweep.csv", MarkdownFile = "sweep.md", PlotsDir = "plots";

    /// <summary>One validation record of one task.</summary>
    public sealed record Point(SweepTask Task, long Iteration, IReadOnlyDictionary<string, double> Values);

    /// <summary>The validation records of every task that has any, in task order.</summary>
    public static IReadOnlyList<Point> Read(SweepSpec spec, string sweepDir)
    {
        var points = new List<Point>();
        foreach (var task in spec.Tasks)
        {
            var path = Path.Combine(task.RunDir(sweepDir), RunFolder.MetricsFile);
            if (!File.Exists(path)) continue;
            foreach (var line in File.ReadLines(path))
            {
                if (RunLog.IterationOf(line) is not { } iteration || JsonNode.Parse(line) is not JsonObject o ||
                    (string?)o["split"] != "valid") continue;
                var values = o.Where(kv => kv.Value is JsonValue v && v.TryGetValue<double>(out _))
                              .ToDictionary(kv => kv.Key, kv => (double)kv.Value!);
                points.Add(new Point(task, iteration, values));
            }
        }
        return points;
    }

    /// <summary>Writes sweep.csv, sweep.md and the plots; returns the Markdown.</summary>
    public static string Write(SweepSpec spec, string sweepDir)
    {
        var points = Read(spec, sweepDir);
        AtomicFile.WriteAllText(Path.Combine(sweepDir, CsvFile), Csv(points));
        var markdown = Markdown(spec, points);
        AtomicFile.WriteAllText(Path.Combine(sweepDir, MarkdownFile), markdown);
        Plot(spec, points, Path.Combine(sweepDir, PlotsDir));
        return markdown;
    }

    static string Csv(IReadOnlyList<Point> points)
    {
        var keys = Measures.Select(m => m.Key)
            .Concat(points.SelectMany(p => p.Values.Keys).Where(k => k != "iteration").Distinct().Order())
            .Distinct().ToList();
        var sb = new StringBuilder("arm,seed,iteration," + string.Join(",", keys) + "\n");
        foreach (var p in points)
            sb.Append(CultureInfo.InvariantCulture,
                      $"\"{p.Task.Arm.Name.Replace("\"", "\"\"")}\",{p.Task.Seed},{p.Iteration},")
              .AppendJoin(",", keys.Select(k =>
                  p.Values.TryGetValue(k, out var v) ? v.ToString("R", CultureInfo.InvariantCulture) : ""))
              .Append('\n');
        return sb.ToString();
    }

    /// <summary>
    /// The tables: at equal iterations (the largest every task reached), then at each task's end
    /// when that differs (a minutes budget). IWAE is marked when the arms differ in output_std,
    /// which scales the likelihood: their bounds are then not comparable.
    /// </summary>
    static string Markdown(SweepSpec spec, IReadOnlyList<Point> points)
    {
        var sb = new StringBuilder($"# Sweep\n\nBase: preset {spec.Preset}" +
                                   $"{(spec.Base.Count > 0 ? " with " + Assignments(spec.Base) : "")}. ");
        var every = spec.EvalEvery == 1
            ? "at every iteration"
            : $"every {SweepSpec.Count(spec.EvalEvery, "iteration")}";
        sb.Append(CultureInfo.InvariantCulture,
                  $"Budget: {spec.Fairness}. Validation: {Measured(spec)} {every} and at the end.\n\n");
        var byTask = points.GroupBy(p => p.Task.Index)
                           .ToDictionary(g => g.Key, g => g.OrderBy(p => p.Iteration).ToList());
        var missing = spec.Tasks.Where(t => !byTask.ContainsKey(t.Index)).ToList();
        if (missing.Count > 0)
            sb.Append(CultureInfo.InvariantCulture,
                $"Not measured yet: {string.Join(", ", missing.Select(t => $"{t.Arm.Name} seed {t.Seed}"))}.\n\n");
        if (byTask.Count == 0) return sb.ToString();

        bool iwaeComparable = IwaeComparable(spec);
        // The largest iteration at which every measured task has a record: a fair comparison even
        // when a minutes budget ended the tasks at different iterations.
        long? equal = byTask.Values.Select(ps => ps.Select(p => p.Iteration)).Aggregate((a, b) => a.Intersect(b))
                            .Cast<long?>().Max();
        if (equal is { } at)
        {
            sb.Append(CultureInfo.InvariantCulture, $"## At iteration {at:N0} (every measured task)\n\n");
            Table(sb, spec, byTask, ps => ps.FirstOrDefault(p => p.Iteration == at), iwaeComparable);
        }
        if (byTask.Values.Any(ps => ps[^1].Iteration != equal))
        {
            sb.Append("\n## At each task's end\n\n");
            Table(sb, spec, byTask, ps => ps[^1], iwaeComparable, showIteration: true);
        }
        if (!iwaeComparable)
            sb.Append("\n† not comparable across arms: they differ in output_std, which scales the likelihood.\n");
        return sb.ToString();
    }

    /// <summary>
    /// What each measurement used, as the trainer counts it: the first eval_count validation sequences,
    /// or all of them when the validation set is smaller (valid_size, or the sequences of the data file).
    /// </summary>
    static string Measured(SweepSpec spec)
    {
        var counts = spec.Tasks.Select(t => MeasuredCount(spec, t)).Distinct().Order().ToList();
        return counts.Count == 1
            ? $"the first {SweepSpec.Count(counts[0], "validation sequence")}"
            : $"the first {string.Join(" or ", counts.Select(n => n.ToString("N0", CultureInfo.InvariantCulture)))} " +
              $"validation sequences (as many of {spec.EvalCount:N0} as each arm's validation set holds)";
    }

    static long MeasuredCount(SweepSpec spec, SweepTask task)
    {
        var c = spec.ConfigOf(task);
        long? size = c.Data is null ? c.ValidSize : null;
        if ((c.ValidData ?? c.Data) is { } file)
        {
            // A file that cannot be read now (moved since) leaves the count requested.
            try
            {
                using var sequences = SequenceFile.Open(file);
                size = sequences.Count;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException) { }
        }
        return Math.Min(spec.EvalCount, size ?? spec.EvalCount);
    }

    /// <summary>
    /// Whether the arms share output_std, which scales the likelihood: otherwise their IWAE bounds do not compare.
    /// </summary>
    static bool IwaeComparable(SweepSpec spec) =>
        spec.Arms.Select(a => a.Changes.TryGetValue("output_std", out var v) ? v?.ToJsonString() : null)
            .Distinct().Count() == 1;

    static void Table(StringBuilder sb, SweepSpec spec, Dictionary<int, List<Point>> byTask,
                      Func<List<Point>, Point?> pick, bool iwaeComparable, bool showIteration = false)
    {
        var labels = Measures.Select(m => m == Metrics.Iwae && !iwaeComparable ? m.Label + " †" : m.Label);
        sb.Append(CultureInfo.InvariantCulture,
                  $"| arm | seeds |{(showIteration ? " iterations |" : "")} {string.Join(" | ", labels)} |\n");
        sb.Append(CultureInfo.InvariantCulture,
                  $"| --- | --- |{(showIteration ? " ---: |" : "")}{string.Concat(Measures.Select(_ => " ---: |"))}\n");
        foreach (var arm in spec.ArmList)
        {
            var chosen = spec.Tasks.Where(t => t.Arm.Name == arm.Name && byTask.ContainsKey(t.Index))
                             .Select(t => pick(byTask[t.Index])).OfType<Point>().ToList();
            if (chosen.Count == 0) continue;
            sb.Append(CultureInfo.InvariantCulture,
                      $"| {arm.Name} | {string.Join(", ", chosen.Select(p => p.Task.Seed))} |");
            if (showIteration)
                sb.Append(CultureInfo.InvariantCulture, $" {string.Join(" / ", chosen.Select(p =>
                    p.Iteration.ToString("N0", CultureInfo.InvariantCulture)))} |");
            foreach (var measure in Measures)
            {
                var values = chosen.Select(p => p.Values.TryGetValue(measure.Key, out var v) ? v : double.NaN)
                                   .ToList();
                var each = string.Join(" / ", values.Select(measure.Text));
                sb.Append(values.Count > 1 ? $" {each} (**{measure.Text(values.Average())}**) |" : $" {each} |");
            }
            sb.Append('\n');
        }
    }

    static string Assignments(IReadOnlyDictionary<string, JsonNode?> keys) =>
        string.Join(", ", keys.Select(kv => $"{kv.Key} = {kv.Value?.ToJsonString()}"));

    /// <summary>One PNG per measure: each arm's mean over its seeds as a line, each seed's values as points.</summary>
    static void Plot(SweepSpec spec, IReadOnlyList<Point> points, string outDir)
    {
        Directory.CreateDirectory(outDir);
        foreach (var measure in Measures)
            if (PlotOf(spec, points, measure.Key, measure.Label) is { } plot)
                Curves.Save(plot, Path.Combine(outDir, $"{measure.Key}.png"));
    }

    /// <summary>The plot of one measure, null when no arm has a value of it.</summary>
    internal static ScottPlot.Plot? PlotOf(SweepSpec spec, IReadOnlyList<Point> points, string key, string label)
    {
        var plot = new ScottPlot.Plot();
        bool any = false;
        var arms = spec.ArmList;
        for (int a = 0; a < arms.Count; a++)
        {
            var mine = points.Where(p => p.Task.Arm.Name == arms[a].Name && p.Values.ContainsKey(key)).ToList();
            if (mine.Count == 0) continue;
            int seeds = mine.Select(p => p.Task.Seed).Distinct().Count();
            var means = mine.GroupBy(p => p.Iteration).Where(g => g.Count() == seeds).OrderBy(g => g.Key)
                            .Select(g => (X: (double)g.Key, Y: g.Average(p => p.Values[key]))).ToArray();
            var (colour, marker) = ArmStyle(a);
            var line = plot.Add.Scatter(means.Select(m => m.X).ToArray(), means.Select(m => m.Y).ToArray());
            line.LegendText = arms[a].Name;
            line.Color = colour;
            line.MarkerShape = marker;
            var dots = plot.Add.ScatterPoints(mine.Select(p => (double)p.Iteration).ToArray(),
                                              mine.Select(p => p.Values[key]).ToArray());
            dots.Color = colour.WithAlpha(0.5);
            dots.MarkerShape = marker;
            dots.MarkerSize = 4;
            any = true;
        }
        if (!any) return null;
        var caveat = key == Metrics.Iwae.Key && !IwaeComparable(spec)
            ? " (not comparable: the arms differ in output_std)"
            : "";
        plot.Title($"{label}: mean over seeds (line), each seed (points){caveat}");
        plot.XLabel("iteration");
        plot.ShowLegend();
        return plot;
    }

    static readonly ScottPlot.Color[] ArmColours = new ScottPlot.Palettes.Category20().Colors;

    /// <summary>
    /// Filled and outlined shapes that stay apart at the legend's size. Seven, prime to the twenty colours, so that
    /// neighbouring arms differ in both.
    /// </summary>
    static readonly ScottPlot.MarkerShape[] ArmMarkers =
    [
        ScottPlot.MarkerShape.FilledCircle, ScottPlot.MarkerShape.FilledSquare,
        ScottPlot.MarkerShape.FilledTriangleUp, ScottPlot.MarkerShape.FilledDiamond,
        ScottPlot.MarkerShape.OpenCircle, ScottPlot.MarkerShape.OpenSquare, ScottPlot.MarkerShape.FilledTriangleDown,
    ];

    /// <summary>
    /// The colour and marker of the arm at <paramref name="index"/> in the sweep's arm list, the same in every plot
    /// even when an arm has no value of a measure. ScottPlot's own cycle has ten colours and one marker, so an
    /// eleventh arm was drawn as the first (the base). Colour and marker cycle at coprime lengths (20 and 7): the
    /// first 140 arms all differ in the pair, and any 7 consecutive arms in both.
    /// </summary>
    internal static (ScottPlot.Color Colour, ScottPlot.MarkerShape Marker) ArmStyle(int index) =>
        (ArmColours[index % ArmColours.Length], ArmMarkers[index % ArmMarkers.Length]);
}
