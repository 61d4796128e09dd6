using System.Text.Json.Nodes;
using Sqair.Sweeps;

namespace Sqair.Tests.Cli;

/// <summary>
/// <c>sqair sweep</c> end to end on the fixture's tiny data: every task in its own process, the
/// table and plots, resuming after a task finished, and the arm specs it reads.
/// </summary>
[Trait("Category", "Slow")]
public class SweepTests(CliFixture f) : IClassFixture<CliFixture>
{
    /// <summary>The fixture's tiny model and data as the base of a sweep, 2 iterations measured at each.</summary>
    string[] TinySweep(string dir) =>
    [
        "sweep", dir, "--arm", "output_std=0.2", "--seeds", "1", "--iterations", "2", "--eval-every", "1",
        "--eval-count", "4", "--parallel", "2",
        "--set", $"data={f.Data},img_size=32,glimpse_size=8,n_what=8,n_units=2,max_objects=2,k_particles=2," +
                 "batch_size=4,seq_len=3," +
                 "curriculum_start=0,lr_schedule=[1],log_itr=1,fig_itr=100,train_size=16,valid_size=8",
    ];

    [Fact]
    public void A_sweep_writes_its_table_and_plots_and_a_rerun_after_one_finished_task_ends_with_the_same_table()
    {
        var whole = Path.Combine(TestUtil.TempDir(), "whole");
        CommandLineTests.Run(TinySweep(whole)).AssertCode(0);
        var table = File.ReadAllText(Path.Combine(whole, "sweep.md"));
        Assert.Contains("| base | 1 |", table);
        Assert.Contains("| output_std=0.2 | 1 |", table);
        Assert.Contains("IWAE †", table); // the arms differ in output_std
        Assert.True(File.Exists(Path.Combine(whole, "plots", "mota.png")));
        var csv = File.ReadAllLines(Path.Combine(whole, "sweep.csv"));
        Assert.Equal(1 + 2 * 2, csv.Length); // a header, then 2 tasks × 2 measurements

        // A sweep stopped after its first task: only task 0 ran. Run again, it leaves that task alone.
        var resumed = Path.Combine(TestUtil.TempDir(), "resumed");
        CommandLineTests.Run([.. TinySweep(resumed), "--task", "0"]).AssertCode(0);
        var first = Path.Combine(resumed, "base", "seed-1", "metrics.jsonl");
        var before = File.ReadAllText(first);
        CommandLineTests.Run(TinySweep(resumed)).AssertCode(0);
        // task 0 ran in this process, so only a process the rerun started would have written its log
        Assert.False(File.Exists(Path.Combine(resumed, "base", "seed-1.log")));
        Assert.True(File.Exists(Path.Combine(resumed, "output_std=0.2", "seed-1.log")));
        Assert.Equal(before, File.ReadAllText(first));
        Assert.Equal(table, File.ReadAllText(Path.Combine(resumed, "sweep.md")));
    }

    /// <summary>
    /// Issue 22, 4: the same two arms as a Slurm job array on a real single-node Slurm that the test
    /// starts (slurm-local.sh; skipped where Slurm cannot be installed or run), then --collect.
    /// </summary>
    [Fact]
    public async Task The_same_sweep_through_a_real_single_node_Slurm_gives_the_same_table()
    {
        var slurm = Path.Combine(TestUtil.TempDir(), "slurm");
        var script = Path.Combine(TestUtil.RepositoryRoot(), "tests", "Sqair.Tests", "Cli", "slurm-local.sh");
        var up = await TestUtil.RunAsync("bash", [script, "up", slurm], minutes: 10);
        if (up.Code == 3) Assert.Skip(up.Stdout.Trim());
        Assert.True(up.Code == 0, $"slurm-local.sh up: exit {up.Code}\n{up.Stdout}\n{up.Stderr}");
        try
        {
            // sbatch reads the test cluster's config; the jobs inherit this environment.
            Environment.SetEnvironmentVariable("SLURM_CONF", up.Stdout.Trim().Split('\n')[^1]);
            var local = Path.Combine(TestUtil.TempDir(), "local");
            CommandLineTests.Run(TinySweep(local)).AssertCode(0);
            var viaSlurm = Path.Combine(TestUtil.TempDir(), "slurm-sweep");
            var submitted = CommandLineTests.Run([.. TinySweep(viaSlurm), "--slurm"]).AssertCode(0);
            Assert.Contains("Submitted batch job", submitted.Stdout);
            var markers = new[] { "base", "output_std=0.2" }
                .Select(arm => Path.Combine(viaSlurm, arm, "seed-1", Sqair.Sweeps.SweepRunner.DoneMarker)).ToList();
            for (var waited = System.Diagnostics.Stopwatch.StartNew(); !markers.All(File.Exists);
                 await Task.Delay(500, TestContext.Current.CancellationToken))
                Assert.True(waited.Elapsed < TimeSpan.FromMinutes(3), "the Slurm tasks did not finish in 3 minutes: " +
                            string.Join("\n", Directory.GetFiles(viaSlurm, "slurm-*.out").Select(File.ReadAllText)));
            CommandLineTests.Run("sweep", viaSlurm, "--collect").AssertCode(0);
            Assert.Equal(File.ReadAllText(Path.Combine(local, "sweep.md")),
                         File.ReadAllText(Path.Combine(viaSlurm, "sweep.md")));
        }
        finally
        {
            Environment.SetEnvironmentVariable("SLURM_CONF", null);
            await TestUtil.RunAsync("bash", [script, "down", slurm]);
        }
    }

    [Fact]
    public void A_folder_holding_one_sweep_refuses_another_and_resumes_its_own_alone()
    {
        var dir = Path.Combine(TestUtil.TempDir(), "sweep");
        CommandLineTests.Run([.. TinySweep(dir), "--task", "0"]).AssertCode(0);
        var other = CommandLineTests.Run([.. TinySweep(dir)[..^2], "--set", $"data={f.Data},img_size=32"])
            .AssertCode(2);
        Assert.Contains("holds another sweep", other.Stderr);
        var collect = CommandLineTests.Run("sweep", dir, "--collect").AssertCode(0);
        Assert.Contains("Not measured yet: output_std=0.2 seed 1", collect.Stdout);
    }

    [Fact]
    public async Task A_stopped_sweep_stops_its_running_task_starts_no_other_and_returns()
    {
        var spec = new SweepSpec
        {
            Arms = [new("base", []), new("other", [])], Seeds = [1], Iterations = 1, EvalEvery = 1, Parallel = 1
        };
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        var started = new List<string>();
        var run = Task.Run(() => SweepRunner.RunLocal(spec, TestUtil.TempDir(), t =>
        {
            started.Add(t.Arm.Name);
            return new System.Diagnostics.ProcessStartInfo("sleep", "60");
        }, _ => { }, stop.Token));
        // a TimeoutException when the sweep does not return after its task stopped
        var failed = await run.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.Equal(["base"], started);
        Assert.Empty(failed); // stopped, not failed
    }

    [Fact]
    public void Arm_specs_read_names_lists_and_grids()
    {
        var named = SweepSpec.ParseArm("sharp:output_std=0.2,lr_schedule=[1,1]");
        Assert.Equal("sharp", named.Name);
        Assert.Equal(0.2, (double)named.Changes["output_std"]!);
        Assert.Equal(2, named.Changes["lr_schedule"]!.AsArray().Count);
        Assert.Equal("output_std=0.2,optimizer=adam", SweepSpec.ParseArm("output_std=0.2,optimizer=adam").Name);
        var grid = SweepSpec.ParseGrid("disc_step_bias=-1,3").ToList();
        Assert.Equal(["disc_step_bias=-1", "disc_step_bias=3"], grid.Select(a => a.Name));
        Assert.Equal(3.0, (double)grid[1].Changes["disc_step_bias"]!);
    }

    [Fact]
    public void A_task_config_is_the_preset_then_the_base_then_the_arm_then_the_sweeps_own_keys()
    {
        var spec = new SweepSpec
        {
            Base = new() { ["output_std"] = 0.25, ["k_particles"] = 3 },
            Arms = [new("base", []), new("sharp", new() { ["output_std"] = JsonValue.Create(0.2) })],
            Seeds = [7],
            Iterations = 40,
            EvalEvery = 10,
            EvalCount = 20,
        };
        spec.Validate();
        var c = spec.ConfigOf(spec.Tasks[1]);
        Assert.Equal(
            (0.2, 3, 7UL, 40L, 10L, 10L, 20, 0.0),
            (c.OutputStd, c.KParticles, c.Seed, c.MaxTrainIter, c.EvalItr, c.CkptItr, c.EvalSize, c.TimeLimitMin));
        Assert.Equal(0.25, spec.ConfigOf(spec.Tasks[0]).OutputStd);
        Assert.Equal(3e-4, c.LearningRate); // the cpu preset's
    }
}
