using System.CommandLine;
using System.Text.Json.Nodes;
using Sqair.Model;
using Sqair.Training;

namespace Sqair.Cli;

/// <summary>
/// The options that make a config, shared by train and bench: --preset, --config and one option per
/// config key under the original's names (--output_std 0.2).
/// </summary>
static class ConfigOptions
{
    public static readonly Option<string> Preset = CommonOptions.OneOf(new Option<string>("--preset")
    {
        Description = $"Starting config: {string.Join(", ", Presets.All.Keys)}",
        DefaultValueFactory = _ => Presets.Default,
    }, [.. Presets.All.Keys]);
    public static readonly Option<string?> ConfigFile = new("--config")
    {
        Description = "JSON file of config keys applied on top of the preset",
    };

    /// <summary>One string option per config key, so "--learning_rate 3e-4" works like the original's flags.</summary>
    static readonly Dictionary<string, Option<string?>> KeyOptions =
        SqairConfig.Keys.Keys.ToDictionary(k => k, k => new Option<string?>($"--{k}")
        {
            Description = SqairConfig.Describe(k),
            HelpName = "value",
        });

    /// <summary>--preset, --config and one option per config key.</summary>
    public static void AddTo(Command command)
    {
        command.Options.Add(Preset);
        command.Options.Add(ConfigFile);
        foreach (var o in KeyOptions.Values) command.Options.Add(o);
    }

    public static IEnumerable<string> KeyAssignments(ParseResult r) =>
        KeyOptions.Where(kv => r.GetValue(kv.Value) is not null).Select(kv => $"{kv.Key}={r.GetValue(kv.Value)}");

    /// <summary>
    /// The config from the preset, then the file's keys, then the command line's, validated once
    /// with all of them applied; a bad key is named with where it came from.
    /// </summary>
    public static SqairConfig From(ParseResult r)
    {
        var overrides = new JsonObject();
        var sources = new List<string>();
        if (r.GetValue(ConfigFile) is { } file)
        {
            foreach (var (k, v) in SqairConfig.ReadOverrides(file)) overrides[k] = v?.DeepClone();
            sources.Add(file);
        }
        var assignments = KeyAssignments(r).ToList();
        if (assignments.Count > 0)
        {
            foreach (var (k, v) in SqairConfig.Assignments(assignments)) overrides[k] = v?.DeepClone();
            sources.Add("command line");
        }
        var preset = Presets.Get(r.GetValue(Preset)!);
        return sources.Count == 0 ? preset : preset.With(overrides, string.Join(" + ", sources));
    }
}
