using Sqair.Model;
using Sqair.Native;
using Sqair.Objective;
using Sqair.Tests.Model;
using static TorchSharp.torch;

namespace Sqair.Tests.Training;

/// <summary>
/// TorchSharp frees the native scalar behind an implicit double → Scalar conversion in a
/// finalizer, which a garbage collection started by another thread can run while libtorch still
/// reads the scalar ("Expected false to be true", "Unknown scalar type", or a wrong value). The
/// model's hot path creates no such temporaries (src/Sqair.Core/Native/KeptScalars.cs), so training steps must
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
        manual_seed(5);
        var c = SqairModelTests.Tiny(discBias: 0.5);
        var m = new SqairModel(c);
        var frames = SqairModelTests.Frames(3, 4);
        var (steps, failure) = GcStress.Run(MinSteps, collectEvery: 2000, _ =>
        {
            using var scope = NewDisposeScope();
            var output = m.Forward(frames, c.KParticles);
            var (loss, _) = Vimco.Surrogate(output.LogWeights, output.LogQDiscrete, 3);
            loss.backward();
            m.zero_grad();
        });
        Assert.True(failure is null, $"libtorch failed after {steps} steps: {failure}");
    }
}
