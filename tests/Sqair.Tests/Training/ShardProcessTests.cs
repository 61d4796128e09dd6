using System.Diagnostics;
using System.Runtime.InteropServices;
using Sqair.Data;
using Sqair.Model;
using Sqair.Tests.Model;
using Sqair.Training;
using static TorchSharp.torch;

namespace Sqair.Tests.Training;

/// <summary>
/// Training shards in worker processes (<c>--shard-processes</c>) against the same shards on threads, and what a
/// dead worker does to the main process. The workers are the test folder's <c>sqair</c> (the CLI is referenced).
/// </summary>
[Trait("Category", "Slow")]
public class ShardProcessTests
{
    static ProcessStartInfo Sqair() =>
        new(Path.Combine(AppContext.BaseDirectory, "sqair"), ["shard-worker"]);

    /// <summary>A batch of <paramref name="frames"/> [T, B, C, H, W] without objects.</summary>
    static SequenceBatch Batch(Tensor frames, int maxObjects = 2)
    {
        long t = frames.shape[0], b = frames.shape[1];
        return new SequenceBatch(frames, zeros(t, b, maxObjects, 4), zeros(t, b, maxObjects), zeros(t, b, maxObjects),
                                 full(b, maxObjects, -1L), full(b, maxObjects, -1L));
    }

    static Dictionary<string, Tensor> Gradients(SqairModel m) =>
        m.named_parameters().Where(p => p.parameter.grad is not null)
            .ToDictionary(p => p.name, p => p.parameter.grad!.clone());

    /// <summary>
    /// A step with the second shard in a worker process equals the step with both shards on threads: same loss,
    /// same gradients to float32 rounding, the measures of the whole batch. The worker's model starts from other
    /// parameters: the step sends it the main process's.
    /// </summary>
    [Fact]
    public void A_worker_process_step_equals_a_two_thread_shard_step()
    {
        int threads = get_num_threads();
        try
        {
            var c = SqairModelTests.Tiny(discBias: 0.5);
            manual_seed(21);
            var threaded = new SqairModel(c);
            manual_seed(21);
            var main = new SqairModel(c);
            var frames = SqairModelTests.Frames(3, 5);

            var (threadLoss, _) =
                new GradientStep(threaded, shards: 2).Run(frames, c.KParticles, seed: 9, iteration: 4);
            var expected = Gradients(threaded);

            using var step = new GradientStep(main, processes: new ShardProcesses(main, 1, 1, Sqair));
            using var batch = Batch(frames);
            var (loss, metrics) = step.Run(batch, c.KParticles, seed: 9, iteration: 4);

            Assert.Equal(threadLoss, loss, 4);
            Assert.Equal(5, metrics!.Sequences);
            Assert.Equal(15, metrics.Frames);
            var got = Gradients(main);
            Assert.Equal(expected.Keys.Order(), got.Keys.Order());
            foreach (var (name, g) in expected)
                Assert.True(g.allclose(got[name], rtol: 1e-5, atol: 1e-6), $"{name}: process gradient differs");
        }
        finally { set_num_threads(threads); }
    }

    /// <summary>A worker that exits at once is an error naming its exit code and what it printed, not a hang.</summary>
    [Fact]
    public void A_worker_that_exits_is_an_error_with_its_exit_code_and_words()
    {
        var m = new SqairModel(SqairModelTests.Tiny());
        var e = Assert.Throws<IOException>(() =>
            new ShardProcesses(m, 1, 1, () => new ProcessStartInfo("sh", ["-c", "echo no model here >&2; exit 3"])));
        Assert.Contains("exit code 3", e.Message);
        Assert.Contains("no model here", e.Message);
    }

    /// <summary>A worker killed between steps makes the next step an error, not a hang.</summary>
    [Fact]
    public void A_worker_killed_between_steps_makes_the_next_step_an_error()
    {
        var c = SqairModelTests.Tiny();
        var m = new SqairModel(c);
        var processes = new ShardProcesses(m, 1, 1, Sqair);
        using var step = new GradientStep(m, processes: processes);
        using var batch = Batch(SqairModelTests.Frames(2, 4));
        step.Run(batch, c.KParticles, seed: 1, iteration: 0);
        using (var worker = Process.GetProcessById(processes.ProcessIds[0]))
        {
            worker.Kill();
            worker.WaitForExit();
        }
        m.zero_grad();
        var e = Assert.Throws<IOException>(() => step.Run(batch, c.KParticles, seed: 1, iteration: 1));
        Assert.Contains("stopped answering", e.Message);
    }

    /// <summary>
    /// A stand-in worker: a shell script that answers the setup as a worker of <paramref name="model"/> would, then
    /// runs <paramref name="afterStep"/> once it has read the first step (the script's $1 is the ready line).
    /// </summary>
    static Func<ProcessStartInfo> FakeWorker(SqairModel model, string afterStep, string[]? parameters = null)
    {
        var ready = new StringWriter();
        ShardProtocol.Write(ready, new ShardReady(parameters ?? ShardReady.Describe(model)));
        return () => new ProcessStartInfo("sh", ["-c", "read hello; printf '%s\\n' \"$1\"; read step; " + afterStep,
                                                 "sh", ready.ToString().TrimEnd()]);
    }

    /// <summary>A worker whose model has other parameters is refused at its start, naming the first difference.
    /// </summary>
    [Fact]
    public void A_worker_with_another_model_is_refused_naming_the_difference()
    {
        var m = new SqairModel(SqairModelTests.Tiny());
        var first = ShardReady.Describe(m)[0];
        string[] theirs = ["other [3]", .. ShardReady.Describe(m)[1..]];
        var e = Assert.Throws<IOException>(() => new ShardProcesses(m, 1, 1, FakeWorker(m, "", theirs)));
        Assert.Contains($"parameter 0 is other [3] there, {first} here", e.Message);
    }

    /// <summary>
    /// A worker silent after a step is stopped after the answer timeout: an error, not a hang, and every later step
    /// is refused.
    /// </summary>
    [Fact]
    public void A_silent_worker_is_stopped_and_is_an_error()
    {
        var c = SqairModelTests.Tiny();
        var m = new SqairModel(c);
        var processes = new ShardProcesses(m, 1, 1, FakeWorker(m, "sleep 60"), TimeSpan.FromSeconds(2));
        using var worker = Process.GetProcessById(processes.ProcessIds[0]);
        using var step = new GradientStep(m, processes: processes);
        using var batch = Batch(SqairModelTests.Frames(2, 4));
        var e = Assert.Throws<IOException>(() => step.Run(batch, c.KParticles, seed: 1, iteration: 0));
        Assert.Contains("gave no answer in 2 s", e.Message);
        Assert.True(worker.WaitForExit(TimeSpan.FromSeconds(5)), "the silent worker was left running");
        // the worker's read is still pending: a later step is refused, not fed this one's answer
        var again = Assert.Throws<IOException>(() => step.Run(batch, c.KParticles, seed: 1, iteration: 1));
        Assert.Contains("stopped at an earlier error", again.Message);
    }

    /// <summary>A worker that prints only warnings after a step is as silent as one that prints nothing.</summary>
    [Fact]
    public void A_worker_that_only_prints_warnings_is_stopped()
    {
        var c = SqairModelTests.Tiny();
        var m = new SqairModel(c);
        var chatty = FakeWorker(m, "while true; do echo warning; sleep 0.2; done");
        using var step = new GradientStep(m, processes: new ShardProcesses(m, 1, 1, chatty, TimeSpan.FromSeconds(2)));
        using var batch = Batch(SqairModelTests.Frames(2, 4));
        var e = Assert.Throws<IOException>(() => step.Run(batch, c.KParticles, seed: 1, iteration: 0));
        Assert.Contains("gave no answer in 2 s", e.Message);
        Assert.Contains("warning", e.Message);
    }

    /// <summary>
    /// A libtorch failure in a worker is the step's failure, with the worker's words (the trainer skips the step
    /// and logs them).
    /// </summary>
    [Fact]
    public void A_failure_in_a_worker_is_the_steps_with_its_words()
    {
        var c = SqairModelTests.Tiny();
        var m = new SqairModel(c);
        const string done = """sqair-shard {"Loss":"NaN","Metrics":null,"Failure":"out of luck"}""";
        using var step = new GradientStep(m, processes: new ShardProcesses(m, 1, 1, FakeWorker(m, $"echo '{done}'")));
        using var batch = Batch(SqairModelTests.Frames(2, 4));
        var e = Assert.ThrowsAny<ExternalException>(() => step.Run(batch, c.KParticles, seed: 1, iteration: 0));
        Assert.Contains("in a shard worker: out of luck", e.Message);
    }
}
