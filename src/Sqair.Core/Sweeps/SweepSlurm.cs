using System.Diagnostics;
using Sqair.Files;

namespace Sqair.Sweeps;

/// <summary>
/// A sweep as one Slurm job array: one array task per unfinished (arm, seed), each running the
/// same per-task command as a local sweep, writing into the same run folders (a filesystem the
/// nodes share). <c>sqair sweep DIR --collect</c> builds the table once the array has finished.
/// </summary>
internal static class SweepSlurm
{
    /// <summary>The job script written into the sweep folder.</summary>
    public const string ScriptName = "sweep.sbatch";

    /// <summary>
    /// The batch script: an array over <paramref name="taskIndices"/>, each task on
    /// <see cref="SweepSpec.Threads"/> CPUs running <paramref name="taskCommand"/> followed by its task index.
    /// </summary>
    public static string Script(SweepSpec spec, string sweepDir, IReadOnlyList<int> taskIndices,
                                IReadOnlyList<string> taskCommand) =>
        $"""
        #!/bin/bash
        #SBATCH --job-name=sqair-sweep
        #SBATCH --array={string.Join(",", taskIndices)}
        #SBATCH --cpus-per-task={spec.Threads}
        #SBATCH --output={Path.Combine(sweepDir, "slurm-%A_%a.out")}
        # Written by sqair sweep: one task per (arm, seed) of {Path.Combine(sweepDir, SweepSpec.FileName)}.
        exec {string.Join(" ", taskCommand.Select(Quote))} --task "$SLURM_ARRAY_TASK_ID"

        """;

    /// <summary>
    /// Writes the script for the unfinished tasks and submits it with sbatch (with
    /// <paramref name="sbatchArgs"/> before the script); returns sbatch's answer ("Submitted batch job N").
    /// </summary>
    public static string Submit(SweepSpec spec, string sweepDir, IReadOnlyList<string> taskCommand,
                                IReadOnlyList<string> sbatchArgs)
    {
        var unfinished = SweepRunner.Unfinished(spec, sweepDir).Select(t => t.Index).ToList();
        if (unfinished.Count == 0) return "every task has finished; nothing to submit";
        var script = Path.Combine(sweepDir, ScriptName);
        AtomicFile.WriteAllText(script, Script(spec, sweepDir, unfinished, taskCommand));
        var info = new ProcessStartInfo("sbatch")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in sbatchArgs) info.ArgumentList.Add(a);
        info.ArgumentList.Add(script);
        Process process;
        try { process = Process.Start(info)!; }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new IOException("sbatch was not found: --slurm needs a Slurm client on PATH " +
                                  "(the job script is in " + script + ")");
        }
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new IOException($"sbatch {script} failed (exit {process.ExitCode}): {stderr.Trim()}");
        return stdout.Result.Trim();
    }

    /// <summary>
    /// Splits <paramref name="text"/> into words as a POSIX shell does, without any expansion: words
    /// end at unquoted whitespace; '…' holds text as it is; "…" too, except that \" and \\ stand for " and \;
    /// outside quotes a backslash keeps the next character as it is. So one --sbatch can pass a value
    /// with spaces (--comment='two words'), which a split on spaces could not. An open quote is an error
    /// naming <paramref name="option"/>.
    /// </summary>
    public static List<string> SplitWords(string text, string option)
    {
        var words = new List<string>();
        var word = new System.Text.StringBuilder();
        bool inWord = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsWhiteSpace(c))
            {
                if (inWord) words.Add(word.ToString());
                word.Clear();
                inWord = false;
                continue;
            }
            inWord = true;
            if (c is '\'' or '"')
            {
                int close = i + 1;
                for (; close < text.Length && text[close] != c; close++)
                {
                    if (c == '"' && text[close] == '\\' && close + 1 < text.Length && text[close + 1] is '"' or '\\')
                        close++;
                    word.Append(text[close]);
                }
                if (close >= text.Length)
                    throw new ArgumentException($"{option} {text}: a {c} quote is not closed");
                i = close;
            }
            else if (c == '\\' && i + 1 < text.Length) word.Append(text[++i]);
            else word.Append(c);
        }
        if (inWord) words.Add(word.ToString());
        return words;
    }

    /// <summary>A word for bash: single-quoted unless it is plainly safe.</summary>
    static string Quote(string word) =>
        word.Length > 0 &&
        word.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '_' or '-' or '=' or ':' or ',' or '+')
            ? word : "'" + word.Replace("'", "'\\''") + "'";
}
