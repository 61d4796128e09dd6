using System.CommandLine;
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
            Checkpoint.Export(contents, path, r.GetValue(note) ?? "");
            Console.WriteLine($"{Path.GetFullPath(path)}\t{new FileInfo(path).Length / 1e6:N1} MB");
            return ExitCodes.Success;
        });
        return export;
    }
}
