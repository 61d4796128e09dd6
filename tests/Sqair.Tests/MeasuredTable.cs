using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sqair.Cli;
using Sqair.Evaluation;
using Sqair.Files;
using Sqair.Objective;

namespace Sqair.Tests;

/// <summary>
/// README's table of what the shipped model measures, rendered from the <c>sqair eval</c> reports committed beside
/// it (models/eval-*.json): a row per report, its numbers and the command that measured it read from the report,
/// so that every number of the table is a committed report's.
/// </summary>
static class MeasuredTable
{
    /// <summary>The lines around the table in README.md; what lies between them is <see cref="Render"/>'s.</summary>
    public const string Start = "<!-- generated from models/eval-*.json: tests/Sqair.Tests/MeasuredTable.cs -->",
                        End = "<!-- end of the generated table -->";

    /// <summary>Set to 1, the README test writes the rendered table into README.md instead of comparing.</summary>
    public const string UpdateVariable = "SQAIR_UPDATE_README";

    /// <summary>One committed report: its file and its JSON.</summary>
    public sealed record Report(string File, JsonObject Json)
    {
        public string Split => (string)Json["split"]!;
        public string Data => (string)Json["data"]!;
        public JsonObject Metrics => Json["metrics"]!.AsObject();

        /// <summary>The checkpoint's path from the repository's root: the models/ file of that name.</summary>
        public string Checkpoint => "models/" + Path.GetFileName((string)Json["checkpoint"]!);

        /// <summary>
        /// Whether it measured a <c>--data</c> file: <c>eval</c> names such a report after the file, and a
        /// split's after the split.
        /// </summary>
        public bool OfFile => Split == Path.GetFileNameWithoutExtension(Data);

        /// <summary>The value of one of the report's settings as the command line writes it.</summary>
        public string Setting(string key) => Text(Json[key]);
    }

    /// <summary>
    /// The settings of a report that change its numbers, as <c>eval</c> writes them into the report and as its
    /// command line reads them.
    /// </summary>
    static readonly (string Key, Option Option, Func<ParseResult, object?> Value)[] Settings =
    [
        ("k", CommonOptions.K, r => r.GetValue(CommonOptions.K)),
        ("resample", CommonOptions.Resample, r => r.GetValue(CommonOptions.Resample)),
        ("end_empty", CommonOptions.EndEmpty, r => r.GetValue(CommonOptions.EndEmpty)),
        ("suppress_iou", CommonOptions.SuppressIoU, r => r.GetValue(CommonOptions.SuppressIoU)),
        ("seed", CommonOptions.Seed, r => r.GetValue(CommonOptions.Seed)),
    ];

    /// <summary>The keys of the settings of a report that change its numbers.</summary>
    public static IEnumerable<string> SettingKeys => Settings.Select(s => s.Key);

    /// <summary>The ending of objects: the two settings that make it.</summary>
    static readonly string[] Ending = ["end_empty", "suppress_iou"];

    /// <summary>The committed reports, a split's before a file's, the model's own inference before an ending.</summary>
    public static IReadOnlyList<Report> Reports(string root) =>
    [
        .. Directory.GetFiles(Path.Combine(root, "models"), "eval-*.json")
            .Select(f => new Report(Path.GetFileName(f), JsonNode.Parse(File.ReadAllText(f))!.AsObject()))
            .OrderBy(r => r.OfFile).ThenBy(r => r.Split, StringComparer.Ordinal)
            .ThenBy(r => Ending.Sum(k => (double)r.Json[k]!)).ThenBy(r => r.File, StringComparer.Ordinal),
    ];

    /// <summary>What a command line gives a setting, written as in a report.</summary>
    public static string Parsed(ParseResult parse, string key) =>
        Text(Settings.Single(s => s.Key == key).Value(parse));

    /// <summary>
    /// The <c>sqair eval</c> command that measured <paramref name="report"/>: its data, and every setting in which
    /// it differs from the command's default (the command line's own defaults, asked of its parser).
    /// </summary>
    public static string Command(Report report)
    {
        var args = new List<string> { "eval", report.Checkpoint, report.OfFile ? "--data" : "--split",
                                      report.OfFile ? report.Data : report.Split };
        var defaults = Sqair.Cli.Cli.BuildRoot().Parse(args);
        foreach (var (key, option, _) in Settings)
            if (report.Setting(key) != Parsed(defaults, key)) args.AddRange([option.Name, report.Setting(key)]);
        return "sqair " + string.Join(' ', args);
    }

    /// <summary>The table, one line per row, each ending in a line break.</summary>
    public static string Render(string root)
    {
        var defaults = Sqair.Cli.Cli.BuildRoot().Parse(["eval", "model"]);
        var table = new StringBuilder()
            .Append("| data | sequences | inference | ")
            .AppendJoin("", EvaluationReport.Headline.Select(m => m.Label + " | "))
            .Append("command |\n| --- | ---: | --- | ")
            .AppendJoin("", EvaluationReport.Headline.Select(_ => "---: | "))
            .Append("--- |\n");
        foreach (var report in Reports(root))
        {
            var inference = Ending.All(k => double.Parse(report.Setting(k), CultureInfo.InvariantCulture) == 0)
                ? "the model's own"
                : Ending.All(k => report.Setting(k) == Parsed(defaults, k))
                    ? "default ending of objects"
                    : "another ending of objects";
            table.Append(CultureInfo.InvariantCulture,
                         $"| {(report.OfFile ? report.Split : report.Split + " split")} | " +
                         $"{(double)report.Metrics[Metrics.Sequences.Key]!} | {inference} | ");
            foreach (var measure in EvaluationReport.Headline)
                table.Append(measure.Text((double)report.Metrics[measure.Key]!)).Append(" | ");
            table.Append(CultureInfo.InvariantCulture, $"`{Command(report)}` |\n");
        }
        return table.ToString();
    }

    static string Text(object? value) => value switch
    {
        JsonNode node when node.GetValueKind() == JsonValueKind.String => node.GetValue<string>(),
        JsonNode node => node.ToJsonString(),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };
}

/// <summary>README's table of measurements, held by the committed reports it is made of.</summary>
public class MeasuredTableTests
{
    [Fact]
    public void README_holds_the_table_rendered_from_the_committed_reports()
    {
        var root = TestUtil.RepositoryRoot();
        var path = Path.Combine(root, "README.md");
        var readme = File.ReadAllText(path);
        int start = readme.IndexOf(MeasuredTable.Start, StringComparison.Ordinal),
            end = readme.IndexOf(MeasuredTable.End, StringComparison.Ordinal);
        Assert.True(start >= 0 && end > start,
                    $"README.md lost the lines around its table of measurements: {MeasuredTable.Start}, " +
                    MeasuredTable.End);
        start += MeasuredTable.Start.Length;
        // Blank lines between the comments and the table: a table ends only where another block begins.
        var rendered = "\n\n" + MeasuredTable.Render(root) + "\n";
        if (Environment.GetEnvironmentVariable(MeasuredTable.UpdateVariable) == "1")
        {
            File.WriteAllText(path, readme[..start] + rendered + readme[end..]);
            return;
        }
        Assert.True(readme[start..end] == rendered,
                    $"README.md's table of measurements is not the one models/eval-*.json give. " +
                    $"`{MeasuredTable.UpdateVariable}=1 dotnet test tests/Sqair.Tests --filter " +
                    $"FullyQualifiedName~{nameof(MeasuredTableTests)}` writes this one in its place:{rendered}");
    }

    [Fact]
    public void Each_report_measures_the_committed_model_with_the_command_of_its_row()
    {
        var root = TestUtil.RepositoryRoot();
        var reports = MeasuredTable.Reports(root);
        Assert.NotEmpty(reports);
        foreach (var report in reports)
        {
            var model = Path.Combine(root, report.Checkpoint);
            Assert.True(File.Exists(model), $"{report.File}: {report.Checkpoint} is not committed");
            string committed = Safetensors.ReadHeader(model).Metadata["iteration"],
                   measured = report.Json["iteration"]!.ToJsonString();
            Assert.True(committed == measured, $"{report.File} measured iteration {measured}, but " +
                                               $"{report.Checkpoint} is iteration {committed}: measure it again");
            var command = MeasuredTable.Command(report);
            var parse = Sqair.Cli.Cli.BuildRoot().Parse(command.Split(' ')[1..]);
            Assert.Empty(parse.Errors);
            Assert.Equal(report.OfFile ? report.Data : null, parse.GetValue<string>("--data"));
            Assert.Equal(report.Split, report.OfFile ? report.Split : parse.GetValue(CommonOptions.Split));
            Assert.Equal(report.Checkpoint, parse.GetValue(CommonOptions.Checkpoint));
            foreach (var key in MeasuredTable.SettingKeys)
                Assert.True(MeasuredTable.Parsed(parse, key) == report.Setting(key),
                            $"{report.File}: `{command}` gives {key} {MeasuredTable.Parsed(parse, key)}, " +
                            $"the report {report.Setting(key)}");
        }
    }
}
