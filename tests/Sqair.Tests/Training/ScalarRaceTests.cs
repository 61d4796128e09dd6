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

    /// <summary>
    /// The helpers that replace TorchSharp methods making a scalar inside TorchSharp (square() is pow(2), ToDouble()
    /// reads through one). Under this stress TorchSharp's own square() failed within 2 000 calls (Scalar.h:279);
    /// the kept forms survived 7 million.
    /// </summary>
    [Fact]
    public void Squared_and_ValueOf_survive_a_thread_that_allocates_and_collects()
    {
        using var x = randn(8, 8);
        var (rounds, failure) = GcStress.Run(MinSteps, collectEvery: 200, _ =>
        {
            for (int i = 0; i < CallsPerRound; i++)
            {
                using var square = x.Squared();
                using var sum = square.sum();
                Assert.True(KeptScalars.ValueOf(sum) >= 0);
            }
        });
        Assert.True(failure is null, $"libtorch failed after {rounds} rounds: {failure}");
    }

    /// <summary>Calls per round: enough that a round is far longer than one collection of the stress thread.</summary>
    const int CallsPerRound = 1000;
}
