using System.Text.Json.Nodes;
using ScottPlot.Plottables;
using Sqair.Objective;
using Sqair.Sweeps;

namespace Sqair.Tests.Sweeps;

/// <summary>The sweep plots tell every arm apart, however many there are.</summary>
public class SweepPlotTests
{
    [Fact]
    public void The_first_140_arm_styles_are_pairwise_distinct_and_neighbours_differ_in_colour_and_marker()
    {
        var styles = Enumerable.Range(0, 140).Select(SweepReport.ArmStyle).ToList();
        Assert.Equal(styles.Count, styles.Distinct().Count());
        for (int i = 0; i + 7 <= styles.Count; i++)
        {
            var window = styles.Skip(i).Take(7).ToList();
            Assert.Equal(7, window.Select(s => s.Colour).Distinct().Count());
            Assert.Equal(7, window.Select(s => s.Marker).Distinct().Count());
        }
        // twenty colours before any repeats: a sweep of up to twenty arms needs no marker to tell them apart
        Assert.Equal(20, styles.Take(20).Select(s => s.Colour).Distinct().Count());
    }

    [Fact]
    public void A_plot_of_fourteen_arms_draws_each_in_its_own_colour_and_marker_and_its_seeds_alike()
    {
        const int armCount = 14;
        var spec = new SweepSpec
        {
            Arms = [.. Enumerable.Range(0, armCount).Select(i => new SweepSpec.ArmJson(
                i == 0 ? "base" : $"arm{i}", i == 0 ? [] : new Dictionary<string, JsonNode?> { ["lr"] = i * 1e-4 }))],
            Seeds = [1, 2],
            Iterations = 4,
            EvalEvery = 2,
        };
        // Arm 3 has no MOTA: the arms after it keep the styles of their place in the sweep.
        var points = spec.Tasks.Where(t => t.Arm.Name != "arm3")
            .SelectMany(t => new[] { 2L, 4L }.Select(it => new SweepReport.Point(t, it,
                new Dictionary<string, double> { [Metrics.Mota.Key] = 0.01 * t.Index + 0.001 * it })))
            .ToList();

        var plot = SweepReport.PlotOf(spec, points, Metrics.Mota.Key, Metrics.Mota.Label);

        Assert.NotNull(plot);
        var scatters = plot.GetPlottables().OfType<Scatter>().ToList();
        var lines = scatters.Where(s => !string.IsNullOrEmpty(s.LegendText)).ToList();
        Assert.Equal(armCount - 1, lines.Count);
        Assert.Equal(lines.Count, lines.Select(l => l.Color).Distinct().Count());
        Assert.Equal(lines.Count, lines.Select(l => (l.Color, l.MarkerShape)).Distinct().Count());
        foreach (var line in lines)
        {
            int index = spec.Arms.FindIndex(a => a.Name == line.LegendText);
            Assert.Equal(SweepReport.ArmStyle(index), (line.Color, line.MarkerShape));
        }
        // each arm's seed points follow its line: same colour (half transparent) and marker
        var dots = scatters.Where(s => string.IsNullOrEmpty(s.LegendText)).ToList();
        Assert.Equal(lines.Count, dots.Count);
        foreach (var (line, seedDots) in lines.Zip(dots))
        {
            Assert.Equal(line.Color.WithAlpha(0.5), seedDots.Color);
            Assert.Equal(line.MarkerShape, seedDots.MarkerShape);
        }
    }
}
