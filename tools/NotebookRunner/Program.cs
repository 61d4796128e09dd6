using System.Text.Json.Nodes;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.CSharp;
using Microsoft.DotNet.Interactive.Events;

// Runs a C# Polyglot notebook headless, as CI does: every code cell in order through one C#
// kernel (the engine of .NET Interactive and VS Code's Polyglot Notebooks), with the notebook's
// folder as the working directory, so relative paths mean what they mean in the editor.
//
//   notebook-runner NOTEBOOK.ipynb [--write]
//
// Exit 0: every cell ran; 1: a cell failed (its number, first line and error are printed);
// 2: usage. --write stores the outputs in the notebook, as the editor would.

if (args.Length is < 1 or > 2 || (args.Length == 2 && args[1] != "--write"))
{
    Console.Error.WriteLine("usage: notebook-runner NOTEBOOK.ipynb [--write]");
    return 2;
}
var path = Path.GetFullPath(args[0]);
if (!File.Exists(path))
{
    Console.Error.WriteLine($"error: {path}: no such notebook");
    return 2;
}
var notebook = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
Environment.CurrentDirectory = Path.GetDirectoryName(path)!;

using var kernel = new CSharpKernel().UseKernelHelpers().UseValueSharing();
int executed = 0, failed = 0;
foreach (var (cell, number) in notebook["cells"]!.AsArray().Select((c, i) => (c!.AsObject(), i + 1)))
{
    if ((string?)cell["cell_type"] != "code") continue;
    var source = string.Concat(cell["source"]!.AsArray().Select(l => (string?)l));
    var outputs = new JsonArray();
    var clock = System.Diagnostics.Stopwatch.StartNew();
    var result = await kernel.SendAsync(new SubmitCode(source));
    executed++;
    foreach (var e in result.Events)
        switch (e)
        {
            case StandardOutputValueProduced o:
                outputs.Add(Stream("stdout", o.FormattedValues.First().Value));
                break;
            case StandardErrorValueProduced o:
                outputs.Add(Stream("stderr", o.FormattedValues.First().Value));
                break;
            case DisplayEvent d:
                var data = new JsonObject();
                foreach (var v in d.FormattedValues) data[v.MimeType] = Lines(v.Value);
                outputs.Add(d is ReturnValueProduced
                    ? new JsonObject
                    {
                        ["output_type"] = "execute_result", ["execution_count"] = executed, ["data"] = data,
                        ["metadata"] = new JsonObject(),
                    }
                    : new JsonObject
                    {
                        ["output_type"] = "display_data", ["data"] = data, ["metadata"] = new JsonObject(),
                    });
                break;
            case CommandFailed f:
                failed++;
                outputs.Add(new JsonObject
                {
                    ["output_type"] = "error", ["ename"] = "Error", ["evalue"] = f.Message,
                    ["traceback"] = new JsonArray(),
                });
                Console.Error.WriteLine($"cell {number} ({source.Split('\n')[0].Trim()}) failed:\n{f.Message}");
                break;
        }
    cell["outputs"] = outputs;
    cell["execution_count"] = executed;
    bool cellFailed = outputs.Any(o => (string?)o!["output_type"] == "error");
    Console.WriteLine($"cell {number}: {(cellFailed ? "FAILED" : "ok")} in {clock.Elapsed.TotalSeconds:F1} s");
    if (failed > 0) break;
}
if (args.Length == 2)
{
    var indented = new System.Text.Json.JsonSerializerOptions { WriteIndented = true };
    File.WriteAllText(path, notebook.ToJsonString(indented) + "\n");
}
Console.WriteLine(failed == 0 ? $"{executed} cells ran" : "stopped at the first failing cell");
return failed == 0 ? 0 : 1;

// Notebook text is stored as a list of lines, each but the last keeping its "\n".
static JsonArray Lines(string text)
{
    var parts = text.Split('\n');
    return new JsonArray([.. parts.Select((l, i) => (JsonNode?)JsonValue.Create(i < parts.Length - 1 ? l + "\n" : l))]);
}

// A stream output ("stdout" or "stderr") of a cell.
static JsonObject Stream(string name, string text) =>
    new() { ["output_type"] = "stream", ["name"] = name, ["text"] = Lines(text) };
