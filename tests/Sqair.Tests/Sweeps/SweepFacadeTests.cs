using System.Text.Json.Nodes;
using Sqair.Sweeps;

namespace Sqair.Tests.Sweeps;

/// <summary>
/// <see cref="Sweep"/>, the library's entry to sweeps, as a program other than the command line calls it.
/// </summary>
public class SweepFacadeTests
{
    static SweepRequest Described => new() { Arms = ["output_std=0.2"], Iterations = 2 };

    [Fact]
    public void A_request_with_no_threads_is_refused_by_name_before_the_folder_is_touched()
    {
        var dir = Path.Combine(TestUtil.TempDir(), "sweep");
        var e = Assert.Throws<ArgumentException>(
            () => Sweep.Open(dir, Described with { Threads = 0 }, SweepAccess.Run, _ => { }));
        Assert.Contains("--threads 0: must be at least 1", e.Message);
        Assert.False(Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any());
    }

    [Fact]
    public void An_empty_file_key_is_an_absent_file_and_tasks_are_named_by_arm_and_seed()
    {
        var dir = Path.Combine(TestUtil.TempDir(), "sweep");
        using (var sweep = Sweep.Open(dir, Described with { Sets = ["init="] }, SweepAccess.Run, _ => { }))
        {
            Assert.Equal(4, sweep.TaskCount);   // 2 arms (the base first) × seeds 1 and 2
            Assert.Equal("base seed 1", sweep.TaskName(0));
            Assert.Equal("output_std=0.2 seed 2", sweep.TaskName(3));
            Assert.Null(sweep.TaskRun(0)!.Config.Init);
        }
        var saved = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "sweep.json")))!;
        Assert.True(saved["base"]!.AsObject().ContainsKey("init"));
        Assert.Null(saved["base"]!["init"]);
    }

    [Fact]
    public void A_parallel_count_given_alone_applies_to_an_iterations_budget_and_is_refused_for_a_minutes_one()
    {
        var dir = Path.Combine(TestUtil.TempDir(), "sweep");
        Sweep.Open(dir, Described with { Parallel = 1 }, SweepAccess.Run, _ => { }).Dispose();
        var said = new List<string>();
        Sweep.Open(dir, new SweepRequest { Parallel = 3 }, SweepAccess.Run, said.Add).Dispose();
        Assert.Equal(3, (int)JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "sweep.json")))!["parallel"]!);
        Assert.Contains(said, line => line.Contains("3 task(s) at a time from now on (was 1)"));

        var timed = Path.Combine(TestUtil.TempDir(), "timed");
        var minutes = new SweepRequest { Arms = ["output_std=0.2"], Minutes = 1, Parallel = 1 };
        Sweep.Open(timed, minutes, SweepAccess.Run, _ => { }).Dispose();
        var before = File.ReadAllText(Path.Combine(timed, "sweep.json"));
        var e = Assert.Throws<ArgumentException>(
            () => Sweep.Open(timed, new SweepRequest { Parallel = 2 }, SweepAccess.Run, _ => { }));
        Assert.Contains("--parallel 2", e.Message);
        Assert.Contains("minutes budget", e.Message);
        Assert.Equal(before, File.ReadAllText(Path.Combine(timed, "sweep.json")));
    }

    [Fact]
    public void Options_only_a_new_sweep_takes_are_refused_by_name_on_a_saved_one_and_leave_it_unchanged()
    {
        var dir = Path.Combine(TestUtil.TempDir(), "sweep");
        Sweep.Open(dir, Described with { Parallel = 1 }, SweepAccess.Run, _ => { }).Dispose();
        var before = File.ReadAllText(Path.Combine(dir, "sweep.json"));
        var e = Assert.Throws<ArgumentException>(
            () => Sweep.Open(dir, new SweepRequest { Threads = 2, EvalCount = 100 }, SweepAccess.Run, _ => { }));
        Assert.StartsWith("--eval-count, --threads: ", e.Message);
        Assert.Contains("resumes with its own settings", e.Message);
        Assert.Equal(before, File.ReadAllText(Path.Combine(dir, "sweep.json")));
        // The default values given explicitly are still refused: the saved sweep might hold others.
        Assert.Throws<ArgumentException>(
            () => Sweep.Open(dir, new SweepRequest { Preset = "cpu" }, SweepAccess.Collect, _ => { }));
    }
}
