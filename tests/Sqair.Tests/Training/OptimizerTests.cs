using Sqair.Model;
using Sqair.Training;
using static TorchSharp.torch;

namespace Sqair.Tests.Training;

public class OptimizerTests
{
    /// <summary>
    /// TensorFlow 1.x's RMSProp with momentum, by hand for a constant gradient g = 2 and rate 0.1:
    /// ms starts at 1, ms ← 0.9·ms + 0.1·g², mom ← 0.9·mom + rate·g/√(ms + 1e−10), θ ← θ − mom.
    /// </summary>
    [Fact]
    public void RMSProp_follows_TensorFlow_with_decay_and_momentum_0_9()
    {
        using var theta = tensor(new[] { 1.0 }, requires_grad: true);
        var optimizer = ParameterOptimizer.Create(OptimizerKind.Rmsprop, [("theta", theta)]);
        double expected = 1, ms = 1, mom = 0;
        for (int step = 0; step < 3; step++)
        {
            theta.grad?.zero_();
            using (var loss = theta.sum().mul(2.0)) loss.backward();
            optimizer.Step(0.1);
            ms = 0.9 * ms + 0.1 * 4;
            mom = 0.9 * mom + 0.1 * 2 / Math.Sqrt(ms + 1e-10);
            expected -= mom;
            Assert.Equal(expected, theta.item<double>(), 12);
        }
    }
}
