using System.CommandLine;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json;
using Sqair.Model;
using Sqair.Runs;
using Sqair.Training;

namespace Sqair.Cli;

/// <summary>
/// <c>sqair export</c>: a trained model's parameters and provenance as one small file to share
/// (models/ holds ours).
/// </summary>
static class ExportCommand
{
    public static Command Build()
    {
        var output = new Option<string>("--out")
        {
            Description = "Model file to write (.safetensors)",
            Required = true,
        };
        var note = new Option<string?>("--note")
        {
            Description = "Free text kept in the provenance (how it was trained, on what machine, for how long)",
        };
        var force = new Option<bool>("--force")
        {
            Description = "Replace the output file if it exists (never the checkpoint being exported)",
        };
        var export = new Command("export", "Write a checkpoint's model parameters (no optimiser state) with their " +
                                           "provenance: config, iteration, commit, note")
        {
            CommonOptions.Checkpoint, output, note, force,
        };
        export.SetAction(r =>
        {
            var contents = CommonOptions.ReadCheckpoint(r.GetValue(CommonOptions.Checkpoint)!);
            var path = r.GetValue(output)!;
            Outputs.CheckFile("--out", path, ("the checkpoint being exported", contents.Path));
            if (File.Exists(path) && !r.GetValue(force))
                throw new UserError($"--out {path} exists; pass --force to replace it");
            var model = new SqairModel(contents.Config);
            Checkpoint.LoadInto(contents, model);
            var provenance = JsonSerializer.Serialize(new
            {
                source = Path.GetFullPath(contents.Path),
                iteration = contents.Iteration,
                optimizer_steps = contents.OptimizerSteps,
                exported_by = $"sqair {Version()}",
                exported_at = DateTime.UtcNow.ToString("o"),
                machine = $"{Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, " +
                          $"{RuntimeInformation.ProcessArchitecture}",
                note = r.GetValue(note) ?? "",
                // re-exporting a model file keeps where it came from: the earlier provenance, not only this export's
                source_provenance = contents.Metadata.TryGetValue("provenance", out var earlier)
                    ? JsonDocument.Parse(earlier).RootElement
                    : (JsonElement?)null,
            });
            Checkpoint.SaveModel(path, model, contents.Iteration, contents.OptimizerSteps, provenance);
            Console.WriteLine($"{Path.GetFullPath(path)}\t{new FileInfo(path).Length / 1e6:N1} MB");
            return ExitCodes.Success;
        });
        return export;
    }

    /// <summary>
    /// The build's version with the commit it was built from (the SDK appends "+commit" in a git clone).
    /// </summary>
    public static string Version() =>
        typeof(ExportCommand).Assembly
            .GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
}
