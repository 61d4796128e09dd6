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

    /// <summary>The tiny sweep's spec as sweep.json holds it, to edit by hand.</summary>
    JsonObject TinySpecJson() => JsonNode.Parse(new SweepSpec
    {
        Base = SweepSpec.SplitAssignments(TinySweep("")[^1], "test"),
        Arms = [new("base", [])],
        Seeds = [1],
        Iterations = 2,
        EvalEvery = 1,
        EvalCount = 4,
    }.ToJson())!.AsObject();

    /// <summary>Hand edits of sweep.json, each with the words its error must hold.</summary>
    public static TheoryData<string, string, string> EditedSpecs => new()
    {
        { "arms", """[{"name": "../victim", "changes": {}}]""", "arm '../victim': a name may hold only" },
        { "arms", """[{"name": "VICTIM", "changes": {}}]""", "arm '/" },
        { "arms", """[{"name": "sweep.md", "changes": {}}]""", "arm 'sweep.md': the sweep's own files" },
        { "arms", """[{"name": "a\nb", "changes": {}}]""", "arm 'a\\nb': a name may hold only" },
        { "arms", """[{"name": "a", "changes": {}}, {"name": "a", "changes": {}}]""", "arm 'a' is given twice" },
        { "arms", "null", "\"arms\" must be a list" },
        { "arms", "[null]", "\"arms\" must be a list" },
        { "parallel", "0", "\"parallel\" 0: must be at least 1" },
        { "iterations", "null", "a sweep needs one budget: \"iterations\" or \"minutes\"" },
        { "seeds", "null", "\"seeds\" must be a list" },
        { "paralel", "2", "unknown key \"paralel\"" },
    };

    /// <summary>
    /// A sweep.json edited by hand is checked as the command line is, before any task runs: an arm named
    /// as a path outside the folder must not train there with --force (deleting a run's config.json and
    /// figures), and a bad value must not hang the sweep or end it with a stack trace. --collect reads the
    /// same way.
    /// </summary>
    [Theory]
    [MemberData(nameof(EditedSpecs))]
    public async Task An_edited_sweep_json_is_refused_with_one_line_and_nothing_outside_is_touched(
        string key, string json, string words)
    {
        var root = TestUtil.TempDir();
        var victim = Path.Combine(root, "victim");
        Directory.CreateDirectory(Path.Combine(victim, "figures"));
        File.WriteAllText(Path.Combine(victim, "config.json"), "{}");
        var dir = Path.Combine(root, "sweep");
        Directory.CreateDirectory(dir);
        var spec = TinySpecJson();
        spec[key] = JsonNode.Parse(json.Replace("VICTIM", victim));
        var file = Path.Combine(dir, SweepSpec.FileName);
        File.WriteAllText(file, spec.ToJsonString());
        foreach (var args in new[] { new[] { "sweep", dir }, ["sweep", dir, "--collect"] })
        {
            // Old builds looped forever on some of these: a hang fails here instead of stalling the suite.
            var result = (await Task.Run(() => CommandLineTests.Run(args), TestContext.Current.CancellationToken)
                .WaitAsync(TimeSpan.FromMinutes(2), TestContext.Current.CancellationToken)).AssertCode(2);
            var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.StartsWith($"error: {file}: ", lines[0]);
            Assert.Contains(words.Replace("'/", $"'{victim}"), lines[0]);
            Assert.DoesNotContain("   at ", result.Stderr);
        }
        Assert.True(File.Exists(Path.Combine(victim, "config.json")));
        Assert.True(Directory.Exists(Path.Combine(victim, "figures")));
        Assert.Equal([file], Directory.GetFileSystemEntries(dir));
    }

    [Fact]
    public void Sweep_json_holds_the_spec_alone_and_one_with_the_derived_keys_of_earlier_builds_still_reads()
    {
        var spec = TinySpecJson();
        Assert.Equal(["preset", "base", "arms", "seeds", "iterations", "minutes", "eval_every", "eval_count",
                      "threads", "parallel"], spec.Select(kv => kv.Key));
        var dir = TestUtil.TempDir();
        spec["Fairness"] = "2 iterations per arm and seed";
        spec["ArmList"] = new JsonArray();
        spec["Tasks"] = new JsonArray();
        File.WriteAllText(Path.Combine(dir, SweepSpec.FileName), spec.ToJsonString());
        Assert.Equal(2, SweepSpec.Read(dir)!.Iterations);
    }

    /// <summary>
    /// A task still training in another process (here: its run lock held, as by the task of a killed
    /// sweep) is left to it and said so, not started a second time and reported as failed.
    /// </summary>
    [Fact]
    public void A_rerun_leaves_a_task_that_is_still_training_elsewhere_and_says_so()
    {
        var dir = Path.Combine(TestUtil.TempDir(), "sweep");
        CommandLineTests.Run([.. TinySweep(dir), "--task", "1"]).AssertCode(0);
        using (Sqair.Runs.RunLock.Acquire(Path.Combine(dir, "base", "seed-1")))
        {
            var rerun = CommandLineTests.Run("sweep", dir).AssertCode(2);
            Assert.Contains("1 task(s) still training in another process, first base seed 1", rerun.Stderr);
            Assert.DoesNotContain("failed", rerun.Stderr);
        }
        Assert.False(File.Exists(Path.Combine(dir, "base", "seed-1.log"))); // never started
    }

    /// <summary>
    /// A folder whose sweep lock is held (by a sweep running there, or starting there at the same moment)
    /// is refused before its sweep.json is written: two sweeps cannot both take one new folder.
    /// </summary>
    [Fact]
    public void A_sweep_folder_in_use_by_another_sweep_is_refused_and_left_as_it_was()
    {
        var dir = Path.Combine(TestUtil.TempDir(), "sweep");
        using (Sqair.Runs.RunLock.Acquire(dir, fileName: SweepSpec.LockFile, holder: "sweep"))
        {
            var second = CommandLineTests.Run(TinySweep(dir)).AssertCode(2);
            Assert.Contains($"{dir} is in use by another sweep", second.Stderr);
            Assert.Equal([SweepSpec.LockFile], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
        }
    }

    /// <summary>
    /// SIGKILL of a sweep ends its tasks too: each sees its stdin pipe close, saves a checkpoint and stops,
    /// instead of training on as an orphan that a rerun would take for a failed task.
    /// </summary>
    [Fact]
    public async Task A_killed_sweep_takes_its_running_task_with_it()
    {
        var dir = Path.Combine(TestUtil.TempDir(), "sweep");
        string[] args =
        [
            "sweep", dir, "--no-base", "--arm", "long:output_std=0.3", "--seeds", "1",
            "--iterations", "1000000", "--eval-every", "1000000", "--eval-count", "4", "--parallel", "1",
            "--set", TinySweep("")[^1],
        ];
        var info = new System.Diagnostics.ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "sqair"), args)
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        var runDir = Path.Combine(dir, "long", "seed-1");
        var token = TestContext.Current.CancellationToken;
        using var sweep = System.Diagnostics.Process.Start(info)!;
        var output = Task.WhenAll(sweep.StandardOutput.ReadToEndAsync(token),
                                  sweep.StandardError.ReadToEndAsync(token));
        try
        {
            // Training has begun (and holds its run lock) once it has logged an iteration.
            var metrics = Path.Combine(runDir, "metrics.jsonl");
            for (var waited = System.Diagnostics.Stopwatch.StartNew();
                 !File.Exists(metrics) || new FileInfo(metrics).Length == 0; await Task.Delay(200, token))
                Assert.True(waited.Elapsed < TimeSpan.FromMinutes(2) && !sweep.HasExited,
                            "the task did not start training: " +
                            string.Join("\n", sweep.HasExited ? await output : []));
            Assert.True(Sqair.Runs.RunLock.IsHeld(runDir));
            sweep.Kill(); // SIGKILL: the sweep gets no chance to stop its task itself
            for (var waited = System.Diagnostics.Stopwatch.StartNew(); Sqair.Runs.RunLock.IsHeld(runDir);
                 await Task.Delay(200, token))
                Assert.True(waited.Elapsed < TimeSpan.FromMinutes(1), "the task trains on after its sweep was killed");
            // stopped as by SIGTERM: with a checkpoint to resume from, not killed
            Assert.Equal(TaskState.Started, SweepRunner.StateOf(runDir));
        }
        finally
        {
            // Where the task outlived its sweep (the failure this test catches), end it: only processes
            // whose command line names this test's own folder.
            foreach (var p in System.Diagnostics.Process.GetProcesses())
                using (p)
                {
                    try
                    {
                        if (File.ReadAllText($"/proc/{p.Id}/cmdline").Contains(dir, StringComparison.Ordinal))
                            p.Kill();
                    }
                    // gone meanwhile, or not ours
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException
                                                  or InvalidOperationException)
                    { }
                }
        }
    }

    /// <summary>
    /// The same two arms as a Slurm job array on a real single-node Slurm that the test
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

    /// <summary>
    /// <c>sqair sweep DIR --iterations N</c> on a finished sweep raises its budget: every run resumes from its
    /// checkpoint and trains on to N; a lower budget is refused by name.
    /// </summary>
    [Fact]
    public void A_raised_budget_continues_every_run_from_its_checkpoint_and_a_lower_one_is_refused()
    {
        var dir = Path.Combine(TestUtil.TempDir(), "sweep");
        CommandLineTests.Run([.. TinySweep(dir), "--task", "0"]).AssertCode(0);
        var run = Path.Combine(dir, "base", "seed-1");
        Assert.True(File.Exists(Path.Combine(run, "sweep-done")));

        CommandLineTests.Run("sweep", dir, "--iterations", "3").AssertCode(0);
        Assert.Equal(3, JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "sweep.json")))!["iterations"]!
            .GetValue<long>());
        Assert.EndsWith("step-000000003.safetensors", Sqair.Runs.Checkpoint.InRun(run).First());
        Assert.True(File.Exists(Path.Combine(run, "sweep-done")));

        var lower = CommandLineTests.Run("sweep", dir, "--iterations", "2").AssertCode(2);
        Assert.Contains("--iterations 2", lower.Stderr);
        Assert.Contains("raised, not lowered", lower.Stderr);
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
        var outcome = await run.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.Equal(["base"], started);
        Assert.Empty(outcome.Failed); // stopped, not failed
    }

    [Fact]
    public void Sbatch_options_split_into_words_as_a_shell_would()
    {
        Assert.Equal(["--partition=gpu", "--comment=two words", "--job-name=a \"b\"", "c d", "-x"],
                     SweepSlurm.SplitWords("""  --partition=gpu --comment='two words' "--job-name=a \"b\"" c\ d -x """,
                                           "--sbatch"));
        Assert.Empty(SweepSlurm.SplitWords("  ", "--sbatch"));
        var e = Assert.Throws<ArgumentException>(() => SweepSlurm.SplitWords("--comment='open", "--sbatch"));
        Assert.Equal("--sbatch --comment='open: a ' quote is not closed", e.Message);
    }

    /// <summary>
    /// sweep.md says what was measured: no more validation sequences than the set holds, and in words
    /// that fit the numbers ("at every iteration", "1 iteration").
    /// </summary>
    [Fact]
    public void The_report_says_how_many_sequences_were_measured_and_how_often()
    {
        var spec = new SweepSpec
        {
            Base = new() { ["valid_size"] = 16 },
            Arms = [new("base", [])], Seeds = [1], Iterations = 1, EvalEvery = 1, EvalCount = 100_000,
        };
        spec.Validate();
        var markdown = SweepReport.Write(spec, TestUtil.TempDir());
        Assert.Contains("Budget: 1 iteration per arm and seed; 1 task at a time with 1 libtorch thread each. " +
                        "Validation: the first 16 validation sequences at every iteration and at the end.", markdown);
        var every3 = SweepReport.Write(spec with { Iterations = 6, EvalEvery = 3, EvalCount = 4 }, TestUtil.TempDir());
        Assert.Contains("6 iterations per arm", every3);
        Assert.Contains("the first 4 validation sequences every 3 iterations and", every3);
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
