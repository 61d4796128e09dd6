using System.Diagnostics;
using System.Runtime.InteropServices;
using Sqair.Model;
using Sqair.Objective;
using Sqair.Tests.Model;
using static TorchSharp.torch;

namespace Sqair.Tests.Training;

/// <summary>
/// TorchSharp frees the native scalar behind an implicit double → Scalar conversion in a
/// finalizer, which a garbage collection started by another thread can run while libtorch still
/// reads the scalar ("Expected false to be true", "Unknown scalar type", or a wrong value). The
/// model's hot path creates no such temporaries (src/Sqair.Core/KeptScalars.cs), so training steps must
/// survive a thread that allocates and collects the whole time. Before the fix this failed within
/// seconds.
/// </summary>
[Trait("Category", "Slow")]
public class ScalarRaceTests
{
    /// <summary>
    /// Steps run even past the stress time, so that a busy machine gives the race its chances too (and cannot fail
    /// the test by being slow).
    /// </summary>
    const int MinSteps = 20;

    [Fact]
    public void Training_steps_survive_a_thread_that_allocates_and_collects()
    {
        var seconds = double.TryParse(Environment.GetEnvironmentVariable("SQAIR_STRESS_SECONDS"), out var s) ? s : 8;
        manual_seed(5);
        var c = SqairModelTests.Tiny(discBias: 0.5);
        var m = new SqairModel(c);
        var frames = SqairModelTests.Frames(3, 4);
        using var stop = new CancellationTokenSource();
        var noise = new Thread(() =>
        {
            var keep = new object[64];
            for (long i = 0; !stop.IsCancellationRequested; i++)
            {
                keep[i % keep.Length] = new byte[1024];
                if (i % 2000 == 0) { GC.Collect(); GC.WaitForPendingFinalizers(); }
            }
        })
        { IsBackground = true };
        noise.Start();
        var clock = Stopwatch.StartNew();
        int steps = 0;
        string? failure = null;
        try
        {
            while ((clock.Elapsed.TotalSeconds < seconds || steps < MinSteps) && failure is null)
            {
                using var scope = NewDisposeScope();
                var output = m.Forward(frames, c.KParticles);
                var (loss, _) = Vimco.Surrogate(output.LogWeights, output.LogQDiscrete, 3);
                loss.backward();
                m.zero_grad();
                steps++;
            }
        }
        catch (ExternalException e) { failure = e.Message.Split('\n')[0] + " at " + e.StackTrace; }
        finally { stop.Cancel(); noise.Join(); }
        Assert.True(failure is null, $"libtorch failed after {steps} steps: {failure}");
    }
}
